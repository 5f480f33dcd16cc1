"""Clock runs (runner.service.clockruns): one at a time, resumed after a crash, the same clock everywhere.

Two ``Runner`` objects on one database stand for two processes (two web workers, a worker
and the CLI). Leases are wall-clock time: the tests move a ``Wall`` instead of waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.errors import Conflict
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service import clockruns, scheduler
from runner.service.runtime import Runner
from tests.conftest import make_runner
from web import create_app

CHAIN = Path(__file__).parent / "bpmn" / "scheduler" / "chain.bpmn"


class Wall:
    """The wall clock leases see; a test moves it."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


class Died(BaseException):
    """Stands for the process being killed: nothing after it runs, no ``except Exception`` sees it."""


@pytest.fixture
def other(any_runner: Runner, registry: Registry) -> Iterator[Runner]:
    """A second process on the same database."""
    second = make_runner(any_runner.settings.database_url, registry)
    yield second
    second.db.engine.dispose()


def _fired(runner: Runner) -> list[tuple[str, str]]:
    return [(h["business_key"], h["element_id"]) for h in inbox.history(runner, events=["timer.fired"])]


def _chain(runner: Runner) -> None:
    runner.deploy([CHAIN])
    runner.start_instance("chain", "A", {"first_wait": "PT30M"})  # fires at 0:30 and 1:30
    runner.start_instance("chain", "B", {"first_wait": "PT1H"})  # fires at 1:00 and 2:00


def test_a_second_run_while_one_is_active_is_refused_from_any_process(any_runner: Runner, other: Runner) -> None:
    run = any_runner.request_clock_run(timedelta(days=1), "admin1")
    with pytest.raises(clockruns.RunActive, match=f"run {run['id']}") as refused:
        other.request_clock_run(timedelta(days=1), "admin2")
    assert refused.value.run["id"] == run["id"]
    other.execute_clock_run()
    assert any_runner.clock_run(run["id"])["state"] == "done"
    assert other.now() == run["start"] + timedelta(days=1)  # one day, never two


def test_a_stale_expected_time_or_a_repeated_key_never_moves_the_clock_again(any_runner: Runner) -> None:
    seen = any_runner.now()
    first = any_runner.request_clock_run(timedelta(hours=1), "admin1", expected=seen, key="k1")
    any_runner.execute_clock_run(first["id"])
    assert any_runner.request_clock_run(timedelta(hours=1), "admin1", expected=seen, key="k1")["id"] == first["id"]
    with pytest.raises(Conflict, match="moved meanwhile"):
        any_runner.request_clock_run(timedelta(hours=1), "admin1", expected=seen)
    assert any_runner.now() == seen + timedelta(hours=1)


def test_the_worker_tick_works_off_a_queued_run(any_runner: Runner, other: Runner) -> None:
    _chain(any_runner)
    start = any_runner.now()
    run = any_runner.request_clock_run(timedelta(hours=2, minutes=30), "admin1")
    assert any_runner.now() == start  # queued: nothing moved yet
    scheduler.tick(other)  # the worker, in another process
    done = any_runner.clock_run(run["id"])
    assert done["state"] == "done" and done["fired"] >= 4 and done["reached"] == start + timedelta(hours=2, minutes=30)
    assert _fired(any_runner) == [("A", "first"), ("B", "first"), ("A", "second"), ("B", "second")]


def test_a_run_whose_executor_died_is_resumed_without_firing_twice(any_runner: Runner, other: Runner) -> None:
    _chain(any_runner)
    start, wall = any_runner.now(), Wall()
    run = any_runner.request_clock_run(timedelta(hours=2, minutes=30), "admin1")
    saves: list[dict[str, Any]] = []

    def killed_after_two_saves(progress: dict[str, Any]) -> None:
        saves.append(progress)
        if len(saves) == 2:
            raise Died

    with pytest.raises(Died):
        scheduler.execute_run(any_runner, run["id"], killed_after_two_saves, wall=wall, save_every=0)
    left = other.clock_run(run["id"])
    assert left["state"] == "running" and left["reached"] == start + timedelta(hours=1)
    assert scheduler.execute_run(other, wall=wall) is None  # the dead executor's lease still holds
    wall.moment += clockruns.LEASE + timedelta(seconds=1)
    resumed = scheduler.execute_run(other, wall=wall)
    assert resumed is not None and resumed["state"] == "done"
    assert resumed["reached"] == start + timedelta(hours=2, minutes=30) and resumed["fired"] >= 4
    assert _fired(other) == [("A", "first"), ("B", "first"), ("A", "second"), ("B", "second")]


def test_a_failing_run_ends_failed_where_the_clock_got_to_and_frees_the_clock(
    any_runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    _chain(any_runner)
    start = any_runner.now()

    def broken(core: Any, after: datetime | None = None) -> datetime | None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(scheduler, "next_due", broken)
    run = any_runner.request_clock_run(timedelta(hours=1), "admin1")
    ended = any_runner.execute_clock_run(run["id"])
    assert ended is not None and ended["state"] == "failed" and "went away" in ended["error"]
    assert ended["reached"] == start
    monkeypatch.undo()
    assert any_runner.request_clock_run(timedelta(hours=1), "admin1")["state"] == "queued"


def test_every_process_sees_the_persisted_clock_and_none_moves_it_back(any_runner: Runner, other: Runner) -> None:
    stale = other.now()
    any_runner.advance_clock(timedelta(days=3))
    # A web request of the other process reads the clock first (web.extensions.get_runner).
    app = create_app({"TESTING": True, "SECRET_KEY": "t", "RUNNER": other, "RUNNER_SETTINGS": other.settings})
    assert app.test_client().get("/healthz").get_json()["now"] == (stale + timedelta(days=3)).isoformat()
    # A process whose clock is behind saves it: the persisted clock keeps the later time.
    behind = make_runner(any_runner.settings.database_url, Registry())
    try:
        behind.clock.set(stale + timedelta(days=3))  # as it was, then the others move on
        any_runner.advance_clock(timedelta(hours=1))
        with behind.db.unit() as s:
            behind.save_clock(s)
        other.refresh_clock()
        assert other.now() == stale + timedelta(days=3, hours=1)
    finally:
        behind.db.engine.dispose()


def test_a_run_fires_a_crowded_moment_in_batches_saving_progress_between_them(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner.deploy([CHAIN])
    for key in ("A", "B", "C", "D", "E"):
        runner.start_instance("chain", key, {"first_wait": "PT30M"})  # five at 0:30, five at 1:30
    monkeypatch.setattr(scheduler, "STEP_LIMIT", 2)
    start = runner.now()
    run = runner.request_clock_run(timedelta(hours=2), "admin1")
    saved: list[tuple[datetime, int]] = []
    ended = scheduler.execute_run(runner, run["id"], lambda r: saved.append((r["reached"], r["fired"])), save_every=0)
    assert ended is not None and ended["state"] == "done" and ended["fired"] == 15  # ten timers, five jobs
    half, later = start + timedelta(minutes=30), start + timedelta(minutes=90)
    # batches of at most two: the clock stays at 0:30 until the five timers and the five jobs they
    # made due there are worked off, then moves on to the second timers
    assert [fired for at, fired in saved if at == half] == [2, 4, 6, 8, 10]
    assert [fired for at, fired in saved if at == later] == [12, 14, 15]
    assert [at for at, _ in saved] == sorted(at for at, _ in saved)
    assert sorted(_fired(runner)) == sorted((k, e) for k in "ABCDE" for e in ("first", "second"))
