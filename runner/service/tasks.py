"""Who works on a user task: claim, unclaim, reassign, and the right to complete.

A task is offered to its candidate groups (BPMN lanes) and candidate users. A user who may
work on it claims it (it becomes theirs: ``assignee``); only the assignee completes a
claimed task. Claims are single conditional UPDATEs, so two people claiming the same task
at once cannot both win: the second gets ``Conflict`` naming who has it.

The Runner's ``claim_task``, ``unclaim_task``, ``reassign_task`` and ``complete_task`` (with
``hold_to_complete``) call these with a unit of work (``runner.service.unit.Unit``). Who may
*reassign* (team leaders) is the web app's rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from runner.errors import Conflict, Forbidden, NotFound
from runner.service.unit import Unit
from runner.store.models import Instance, UserTask


def _label(row: UserTask) -> str:
    return f"'{row.name}'" if row.name else row.element_id


def is_candidate(task: UserTask | dict[str, Any], username: str, groups: Iterable[str]) -> bool:
    """True when the user is a candidate user of the task (row or dict) or holds one of its groups."""

    def get(name: str) -> list[str]:
        return (task.get(name) if isinstance(task, dict) else getattr(task, name)) or []

    return username in get("candidate_users") or bool(set(groups) & set(get("candidate_groups")))


def _open_task(s: Session, task_id: str) -> UserTask:
    row = s.get(UserTask, task_id)
    if row is None:
        raise NotFound(f"task {task_id} does not exist")
    if row.state != "open":
        by = f" by {row.completed_by}" if row.completed_by else ""
        raise Conflict(f"task {_label(row)} was already {row.state}{by}")
    return row


def _set_assignee(s: Session, row: UserTask, new: str | None, expected: str | None) -> None:
    """Change the assignee only if it is still ``expected`` and the task is still open."""
    holder = UserTask.assignee.is_(None) if expected is None else UserTask.assignee == expected
    result = cast(
        CursorResult[Any],
        s.execute(
            update(UserTask)
            .where(UserTask.id == row.id, UserTask.state == "open", holder)
            .values(assignee=new)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:
        s.expire(row)
        fresh = _open_task(s, row.id)
        raise Conflict(f"task {_label(fresh)} was just claimed by {fresh.assignee or 'nobody'}; reload it")


def _history(unit: Unit, row: UserTask, event: str, actor: str, **details: Any) -> None:
    unit.record(
        unit.session.get(Instance, row.instance_id),
        event,
        element=row.element_id,
        actor=actor,
        details={"task_id": row.id, "name": row.name, **details},
    )


def claim(unit: Unit, task_id: str, username: str, groups: Iterable[str], override: bool = False) -> None:
    """Make an open task the user's; Conflict when someone else has it, Forbidden when not a candidate.

    ``override`` (an admin's claim) takes a task the user is no candidate for, orphans included.
    """
    s = unit.session
    row = _open_task(s, task_id)
    if row.assignee == username:
        return
    if row.assignee:
        raise Conflict(f"task {_label(row)} is already claimed by {row.assignee}")
    if not override and not is_candidate(row, username, groups):
        raise Forbidden(
            f"{username} may not claim task {_label(row)}: it is for "
            f"{', '.join(row.candidate_groups or row.candidate_users or ['nobody'])}"
        )
    _set_assignee(s, row, username, None)
    _history(unit, row, "task.claimed", username)


def unclaim(unit: Unit, task_id: str, username: str) -> None:
    """Give a claimed task back to its groups; only its assignee may."""
    s = unit.session
    row = _open_task(s, task_id)
    if row.assignee != username:
        raise Conflict(
            f"task {_label(row)} is not claimed by {username}" + (f" but by {row.assignee}" if row.assignee else "")
        )
    _set_assignee(s, row, None, username)
    _history(unit, row, "task.unclaimed", username)


def reassign(
    unit: Unit,
    task_id: str,
    to_user: str | None,
    actor: str,
    to_groups: Iterable[str],
    override: bool = False,
) -> None:
    """Give an open task to another candidate (``to_groups`` are that user's roles), or to nobody.

    ``override`` (an admin's decision) gives it to any user, which is how an orphan task finds someone.
    """
    s = unit.session
    row = _open_task(s, task_id)
    if to_user is not None and not override and not is_candidate(row, to_user, to_groups):
        raise Forbidden(
            f"{to_user} cannot take task {_label(row)}: it is for "
            f"{', '.join(row.candidate_groups or row.candidate_users or ['nobody'])}"
        )
    before = row.assignee
    if before == to_user:
        return
    _set_assignee(s, row, to_user, before)
    _history(unit, row, "task.reassigned", actor, **{"from": before, "to": to_user})


CHECKED_FIELDS = ("state", "completed_by", "assignee", "name", "element_id", "candidate_groups", "candidate_users")


def check_may_complete(row: Any, username: str, groups: Iterable[str]) -> None:
    """Conflict when the task is done or someone else's, Forbidden when the user is not a candidate.

    ``row`` is a mapping with ``CHECKED_FIELDS``; ``Runner.complete_task`` runs this inside
    the unit of work that completes the task.
    """
    if row["state"] != "open":
        by = f" by {row['completed_by']}" if row["completed_by"] else ""
        raise Conflict(f"task '{row['name'] or row['element_id']}' was already {row['state']}{by}")
    if row["assignee"]:
        if row["assignee"] != username:
            raise Conflict(f"task '{row['name'] or row['element_id']}' is claimed by {row['assignee']}")
        return
    if not is_candidate(row, username, groups):
        raise Forbidden(f"{username} may not complete task '{row['name'] or row['element_id']}'")


def hold_to_complete(s: Session, task_id: str, username: str, groups: Iterable[str]) -> None:
    """Hold the task's inbox row for the completing unit of work, then check the user may complete it.

    NOTE: on PostgreSQL the instance row is locked first, then the task row (by the
    conditional UPDATE): the order every other writer of the instance takes them in, so a
    timer or job that cancels this task cannot deadlock with it. A claim racing this
    completion waits for the task row and then finds the task done (and a claim that got
    there first is seen here). On SQLite every unit of work is already the only writer.
    """
    owner = select(UserTask.instance_id).where(UserTask.id == task_id).scalar_subquery()
    s.execute(select(Instance.id).where(Instance.id == owner).with_for_update())
    held = cast(
        CursorResult[Any],
        s.execute(
            update(UserTask)
            .where(
                UserTask.id == task_id,
                UserTask.state == "open",
                UserTask.assignee.is_(None) | (UserTask.assignee == username),
            )
            .values(assignee=UserTask.assignee)
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    row = s.get(UserTask, task_id, populate_existing=True)
    if row is None:
        raise NotFound(f"task {task_id} does not exist")
    check_may_complete({key: getattr(row, key) for key in CHECKED_FIELDS}, username, groups)
    if held != 1:  # it changed hands and back between the two statements
        raise Conflict(f"task {_label(row)} was just claimed or given back; reload it")
