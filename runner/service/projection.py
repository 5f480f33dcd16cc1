"""Projecting an engine snapshot into the inbox, timer, job and subscription tables.

The instance row remembers what it projected last time (``Instance.waits``), so a unit
of work writes only what changed and never has to query the projections first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from runner.engine import Snapshot, UserTaskView
from runner.service.retries import max_tries
from runner.store.database import Prepared, insert_row, insert_statement, save_instance
from runner.store.models import Instance, Job, Subscription, Timer, UserTask, UserTaskCandidate, due_sort


class Event(NamedTuple):
    """A history event a projection reports; the unit of work records it on the instance."""

    name: str
    element: str | None
    details: dict[str, Any]


# NOTE: every unit of work runs these, so they are compiled once (see store.database.Prepared).
_tasks, _timer_rows, _job_rows = UserTask.__table__, Timer.__table__, Job.__table__
END_TASK = Prepared(update(_tasks).where(_tasks.c.id == bindparam("b_id"), _tasks.c.state == "open"))
DROP_SUBSCRIPTIONS = Prepared(
    delete(Subscription.__table__).where(Subscription.__table__.c.instance_id == bindparam("b_id"))
)
_one_timer = (
    _timer_rows.c.instance_id == bindparam("b_instance"),
    _timer_rows.c.task_id == bindparam("b_task"),
    _timer_rows.c.timer_name == bindparam("b_name"),
)
RESCHEDULE_TIMER = Prepared(update(_timer_rows).where(*_one_timer))
CANCEL_TIMER = Prepared(update(_timer_rows).where(*_one_timer, _timer_rows.c.state == "waiting"))
_candidates = UserTaskCandidate.__table__
DROP_CANDIDATES = Prepared(delete(_candidates).where(_candidates.c.task_id == bindparam("b_id")))
CANCEL_JOB = Prepared(update(_job_rows).where(_job_rows.c.id == bindparam("b_id"), _job_rows.c.state == "pending"))


def apply(
    s: Session,
    inst: Instance,
    snap: Snapshot,
    state: str,
    completed_task: str | None,
    actor: str | None,
    now: datetime,
    handler_timeout: float,
) -> list[Event]:
    """Save the instance and bring every projection of it in line with ``snap``; returns the history to record.

    NOTE: the instance row is written first (one UPDATE that checks and bumps its version
    column), so a concurrent second writer fails there before touching any projection row.
    """
    before: dict[str, Any] = dict(inst.waits or {})
    waits = {
        "user_tasks": [t.task_id for t in snap.user_tasks],
        "timers": {f"{t.task_id}|{t.timer_name}": t.due_at.isoformat() for t in snap.timers},
        "jobs": [j.task_id for j in snap.jobs],
        "messages": sorted(snap.messages),
    }
    events: list[Event] = []
    values: dict[str, Any] = {"state": state, "updated_at": now, "data": snap.data, "waits": waits}
    entered = _stages(inst, snap)
    if snap.stages and snap.stages != list(inst.stages or []):
        values["stages"] = list(snap.stages)
    completed = snap.completed and inst.status == "running"
    if completed:
        values.update(status="completed", ended_at=now)
    save_instance(s, inst, **values)
    _user_tasks(events, s, inst, snap, before.get("user_tasks", []), completed_task, actor, now)
    _timers(events, s, inst, snap, before.get("timers", {}))
    _jobs(s, inst, snap, before.get("jobs", []), completed_task, now, handler_timeout)
    if before.get("messages", []) != waits["messages"]:
        DROP_SUBSCRIPTIONS.execute(s, {"b_id": inst.id})
        if waits["messages"]:
            insert_statement(Subscription.__table__).executemany(
                s,
                [
                    {"instance_id": inst.id, "business_key": inst.business_key, "message_name": name}
                    for name in waits["messages"]
                ],
            )
    events.extend(Event("stage.entered", None, {"stage": stage}) for stage in entered)
    if completed:
        events.append(Event("instance.completed", None, {"data": snap.data}))
    return events


def _user_tasks(events: list[Event], s, inst, snap, before, completed_task, actor, now: datetime) -> None:
    current = {t.task_id for t in snap.user_tasks}
    for view in snap.user_tasks:
        if view.task_id in before:
            continue
        insert_row(
            s,
            UserTask,
            id=view.task_id,
            instance_id=inst.id,
            business_key=inst.business_key,
            process_key=inst.process_key,
            element_id=view.element_id,
            name=view.name,
            lane=view.lane,
            stage=view.stage,
            candidate_groups=view.candidate_groups,
            candidate_users=view.candidate_users,
            assignee=view.assignee,
            due_at=view.due_at,
            due_sort=due_sort(view.due_at),
            follow_up_at=view.follow_up_at,
            priority=view.priority,
            form=view.form,
            state="open",
            created_at=now,
        )
        _offer(s, view)
        events.append(
            Event(
                "task.created",
                view.element_id,
                {
                    "task_id": view.task_id,
                    "name": view.name,
                    "candidate_groups": view.candidate_groups,
                    "assignee": view.assignee,
                },
            )
        )
    for task_id in before:
        if task_id in current:
            continue
        done = task_id == completed_task
        END_TASK.execute(
            s,
            {
                "b_id": task_id,
                "state": "completed" if done else "cancelled",
                "ended_at": now,
                "completed_by": actor if done else None,
            },
        )
        DROP_CANDIDATES.execute(s, {"b_id": task_id})
        if not done:
            events.append(Event("task.cancelled", None, {"task_id": task_id}))


def _offer(s: Session, view: UserTaskView) -> None:
    """The task's candidate rows (runner.queries.tasklists reads a group's queue from them)."""
    rows = [
        {"task_id": view.task_id, "kind": kind, "name": name, "due_sort": due_sort(view.due_at)}
        for kind, names in (("group", view.candidate_groups), ("user", view.candidate_users))
        for name in dict.fromkeys(names)
    ]
    if rows:
        insert_statement(_candidates).executemany(s, rows)


def refresh(s: Session, snap: Snapshot) -> None:
    """Rewrite open inbox rows and pending jobs from the snapshot (after a migration their element may differ)."""
    for view in snap.user_tasks:
        # NOTE: whoever claimed (or was given) an open task keeps it across the move.
        s.execute(
            update(UserTask)
            .where(UserTask.id == view.task_id, UserTask.state == "open")
            .values(
                element_id=view.element_id,
                name=view.name,
                lane=view.lane,
                stage=view.stage,
                candidate_groups=view.candidate_groups,
                candidate_users=view.candidate_users,
                assignee=func.coalesce(UserTask.assignee, view.assignee),
                due_at=view.due_at,
                due_sort=due_sort(view.due_at),
                follow_up_at=view.follow_up_at,
                priority=view.priority,
                form=view.form,
            )
        )
        DROP_CANDIDATES.execute(s, {"b_id": view.task_id})
        if s.scalar(select(UserTask.state).where(UserTask.id == view.task_id)) == "open":
            _offer(s, view)
    for job in snap.jobs:
        s.execute(
            update(Job)
            .where(Job.id == job.task_id, Job.state == "pending")
            .values(element_id=job.element_id, topic=job.topic, params=job.params, properties=job.properties)
        )


def _timers(events: list[Event], s, inst, snap, before: dict[str, str]) -> None:
    current = {f"{t.task_id}|{t.timer_name}": t for t in snap.timers}
    for key, view in current.items():
        if before.get(key) == view.due_at.isoformat():
            continue
        # NOTE: task ids are fresh per run of an element, so a key not projected before
        # has no row yet; a known key (a repeating cycle) gets its next due time.
        if key not in before:
            insert_row(
                s,
                Timer,
                instance_id=inst.id,
                task_id=view.task_id,
                element_id=view.element_id,
                timer_name=view.timer_name,
                due_at=view.due_at,
                state="waiting",
                value=view.value,
            )
        else:
            RESCHEDULE_TIMER.execute(
                s,
                {
                    "b_instance": inst.id,
                    "b_task": view.task_id,
                    "b_name": view.timer_name,
                    "due_at": view.due_at,
                    "state": "waiting",
                },
            )
        events.append(Event("timer.scheduled", view.element_id, {"due": view.due_at.isoformat(), "value": view.value}))
    gone = [key.split("|", 1) for key in before if key not in current]
    for task_id, name in gone:
        CANCEL_TIMER.execute(s, {"b_instance": inst.id, "b_task": task_id, "b_name": name, "state": "cancelled"})


def _jobs(s, inst, snap, before: list[str], completed: str | None, now: datetime, handler_timeout: float) -> None:
    current = {j.task_id for j in snap.jobs}
    for view in snap.jobs:
        if view.task_id in before:
            continue
        timeout = float(view.properties.get("timeout") or handler_timeout)
        insert_row(
            s,
            Job,
            id=view.task_id,
            instance_id=inst.id,
            element_id=view.element_id,
            topic=view.topic,
            params=view.params,
            properties=view.properties,
            state="pending",
            attempts=0,
            max_attempts=max_tries(view.properties),
            timeout=timeout,
            due_at=now,
            created_at=now,
        )
    for task_id in before:
        # NOTE: the job this unit of work ran has its row marked done by the caller.
        if task_id not in current and task_id != completed:
            CANCEL_JOB.execute(s, {"b_id": task_id, "state": "cancelled", "ended_at": now})


def _stages(inst: Instance, snap: Snapshot) -> list[str]:
    """The snapshot's stages the instance was not in yet."""
    # NOTE: a token resting on an element without a stage keeps the last stage entered.
    if not snap.stages or snap.stages == list(inst.stages or []):
        return []
    return [stage for stage in snap.stages if stage not in (inst.stages or [])]
