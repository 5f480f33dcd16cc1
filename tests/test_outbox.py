"""The outbox against a real webhook receiver on 127.0.0.1, and workers killed mid-work.

The receiver applies each ``Idempotency-Key`` once and counts both raw requests and
applied effects. Crash tests run a worker as a separate OS process
(``tests/workerproc.py``) and kill it with SIGKILL at the worst moment.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import loopback
import pytest
import workerproc
from conftest import BPMN, make_runner

from runner.errors import Conflict, Invalid, NotFound
from runner.queries import tasklists as inbox
from runner.service import outbox
from runner.service.runtime import Runner

JOBS = BPMN / "jobs"
WORKER = Path(workerproc.__file__)
WAIT = 60.0  # seconds a test waits for another process or thread before failing


class Receiver:
    """A webhook receiver that applies each Idempotency-Key once and counts everything."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.applied: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.hold_next = False
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.url = ""

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, applying nothing."""
        with self.lock:
            self.answers.extend(statuses)

    def handle(self, path: str, key: str | None, body: dict[str, Any]) -> int:
        """Count the request, apply it unless its key was applied before; the HTTP status."""
        with self.lock:
            self.requests.append({"path": path, "key": key, "body": body})
            if self.answers:
                return self.answers.pop(0)
            if key is None or key not in {a["key"] for a in self.applied}:
                self.applied.append({"key": key, "body": body})
            hold, self.hold_next = self.hold_next, False
        if hold:
            # The effect is applied, but the sender never hears back.
            self.arrived.set()
            self.release.wait(WAIT)
        return 200

    def keys(self) -> list[str | None]:
        """The Idempotency-Key of every raw request, in arrival order."""
        with self.lock:
            return [r["key"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver served from a thread on 127.0.0.1."""
    rec = Receiver()
    answer = lambda path, headers, body: (rec.handle(path, headers.get("Idempotency-Key"), body), None)  # noqa: E731
    with loopback.serve(answer, "receiver") as rec.url:
        try:
            yield rec
        finally:
            rec.release.set()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """A fresh migrated database URL on each backend."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def transports() -> Iterator[None]:
    """Channels registered by a test are forgotten afterwards."""
    saved = dict(outbox.TRANSPORTS)
    yield
    outbox.TRANSPORTS.clear()
    outbox.TRANSPORTS.update(saved)


@pytest.fixture
def hub(db_url: str, receiver: Receiver, transports: None) -> Iterator[Runner]:
    """A runner whose webhook channel posts to the receiver, with the worker's handlers."""
    workerproc.register_plain_channel()
    r = make_runner(db_url, workerproc.make_registry(), webhook_url=receiver.url)
    r.deploy([JOBS / "notify.bpmn", JOBS / "send_and_wait.bpmn"])
    yield r
    r.db.engine.dispose()


class Workers:
    """Worker processes started by a test; any still running are killed at teardown."""

    def __init__(self, url: str, webhook: str, raw_dir: Path):
        self.env = {
            **os.environ,
            "RUNNER_DATABASE_URL": url,
            "RUNNER_CLOCK": "virtual",
            "RUNNER_WEBHOOK_URL": webhook,
            "WORKER_RAW_DIR": str(raw_dir),
        }
        self.procs: list[subprocess.Popen] = []
        self.raw_dir = raw_dir

    def start(self, mode: str, **env: str) -> subprocess.Popen:
        """Start ``workerproc.py mode`` with the venv's python."""
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), mode],
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def finish(self, proc: subprocess.Popen) -> dict[str, Any]:
        """Wait for a worker to exit on its own; its JSON report."""
        out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL: no cleanup, no rollback by the process itself."""
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=WAIT)
        assert proc.returncode == -signal.SIGKILL

    def raw_calls(self) -> list[str]:
        """Every handler call any worker process made, committed or not."""
        return [
            line
            for path in sorted(self.raw_dir.glob("raw-*.log"))
            for line in path.read_text(encoding="utf-8").splitlines()
        ]

    def close(self) -> None:
        """Kill (by pid, through Popen) whatever this test started and is still running."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=WAIT)


