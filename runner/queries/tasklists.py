"""Read-only queries for the inbox, customer pages, history and incidents.

They return plain dicts so that the web app and the CLI never touch the tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from runner.errors import Invalid, NotFound
from runner.extension import Person
from runner.model import forms, orphans
from runner.queries import keyset, task_queues
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
    """Every user task of a customer or process, earliest due first; with ``user``/``groups`` only those they
    may work on. For one customer's handful of rows; a whole list goes through ``task_page``."""
    query = select(UserTask).where(UserTask.state == state)
    if business_key is not None:
        query = query.where(UserTask.business_key == business_key)
    if process_key is not None:
        query = query.where(UserTask.process_key == process_key)
    if user is not None or groups is not None:
        # NOTE: candidate rows exist for open tasks only; a closed task is the assignee's or nobody's.
        query = query.where(
            or_(
                UserTask.assignee == user,
                UserTask.assignee.is_(None) & task_queues.offered(UserTask.id, user or "", frozenset(groups or ())),
            )
        )
    with runner.db.read() as s:
        rows = s.scalars(query.order_by(UserTask.due_sort, UserTask.id)).all()
        return current_forms(runner, s, [_row(r, *TASK_FIELDS) for r in rows])


def current_forms(runner: Runner, s: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The task rows, each enum field that names a configured list (``list:NAME``) with the list as it is now.

    NOTE: the task row keeps the form as deployed (no options for such a field), so a change to the
    list reaches open tasks without a redeploy. Each list is read once for all rows; a configured
    list is a small table read whole (seed 003: tens of rows), not one that grows with the customers.
    """
    lists: dict[str, list[tuple[str, str]]] = {}

    def read(name: str) -> list[tuple[str, str]]:
        if name not in lists:
            lists[name] = runner.extensions.options(s, name)
        return lists[name]

    for row in rows:
        if row.get("form"):
            row["form"] = forms.with_lists_dict(row["form"], read)
    return rows


def task_page(
    runner: Runner,
    *,
    viewer: tuple[str, Iterable[str]] | None = None,
    assignee: str | None = None,
    unassigned: bool | None = None,
    candidate_group: str | None = None,
    business_key: str | None = None,
    process_key: str | None = None,
    orphan: bool | None = None,
    limit: int | str | None = None,
    cursor: str | None = None,
) -> keyset.Page:
    """One page of open tasks, earliest due first (the API's and the CLI's list), orphans flagged.

    ``viewer`` (username, roles) keeps the tasks they may work on: theirs, and unclaimed ones offered to
    them; None lists every open task (team leaders, admins, the operator). Invalid names ``limit`` or
    ``cursor`` when they are not usable.
    """
    window = keyset.Window.of("tasks", limit, cursor)
    with runner.db.read() as s:
        staff = _active_staff(s)
        q = task_queues.TaskQuery(
            viewer=None if viewer is None else (viewer[0], frozenset(viewer[1])),
            assignee=assignee,
            unassigned=unassigned,
            candidate_group=candidate_group,
            business_key=business_key,
            process_key=process_key,
            orphan=orphan,
            staff=staff,
        )
        rows = [dict(r._mapping) for r in s.execute(task_queues.task_list(q, window))]
        page = window.page(rows, "due_sort")
        current_forms(runner, s, page.rows)
    return replace(page, rows=[_flagged(_without_sort(r), staff) for r in page.rows])


def _without_sort(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "due_sort"}


def _flagged(row: dict[str, Any], staff: dict[str, list[str]]) -> dict[str, Any]:
    return {**row, "orphan": row["state"] == "open" and orphans.is_orphan(row, staff)}


def _active_staff(s: Any) -> dict[str, list[str]]:
    """Active users by username, with their roles: the people a task can reach."""
    return {name: list(roles or []) for name, roles in s.execute(select(User.username, User.roles).where(User.active))}


def flag_orphans(runner: Runner, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The task rows, each with ``orphan``: True when no active staff member may work on it."""
    with runner.db.read() as s:
        staff = _active_staff(s)
    return [_flagged(r, staff) for r in rows]


def task(runner: Runner, task_id: str) -> dict[str, Any]:
    """One user task."""
    with runner.db.read() as s:
        row = s.get(UserTask, task_id)
        if row is None:
            raise NotFound(f"task {task_id} does not exist")
        [found] = current_forms(runner, s, [_row(row, *TASK_FIELDS)])
        return found


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
    """Every instance of a customer (or process), newest first; a whole list goes through ``instance_page``."""
    query = select(*task_queues.INSTANCE_COLUMNS)
    for column, value in (
        (Instance.business_key, business_key),
        (Instance.process_key, process_key),
        (Instance.status, status),
    ):
        if value is not None:
            query = query.where(column == value)
    with runner.db.read() as s:
        return [dict(r._mapping) for r in s.execute(query.order_by(Instance.created_at.desc(), Instance.id.desc()))]


def instance_page(
    runner: Runner,
    *,
    person: Person | None = None,
    business_key: str | None = None,
    process_key: str | None = None,
    status: str | None = None,
    limit: int | str | None = None,
    cursor: str | None = None,
) -> keyset.Page:
    """One page of instances, newest first; with ``person`` only those whose customer they may see."""
    window = keyset.Window.of("instances", limit, cursor)
    visible = None if person is None else runner.policy.condition(person, Instance.business_key)
    query = task_queues.instance_list(
        window, business_key=business_key, process_key=process_key, status=status, visible=visible
    )
    with runner.db.read() as s:
        rows = [dict(r._mapping) for r in s.execute(query)]
    return window.page(rows, "created_at")


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
        return [_row(i, *INCIDENT_FIELDS) for i in s.scalars(query.order_by(Incident.id))]


OUTBOX_FIELDS = (
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
    "send_window",
)


def outbox(runner: Runner, *, state: str | None = None, business_key: str | None = None) -> list[dict]:
    """Outbox messages, oldest first."""
    query = select(OutboxMessage)
    if state is not None:
        query = query.where(OutboxMessage.state == state)
    if business_key is not None:
        query = query.where(OutboxMessage.business_key == business_key)
    with runner.db.read() as s:
        return [_row(m, *OUTBOX_FIELDS) for m in s.scalars(query.order_by(OutboxMessage.id))]


def recent_messages(runner: Runner, business_key: str, *, limit: int = 5) -> list[dict]:
    """A customer's newest outbox messages, newest first, at most ``limit``.

    Index: ix_outbox_business_key (business_key, id) read backward: ``limit`` entries, however many
    messages the customer (or the outbox) holds.
    """
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.business_key == business_key)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    with runner.db.read() as s:
        return [_row(m, *OUTBOX_FIELDS) for m in s.scalars(query)]


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


