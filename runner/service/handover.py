"""Handing a business key's running work from one user to another: open tasks and process variables.

A product decides that someone else now does the work of a business key (EasyEdu: a team
leader gives a customer to another sales rep). Within the caller's unit of work, every running
instance of that key gets the new user wherever a named variable held the old one (so steps
still to come are assigned to the new user), and every open user task assigned to the old
user is reassigned, with a ``task.reassigned`` history event as a team leader's reassignment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from runner.service import tasks
from runner.service.unit import Unit
from runner.store.models import Instance, UserTask


def hand_over(
    unit: Unit,
    business_key: str,
    old_user: str | None,
    new_user: str | None,
    actor: str,
    variables: Iterable[str] = (),
) -> dict[str, Any]:
    """Move the running work of ``business_key`` from ``old_user`` to ``new_user``; returns what moved.

    ``variables`` name the process variables that hold the user (e.g. an assignee expression's
    ``${owner}``); the result lists the instances whose variables changed and the tasks reassigned.
    """
    s = unit.session
    names = list(variables)
    running = s.scalars(
        select(Instance.id)
        .where(Instance.business_key == business_key, Instance.status == "running")
        .order_by(Instance.created_at, Instance.id)
    ).all()
    changed = []
    for instance_id in running if names and old_user != new_user else []:
        inst, workflow = unit.load(instance_id, lock=True)
        if sum(unit.engine.replace_value(workflow, name, old_user, new_user) for name in names):
            unit.record(inst, "variables.changed", actor=actor, details={n: new_user for n in names})
            unit.commit(inst, workflow, actor=actor)
            changed.append(instance_id)
    moved = []
    if old_user is not None and old_user != new_user:
        open_tasks = s.scalars(
            select(UserTask.id)
            .where(UserTask.business_key == business_key, UserTask.state == "open", UserTask.assignee == old_user)
            .order_by(UserTask.created_at, UserTask.id)
        ).all()
        for task_id in open_tasks:
            # NOTE: override: the new user need not be a candidate; the caller decided they do the work
            tasks.reassign(unit, task_id, new_user, actor, (), override=True)
            moved.append(task_id)
    return {"instances": changed, "tasks": moved}
