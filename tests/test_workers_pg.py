"""Four worker processes on one PostgreSQL schema: every task and timer exactly once.

Each worker is ``tests/workerproc.py loop``: ``scheduler.run_due`` until the database
shows all work done. The ``count.once`` handler writes one row per call through the
unit of work's session (committed with the step) and one raw line per call to its
process's own file (written whether or not the step commits). Timers run on the system
clock (``PT1S``), so they fall due while the workers are running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
import workerproc
from conftest import BPMN

from runner.queries import tasklists as inbox
from runner.service.runtime import Runner
from runner.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

INSTANCES = 500
WORKERS = 4
DEADLINE = 150.0  # seconds a worker keeps going before it gives up (exit code 3)


def _start_workers(url: str, raw_dir: Path) -> list[subprocess.Popen]:
    env = {**os.environ, "RUNNER_DATABASE_URL": url, "RUNNER_CLOCK": "system", "WORKER_RAW_DIR": str(raw_dir)}
    return [
        subprocess.Popen(
            [sys.executable, workerproc.__file__, "loop", "--seconds", str(DEADLINE)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]


def _reports(procs: list[subprocess.Popen]) -> list[dict]:
    reports = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=DEADLINE + 30)
            assert proc.returncode == 0, f"worker exited {proc.returncode}: {err[-3000:]}"
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return reports


def test_four_workers_run_every_task_and_timer_exactly_once(pg_url: str, tmp_path: Path) -> None:
    runner = Runner(Settings.from_env({}, database_url=pg_url, clock="system"), registry=workerproc.make_registry())
    with runner.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "create table invocations (id serial primary key, job_key varchar(100), "
                "element_id varchar(50), pid integer)"
            )
        )
    runner.deploy([BPMN / "jobs" / "count.bpmn"])
    began = time.monotonic()
    ids = {runner.start_instance("jobs_count", f"KH-{n:03d}", {"wait": "PT1S"}) for n in range(INSTANCES)}
    started = time.monotonic()
    (raw := tmp_path / "raw").mkdir()

    reports = _reports(_start_workers(pg_url, raw))
    worked = time.monotonic() - started
    print(
        f"\n{INSTANCES} instances started in {started - began:.1f} s; {WORKERS} workers finished in "
        f"{worked:.1f} s; work per worker: {sorted(r['ran'] for r in reports)}"
    )

    assert all(r["done"] for r in reports)
    assert sum(r["ran"] for r in reports) == INSTANCES * 3
    _assert_exactly_once(runner, ids, raw)
    runner.db.engine.dispose()


def _assert_exactly_once(runner: Runner, ids: set[str], raw: Path) -> None:
    with runner.db.engine.connect() as conn:
        committed = Counter(conn.execute(sa.text("select job_key from invocations")).scalars())
        timers = conn.execute(sa.text("select instance_id, state from timers")).all()
        fired = Counter(conn.execute(sa.text("select instance_id from history where event = 'timer.fired'")).scalars())
        job_rows = conn.execute(sa.text("select instance_id || '/' || id, state, attempts from jobs")).all()
        statuses = Counter(conn.execute(sa.text("select status from instances")).scalars())
    calls = Counter(line.split()[1] for path in raw.glob("raw-*.log") for line in path.read_text().splitlines())

    job_keys = {key for key, _, _ in job_rows}
    assert len(job_keys) == INSTANCES * 2
    assert {(state, attempts) for _, state, attempts in job_rows} == {("done", 1)}
    assert committed == Counter(dict.fromkeys(job_keys, 1))
    assert calls == Counter(dict.fromkeys(job_keys, 1))
    assert sorted(i for i, _ in timers) == sorted(ids)
    assert {state for _, state in timers} == {"fired"}
    assert fired == Counter(dict.fromkeys(ids, 1))
    assert statuses == Counter({"completed": INSTANCES})
    assert inbox.incidents(runner, state=None) == []


def test_a_worker_killed_mid_batch_leaves_its_batch_to_another_exactly_once(pg_url: str, tmp_path: Path) -> None:
    """SIGKILL while the third item of a batch of 10 runs: its leases come back at once, each item runs once."""
    count = 30
    runner = Runner(Settings.from_env({}, database_url=pg_url, clock="system"), registry=workerproc.make_registry())
    with runner.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "create table invocations (id serial primary key, job_key varchar(100), "
                "element_id varchar(50), pid integer)"
            )
        )
    runner.deploy([BPMN / "jobs" / "count.bpmn"])
    ids = {runner.start_instance("jobs_count", f"KH-{n:03d}", {"wait": "PT1S"}) for n in range(count)}
    (raw := tmp_path / "raw").mkdir()
    env = {
        **os.environ,
        "RUNNER_DATABASE_URL": pg_url,
        "RUNNER_CLOCK": "system",
        "RUNNER_CLAIM_BATCH": "10",
        "RUNNER_JOB_LEASE_SECONDS": "3600",  # NOTE: far beyond the test: only the dead worker's lock frees them
        "WORKER_RAW_DIR": str(raw),
    }
    doomed = subprocess.Popen(
        [sys.executable, workerproc.__file__, "loop", "--seconds", "60"],
        env={**env, "WORKER_BLOCK_AT": "3"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert doomed.stdout is not None
        line = doomed.stdout.readline()
        assert line.startswith(workerproc.BLOCKED), line + doomed.stderr.read() if doomed.stderr else ""
        blocked_key = line.split()[1]
        with runner.db.engine.connect() as conn:
            held = conn.execute(sa.text("select count(*) from jobs where locked_by is not null")).scalar_one()
        assert held == 8  # ten claimed, two done, the third in its handler
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.communicate()

    [report] = _reports(
        [
            subprocess.Popen(
                [sys.executable, workerproc.__file__, "loop", "--seconds", str(DEADLINE)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        ]
    )
    assert report["done"] and report["ran"] == count * 3 - 2

    with runner.db.engine.connect() as conn:
        committed = Counter(conn.execute(sa.text("select job_key from invocations")).scalars())
        called = Counter(
            conn.execute(
                sa.text("select instance_id || '/' || element_id from history where event = 'handler.called'")
            ).scalars()
        )
        fired = Counter(conn.execute(sa.text("select instance_id from history where event = 'timer.fired'")).scalars())
        job_keys = set(conn.execute(sa.text("select instance_id || '/' || id from jobs")).scalars())
        leased = conn.execute(sa.text("select count(*) from jobs where locked_by is not null")).scalar_one()
    calls = Counter(line.split()[1] for path in raw.glob("raw-*.log") for line in path.read_text().splitlines())
    assert len(job_keys) == count * 2 and leased == 0
    assert committed == Counter(dict.fromkeys(job_keys, 1))
    assert called == Counter({f"{i}/{e}": 1 for i in ids for e in ("first", "second")})
    assert fired == Counter(dict.fromkeys(ids, 1))
    # The killed call never committed; it ran again in the second worker, and nothing else did.
    assert calls == Counter({**dict.fromkeys(job_keys, 1), blocked_key: 2})
    assert inbox.incidents(runner, state=None) == []
    runner.db.engine.dispose()
