"""Fault injection on PostgreSQL: three ``runner worker`` processes, killed with kill -9 at random.

Each instance of ``tests/bpmn/hostile/fault.bpmn`` waits on a timer, sends one Zalo
message through the outbox (the real Zalo transport, to the Zalo OA fake of
test_transports on 127.0.0.1, which counts deliveries per recipient), waits for a reply
that this test correlates, waits on a second timer and ends. Instances are started while
the workers run; at KILLS random points of the run's progress (seeded) one worker at
work is killed with SIGKILL and a new one started in its place.

Zalo cannot drop a repeat, so a message whose sender was killed mid-send is ``unknown``:
that is the outbox keeping its promise, not a failure. When the work is done this test
decides on each as an admin would (it arrived: dismiss; it did not: resend), then checks:
0 lost (every instance completed, every message delivered), 0 stuck (no job, timer or
message left, no incident), 0 duplicated sends (counted at the server), 0 duplicated
history rows. ``FAULT_SEED`` replays the random choices of a run (which worker dies, at
what progress, the timers' durations; not the moments the OS gives each process),
``FAULT_LOGS`` names a folder to keep the workers' logs in. The figures are printed
(``pytest -s``).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import loopback
import pytest
import sqlalchemy as sa
from conftest import BPMN
from test_transports import TOKEN, ZaloServer

from runner.crm.extension import easyedu
from runner.crm.settings import CrmSettings
from runner.errors import Conflict
from runner.registry import installed
from runner.service import outbox
from runner.service.runtime import Runner
from runner.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

INSTANCES = 300
WORKERS = 3
DEADLINE = 150.0  # seconds of work before the test gives up
KILLS = 30  # kill -9s, at random points of the run's progress (so a fast machine gets as many)
# Progress per instance: 9 history rows (started, 2 timers scheduled and fired, handler
# called and succeeded, reply correlated, completed) and its message settled.
STEPS = 10
STARTS_PER_ROUND = 15  # instances started per round of the driving loop
LATENCY = 0.02  # seconds Zalo takes to answer: a kill often lands while a message is in flight
FIXTURE = BPMN / "hostile" / "fault.bpmn"


class SlowZalo(ZaloServer):
    """The Zalo OA fake, answering after LATENCY like a real API across a network."""

    def handle(self, path: str, token: str | None, body: dict[str, Any]):
        time.sleep(LATENCY)  # the network's latency, not a wait for time in the test
        return super().handle(path, token, body)

    def deliveries(self) -> Counter:
        """How many times each recipient got its message."""
        with self.lock:
            return Counter(d["recipient"] for d in self.delivered)


@pytest.fixture
def zalo() -> Iterator[SlowZalo]:
    """The slow Zalo OA fake on 127.0.0.1."""
    fake = SlowZalo()
    with loopback.serve(
        lambda path, headers, body: fake.handle(path, headers.get("access_token"), body), "zalo"
    ) as fake.url:
        yield fake


class Fleet:
    """The worker processes (``runner worker``); kill -9 one at random, start one in its place."""

    def __init__(self, env: dict[str, str], logs: Path, rng: random.Random):
        self.env, self.logs, self.rng = env, logs, rng
        self.procs: dict[Path, subprocess.Popen] = {}
        self.kills = 0

    def start(self) -> None:
        """One more ``runner worker``, logging to its own file."""
        path = self.logs / f"worker-{len(self.procs) + self.kills}.log"
        with open(path, "w") as log:
            self.procs[path] = subprocess.Popen(
                [sys.executable, "-m", "runner.cli", "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def kill_one(self) -> bool:
        """SIGKILL a working worker chosen at random (through Popen, by its pid) and replace it.

        Only workers that have said "started" count: killing one still importing Python
        would test nothing. False when none has started yet.
        """
        working = [path for path in self.procs if "started on" in path.read_text(errors="replace")]
        if not working:
            return False
        proc = self.procs.pop(self.rng.choice(working))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.kills += 1
        self.start()
        return True

    def tails(self, lines: int = 15) -> str:
        """The end of each running worker's log, to say why work stopped."""
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for path in self.procs
        )

    def stop(self) -> None:
        """SIGTERM each worker: one at work finishes its tick and exits 0."""
        started = {path: "started on" in path.read_text(errors="replace") for path in self.procs}
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {path: proc.wait(timeout=60) for path, proc in self.procs.items()}
        # A worker still importing Python has no handler yet: SIGTERM ends it, as it should.
        wrong = {path.name: code for path, code in codes.items() if code != 0 and (started[path] or code != -15)}
        assert not wrong, f"workers exited {wrong}; logs in {self.logs}"

    def close(self) -> None:
        """Kill whatever this test started and is still running."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _count(runner: Runner, sql: str) -> int:
    with runner.db.engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


def _left(runner: Runner) -> dict[str, int]:
    """What is not finished yet, by kind (all zero: the work is done)."""
    return {
        "running instances": _count(runner, "select count(*) from instances where status = 'running'"),
        "pending jobs": _count(runner, "select count(*) from jobs where state = 'pending'"),
        "waiting timers": _count(runner, "select count(*) from timers where state = 'waiting'"),
        "messages on the way": _count(runner, "select count(*) from outbox where state in ('pending', 'sending')"),
    }


def _reply(runner: Runner) -> None:
    """The customers answer: correlate the reply of every instance waiting for one."""
    with runner.db.engine.connect() as conn:
        waiting = conn.execute(sa.text("select business_key from subscriptions where message_name = 'fault_reply'"))
        keys = waiting.scalars().all()
    for key in keys:
        with contextlib.suppress(Conflict):  # a worker has the instance right now; it is answered next round
            runner.correlate("fault_reply", key, {})


def _progress(runner: Runner) -> int:
    """Steps done so far: history rows written and messages settled (STEPS per instance)."""
    return _count(runner, "select count(*) from history") + _count(
        runner, "select count(*) from outbox where state not in ('pending', 'sending')"
    )


def _drive(runner: Runner, fleet: Fleet, rng: random.Random) -> None:
    """Start the instances, answer them and kill workers until everything is done."""
    began = report = time.monotonic()
    kill_at = sorted(rng.uniform(0, INSTANCES * STEPS) for _ in range(KILLS))
    started = 0
    while any((left := _left(runner)).values()) or started < INSTANCES:
        assert time.monotonic() < began + DEADLINE, f"not done in {DEADLINE:g} s: {left}\n{fleet.tails()}"
        if time.monotonic() >= report:  # progress, for a reader of ``pytest -s``
            print(f"{time.monotonic() - began:5.1f} s: {started} started, {fleet.kills} kills, {left}", flush=True)
            report += 10.0
        for n in range(started, min(started + STARTS_PER_ROUND, INSTANCES)):
            runner.start_instance(
                "fault_path", f"FI-{n:03d}", {"recipient": f"FI-{n:03d}", "wait": f"PT{rng.randint(1, 3)}S"}
            )
        started = min(started + STARTS_PER_ROUND, INSTANCES)
        _reply(runner)
        if kill_at and kill_at[0] <= _progress(runner) and fleet.kill_one():
            kill_at.pop(0)
        time.sleep(0.1)  # the workers are other processes: look again in a moment


def _decide_unknowns(runner: Runner, zalo: SlowZalo) -> tuple[int, int]:
    """An admin's decision on each uncertain message: dismiss what arrived, resend the rest."""
    with runner.db.engine.connect() as conn:
        unknown = conn.execute(sa.text("select id, business_key from outbox where state = 'unknown'")).all()
    arrived = zalo.deliveries()
    dismissed = resent = 0
    for message_id, key in unknown:
        if arrived[key]:
            outbox.resolve(runner, message_id, "dismiss")
            dismissed += 1
        else:
            outbox.resolve(runner, message_id, "resend")
            resent += 1
    runner.deliver_outbox()
    return dismissed, resent


