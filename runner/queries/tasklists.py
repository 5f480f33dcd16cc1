"""Read-only queries for the inbox, customer pages, history and incidents.

They return plain dicts so that the web app and the CLI never touch the tables.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from runner.errors import Invalid, NotFound
from runner.model import orphans
from runner.store.models import (
    HistoryEvent,
    Incident,
    Instance,
    Job,
    OutboxMessage,
    ProcessVersion,
    Timer,
    User,
    UserTask,
)

if TYPE_CHECKING:
    from runner.service.runtime import Runner


def _row(obj: Any, *names: str) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names}


TASK_FIELDS = (
    "id",
    "instance_id",
    "business_key",
    "process_key",
    "element_id",
    "name",
    "lane",
    "stage",
    "candidate_groups",
    "candidate_users",
    "assignee",
    "due_at",
    "follow_up_at",
    "priority",
    "form",
    "state",
    "created_at",
    "ended_at",
    "completed_by",
)


def tasks(
    runner: Runner,
    *,
    user: str | None = None,
    groups: list[str] | None = None,
    business_key: str | None = None,
    process_key: str | None = None,
    state: str = "open",
) -> list[dict]:
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


def _active_staff(s: Any) -> dict[str, list[str]]:
    """Active users by username, with their roles: the people a task can reach."""
    return {name: list(roles or []) for name, roles in s.execute(select(User.username, User.roles).where(User.active))}


def flag_orphans(runner: Runner, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The task rows, each with ``orphan``: True when no active staff member may work on it."""
    with runner.db.read() as s:
        staff = _active_staff(s)
    return [{**r, "orphan": r["state"] == "open" and orphans.is_orphan(r, staff)} for r in rows]


def task(runner: Runner, task_id: str) -> dict[str, Any]:
    """One user task."""
    with runner.db.read() as s:
        row = s.get(UserTask, task_id)
        if row is None:
            raise NotFound(f"task {task_id} does not exist")
        return _row(row, *TASK_FIELDS)


INSTANCE_FIELDS = (
    "id",
    "process_key",
    "version_id",
    "business_key",
    "status",
    "data",
    "stages",
    "created_at",
    "updated_at",
    "ended_at",
)


