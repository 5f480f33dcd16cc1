"""Batch claims, leases and worker heartbeats, on both databases, with injectable wall clocks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from conftest import make_runner
from sqlalchemy import select

from runner.clock import FixedClock
from runner.errors import Invalid
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service import claims, scheduler, workers
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from runner.store.models import Timer, Worker

CHAIN = Path(__file__).parent / "bpmn" / "scheduler" / "chain.bpmn"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def pair(url: str, registry: Registry) -> Iterator[tuple[Runner, Runner]]:
    """Two workers (w1, w2) on one database, one lease and heartbeat timeout each."""
    one = make_runner(url, registry, worker_id="w1", job_lease_seconds=60.0, worker_timeout_seconds=30.0)
    two = make_runner(url, registry, worker_id="w2", job_lease_seconds=60.0, worker_timeout_seconds=30.0)
    yield one, two
    for r in (one, two):
        r.db.engine.dispose()


def due_timers(runner: Runner, count: int) -> list[int]:
    """``count`` instances waiting on a timer due in 30 minutes, then the virtual clock moved past it."""
    runner.deploy([CHAIN])
    for n in range(count):
        runner.start_instance("chain", f"KH{n}", {"first_wait": "PT30M"})
    clock = runner.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(hours=1))
    with runner.db.unit() as s:
        runner.save_clock(s)
        return list(s.scalars(select(Timer.id).where(Timer.state == "waiting").order_by(Timer.id)))


def leases(runner: Runner) -> dict[int, str | None]:
    with runner.db.read() as s:
        return dict(s.execute(select(Timer.id, Timer.locked_by).where(Timer.state == "waiting")).all())


def test_a_claim_leases_a_batch_in_due_order_and_another_worker_gets_the_rest(pair) -> None:
    one, two = pair
    ids = due_timers(one, 5)
    two.refresh_clock()
    wall = FixedClock(one.now())

    first = claims.claim(one, claims.TIMERS, 3, wall=wall)
    second = claims.claim(two, claims.TIMERS, 3, wall=wall)

    assert [c.id for c in first] == ids[:3]
    assert [c.id for c in second] == ids[3:]
    assert claims.claim(two, claims.TIMERS, 3, wall=wall) == []
    assert leases(one) == {**dict.fromkeys(ids[:3], "w1"), **dict.fromkeys(ids[3:], "w2")}


def test_a_lease_runs_out_and_a_late_firing_by_its_old_holder_is_skipped(pair) -> None:
    one, two = pair
    [timer_id] = due_timers(one, 1)
    two.refresh_clock()
    wall = FixedClock(one.now())
    [claimed] = claims.claim(one, claims.TIMERS, 5, wall=wall)

    wall.advance(timedelta(seconds=59))
    assert claims.claim(two, claims.TIMERS, 5, wall=wall) == []
    wall.advance(timedelta(seconds=2))
    assert [c.id for c in claims.claim(two, claims.TIMERS, 5, wall=wall)] == [timer_id]

    assert scheduler.fire_claimed(one, claimed.id) is False  # w1's lease is gone: it must not fire
    assert scheduler.fire_claimed(two, timer_id) is True
    assert scheduler.fire_claimed(two, timer_id) is False  # fired: never twice
    fired = Counter(h["element_id"] for h in inbox.history(one, events=["timer.fired"]))
    assert fired == {"first": 1}
    assert leases(one) == {}


def test_the_held_statement_is_built_once_and_binds_each_row_and_worker(pair) -> None:
    one, two = pair
    ids = due_timers(one, 2)
    two.refresh_clock()
    wall = FixedClock(one.now())
    claims.claim(one, claims.TIMERS, 1, wall=wall)
    claims.claim(two, claims.TIMERS, 1, wall=wall)
    postgres = one.db.is_postgres
    (q1, p1), (q2, p2) = (claims.held_query(claims.TIMERS, i, "w1", postgres) for i in ids)
    assert q1 is q2 and p1 != p2
    with one.db.read() as s:
        held = {
            (i, worker): [t.id for t in s.scalars(*claims.held_query(claims.TIMERS, i, worker, postgres))]
            for i in ids
            for worker in ("w1", "w2")
        }
    assert held == {(ids[0], "w1"): [ids[0]], (ids[0], "w2"): [], (ids[1], "w1"): [], (ids[1], "w2"): [ids[1]]}


def test_a_worker_silent_past_the_timeout_loses_its_leases_to_any_other(pair) -> None:
    one, two = pair
    ids = due_timers(one, 4)
    two.refresh_clock()
    wall = FixedClock(one.now())
    workers.beat(one, wall)
    workers.beat(two, wall)
    claims.claim(one, claims.TIMERS, 10, wall=wall)

    wall.advance(timedelta(seconds=29))
    workers.beat(two, wall)
    assert workers.release_lost(two, wall) == []
    assert set(leases(one).values()) == {"w1"}

    wall.advance(timedelta(seconds=2))  # w1's last beat is 31 s old; the leases still had 29 s to go
    assert workers.release_lost(two, wall) == ["w1"]
    assert set(leases(one).values()) == {None}
    states = {w["id"]: w["state"] for w in workers.list_workers(two, wall)}
    assert states == {"w1": "lost", "w2": "running"}
    assert scheduler.run_due(two, wall=wall) == 8  # four timers and the four jobs after them
    fired = Counter(h["business_key"] for h in inbox.history(two, events=["timer.fired"]))
    assert fired == Counter({f"KH{n}": 1 for n in range(len(ids))})


def test_the_heartbeat_counts_work_and_keeps_the_lag_and_the_last_error(pair) -> None:
    one, _ = pair
    due_timers(one, 2)
    wall = FixedClock(one.now())
    workers.beat(one, wall, error="RunnerError: the database went away")
    [row] = workers.list_workers(one, wall)
    assert row["lag_seconds"] == pytest.approx(30 * 60)  # due 30 minutes before the virtual now
    assert (row["state"], row["items_done"], row["leases"]) == ("running", 0, 0)

    scheduler.tick(one, wall)
    [row] = workers.list_workers(one, wall)
    assert (row["items_done"], row["lag_seconds"], row["leases"]) == (4, 0.0, 0)
    assert row["last_error"] == "RunnerError: the database went away"  # the last one, kept
    wall.advance(timedelta(seconds=31))
    assert workers.list_workers(one, wall)[0]["state"] == "silent"
    with one.db.read() as s:
        assert s.get_one(Worker, "w1").state == "running"


def test_a_claimed_timer_cancelled_meanwhile_is_not_fired_and_its_lease_is_handed_back(pair) -> None:
    one, _ = pair
    [timer_id] = due_timers(one, 1)
    wall = FixedClock(one.now())
    [claimed] = claims.claim(one, claims.TIMERS, 5, wall=wall)
    # The row is gone from under the claim (cancelled): not fired, handed back by the pass.
    with one.db.unit() as s:
        s.get_one(Timer, timer_id).state = "cancelled"
    assert scheduler.fire_claimed(one, claimed.id) is False
    assert claims.release(one, claims.TIMERS, [timer_id]) == 1
    assert scheduler.run_due(one, wall=wall) == 0


def test_settings_refuse_a_batch_below_one() -> None:
    with pytest.raises(Invalid, match="RUNNER_CLAIM_BATCH"):
        Settings.from_env({"RUNNER_CLAIM_BATCH": "0"})


class Stepping:
    """A wall clock that moves one second each time it is read (a long pass, without sleeping)."""

    def __init__(self, start):
        self.clock = FixedClock(start)

    def now(self):
        return self.clock.advance(timedelta(seconds=1))


def test_a_long_pass_keeps_beating_so_the_worker_never_looks_silent(url: str, registry: Registry) -> None:
    runner = make_runner(url, registry, worker_id="w1", claim_batch=2, poll_seconds=1.0)
    due_timers(runner, 3)
    wall = Stepping(runner.now())
    pulse = workers.Pulse(runner, wall)
    seen: list[int] = []

    def after_batch(done: int) -> None:
        pulse(done)
        with runner.db.read() as s:
            seen.append(s.get_one(Worker, "w1").items_done)

    assert scheduler.run_due(runner, wall=wall, after_batch=after_batch) == 6  # three timers, three jobs
    assert seen == [2, 4, 6]  # a beat after every batch of two, not one at the end
    runner.db.engine.dispose()


def test_revision_0008_downgrades_to_the_old_indexes_and_upgrades_again(url: str) -> None:
    engine = sa.create_engine(url)

    def shape() -> tuple[list[str], list[str], bool]:
        inspector = sa.inspect(engine)
        indexes = sorted(i["name"] for t in ("timers", "jobs") for i in inspector.get_indexes(t))
        columns = [c["name"] for c in inspector.get_columns("timers") if c["name"].startswith("locked")]
        return indexes, columns, "workers" in inspector.get_table_names()

    claimed = (
        [
            "ix_jobs_claim",
            "ix_jobs_instance_id",
            "ix_jobs_leased",
            "ix_timers_claim",
            "ix_timers_leased",
            "ix_timers_task",
        ],
        ["locked_by", "locked_until"],
        True,
    )
    assert shape() == claimed
    command.downgrade(db.alembic_config(url), "0006")
    engine.dispose()
    assert shape() == (["ix_jobs_due", "ix_jobs_instance_id", "ix_timers_due", "ix_timers_task"], [], False)
    db.upgrade(url)
    engine.dispose()
    assert shape() == claimed
    engine.dispose()