@pytest.fixture
def workers(db_url: str, receiver: Receiver, tmp_path: Path) -> Iterator[Workers]:
    """Starts worker processes on the test's database; kills leftovers at teardown."""
    raw = tmp_path / "raw"
    raw.mkdir()
    pool = Workers(db_url, receiver.url, raw)
    yield pool
    pool.close()


def wait_for_line(proc: subprocess.Popen, wanted: str, timeout: float = WAIT) -> None:
    """Read the worker's stdout until ``wanted`` (fails on exit or timeout)."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            assert sel.select(timeout), f"worker did not print {wanted!r} within {timeout} s"
            line = proc.stdout.readline()
            assert line, f"worker exited ({proc.wait()}) before printing {wanted!r}: {proc.stderr.read()}"
            if line.strip() == wanted:
                return


def notify(runner: Runner, channel: str, business_key: str, text: str = "hello") -> dict[str, Any]:
    """One instance whose handler queued one message; that message's outbox row."""
    instance_id = runner.start_instance("jobs_notify", business_key, {"channel": channel, "text": text})
    runner.run_due()
    rows = [m for m in inbox.outbox(runner) if m["instance_id"] == instance_id]
    assert len(rows) == 1
    return rows[0]


def row(runner: Runner, message_id: int) -> dict[str, Any]:
    """The current outbox row."""
    return next(m for m in inbox.outbox(runner) if m["id"] == message_id)


# --- delivery against the receiver -----------------------------------------------------


def test_each_message_is_delivered_once(hub: Runner, receiver: Receiver) -> None:
    messages = [notify(hub, "webhook", f"KH-{n}", f"chào {n}") for n in range(3)]
    assert [m["state"] for m in messages] == ["pending"] * 3

    assert hub.deliver_outbox() == 3
    assert hub.deliver_outbox() == 0
    hub.advance_clock(timedelta(days=1))

    assert sorted(receiver.keys()) == sorted(m["idempotency_key"] for m in messages)
    assert len(receiver.applied) == 3
    assert {a["body"]["payload"]["text"] for a in receiver.applied} == {"chào 0", "chào 1", "chào 2"}
    assert {a["body"]["business_key"] for a in receiver.applied} == {"KH-0", "KH-1", "KH-2"}
    assert [m["state"] for m in inbox.outbox(hub)] == ["sent"] * 3


def test_server_error_is_retried_with_backoff_then_delivered(hub: Runner, receiver: Receiver) -> None:
    receiver.fail_next(503, 503)
    message = notify(hub, "webhook", "KH-1")
    first = hub.now()

    assert hub.deliver_outbox() == 0
    now = row(hub, message["id"])
    assert (now["state"], now["attempts"], now["last_error"]) == ("pending", 1, f"HTTP 503 from {receiver.url}")
    assert now["due_at"] == first + timedelta(seconds=10)
    hub.advance_clock(timedelta(seconds=9))
    assert len(receiver.requests) == 1

    hub.advance_clock(timedelta(seconds=1))
    assert len(receiver.requests) == 2
    assert row(hub, message["id"])["due_at"] == first + timedelta(seconds=10 + 20)
    hub.advance_clock(timedelta(seconds=20))

    assert receiver.keys() == [message["idempotency_key"]] * 3
    assert len(receiver.applied) == 1
    assert (row(hub, message["id"])["state"], row(hub, message["id"])["attempts"]) == ("sent", 3)


