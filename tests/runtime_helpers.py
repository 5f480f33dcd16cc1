"""Helpers shared by the runtime, storage, deployment, history and bad-input tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from runner.queries import tasklists as inbox
from runner.service.runtime import Runner
from runner.store.models import (
    HistoryEvent,
    Incident,
    Instance,
    Job,
    OutboxMessage,
    ProcessVersion,
    Subscription,
    Timer,
    UserTask,
)

RUNTIME = Path(__file__).parent / "bpmn" / "runtime"
REJECTED = RUNTIME / "rejected"
TABLES = (ProcessVersion, Instance, UserTask, Job, Timer, Subscription, Incident, HistoryEvent, OutboxMessage)


def fixture(name: str) -> Path:
    """A BPMN/DMN file under tests/bpmn/runtime."""
    return RUNTIME / name


def row_counts(runner: Runner) -> dict[str, int]:
    """How many rows each of the runner's tables holds."""
    with runner.db.read() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) for t in TABLES}


def instance_row(runner: Runner, instance_id: str) -> dict[str, Any]:
    """The raw instance row, version column and saved tree included."""
    with runner.db.read() as s:
        row = s.get(Instance, instance_id)
        return {p.key: getattr(row, p.key) for p in Instance.__mapper__.column_attrs}


def open_tasks(runner: Runner, business_key: str) -> list[dict[str, Any]]:
    """The open user tasks of one customer."""
    return inbox.tasks(runner, business_key=business_key)


def only_task(runner: Runner, business_key: str, element_id: str | None = None) -> dict[str, Any]:
    """The one open user task of a customer (checking its element when given)."""
    tasks = open_tasks(runner, business_key)
    assert len(tasks) == 1, [t["element_id"] for t in tasks]
    if element_id is not None:
        assert tasks[0]["element_id"] == element_id
    return tasks[0]


def events(runner: Runner, **query: Any) -> list[str]:
    """History event names, in order, for an instance or a customer."""
    return [h["event"] for h in inbox.history(runner, **query)]
