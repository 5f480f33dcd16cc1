"""A message orphaned by a killed ``runner worker`` is settled by the next one at start-up.

The worker sends a Zalo message; the Zalo OA fake keeps the request and never answers;
the worker is killed with SIGKILL. The virtual clock never moves, so the message's
2-minute lease has not run out: only the dead sender's lock (runner.store.leases) tells the
restarted worker that nobody is sending it any more. Zalo cannot drop a repeat, so the
message becomes ``unknown`` for an admin, and is never sent again by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_transports import WAIT, ZaloServer, announce, row, serve_zalo, settings_for, wired
from test_worker_process import wait_for

from runner.service.outbox import LEASE
from runner.service.runtime import Runner


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """A fresh migrated database URL on each backend."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


class Workers:
    """``runner worker`` processes on the test's database; any left running are killed at teardown."""

    def __init__(self, url: str, settings: dict[str, Any], logs: Path):
        self.env = {
            **os.environ,
            "RUNNER_DATABASE_URL": url,
            "RUNNER_CLOCK": "virtual",
            "RUNNER_POLL_SECONDS": "0.2",
            **{f"RUNNER_{name.upper()}": str(value) for name, value in settings.items()},
        }
        self.logs = logs
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        with open(self.logs / f"worker-{len(self.procs)}.log", "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "runner.cli", "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """Stop (through Popen, by pid) whatever this test started and is still running."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(WAIT)


@pytest.fixture
def zalo() -> Iterator[ZaloServer]:
    """The Zalo OA fake of test_transports."""
    with serve_zalo() as fake:
        yield fake


@pytest.fixture
def hub(db_url: str, registry, zalo: ZaloServer, tmp_path: Path) -> Iterator[tuple[Runner, Workers]]:
    """A runner whose zalo channel goes to the fake, and the workers of the test."""
    runner = wired(db_url, registry, zalo)
    workers = Workers(db_url, settings_for(zalo), tmp_path)
    yield runner, workers
    workers.close()
    runner.db.engine.dispose()


def test_a_restarted_worker_settles_a_killed_workers_message_before_its_lease_runs_out(
    hub: tuple[Runner, Workers], zalo: ZaloServer
) -> None:
    runner, workers = hub
    message = announce(runner)
    zalo.hold_next = True
    first = workers.start()
    assert zalo.arrived.wait(WAIT), "the worker's request never reached the Zalo server"
    first.send_signal(signal.SIGKILL)
    assert first.wait(WAIT) == -signal.SIGKILL
    zalo.release.set()
    sending = row(runner, message["id"])
    assert sending["state"] == "sending"

    workers.start()
    wait_for(lambda: row(runner, message["id"])["state"] != "sending", WAIT)

    settled = row(runner, message["id"])
    assert settled["state"] == "unknown"
    assert "may or may not have arrived" in settled["last_error"]
    assert runner.now() < sending["due_at"] + LEASE  # nobody moved the virtual clock
    assert len(zalo.requests) == 1