def test_client_error_fails_for_good_until_resent(hub: Runner, receiver: Receiver) -> None:
    receiver.fail_next(422)
    message = notify(hub, "webhook", "KH-1")

    hub.deliver_outbox()
    hub.advance_clock(timedelta(days=2))
    failed = row(hub, message["id"])
    assert (failed["state"], failed["last_error"]) == ("failed", f"HTTP 422 from {receiver.url}")
    assert len(receiver.requests) == 1

    outbox.resolve(hub, message["id"], "resend")
    assert hub.deliver_outbox() == 1
    assert row(hub, message["id"])["state"] == "sent"
    assert receiver.keys() == [message["idempotency_key"]] * 2
    assert len(receiver.applied) == 1


def test_dismiss_and_wrong_decisions(hub: Runner, receiver: Receiver) -> None:
    receiver.fail_next(400)
    dismissed = notify(hub, "webhook", "KH-1")
    hub.deliver_outbox()
    outbox.resolve(hub, dismissed["id"], "dismiss")
    sent = notify(hub, "webhook", "KH-2")
    hub.deliver_outbox()
    hub.advance_clock(timedelta(days=1))

    assert row(hub, dismissed["id"])["state"] == "dismissed"
    assert receiver.keys() == [dismissed["idempotency_key"], sent["idempotency_key"]]
    with pytest.raises(Conflict, match="is sent"):
        outbox.resolve(hub, sent["id"], "resend")
    with pytest.raises(Conflict, match="is dismissed"):
        outbox.resolve(hub, dismissed["id"], "resend")
    with pytest.raises(NotFound):
        outbox.resolve(hub, 9999, "resend")
    with pytest.raises(Invalid, match="use resend or dismiss"):
        outbox.resolve(hub, dismissed["id"], "retry")


def test_unknown_channel_and_broken_transport_fail_clearly(hub: Runner, receiver: Receiver) -> None:
    class Broken:
        idempotent = True

        def send(self, envelope: outbox.Envelope) -> None:
            raise KeyError("template")

    outbox.register_transport("broken", lambda settings: Broken())
    nowhere = notify(hub, "fax", "KH-1")
    broken = notify(hub, "broken", "KH-2")

    assert hub.deliver_outbox() == 0
    assert row(hub, nowhere["id"])["state"] == "failed"
    assert row(hub, nowhere["id"])["last_error"] == "no transport for channel 'fax'"
    assert row(hub, broken["id"])["state"] == "failed"
    assert row(hub, broken["id"])["last_error"] == "transport 'broken' raised KeyError: 'template'"


# --- workers killed with SIGKILL ---------------------------------------------------------


def _kill_during_delivery(hub: Runner, receiver: Receiver, workers: Workers, channel: str) -> dict[str, Any]:
    """A worker process delivers; the receiver applies, stalls; the worker is killed."""
    message = notify(hub, channel, "KH-1")
    receiver.hold_next = True
    proc = workers.start("deliver")
    assert receiver.arrived.wait(WAIT), "the worker's request never arrived"
    assert row(hub, message["id"])["state"] == "sending"
    workers.kill(proc)
    _until_the_server_lets_go(hub, message["id"])
    receiver.release.set()
    return message


def _until_the_server_lets_go(hub: Runner, message_id: int) -> None:
    """Wait until the killed sender's lock is free: the kernel closes its socket at once, but a
    PostgreSQL backend releases its session locks only when it notices, a moment later (under
    load, after the test's next statement: seen once in a full run)."""
    deadline = time.monotonic() + WAIT
    while True:
        with hub.db.unit() as s:
            if hub.sender_locks.gone(s, message_id):
                return
        assert time.monotonic() < deadline, "the database kept the killed sender's lock"
        time.sleep(0.02)  # NOTE: polling another process's exit, not standing in for the runner's clock