def _due_before(runner: Runner, due: str | None) -> datetime | None:
    """The end of the ``due`` filter's span (overdue: now; today, week: local midnight after it)."""
    if due not in (None, "", *DUE_FILTERS):
        raise Invalid(f"due filter {due!r}: one of {', '.join(DUE_FILTERS)}")
    if not due:
        return None
    now = runner.now()
    if due == "overdue":
        return now
    local = now.astimezone(runner.settings.tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1 if due == "today" else 7)


def _inbox_page(
    runner: Runner, q: task_queues.TaskQuery, due: str | None, limit: int | str | None, cursor: str | None
) -> keyset.Page:
    """One page of an inbox list, each row with its customer's label, process name, overdue and orphan flags."""
    window = keyset.Window.of("inbox", limit, cursor)
    q = replace(q, due_before=_due_before(runner, due))
    now = runner.now()
    with runner.db.read() as s:
        names, staff = _process_names(s), _active_staff(s)
        q = replace(q, staff=staff)
        page = window.page([dict(r._mapping) for r in s.execute(task_queues.task_list(q, window))], "due_sort")
        current_forms(runner, s, page.rows)
        # NOTE: an extension labels business keys (EasyEdu: the customer's name); None without one.
        labels = runner.extensions.labels(s, {r["business_key"] for r in page.rows if r["business_key"]})
    rows = []
    for row in page.rows:
        row = _without_sort(row)
        row.update(
            customer_name=labels.get(row["business_key"]) if row["business_key"] else None,
            process_name=names.get(row["process_key"], row["process_key"]),
            overdue=bool(row["due_at"] and row["due_at"] < now),
            orphan=orphans.is_orphan(row, staff),
        )
        rows.append(row)
    return replace(page, rows=rows)


def my_tasks(
    runner: Runner,
    user: str,
    *,
    process_key: str | None = None,
    stage: str | None = None,
    business_key: str | None = None,
    due: str | None = None,
    orphan: bool | None = None,
    limit: int | str | None = None,
    cursor: str | None = None,
) -> keyset.Page:
    """A page of the open tasks assigned to ``user``, by due date (overdue first); ``due`` is overdue|today|week.

    Each row has the task fields plus ``customer_name`` (the business key's label from the runner's
    extensions, None without one), ``process_name``, ``overdue`` and ``orphan``.
    Index: ix_user_tasks_list_assignee (assignee, state, due_sort, id).
    """
    q = task_queues.TaskQuery(
        assignee=user, process_key=process_key, stage=stage, business_key=business_key, orphan=orphan
    )
    return _inbox_page(runner, q, due, limit, cursor)


def group_tasks(
    runner: Runner,
    user: str,
    groups: Iterable[str],
    *,
    process_key: str | None = None,
    stage: str | None = None,
    business_key: str | None = None,
    due: str | None = None,
    orphan: bool | None = None,
    limit: int | str | None = None,
    cursor: str | None = None,
) -> keyset.Page:
    """A page of the open unclaimed tasks the user may claim (candidate user, or one of ``groups``), like ``my_tasks``.

    Index: ix_user_task_candidates_queue (kind, name, due_sort, task_id), one range per group and one
    for the user, merged by a UNION cut at the page size.
    """
    q = task_queues.TaskQuery(
        viewer=(user, frozenset(groups)),
        offered_only=True,
        process_key=process_key,
        stage=stage,
        business_key=business_key,
        orphan=orphan,
    )
    return _inbox_page(runner, q, due, limit, cursor)