def _duplicated_history(runner: Runner) -> list[tuple]:
    """History rows that say the same thing twice: one event of one element of one instance."""
    with runner.db.engine.connect() as conn:
        return conn.execute(
            sa.text(
                "select instance_id, event, element_id, count(*) from history "
                "group by instance_id, event, element_id having count(*) > 1"
            )
        ).all()


def _states(runner: Runner, table: str) -> Counter:
    with runner.db.engine.connect() as conn:
        return Counter(conn.execute(sa.text(f"select state from {table}")).scalars())


@pytest.fixture
def wired(pg_url: str, zalo: SlowZalo) -> Iterator[tuple[Runner, dict[str, str]]]:
    """The test's runner on the system clock, and the environment of its workers."""
    transports = {"transports": "zalo=zalo_oa", "zalo_base_url": zalo.url, "zalo_access_token": TOKEN}
    runner = Runner(
        Settings.from_env({}, database_url=pg_url, clock="system"),
        registry=installed(),
        extensions=(easyedu(crm=CrmSettings(**transports)),),
    )
    runner.deploy([FIXTURE])
    env = {
        **os.environ,
        "RUNNER_DATABASE_URL": pg_url,
        "RUNNER_CLOCK": "system",
        "RUNNER_POLL_SECONDS": "0.1",
        **{f"RUNNER_{name.upper()}": value for name, value in transports.items()},
    }
    yield runner, env
    runner.db.engine.dispose()


def test_random_kill_9s_of_three_workers_lose_nothing_and_do_nothing_twice(
    wired: tuple[Runner, dict[str, str]], zalo: SlowZalo, tmp_path: Path
) -> None:
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nFAULT_SEED={seed}")
    rng = random.Random(seed)
    runner, env = wired
    logs = Path(os.environ.get("FAULT_LOGS") or tmp_path)  # where the workers' logs stay
    fleet = Fleet(env, logs, rng)
    began = time.monotonic()
    try:
        for _ in range(WORKERS):
            fleet.start()
        _drive(runner, fleet, rng)
        fleet.stop()
    finally:
        fleet.close()
    worked = time.monotonic() - began
    unknown = _states(runner, "outbox")["unknown"]
    dismissed, resent = _decide_unknowns(runner, zalo)
    sends = zalo.deliveries()
    duplicates = sum(count - 1 for count in sends.values())
    history = _duplicated_history(runner)
    print(
        f"{INSTANCES} instances, {WORKERS} workers, {fleet.kills} kill -9s in {worked:.1f} s; "
        f"{len(zalo.requests)} requests to Zalo, {sum(sends.values())} deliveries, {duplicates} duplicated; "
        f"{unknown} unknown after a kill ({dismissed} had arrived: dismissed, {resent} had not: resent); "
        f"{len(history)} duplicated history rows"
    )

    assert fleet.kills >= KILLS // 2  # kills due in the last moments may find no worker at work
    assert _states(runner, "outbox") <= Counter({"sent": INSTANCES, "dismissed": INSTANCES})
    assert sends == Counter({f"FI-{n:03d}": 1 for n in range(INSTANCES)})
    assert history == []
    assert _left(runner) == dict.fromkeys(_left(runner), 0)
    assert _count(runner, "select count(*) from instances where status = 'completed'") == INSTANCES
    assert _states(runner, "jobs") == Counter({"done": INSTANCES})
    assert _states(runner, "timers") == Counter({"fired": 2 * INSTANCES})
    assert _count(runner, "select count(*) from incidents") == 0
