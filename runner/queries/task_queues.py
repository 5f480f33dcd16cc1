"""The SQL of the task lists and the instance list: one statement per page, each served by an index.

A task list is the union of a few *branches*, each one index range read in (due_sort, id) order
and cut at the page size, so a page reads about ``branches × (limit + 1)`` index entries whatever
the table holds:

- ``("task", condition)``: user_tasks itself. The planner picks the index whose equality prefix the
  filters give: ``ix_user_tasks_list`` (state, due_sort, id) for every open task,
  ``ix_user_tasks_list_assignee`` (assignee, state, due_sort, id) for someone's tasks or the
  unassigned ones (assignee IS NULL), ``ix_user_tasks_list_process`` / ``_stage`` for those filters,
  and ``ix_user_tasks_business_key`` for one customer (a handful of rows, sorted in memory).
- ``("candidate", kind, name)``: one group's (or candidate user's) queue,
  ``ix_user_task_candidates_queue`` (kind, name, due_sort, task_id), each row joined to its task by
  primary key to check it is still unclaimed and passes the filters.

Filters that no index orders (claimed or not in a group queue, the orphan flag, process or stage
inside a group queue) are checked row by row while the range is read: such a page costs the rows
it skips, which is small unless the filter keeps very few of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select, union

from runner.queries.keyset import Window
from runner.store.models import Instance, UserTask, UserTaskCandidate

_task = UserTask.__table__
_cand = UserTaskCandidate.__table__
# NOTE: built once: a page's statement is put together per request, and SQLAlchemy constructs are not free.
_offer, _reach, _member = _cand.alias("offer"), _cand.alias("reach"), _cand.alias("member")
TASK_COLUMNS = tuple(
    _task.c[name]
    for name in (
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
        "due_sort",
        "follow_up_at",
        "priority",
        "form",
        "state",
        "created_at",
        "ended_at",
        "completed_by",
    )
)


@dataclass(frozen=True)
class TaskQuery:
    """What a task list asks for: whose view, and the filters (None: not filtered)."""

    viewer: tuple[str, frozenset[str]] | None = None  # (username, roles): only the tasks they may work on
    offered_only: bool = False  # with viewer: unclaimed tasks offered to them (the group list)
    assignee: str | None = None
    unassigned: bool | None = None
    candidate_group: str | None = None
    process_key: str | None = None
    stage: str | None = None
    business_key: str | None = None
    due_before: datetime | None = None
    orphan: bool | None = None
    staff: Mapping[str, Any] | None = None  # active username -> roles, for the orphan filter


def offered(task_id: Any, username: str, roles: frozenset[str]) -> ColumnElement[bool]:
    """True when the task is offered to the user or one of their roles (candidate primary key lookups)."""
    offer = _offer
    return exists().where(
        offer.c.task_id == task_id,
        or_(
            and_(offer.c.kind == "user", offer.c.name == username),
            and_(offer.c.kind == "group", offer.c.name.in_(sorted(roles))) if roles else false(),
        ),
    )


def orphaned(staff: Mapping[str, Any]) -> ColumnElement[bool]:
    """True for an open task no active staff member may work on (as ``runner.model.orphans.is_orphan``)."""
    users = sorted(staff)
    roles = sorted({role for held in staff.values() for role in held or ()})
    offer = _reach
    reachable = exists().where(
        offer.c.task_id == _task.c.id,
        or_(
            and_(offer.c.kind == "user", offer.c.name.in_(users)),
            and_(offer.c.kind == "group", offer.c.name.in_(roles)),
        ),
    )
    return or_(
        and_(_task.c.assignee.is_not(None), _task.c.assignee.not_in(users)),
        and_(_task.c.assignee.is_(None), ~reachable),
    )


def _conditions(q: TaskQuery) -> list[ColumnElement[bool]]:
    """Every condition a row of the list meets (each branch checks them all)."""
    found: list[ColumnElement[bool]] = [_task.c.state == "open"]
    if q.viewer is not None:
        user, roles = q.viewer
        mine_to_claim = and_(_task.c.assignee.is_(None), offered(_task.c.id, user, roles))
        found.append(mine_to_claim if q.offered_only else or_(_task.c.assignee == user, mine_to_claim))
    if q.assignee is not None:
        found.append(_task.c.assignee == q.assignee)
    if q.unassigned is not None:
        found.append(_task.c.assignee.is_(None) if q.unassigned else _task.c.assignee.is_not(None))
    if q.candidate_group is not None:
        member = _member
        found.append(
            exists().where(member.c.task_id == _task.c.id, member.c.kind == "group", member.c.name == q.candidate_group)
        )
    for column, value in (
        (_task.c.process_key, q.process_key),
        (_task.c.stage, q.stage),
        (_task.c.business_key, q.business_key),
    ):
        if value is not None:
            found.append(column == value)
    if q.due_before is not None:
        found.append(_task.c.due_sort < q.due_before)
    if q.orphan is not None:
        condition = orphaned(q.staff or {})
        found.append(condition if q.orphan else ~condition)
    return found


def _branches(q: TaskQuery) -> list[tuple[Any, ...]]:
    """The index ranges whose union holds every row of the list (see the module's docstring)."""
    if q.business_key is not None or q.assignee is not None:
        return [("task", None)]
    if q.candidate_group is not None:
        return [("candidate", "group", q.candidate_group)]
    if q.viewer is None:
        return [("task", None)]
    user, roles = q.viewer
    queues = [("candidate", "user", user), *(("candidate", "group", role) for role in sorted(roles))]
    if q.offered_only or q.unassigned is True:
        return queues
    if q.unassigned is False:
        return [("task", _task.c.assignee == user)]
    return [("task", _task.c.assignee == user), *queues]


def _branch(
    branch: tuple[Any, ...], conditions: list[ColumnElement[bool]], due_before: datetime | None, window: Window
) -> Select:
    """One index range: (id, due_sort) of up to limit + 1 rows past the cursor, in window order."""
    if branch[0] == "candidate":
        _, kind, name = branch
        key, row_id = _cand.c.due_sort, _cand.c.task_id
        query = (
            select(row_id.label("id"), key.label("due_sort"))
            .select_from(_cand.join(_task, _task.c.id == _cand.c.task_id))
            .where(_cand.c.kind == kind, _cand.c.name == name, *conditions)
        )
        if due_before is not None:
            query = query.where(key < due_before)  # NOTE: the same bound on the indexed copy makes it a range
    else:
        key, row_id = _task.c.due_sort, _task.c.id
        query = select(row_id.label("id"), key.label("due_sort")).where(*conditions)
        if branch[1] is not None:
            query = query.where(branch[1])
    edge = window.bound(key, row_id)
    if edge is not None:
        query = query.where(edge)
    return query.order_by(*window.order(key, row_id)).limit(window.limit + 1)


def task_list(q: TaskQuery, window: Window) -> Select:
    """The page's user_tasks rows (up to limit + 1, in window order, plain rows not ORM objects): one
    statement, a union of branches."""
    conditions = _conditions(q)
    parts = [_branch(branch, conditions, q.due_before, window) for branch in _branches(q)]
    ids = (parts[0] if len(parts) == 1 else union(*(select(*p.subquery().c) for p in parts))).subquery("page")
    return (
        select(*TASK_COLUMNS)
        .join_from(_task, ids, _task.c.id == ids.c.id)
        .order_by(*window.order(ids.c.due_sort, ids.c.id))
        .limit(window.limit + 1)
    )


INSTANCE_COLUMNS = (
    Instance.id,
    Instance.process_key,
    Instance.version_id,
    Instance.business_key,
    Instance.status,
    Instance.data,
    Instance.stages,
    Instance.created_at,
    Instance.updated_at,
    Instance.ended_at,
)


def instance_list(
    window: Window,
    *,
    business_key: str | None = None,
    process_key: str | None = None,
    status: str | None = None,
    visible: ColumnElement[bool] | None = None,
) -> Select:
    """Instances newest first, up to limit + 1 past the cursor, without their (large) serialized state.

    Index: ``ix_instances_list`` (created_at, id) read backward; with a filter
    ``ix_instances_list_process`` / ``_status`` (equality prefix, then created_at, id), and for
    one customer ``ix_instances_business_key`` (a handful of rows, sorted in memory). ``visible``
    (the policy's condition on the business key) is checked row by row.
    """
    query = select(*INSTANCE_COLUMNS)
    for column, value in (
        (Instance.business_key, business_key),
        (Instance.process_key, process_key),
        (Instance.status, status),
    ):
        if value is not None:
            query = query.where(column == value)
    if visible is not None:
        query = query.where(visible)
    edge = window.bound(Instance.created_at, Instance.id, descending=True)
    if edge is not None:
        query = query.where(edge)
    return query.order_by(*window.order(Instance.created_at, Instance.id, descending=True)).limit(window.limit + 1)


def distinct_open(column: Any) -> Select:
    """The distinct non-null values of a user_tasks column that some open task has, without reading the tasks.

    Index: the column's ``ix_user_tasks_list_*`` (column, state, ...). A recursive walk seeks the next
    larger value (one ORDER BY ... LIMIT 1 index probe per step), then keeps those with an open task
    (one (column, state) probe each): it costs the distinct values, never the rows.
    """
    first = select(column).where(column.is_not(None)).order_by(column).limit(1).scalar_subquery()
    walk = select(first.label("value")).cte("walk", recursive=True)
    following = select(column).where(column > walk.c.value).order_by(column).limit(1).scalar_subquery()
    walk = walk.union_all(select(following.label("value")).where(walk.c.value.is_not(None)))
    has_open = exists().where(column == walk.c.value, _task.c.state == "open")
    return select(walk.c.value).where(walk.c.value.is_not(None), has_open)