def instances(
    runner: Runner, *, business_key: str | None = None, process_key: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """Instances, newest first."""
    query = select(Instance)
    for column, value in (
        (Instance.business_key, business_key),
        (Instance.process_key, process_key),
        (Instance.status, status),
    ):
        if value is not None:
            query = query.where(column == value)
    with runner.db.read() as s:
        return [_row(r, *INSTANCE_FIELDS) for r in s.scalars(query.order_by(Instance.created_at.desc()))]


def instance(runner: Runner, instance_id: str) -> dict[str, Any]:
    """One instance with what it waits for."""
    with runner.db.read() as s:
        row = s.get(Instance, instance_id)
        if row is None:
            raise NotFound(f"instance {instance_id} does not exist")
        out = _row(row, *INSTANCE_FIELDS)
        out["waits"] = row.waits
        out["timers"] = [
            _row(t, "id", "element_id", "due_at", "state", "value")
            for t in s.scalars(select(Timer).where(Timer.instance_id == row.id, Timer.state == "waiting"))
        ]
        out["jobs"] = [
            _row(j, "id", "element_id", "topic", "state", "attempts", "due_at", "last_error")
            for j in s.scalars(select(Job).where(Job.instance_id == row.id, Job.state.in_(["pending", "incident"])))
        ]
        return out


def history(
    runner: Runner, *, instance_id: str | None = None, business_key: str | None = None, events: list[str] | None = None
) -> list[dict[str, Any]]:
    """History events in order, per instance or per customer."""
    query = select(HistoryEvent)
    if instance_id is not None:
        query = query.where(HistoryEvent.instance_id == instance_id)
    if business_key is not None:
        query = query.where(HistoryEvent.business_key == business_key)
    if events:
        query = query.where(or_(*(HistoryEvent.event == e for e in events)))
    with runner.db.read() as s:
        return [
            _row(h, "id", "at", "instance_id", "business_key", "process_key", "event", "element_id", "actor", "details")
            for h in s.scalars(query.order_by(HistoryEvent.id))
        ]


def incidents(runner: Runner, *, state: str | None = "open", instance_id: str | None = None) -> list[dict]:
    """Incidents (open ones by default)."""
    query = select(Incident)
    if state is not None:
        query = query.where(Incident.state == state)
    if instance_id is not None:
        query = query.where(Incident.instance_id == instance_id)
    with runner.db.read() as s:
        return [
            _row(
                i,
                "id",
                "instance_id",
                "kind",
                "ref",
                "element_id",
                "error",
                "tries",
                "state",
                "created_at",
                "resolved_at",
                "resolved_by",
            )
            for i in s.scalars(query.order_by(Incident.id))
        ]


def outbox(runner: Runner, *, state: str | None = None, business_key: str | None = None) -> list[dict]:
    """Outbox messages, oldest first."""
    query = select(OutboxMessage)
    if state is not None:
        query = query.where(OutboxMessage.state == state)
    if business_key is not None:
        query = query.where(OutboxMessage.business_key == business_key)
    with runner.db.read() as s:
        return [
            _row(
                m,
                "id",
                "idempotency_key",
                "channel",
                "instance_id",
                "business_key",
                "payload",
                "state",
                "attempts",
                "due_at",
                "last_error",
                "created_at",
                "sent_at",
            )
            for m in s.scalars(query.order_by(OutboxMessage.id))
        ]


# --- the task inbox: my tasks, group tasks, filters ---------------------------------------------

DUE_FILTERS = ("overdue", "today", "week")


def _process_names(s: Any) -> dict[str, str]:
    """Process key -> the name of its newest version."""
    rows = s.execute(
        select(ProcessVersion.process_key, ProcessVersion.name)
        .where(ProcessVersion.kind == "bpmn")
        .order_by(ProcessVersion.version)
    )
    return {key: name or key for key, name in rows}


def process_names(runner: Runner) -> dict[str, str]:
    """Process key -> display name (of its newest version)."""
    with runner.db.read() as s:
        return _process_names(s)


def _inbox_rows(
    runner: Runner,
    *,
    assignee: str | None | bool,
    process_key: str | None,
    stage: str | None,
    business_key: str | None,
    due: str | None,
) -> list[dict[str, Any]]:
    if due not in (None, "", *DUE_FILTERS):
        raise Invalid(f"due filter {due!r}: one of {', '.join(DUE_FILTERS)}")
    now = runner.now()
    query = select(UserTask).where(UserTask.state == "open")
    if isinstance(assignee, str):
        query = query.where(UserTask.assignee == assignee)
    elif assignee is None:
        query = query.where(UserTask.assignee.is_(None))
    for column, value in (
        (UserTask.process_key, process_key),
        (UserTask.stage, stage),
        (UserTask.business_key, business_key),
    ):
        if value:
            query = query.where(column == value)
    if due == "overdue":
        query = query.where(UserTask.due_at < now)
    elif due in ("today", "week"):
        local = now.astimezone(runner.settings.tz)
        end = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1 if due == "today" else 7)
        query = query.where(UserTask.due_at < end)
    query = query.order_by(
        UserTask.due_at.is_(None), UserTask.due_at, UserTask.priority.desc(), UserTask.created_at, UserTask.id
    )
    with runner.db.read() as s:
        names, staff = _process_names(s), _active_staff(s)
        rows = s.scalars(query).all()
        # NOTE: an extension labels business keys (EasyEdu: the customer's name); None without one.
        labels = runner.extensions.labels(s, {task.business_key for task in rows if task.business_key})
    out = []
    for task in rows:
        row = _row(task, *TASK_FIELDS)
        row.update(
            customer_name=labels.get(task.business_key) if task.business_key else None,
            process_name=names.get(task.process_key, task.process_key),
            overdue=bool(task.due_at and task.due_at < now),
            orphan=orphans.is_orphan(row, staff),
        )
        out.append(row)
    return out


def my_tasks(
    runner: Runner,
    user: str,
    *,
    process_key: str | None = None,
    stage: str | None = None,
    business_key: str | None = None,
    due: str | None = None,
) -> list[dict[str, Any]]:
    """Open tasks assigned to ``user``, overdue first then by due date; ``due`` is overdue|today|week.

    Each row has the task fields plus ``customer_name`` (the business key's label from the runner's
    extensions, None without one), ``process_name`` and ``overdue``.
    """
    return _inbox_rows(runner, assignee=user, process_key=process_key, stage=stage, business_key=business_key, due=due)


def group_tasks(
    runner: Runner,
    user: str,
    groups: list[str],
    *,
    process_key: str | None = None,
    stage: str | None = None,
    business_key: str | None = None,
    due: str | None = None,
) -> list[dict[str, Any]]:
    """Open unclaimed tasks the user may claim (candidate user, or one of ``groups``), like ``my_tasks``."""
    rows = _inbox_rows(runner, assignee=None, process_key=process_key, stage=stage, business_key=business_key, due=due)
    return [r for r in rows if user in (r["candidate_users"] or []) or set(groups) & set(r["candidate_groups"] or [])]