def open_tasks(
    runner: Runner,
    *,
    process_key: str | None = None,
    stage: str | None = None,
    business_key: str | None = None,
    due: str | None = None,
    orphan: bool | None = None,
    limit: int | str | None = None,
    cursor: str | None = None,
) -> keyset.Page:
    """A page of every open task, claimed or not (the team leader's and admin's view), sorted like ``my_tasks``.

    Index: ix_user_tasks_list (state, due_sort, id), or _process / _stage with that filter.
    """
    q = task_queues.TaskQuery(process_key=process_key, stage=stage, business_key=business_key, orphan=orphan)
    return _inbox_page(runner, q, due, limit, cursor)


def next_task(
    runner: Runner, user: str, groups: list[str], business_key: str | None, *, exclude: str | None = None
) -> dict[str, Any] | None:
    """The user's next open task for the same customer: their own first, then one they may claim."""
    if not business_key:
        return None
    for page in (
        my_tasks(runner, user, business_key=business_key, limit=2),
        group_tasks(runner, user, groups, business_key=business_key, limit=2),
    ):
        for row in page.rows:
            if row["id"] != exclude:
                return row
    return None


# NOTE: constant statements, built once.
OPEN_PROCESSES = task_queues.distinct_open(UserTask.process_key)
OPEN_STAGES = task_queues.distinct_open(UserTask.stage)


def filter_options(runner: Runner) -> dict[str, list[tuple[str, str]]]:
    """The processes and stages that open tasks have, as (value, label) pairs, for the inbox's filter bar.

    NOTE: a walk over the distinct values (``task_queues.distinct_open``), one index seek per value:
    it costs the number of processes and stages, not of tasks.
    """
    with runner.db.read() as s:
        names = _process_names(s)
        processes = list(s.scalars(OPEN_PROCESSES))
        stages = list(s.scalars(OPEN_STAGES))
    return {
        "process": sorted(((k, names.get(k, k)) for k in processes), key=lambda kv: kv[1]),
        "stage": [(stage, stage) for stage in sorted(stages)],
    }


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


def version_numbers(runner: Runner) -> dict[int, int]:
    """Version row id -> version number (one row per deployed version, without counting instances)."""
    with runner.db.read() as s:
        return dict(s.execute(select(ProcessVersion.id, ProcessVersion.version)).all())


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


INCIDENT_FIELDS = (
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


def _incidents_query(state: str | None) -> Select:
    query = select(Incident, Instance.business_key, Instance.process_key).outerjoin(
        Instance, Instance.id == Incident.instance_id
    )
    return query if state is None else query.where(Incident.state == state)


def _incident_rows(s: Session, query: Select) -> list[dict[str, Any]]:
    return [
        {**_row(i, *INCIDENT_FIELDS), "business_key": business_key, "process_key": process_key}
        for i, business_key, process_key in s.execute(query)
    ]


def incidents_with_instances(
    runner: Runner, *, state: str | None = "open", limit: int | None = None
) -> list[dict[str, Any]]:
    """Like ``incidents``, each with its instance's ``business_key`` and ``process_key`` (None for a
    process-level incident), newest first; at most ``limit`` of them."""
    query = _incidents_query(state).order_by(Incident.id.desc()).limit(limit)
    with runner.db.read() as s:
        return _incident_rows(s, query)


def incident_page(
    runner: Runner, *, state: str | None = "open", limit: int | str | None = None, cursor: str | None = None
) -> keyset.Page:
    """One page of incidents with their instances' keys, newest first; ``next_cursor`` pages on.

    NOTE: ``ix_incidents_state`` picks the state's rows and the database sorts them: open
    incidents stay few; only an admin asking for resolved or all ones sorts more, and reads
    one page of them.
    """
    window = keyset.Window.of("incidents", limit, cursor)
    query = _incidents_query(state)
    if window.id is not None:
        if not window.id.isdigit():
            raise Invalid("cursor: not a cursor this list gave out")
        # NOTE: the cursor carries ids as text; the incidents' ids are whole numbers
        edge = replace(window, id=cast(Any, int(window.id)))
        query = query.where(cast(ColumnElement[bool], edge.bound(Incident.created_at, Incident.id, descending=True)))
    query = query.order_by(*window.order(Incident.created_at, Incident.id, descending=True)).limit(window.limit + 1)
    with runner.db.read() as s:
        return window.page(_incident_rows(s, query), "created_at")


def incident(runner: Runner, incident_id: int) -> dict[str, Any]:
    """One incident with its instance's keys; NotFound when there is none."""
    query = _incidents_query(None).where(Incident.id == incident_id)
    with runner.db.read() as s:
        rows = _incident_rows(s, query)
    if not rows:
        raise NotFound(f"incident {incident_id} does not exist")
    return rows[0]


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
