"""`runner worker` as a real process: APScheduler ticks, the database holds the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runner.queries import tasklists as inbox
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store.models import Timer

LOOP = Path(__file__).parent / "bpmn" / "loop.bpmn"


def wait_for(predicate, timeout: float = 30.0) -> None:
    """Poll another process's effect on the database until it shows, or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the worker did not do the work in time"
        time.sleep(0.05)


def test_runner_worker_runs_due_jobs_and_stops_on_sigterm(sqlite_url: str, registry) -> None:
    runner = Runner(Settings.from_env({}, database_url=sqlite_url, clock="system"), registry=registry)
    runner.deploy([LOOP])
    instance_id = runner.start_instance("care_loop", "KH1", {"rounds": 0, "limit": 1})
    [task] = inbox.tasks(runner, business_key="KH1")
    runner.complete_task(task["id"], {"note": "done"}, actor="lan")
    # The month's timer is due in a month on the system clock: make it due now.
    with runner.db.unit() as s:
        s.query(Timer).filter(Timer.instance_id == instance_id).update({"due_at": runner.now()})

    env = {**os.environ, "RUNNER_DATABASE_URL": sqlite_url, "RUNNER_CLOCK": "system", "RUNNER_POLL_SECONDS": "0.2"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: inbox.instance(runner, instance_id)["status"] == "completed")
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert "stopped" in output
    events = [h["event"] for h in inbox.history(runner, instance_id=instance_id)]
    assert events.count("timer.fired") == 1 and events.count("handler.succeeded") == 1
    assert inbox.instance(runner, instance_id)["data"]["rounds"] == 1