def open_tasks(
    runner: Runner,
    *,
    process_key: str | None = None,
    stage: str | None = None,
    business_key: str | None = None,
    due: str | None = None,
) -> list[dict[str, Any]]:
    """Every open task, claimed or not (the team leader's and admin's view), sorted like ``my_tasks``."""
    return _inbox_rows(runner, assignee=True, process_key=process_key, stage=stage, business_key=business_key, due=due)


def next_task(
    runner: Runner, user: str, groups: list[str], business_key: str | None, *, exclude: str | None = None
) -> dict[str, Any] | None:
    """The user's next open task for the same customer: their own first, then one they may claim."""
    if not business_key:
        return None
    for rows in (
        my_tasks(runner, user, business_key=business_key),
        group_tasks(runner, user, groups, business_key=business_key),
    ):
        for row in rows:
            if row["id"] != exclude:
                return row
    return None


# --- admin views: versions with instance counts, incidents with their customer, recent history ----


def process_versions(runner: Runner) -> list[dict[str, Any]]:
    """Every deployed process and decision by key, each with its versions (newest first) and
    how many instances of each version are running and completed."""
    counts: dict[int, dict[str, int]] = {}
    with runner.db.read() as s:
        for version_id, status, n in s.execute(
            select(Instance.version_id, Instance.status, func.count()).group_by(Instance.version_id, Instance.status)
        ):
            counts.setdefault(version_id, {})[status] = n
        rows = s.scalars(select(ProcessVersion).order_by(ProcessVersion.process_key, ProcessVersion.version.desc()))
        out: dict[str, dict[str, Any]] = {}
        for v in rows:
            per = counts.get(v.id, {})
            entry = out.setdefault(
                v.process_key,
                {
                    "key": v.process_key,
                    "name": v.name or v.process_key,
                    "kind": v.kind,
                    "latest_version": v.version,
                    "versions": [],
                },
            )
            entry["versions"].append(
                {
                    "id": v.id,
                    "version": v.version,
                    "name": v.name,
                    "file_name": v.file_name,
                    "deployed_at": v.deployed_at,
                    "deployed_by": v.deployed_by,
                    "running": per.get("running", 0),
                    "completed": per.get("completed", 0),
                    "instances": sum(per.values()),
                }
            )
    return list(out.values())


def active_elements(runner: Runner, instance_id: str) -> list[str]:
    """The element ids an instance waits at now: open user tasks, handler jobs, timers (sorted, unique)."""
    with runner.db.read() as s:
        found = set(
            s.scalars(select(UserTask.element_id).where(UserTask.instance_id == instance_id, UserTask.state == "open"))
        )
        found |= set(
            s.scalars(
                select(Job.element_id).where(Job.instance_id == instance_id, Job.state.in_(("pending", "incident")))
            )
        )
        found |= set(
            s.scalars(select(Timer.element_id).where(Timer.instance_id == instance_id, Timer.state == "waiting"))
        )
    return sorted(found)


def incidents_with_instances(runner: Runner, *, state: str | None = "open") -> list[dict[str, Any]]:
    """Like ``incidents``, each with its instance's ``business_key`` and ``process_key`` (None for a
    process-level incident), newest first."""
    query = select(Incident, Instance.business_key, Instance.process_key).outerjoin(
        Instance, Instance.id == Incident.instance_id
    )
    if state is not None:
        query = query.where(Incident.state == state)
    with runner.db.read() as s:
        return [
            {
                **_row(
                    i,
                    "id",
                    "instance_id",
                    "kind",
                    "ref",
                    "element_id",
                    "error",
                    "tries",
                    "state",
                    "created_at",
                    "resolved_at",
                    "resolved_by",
                ),
                "business_key": business_key,
                "process_key": process_key,
            }
            for i, business_key, process_key in s.execute(query.order_by(Incident.id.desc()))
        ]


def last_history_id(runner: Runner) -> int:
    """The id of the newest history event (0 when there is none), to ask later what came after it."""
    with runner.db.read() as s:
        return s.scalar(select(func.max(HistoryEvent.id))) or 0


def history_after(runner: Runner, after_id: int, *, limit: int = 200) -> list[dict[str, Any]]:
    """History events newer than ``after_id``, oldest first, at most ``limit``."""
    query = select(HistoryEvent).where(HistoryEvent.id > after_id).order_by(HistoryEvent.id).limit(limit)
    with runner.db.read() as s:
        return [
            _row(h, "id", "at", "instance_id", "business_key", "process_key", "event", "element_id", "actor", "details")
            for h in s.scalars(query)
        ]
