"""The task inbox: my tasks, group tasks to claim, the task page with its form, and actions.

Staff see and work only tasks offered to their groups (roles) or assigned to them; team
leaders also see every open task and may reassign it to a candidate. Admins see every task
too and may claim, reassign (to anyone) and complete any of them, so a task nobody else can
see (an orphan, flagged in the list) is never lost. Completing a task lands on the user's
next task for the same customer, when there is one.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from runner.errors import Conflict, FormInvalid, Invalid, NotFound, StepFailed
from runner.model import forms
from runner.queries import tasklists as inbox
from runner.service import accounts as users
from runner.service.tasks import is_candidate
from web import attachments, taskform
from web.auth import roles_required
from web.extensions import get_runner
from web.navigation import NavItem, customer_context
from web.people import person

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
NAV = [
    NavItem("inbox.my_tasks", _l("Việc của tôi")),
    NavItem("inbox.group_tasks", _l("Việc của nhóm")),
    NavItem("inbox.all_tasks", _l("Tất cả việc"), ("team_leader", "admin")),
]
FILTERS = ("process", "stage", "customer", "due", "orphan")
OVERSEERS = ("team_leader", "admin")  # see every open task and reassign it


def _filters() -> dict[str, str | None]:
    args = {name: (request.args.get(name) or "").strip() or None for name in FILTERS}
    if args["due"] not in (None, *inbox.DUE_FILTERS):
        args["due"] = None
    if args["orphan"] != "1":
        args["orphan"] = None
    return args


def _query(args: dict[str, str | None]) -> dict[str, Any]:
    return {
        "process_key": args["process"],
        "stage": args["stage"],
        "business_key": args["customer"],
        "due": args["due"],
        "orphan": True if args["orphan"] else None,
    }


def _is_admin() -> bool:
    return current_user.has_role("admin")


def _list(view: str, page_for) -> str:
    """One page of a list: the filters, the rows, links to the pages before and after it."""
    args = _filters()
    try:
        page = page_for(_query(args), request.args.get("cursor") or None)
    except Invalid:
        # NOTE: a cursor from an old link (or typed by hand) starts the list over rather than failing.
        page = page_for(_query(args), None)
    reassign_to = _candidates_by_task(page.rows) if view == "all" else {}
    return render_template(
        "inbox/list.html",
        view=view,
        rows=page.rows,
        page=page,
        args=args,
        links=_links(args, page),
        options=inbox.filter_options(get_runner()),
        customers=_customers(page.rows),
        due_choices=inbox.DUE_FILTERS,
        reassign_to=reassign_to,
    )


def _customers(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The customers on this page, (key, label), to suggest in the customer filter (a page's worth, not all)."""
    found = {r["business_key"]: r["customer_name"] or r["business_key"] for r in rows if r["business_key"]}
    return sorted(found.items(), key=lambda kv: str(kv[1]))


def _links(args: dict[str, str | None], page) -> dict[str, str | None]:
    """The URLs of the pages before and after this one, with the same filters (None: no such page)."""
    kept = {name: value for name, value in args.items() if value}
    return {
        "prev": url_for(request.endpoint or "", **kept, cursor=page.prev_cursor) if page.prev_cursor else None,
        "next": url_for(request.endpoint or "", **kept, cursor=page.next_cursor) if page.next_cursor else None,
    }


@bp.get("/")
@roles_required()
def my_tasks():
    """Tasks assigned to me, overdue first."""
    return _list("mine", lambda q, cursor: inbox.my_tasks(get_runner(), current_user.username, **q, cursor=cursor))


@bp.get("/group")
@roles_required()
def group_tasks():
    """Unclaimed tasks of my groups, to claim."""
    return _list(
        "group",
        lambda q, cursor: inbox.group_tasks(
            get_runner(), current_user.username, list(current_user.roles), **q, cursor=cursor
        ),
    )


@bp.get("/all")
@roles_required(*OVERSEERS)
def all_tasks():
    """Every open task, claimed or not, orphans flagged, for team leaders and admins to reassign."""
    return _list("all", lambda q, cursor: inbox.open_tasks(get_runner(), **q, cursor=cursor))


def _staff() -> list[dict[str, Any]]:
    return [u for u in users.list_users(get_runner()) if u["active"]]