def test_a_live_senders_message_is_left_to_it_until_its_lease_runs_out(
    hub: Runner, receiver: Receiver, workers: Workers
) -> None:
    message = notify(hub, "webhook", "KH-1")
    receiver.hold_next = True
    proc = workers.start("deliver")
    assert receiver.arrived.wait(WAIT), "the worker's request never arrived"

    assert hub.deliver_outbox() == 0  # the sender lives and holds its lock: nobody else sends it
    assert row(hub, message["id"])["state"] == "sending"
    receiver.release.set()
    assert workers.finish(proc)["sent"] == 1
    assert (row(hub, message["id"])["state"], len(receiver.requests)) == ("sent", 1)


def test_worker_killed_mid_delivery_is_resent_under_the_same_key_without_waiting_for_the_lease(
    hub: Runner, receiver: Receiver, workers: Workers
) -> None:
    message = _kill_during_delivery(hub, receiver, workers, "webhook")

    # NOTE: the clock stays put: the dead sender's lock is gone, its lease is not.
    assert hub.deliver_outbox() == 1
    after = row(hub, message["id"])
    assert (after["state"], after["attempts"]) == ("sent", 2)
    assert receiver.keys() == [message["idempotency_key"]] * 2
    assert len(receiver.applied) == 1
    hub.advance_clock(timedelta(days=1))
    assert len(receiver.requests) == 2


@pytest.mark.parametrize("action", ["resend", "dismiss"])
def test_non_idempotent_message_of_a_killed_worker_waits_for_an_admin(
    hub: Runner, receiver: Receiver, workers: Workers, action: str
) -> None:
    message = _kill_during_delivery(hub, receiver, workers, workerproc.PLAIN_CHANNEL)

    hub.deliver_outbox()  # at once, not after the lease
    assert row(hub, message["id"])["state"] == "unknown"
    hub.advance_clock(timedelta(days=3))
    unknown = row(hub, message["id"])
    assert unknown["state"] == "unknown"
    assert "may or may not have arrived" in unknown["last_error"]
    assert len(receiver.requests) == 1

    outbox.resolve(hub, message["id"], action)
    hub.deliver_outbox()
    if action == "resend":
        assert row(hub, message["id"])["state"] == "sent"
        assert [r["body"]["key"] for r in receiver.requests] == [message["idempotency_key"]] * 2
        assert len(receiver.applied) == 2  # the admin chose to risk a repeat
    else:
        assert row(hub, message["id"])["state"] == "dismissed"
        assert len(receiver.requests) == 1


def test_worker_killed_inside_a_handler_leaves_no_message(hub: Runner, receiver: Receiver, workers: Workers) -> None:
    instance_id = hub.start_instance("jobs_send_and_wait", "KH-1")
    proc = workers.start("run", WORKER_BLOCK_IN_HANDLER="1")
    wait_for_line(proc, workerproc.BLOCKED)
    workers.kill(proc)

    assert inbox.outbox(hub) == []
    [job] = inbox.instance(hub, instance_id)["jobs"]
    assert (job["state"], job["attempts"]) == ("pending", 0)
    assert len(workers.raw_calls()) == 1

    assert workers.finish(workers.start("run"))["ran"] == 1
    assert len(workers.raw_calls()) == 2  # the killed try, and exactly one more
    [message] = inbox.outbox(hub)
    assert message["state"] == "pending"
    assert inbox.instance(hub, instance_id)["status"] == "completed"
    assert [h["event"] for h in inbox.history(hub, instance_id=instance_id) if h["event"].startswith("handler.")] == [
        "handler.called",
        "handler.succeeded",
    ]

    assert hub.deliver_outbox() == 1
    hub.advance_clock(timedelta(days=1))
    assert receiver.keys() == [message["idempotency_key"]]
    assert len(receiver.applied) == 1
    assert row(hub, message["id"])["state"] == "sent"


def test_a_second_process_starts_on_the_persisted_virtual_clock(runner: Runner, sqlite_url: str, registry) -> None:
    """A worker started later must share the test's virtual 'now', not its own start time."""
    other = make_runner(sqlite_url, registry)
    try:
        assert other.now() == runner.now()
    finally:
        other.db.engine.dispose()
