"""Storage on SQLite and PostgreSQL: one transaction per unit of work, concurrent writers, restarts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from conftest import make_runner
from runtime_helpers import events, fixture, instance_row, only_task, row_counts
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from runner.errors import Conflict, StepFailed
from runner.queries import tasklists as inbox
from runner.service.runtime import Runner
from runner.store.database import make_engine
from runner.store.models import Instance, Timer


def restart(runner: Runner) -> Runner:
    """A new Runner object on the same database, as after a process restart."""
    return make_runner(runner.settings.database_url, runner.registry)


@contextmanager
def restarted(runner: Runner) -> Iterator[Runner]:
    other = restart(runner)
    try:
        yield other
    finally:
        other.db.engine.dispose()


# --- one unit of work, one transaction ---------------------------------------------------


def test_a_failing_step_writes_nothing(any_runner: Runner) -> None:
    any_runner.deploy([fixture("fail_after_task.bpmn")])
    instance_id = any_runner.start_instance("fragile", "school-1")
    task = only_task(any_runner, "school-1", "approve")
    before, row = row_counts(any_runner), instance_row(any_runner, instance_id)
    with pytest.raises(StepFailed) as caught:
        any_runner.complete_task(task["id"], {"quantity": "0"}, actor="lan")
    assert (caught.value.element_id, caught.value.element_name) == ("compute", "Compute share")
    assert "compute (Compute share)" in str(caught.value) and "ZeroDivisionError" in str(caught.value)
    assert row_counts(any_runner) == before
    assert instance_row(any_runner, instance_id) == row
    assert inbox.task(any_runner, task["id"])["state"] == "open"
    assert "task.completed" not in events(any_runner, instance_id=instance_id)
    # The same task can still be completed with good data.
    any_runner.complete_task(task["id"], {"quantity": "4"}, actor="lan")
    only_task(any_runner, "school-1", "confirm")
    assert inbox.instance(any_runner, instance_id)["data"] == {"quantity": 4, "share": 25.0}
    assert instance_row(any_runner, instance_id)["row_version"] > row["row_version"]


# --- two people, one task ----------------------------------------------------------------


def _race(runners: list[Runner], task_ids: list[str], pause_after_load: bool) -> dict[str, Any]:
    """Complete tasks from two threads at once (racer n takes task n); returns each racer's outcome."""
    barrier = threading.Barrier(2, timeout=20)
    outcomes: dict[str, Any] = {}

    waited: set[str] = set()

    def loaded(*args) -> None:
        # Both racers hold the instance (same version) before either saves.
        name = threading.current_thread().name
        if not any(isinstance(arg, Instance) for arg in args):
            return
        if name.startswith("racer") and name not in waited:
            waited.add(name)
            barrier.wait()

    def racer(runner: Runner, name: str, task_id: str) -> None:
        try:
            if not pause_after_load:
                barrier.wait()
            runner.complete_task(task_id, {"amount": "1"}, actor=name)
            outcomes[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcomes[name] = exc

    # NOTE: an instance comes into a unit of work by an ORM load, or attached after the
    # runner read it with its task (storage.attach).
    if pause_after_load:
        event.listen(Instance, "load", loaded)
        event.listen(Session, "after_attach", loaded)
    try:
        threads = [
            threading.Thread(target=racer, args=(r, f"racer-{n}", t), name=f"racer-{n}")
            for n, (r, t) in enumerate(zip(runners, task_ids, strict=True))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        if pause_after_load:
            event.remove(Instance, "load", loaded)
            event.remove(Session, "after_attach", loaded)
    return outcomes


@pytest.mark.parametrize("two_runner_objects", [False, True], ids=["one_runner", "two_runners"])
def test_two_completions_of_one_task_give_one_success_and_one_conflict(
    any_runner: Runner, two_runner_objects: bool
) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn")])
    instance_id = any_runner.start_instance("order", "school-1")
    task = only_task(any_runner, "school-1", "Activity_review")
    version = instance_row(any_runner, instance_id)["row_version"]
    # NOTE: SQLite takes its write lock at BEGIN (one writer at a time), so there the
    # racers start together and the second one meets a task already completed. On
    # PostgreSQL both load the instance before either saves: the version column decides.
    racing = any_runner.db.is_postgres
    with restarted(any_runner) as other:
        outcomes = _race([any_runner, other if two_runner_objects else any_runner], [task["id"]] * 2, racing)
    assert sorted(o if o == "ok" else type(o).__name__ for o in outcomes.values()) == ["Conflict", "ok"]
    [winner] = [name for name, o in outcomes.items() if o == "ok"]
    [conflict] = [o for o in outcomes.values() if o != "ok"]
    assert f"task Activity_review (Duyệt đơn) was already completed by {winner}" in str(conflict)
    if racing:
        # The loser's save was rejected by the version column; its retry found the task done.
        assert isinstance(conflict.__cause__.__cause__, StaleDataError), repr(conflict.__cause__)
    assert instance_row(any_runner, instance_id)["row_version"] > version
    completed = inbox.history(any_runner, instance_id=instance_id, events=["task.completed"])
    assert [(h["actor"], h["element_id"]) for h in completed] == [(winner, "Activity_review")]
    assert inbox.task(any_runner, task["id"])["completed_by"] == winner
    only_task(any_runner, "school-1", "Activity_deliver")


def test_two_people_completing_two_tasks_of_one_instance_both_succeed(any_runner: Runner) -> None:
    any_runner.deploy([fixture("parallel_tasks.bpmn")])
    instance_id = any_runner.start_instance("setup", "school-1")
    tasks = {t["element_id"]: t["id"] for t in inbox.tasks(any_runner, business_key="school-1")}
    outcomes = _race([any_runner, any_runner], [tasks["accounts"], tasks["training"]], any_runner.db.is_postgres)
    assert outcomes == {"racer-0": "ok", "racer-1": "ok"}
    completed = inbox.history(any_runner, instance_id=instance_id, events=["task.completed"])
    assert sorted((h["element_id"], h["actor"]) for h in completed) == [
        ("accounts", "racer-0"),
        ("training", "racer-1"),
    ]
    assert inbox.instance(any_runner, instance_id)["status"] == "completed"


def test_a_second_completion_after_the_first_is_a_conflict_naming_who(any_runner: Runner) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn")])
    any_runner.start_instance("order", "school-1")
    task = only_task(any_runner, "school-1", "Activity_review")
    any_runner.complete_task(task["id"], {"amount": "3"}, actor="lan")
    before = row_counts(any_runner)
    with pytest.raises(Conflict, match="was already completed by lan"):
        any_runner.complete_task(task["id"], {"amount": "4"}, actor="minh")
    assert row_counts(any_runner) == before


def test_a_stale_instance_row_is_rejected_by_the_version_column(any_runner: Runner) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn")])
    instance_id = any_runner.start_instance("order", "school-1")
    stale = any_runner.db.read()
    try:
        row = stale.get(Instance, instance_id)
        stale.commit()  # keeps the loaded row (and its version) but ends the read transaction
        any_runner.complete_task(only_task(any_runner, "school-1")["id"], {"amount": "3"}, actor="lan")
        row.data = {"overwritten": True}
        with pytest.raises(StaleDataError):
            stale.commit()
    finally:
        stale.rollback()
        stale.close()
    assert inbox.instance(any_runner, instance_id)["data"] == {"amount": 3}


# --- restart -------------------------------------------------------------------------------


def test_a_new_runner_carries_on_with_open_tasks_and_timers(any_runner: Runner) -> None:
    any_runner.deploy([fixture("timers.bpmn")])
    instance_id = any_runner.start_instance("follow_up", "school-1")
    with restarted(any_runner) as second:
        task = only_task(second, "school-1", "prepare")
        second.complete_task(task["id"], actor="lan")
        [timer] = inbox.instance(second, instance_id)["timers"]
        assert timer["element_id"] == "wait_day" and timer["value"] == "P1D"
    any_runner.db.engine.dispose()
    # "Down" for two days: the timer falls due while no runner runs.
    with restarted(any_runner) as third:
        third.clock.advance(timedelta(days=2))
        assert inbox.tasks(third, business_key="school-1") == []
        assert third.run_due() == 1
        only_task(third, "school-1", "call_back")
    with restarted(any_runner) as fourth:
        assert fourth.run_due() == 0
        fourth.advance_clock(timedelta(days=30))
        assert events(fourth, instance_id=instance_id).count("timer.fired") == 1
        with fourth.db.read() as s:
            assert s.scalars(select(Timer.state).where(Timer.instance_id == instance_id)).all() == ["fired"]
        only_task(fourth, "school-1", "call_back")
        fourth.complete_task(only_task(fourth, "school-1")["id"], actor="minh")
        assert inbox.instance(fourth, instance_id)["status"] == "completed"


def test_every_runner_on_a_database_shares_its_virtual_clock(any_runner: Runner) -> None:
    with restarted(any_runner) as second:
        assert second.now() == any_runner.now()
    moved = any_runner.advance_clock(timedelta(days=400))
    with restarted(any_runner) as third:
        assert third.now() == moved


def test_reads_do_not_wait_for_a_unit_of_work_in_progress(any_runner: Runner) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(params: dict[str, Any], ctx) -> dict[str, Any]:
        started.set()
        release.wait(20)
        return {}

    any_runner.registry.add("test.flaky", slow)
    any_runner.deploy([fixture("lifecycle.bpmn"), fixture("modeler_order.bpmn")])
    any_runner.start_instance("order", "school-2")
    instance_id = any_runner.start_instance("lifecycle", "school-1")
    any_runner.complete_task(only_task(any_runner, "school-1")["id"], {"seats": "3"})
    worker = threading.Thread(target=any_runner.advance_clock, args=(timedelta(hours=2),))
    worker.start()
    try:
        assert started.wait(20), "the handler job did not start"
        # The worker's transaction is open (the handler runs inside it); the inbox still answers.
        outcome: list[list[dict[str, Any]]] = []
        reader = threading.Thread(target=lambda: outcome.append(inbox.tasks(any_runner, business_key="school-2")))
        reader.start()
        reader.join(5)
        assert not reader.is_alive() and [t["element_id"] for t in outcome[0]] == ["Activity_review"]
        assert inbox.instance(any_runner, instance_id)["status"] == "running"
    finally:
        release.set()
        worker.join(30)
    assert events(any_runner, instance_id=instance_id).count("handler.succeeded") == 1


# --- pooled PostgreSQL connections: pinged only after idling -------------------------------


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("select pg_backend_pid()").scalar_one()


def _terminate(url: str, pid: int) -> None:
    """End a server backend, as a restart or an idle timeout would, and wait until it is gone."""
    admin = create_engine(url)
    try:
        with admin.connect() as conn:
            conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})
            gone = text("select count(*) from pg_stat_activity where pid = :pid")
            for _ in range(1000):
                if conn.execute(gone, {"pid": pid}).scalar_one() == 0:
                    return
                conn.execute(text("select pg_sleep(0.01)"))
        raise AssertionError(f"backend {pid} did not end")
    finally:
        admin.dispose()


def test_a_pooled_connection_dropped_while_idle_is_replaced_on_checkout(pg_url: str) -> None:
    engine = make_engine(pg_url, ping_after=0)  # every checkout counts as after idling
    try:
        pid = _backend_pid(engine)
        _terminate(pg_url, pid)
        assert _backend_pid(engine) != pid
    finally:
        engine.dispose()


def test_a_connection_back_in_the_pool_within_the_idle_time_is_not_pinged(pg_url: str) -> None:
    engine = make_engine(pg_url, ping_after=3600)
    try:
        pid = _backend_pid(engine)
        _terminate(pg_url, pid)
        # No ping: the dropped connection fails its statement once, is invalidated, and replaced.
        with pytest.raises(DBAPIError):
            _backend_pid(engine)
        assert _backend_pid(engine) != pid
    finally:
        engine.dispose()
