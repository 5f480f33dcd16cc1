"""What a unit of work writes on the busiest path: start -> service task -> end.

A new instance is INSERTed once with its first state (no INSERT then UPDATE), and the
unit of work that runs a job writes the job row once. The history stays complete.
"""

from __future__ import annotations

from pathlib import Path

from conftest import make_runner
from runtime_helpers import events, instance_row
from sqlalchemy import event, select

from runner.registry import Registry
from runner.service.runtime import Runner
from runner.store.models import Job

NOOP = Path(__file__).parent / "bpmn" / "jobs" / "noop_service.bpmn"


def _runner(url: str, registry: Registry) -> Runner:
    registry.add("bench.noop", lambda params, ctx: {"done": True})
    runner = make_runner(url, registry)
    runner.deploy([NOOP])
    return runner


def _traced(runner: Runner) -> list[str]:
    """Every SQL statement SQLite runs from now on (the runner's connections are reopened).

    SQLite's trace callback sees the runner's prepared statements too, which bypass
    SQLAlchemy's events, but it repeats a statement's text for each trigger program the
    statement sets off (the CRM keeps ``customer_stages`` by triggers on ``instances``). A
    repeat right after itself is that echo, not a second write: a second INSERT of the same
    row would fail on its key.
    """
    statements: list[str] = []

    def _append(sql: str) -> None:
        if not statements or statements[-1] != sql:
            statements.append(sql)

    @event.listens_for(runner.db.engine, "connect")
    def _trace(dbapi_conn, _record) -> None:
        dbapi_conn.set_trace_callback(_append)

    runner.db.engine.dispose()
    return statements


def _count(statements: list[str], prefix: str) -> int:
    return sum(1 for sql in statements if sql.lstrip().upper().startswith(prefix))


def test_start_to_end_saves_each_instance_version_once_and_records_all_history(any_runner: Runner, registry) -> None:
    runner = _runner(any_runner.settings.database_url, registry)
    try:
        instance_id = runner.start_instance("bench_noop", "KH1", {"n": 1})
        row = instance_row(runner, instance_id)
        assert row["row_version"] == 1 and row["status"] == "running" and row["state"]
        assert len(row["waits"]["jobs"]) == 1
        assert runner.run_due() == 1
        row = instance_row(runner, instance_id)
        assert row["row_version"] == 2 and row["status"] == "completed" and row["data"] == {"n": 1, "done": True}
        with runner.db.read() as s:
            assert [(j.state, j.attempts) for j in s.scalars(select(Job))] == [("done", 1)]
        assert events(runner, instance_id=instance_id) == [
            "instance.started",
            "handler.called",
            "handler.succeeded",
            "instance.completed",
        ]
    finally:
        runner.db.engine.dispose()


def test_a_start_inserts_the_instance_once_and_a_job_writes_its_row_once(sqlite_url: str, registry) -> None:
    runner = _runner(sqlite_url, registry)
    try:
        statements = _traced(runner)
        runner.start_instance("bench_noop", "KH1", {})
        assert _count(statements, "INSERT INTO INSTANCES") == 1
        assert _count(statements, "UPDATE INSTANCES") == 0
        statements.clear()
        assert runner.run_due() == 1
        # NOTE: the claims (UPDATE jobs SET locked_by ...) are short transactions of their own;
        # the unit that runs the job writes its row once: done, with the lease cleared.
        assert _count(statements, "UPDATE JOBS SET STATE") == 1
        assert _count(statements, "UPDATE JOBS") == _count(statements, "UPDATE JOBS SET LOCKED_BY") + 1
        assert _count(statements, "UPDATE INSTANCES") == 1
    finally:
        runner.db.engine.dispose()


def test_an_idle_pass_takes_no_write_lock_on_sqlite(sqlite_url: str, registry) -> None:
    """With nothing due, a worker's pass only reads: SQLite has one writer lock for everyone."""
    runner = _runner(sqlite_url, registry)
    try:
        runner.start_instance("bench_noop", "KH1", {})
        assert runner.run_due() == 1
        statements = _traced(runner)
        assert runner.run_due() == 0
        assert _count(statements, "SELECT") > 0
        assert _count(statements, "BEGIN IMMEDIATE") == 0
        assert _count(statements, "UPDATE") == 0
    finally:
        runner.db.engine.dispose()
