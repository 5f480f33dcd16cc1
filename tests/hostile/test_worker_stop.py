"""A real worker process stops promptly on SIGTERM while a script runs, and leaves its job due."""

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
from runner.store.models import Job
from tests.hostile.test_budgets import diagram

WORKERPROC = Path(__file__).resolve().parents[1] / "workerproc.py"
ENDLESS = "x = 0\nwhile x >= 0:\n    x += 1"


def wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll another process's effect until it shows, or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the worker did not get there in time"
        time.sleep(0.05)


def test_sigterm_ends_a_running_script_and_its_job_stays_due(sqlite_url: str, tmp_path: Path, registry) -> None:
    registry.add("worker.note", lambda params, ctx: {})
    runner = Runner(Settings.from_env({}, database_url=sqlite_url, clock="system"), registry=registry)
    runner.deploy({name: xml.replace(b"budget.ok", b"worker.note") for name, xml in diagram("job", ENDLESS).items()})
    instance_id = runner.start_instance("budget_job", "KH1")

    # The script may run for ten minutes: only the signal can end it in time.
    env = {
        **os.environ,
        "RUNNER_DATABASE_URL": sqlite_url,
        "RUNNER_CLOCK": "system",
        "RUNNER_POLL_SECONDS": "0.2",
        "RUNNER_SCRIPT_TIMEOUT": "600",
        "WORKER_RAW_DIR": str(tmp_path),
    }
    worker = subprocess.Popen(
        [sys.executable, str(WORKERPROC), "work"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # The handler notes its call just before the endless script after it starts.
        wait_for(lambda: any(p.read_text() for p in tmp_path.glob("raw-*.log")))
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, output

    # The unit of work rolled back: the job is due again, untried, and nothing is an incident.
    with runner.db.read() as s:
        job = s.query(Job).filter(Job.instance_id == instance_id).one()
        assert (job.state, job.attempts) == ("pending", 0)
    assert inbox.incidents(runner) == []
    assert inbox.instance(runner, instance_id)["status"] == "running"
    runner.db.engine.dispose()
