"""Read-only queries for the inbox, customer pages, history and incidents.

They return plain dicts so that the web app and the CLI never touch the tables.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from runner.errors import NotFound
from runner.models import HistoryEvent, Incident, Instance, Job, OutboxMessage, Timer, UserTask

if TYPE_CHECKING:
    from runner.runtime import Runner


def _row(obj: Any, *names: str) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names}


TASK_FIELDS = ("id", "instance_id", "business_key", "process_key", "element_id", "name", "lane", "stage",
               "candidate_groups", "candidate_users", "assignee", "due_at", "follow_up_at", "priority",
               "form", "state", "created_at", "ended_at", "completed_by")


def tasks(runner: "Runner", *, user: str | None = None, groups: list[str] | None = None,
          business_key: str | None = None, process_key: str | None = None, state: str = "open") -> list[dict]:
    """User tasks, earliest due first; with ``user``/``groups`` only those they may work on."""
    query = select(UserTask).where(UserTask.state == state)
    if business_key is not None:
        query = query.where(UserTask.business_key == business_key)
    if process_key is not None:
        query = query.where(UserTask.process_key == process_key)
    with runner.db.read() as s:
        rows = s.scalars(query.order_by(UserTask.due_at.is_(None), UserTask.due_at, UserTask.created_at)).all()
    if user is not None or groups is not None:
        rows = [r for r in rows if _may_work_on(r, user, set(groups or []))]
    return [_row(r, *TASK_FIELDS) for r in rows]


def _may_work_on(row: UserTask, user: str | None, groups: set[str]) -> bool:
    if row.assignee:
        return row.assignee == user
    return bool(user and user in (row.candidate_users or [])) or bool(groups & set(row.candidate_groups or []))


def task(runner: "Runner", task_id: str) -> dict[str, Any]:
    """One user task."""
    with runner.db.read() as s:
        row = s.get(UserTask, task_id)
        if row is None:
            raise NotFound(f"task {task_id} does not exist")
        return _row(row, *TASK_FIELDS)


INSTANCE_FIELDS = ("id", "process_key", "version_id", "business_key", "status", "data", "stages",
                   "created_at", "updated_at", "ended_at")


def instances(runner: "Runner", *, business_key: str | None = None, process_key: str | None = None,
              status: str | None = None) -> list[dict[str, Any]]:
    """Instances, newest first."""
    query = select(Instance)
    for column, value in ((Instance.business_key, business_key), (Instance.process_key, process_key),
                          (Instance.status, status)):
        if value is not None:
            query = query.where(column == value)
    with runner.db.read() as s:
        return [_row(r, *INSTANCE_FIELDS) for r in s.scalars(query.order_by(Instance.created_at.desc()))]


def instance(runner: "Runner", instance_id: str) -> dict[str, Any]:
    """One instance with what it waits for."""
    with runner.db.read() as s:
        row = s.get(Instance, instance_id)
        if row is None:
            raise NotFound(f"instance {instance_id} does not exist")
        out = _row(row, *INSTANCE_FIELDS)
        out["waits"] = row.waits
        out["timers"] = [_row(t, "id", "element_id", "due_at", "state", "value") for t in
                         s.scalars(select(Timer).where(Timer.instance_id == row.id, Timer.state == "waiting"))]
        out["jobs"] = [_row(j, "id", "element_id", "topic", "state", "attempts", "due_at", "last_error") for j in
                       s.scalars(select(Job).where(Job.instance_id == row.id, Job.state.in_(["pending", "incident"])))]
        return out


def history(runner: "Runner", *, instance_id: str | None = None, business_key: str | None = None,
            events: list[str] | None = None) -> list[dict[str, Any]]:
    """History events in order, per instance or per customer."""
    query = select(HistoryEvent)
    if instance_id is not None:
        query = query.where(HistoryEvent.instance_id == instance_id)
    if business_key is not None:
        query = query.where(HistoryEvent.business_key == business_key)
    if events:
        query = query.where(or_(*(HistoryEvent.event == e for e in events)))
    with runner.db.read() as s:
        return [_row(h, "id", "at", "instance_id", "business_key", "process_key", "event", "element_id",
                     "actor", "details") for h in s.scalars(query.order_by(HistoryEvent.id))]


def incidents(runner: "Runner", *, state: str | None = "open", instance_id: str | None = None) -> list[dict]:
    """Incidents (open ones by default)."""
    query = select(Incident)
    if state is not None:
        query = query.where(Incident.state == state)
    if instance_id is not None:
        query = query.where(Incident.instance_id == instance_id)
    with runner.db.read() as s:
        return [_row(i, "id", "instance_id", "kind", "ref", "element_id", "error", "tries", "state",
                     "created_at", "resolved_at", "resolved_by") for i in s.scalars(query.order_by(Incident.id))]


def outbox(runner: "Runner", *, state: str | None = None, business_key: str | None = None) -> list[dict]:
    """Outbox messages, oldest first."""
    query = select(OutboxMessage)
    if state is not None:
        query = query.where(OutboxMessage.state == state)
    if business_key is not None:
        query = query.where(OutboxMessage.business_key == business_key)
    with runner.db.read() as s:
        return [_row(m, "id", "idempotency_key", "channel", "instance_id", "business_key", "payload", "state",
                     "attempts", "due_at", "last_error", "created_at", "sent_at")
                for m in s.scalars(query.order_by(OutboxMessage.id))]
