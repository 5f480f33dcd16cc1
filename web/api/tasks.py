"""Tasks under the inbox's rules: list, claim and complete (candidate groups, the assignee; team leaders
see every task; admins act on any task, as Camunda's admin may, so that orphans are not lost)."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify
from flask_login import current_user

from runner.errors import Invalid
from runner.queries import tasklists as inbox
from runner.service.tasks import check_may_complete, is_candidate
from web.api.blueprint import bp
from web.api.errors import BadRequest
from web.api.inputs import body, flag, json_object, page_limit, query
from web.api.shapes import instance_summary, task, version_numbers
from web.auth import roles_required
from web.extensions import get_runner


def _may_see(row: dict[str, Any]) -> bool:
    user = current_user
    if user.has_role("team_leader", "admin"):
        return True
    if row["assignee"]:
        return row["assignee"] == user.username
    return is_candidate(row, user.username, user.roles)


def _is_admin() -> bool:
    """Admins act on any task (claim, complete), as Camunda's admin may: orphans are not lost."""
    return current_user.has_role("admin")


@bp.get("/tasks")
@roles_required()
def list_tasks():
    """One page of the open tasks the caller may work on (every one for admins and team leaders), earliest
    due first, filtered by group, assignee, customer, process, unassigned and orphan; ``next_cursor`` pages on.
    """
    user = current_user
    try:
        page = inbox.task_page(
            get_runner(),
            viewer=None if user.has_role("team_leader", "admin") else (user.username, list(user.roles)),
            candidate_group=query("candidate_group"),
            assignee=query("assignee"),
            unassigned=flag("unassigned"),
            orphan=flag("orphan"),
            business_key=query("business_key"),
            process_key=query("process_key"),
            limit=page_limit(),
            cursor=query("cursor"),
        )
    except Invalid as exc:  # NOTE: limit or cursor, named in the message: a 400 like every query filter
        raise BadRequest(str(exc)) from exc
    return jsonify(tasks=[task(r) for r in page.rows], next_cursor=page.next_cursor)


def _open_task(task_id: str) -> dict[str, Any]:
    """The task, if the caller may see it at all (else 404, as if it did not exist)."""
    row = inbox.task(get_runner(), task_id)
    if row["state"] == "open" and not _may_see(row) and not row["assignee"]:
        abort(403, description=f"task {task_id} is for {', '.join(row['candidate_groups'] or ['other users'])}")
    return row


def _flagged(task_id: str) -> dict[str, Any]:
    """One task with its orphan flag."""
    [row] = inbox.flag_orphans(get_runner(), [inbox.task(get_runner(), task_id)])
    return row


@bp.post("/tasks/<task_id>/claim")
@roles_required()
def claim_task(task_id: str):
    """Claim an open task: 409 when someone else has it or it is done, 403 when not a candidate."""
    _open_task(task_id)
    try:
        get_runner().claim_task(task_id, current_user.username, current_user.roles, override=_is_admin())
    except Invalid as exc:
        abort(403, description=str(exc))
    return jsonify(task(_flagged(task_id)))


@bp.post("/tasks/<task_id>/complete")
@roles_required()
def complete_task(task_id: str):
    """Complete a task with ``{"data": {...}}``: 422 with per-field errors, 409 when done or someone else's."""
    data = json_object(body(), "data")
    row = _open_task(task_id)
    runner = get_runner()
    if _is_admin():
        runner.complete_task(task_id, data, actor=current_user.username)
    else:
        try:
            check_may_complete(row, current_user.username, current_user.roles)
        except Invalid as exc:
            abort(403, description=str(exc))
        runner.complete_task_as(task_id, data, current_user.username, current_user.roles)
    instance = inbox.instance(runner, row["instance_id"])
    return jsonify(task=task(_flagged(task_id)), instance=instance_summary(instance, version_numbers()))
