"""Orphan user tasks: tasks that no staff member could ever find in an inbox.

A task reaches people through its candidate groups (``camunda:candidateGroups``, else its
lane, as ``runner.engine.parser`` reads them), its candidate users or its assignee. Deployment warns
about each task that has none of them, or only users who do not exist; at run time the
inbox flags such tasks for admins. Expressions (``${owner}``) cannot be checked before the
instance runs, so a task using one is never called an orphan at deploy.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from lxml import etree

from runner.errors import Problem
from runner.model.document import BPMN_NS, bpmn_iter, camunda_attr, label

ADMIN_ONLY = "so only an admin will see it"


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _is_expression(value: str) -> bool:
    return "${" in value or "#{" in value


def _in_lane(task: etree._Element) -> bool:
    """Whether a lane of the file lists the task (its group then comes from the lane)."""
    refs = task.getroottree().getroot().iter(f"{{{BPMN_NS}}}flowNodeRef")
    return any((ref.text or "").strip() == task.get("id") for ref in refs)


def _reason(task: etree._Element, staff: Collection[str]) -> str | None:
    """Why nobody would see the task, or None when someone could (or it cannot be told yet)."""
    assignee = (camunda_attr(task, "assignee") or "").strip()
    groups, users = _split(camunda_attr(task, "candidateGroups")), _split(camunda_attr(task, "candidateUsers"))
    if any(_is_expression(v) for v in (assignee, *groups, *users)):
        return None
    if assignee:
        return None if assignee in staff else f"user task is assigned to '{assignee}', who is not a user, {ADMIN_ONLY}"
    if groups or _in_lane(task):
        return None
    unknown = [u for u in users if u not in staff]
    if users and len(unknown) < len(users):
        return None
    if users:
        return (
            f"user task is offered only to {', '.join(repr(u) for u in unknown)}, who are not users, and to "
            f"no group, {ADMIN_ONLY}; put it in a lane or set camunda:candidateGroups"
        )
    return (
        f"user task has no candidate group, candidate user or assignee, {ADMIN_ONLY}; put it in a lane "
        "or set camunda:candidateGroups"
    )


def deploy_warnings(process: etree._Element, staff: Collection[str], file_name: str) -> list[Problem]:
    """A warning for each user task of a process (its subprocesses included) that nobody would see."""
    found = []
    for task in bpmn_iter(process, "userTask"):
        reason = _reason(task, staff)
        if reason:
            found.append(Problem(*label(task), reason, file_name))
    return found


def is_orphan(task: Mapping[str, Any], staff: Mapping[str, Iterable[str]]) -> bool:
    """Whether no active staff member (``staff``: username -> roles) may work on an open task."""
    if task.get("assignee"):
        return task["assignee"] not in staff
    groups = set(task.get("candidate_groups") or [])
    users = set(task.get("candidate_users") or [])
    return not any(name in users or groups & set(roles) for name, roles in staff.items())