def _candidates_by_task(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Who each task may go to: its candidates, or any active user when an admin decides."""
    staff = _staff()
    if _is_admin():
        return {r["id"]: staff for r in rows}
    return {r["id"]: [u for u in staff if is_candidate(r, u["username"], u["roles"])] for r in rows}


# --- one task -------------------------------------------------------------------------------


def _task_or_404(task_id: str) -> dict[str, Any]:
    try:
        return inbox.task(get_runner(), task_id)
    except NotFound:
        abort(404)


def _may_see(task: dict[str, Any]) -> bool:
    user = current_user
    return (
        task["assignee"] == user.username
        or task["completed_by"] == user.username
        or (not task["assignee"] and is_candidate(task, user.username, user.roles))
        or user.has_role(*OVERSEERS)
    )


def _context(task: dict[str, Any]) -> dict[str, Any]:
    """The customer beside the form (``navigation.customer_context``) and the last messages sent."""
    runner = get_runner()
    messages = inbox.recent_messages(runner, task["business_key"], limit=5) if task["business_key"] else []
    return {"messages": messages, **customer_context(task["business_key"])}


def _page(task: dict[str, Any], submitted=None, errors: dict[str, str] | None = None, status: int = 200):
    runner = get_runner()
    form = forms.form_from_dict(task["form"]) if task["form"] else forms.Form(())
    data = inbox.instance(runner, task["instance_id"])["data"] if task["state"] == "open" else {}
    fields = taskform.field_views(form, data, submitted, errors, runner.settings.tz)
    reassign_to = _candidates_by_task([task])[task["id"]] if current_user.has_role(*OVERSEERS) else []
    process_name = inbox.process_names(runner).get(task["process_key"], task["process_key"])
    return render_template(
        "inbox/task.html",
        task=task,
        fields=fields,
        errors=errors or {},
        now=runner.now(),
        timezone=runner.settings.timezone,
        process_name=process_name,
        reassign_to=reassign_to,
        mine=task["assignee"] == current_user.username,
        may_claim=not task["assignee"]
        and (_is_admin() or is_candidate(task, current_user.username, current_user.roles)),
        **_context(task),
    ), status


@bp.get("/tasks/<task_id>")
@roles_required()
def task(task_id: str):
    """The task page: the form and the customer's context."""
    row = _task_or_404(task_id)
    if not _may_see(row):
        abort(403)
    return _page(row)


def _back() -> str:
    target = request.form.get("next") or ""
    return target if target.startswith("/inbox") else url_for("inbox.my_tasks")


def _name(task: dict[str, Any]) -> str:
    return task["name"] or task["element_id"]


def _explain_conflict(task_id: str) -> None:
    """Say in words why the task cannot be worked on any more (done, or someone else has it)."""
    row = _task_or_404(task_id)
    if row["state"] != "open":
        flash(
            _(
                "Việc “%(name)s” đã được %(who)s hoàn thành trước bạn. Dữ liệu bạn nhập chưa được lưu.",
                name=_name(row),
                who=person(row["completed_by"]) or _("người khác"),
            ),
            "warning",
        )
    elif row["assignee"] and row["assignee"] != current_user.username:
        flash(_("Việc “%(name)s” đã được %(who)s nhận.", name=_name(row), who=person(row["assignee"])), "warning")
    else:
        flash(_("Việc “%(name)s” vừa thay đổi. Hãy tải lại và thử lại.", name=_name(row)), "warning")


@bp.post("/tasks/<task_id>/claim")
@roles_required()
def claim(task_id: str):
    """Claim a group task and open it."""
    row = _task_or_404(task_id)
    try:
        get_runner().claim_task(task_id, current_user.username, current_user.roles, override=_is_admin())
    except Conflict:
        _explain_conflict(task_id)
        return redirect(url_for("inbox.group_tasks"))
    except Invalid:
        abort(403)
    flash(_("Bạn đã nhận việc “%(name)s”.", name=_name(row)), "success")
    return redirect(url_for("inbox.task", task_id=task_id))


@bp.post("/tasks/<task_id>/unclaim")
@roles_required()
def unclaim(task_id: str):
    """Give a claimed task back to the group."""
    row = _task_or_404(task_id)
    try:
        get_runner().unclaim_task(task_id, current_user.username)
    except Conflict:
        _explain_conflict(task_id)
        return redirect(_back())
    flash(_("Đã trả việc “%(name)s” về nhóm.", name=_name(row)), "info")
    return redirect(url_for("inbox.group_tasks"))


@bp.post("/tasks/<task_id>/reassign")
@roles_required(*OVERSEERS)
def reassign(task_id: str):
    """Give a task to another candidate, to anyone when an admin does (or back to the group)."""
    row = _task_or_404(task_id)
    to_user = (request.form.get("to") or "").strip() or None
    try:
        get_runner().reassign_task(task_id, to_user, actor=current_user.username, override=_is_admin())
    except Conflict:
        _explain_conflict(task_id)
    except (Invalid, NotFound):
        flash(
            _(
                "Không thể giao việc “%(name)s” cho %(who)s: người này không thuộc nhóm được giao.",
                name=_name(row),
                who=person(to_user),
            ),
            "error",
        )
    else:
        if to_user:
            flash(_("Đã giao việc “%(name)s” cho %(who)s.", name=_name(row), who=person(to_user)), "success")
        else:
            flash(_("Đã trả việc “%(name)s” về nhóm.", name=_name(row)), "info")
    return redirect(_back())


@bp.post("/tasks/<task_id>/complete")
@roles_required()
def complete(task_id: str):
    """Complete the task with the form; errors come back per field with the values kept."""
    row = _task_or_404(task_id)
    runner = get_runner()
    try:
        values = {**taskform.submitted_values(request.form), **attachments.store_posted(row, request.files)}
        runner.complete_task_as(task_id, values, current_user.username, current_user.roles, html=True)
    except FormInvalid as exc:
        form = forms.form_from_dict(row["form"]) if row["form"] else forms.Form(())
        flash(_("Vui lòng sửa các ô được đánh dấu bên dưới."), "error")
        return _page(row, request.form, taskform.messages(form, exc, get_runner().settings.tz), 422)
    except Conflict:
        _explain_conflict(task_id)
        return redirect(url_for("inbox.my_tasks"))
    except StepFailed as exc:
        # NOTE: a script or condition after the task failed (or broke its budget): nothing
        # was stored and the task stays open, as the API's 422 says.
        flash(
            _(
                "Không thể hoàn thành “%(name)s”: bước tiếp theo của quy trình bị lỗi (%(error)s).",
                name=_name(row),
                error=str(exc),
            ),
            "error",
        )
        return _page(row, request.form, {}, 422)
    except Invalid:
        abort(403)
    flash(_("Đã hoàn thành “%(name)s”.", name=_name(row)), "success")
    following = inbox.next_task(
        runner, current_user.username, list(current_user.roles), row["business_key"], exclude=task_id
    )
    if following is not None:
        return redirect(url_for("inbox.task", task_id=following["id"]))
    return redirect(url_for("inbox.my_tasks"))
