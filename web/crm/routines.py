"""Seed 001's internal routines: the team leader's check-in page and feature requests.

- ``/checkins/?day=YYYY-MM-DD``: every sales rep's answers to the four questions of that day's
  check-in (``processes/checkin.bpmn``) on one page, for team leaders and admins.
- ``/feature-requests/``: the signed-in person's requests and their state; ``/feature-requests/new``
  files one, on its own or about a customer (``?customer=KH0001``, linked from the customer page).
  The product group works them in its inbox (``processes/feature_request.bpmn``).
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from runner.crm import routines
from runner.errors import FormInvalid, NotFound
from web import permissions
from web.auth import roles_required
from web.extensions import get_runner
from web.navigation import NavItem

LEADERS = ("team_leader", "admin")
bp = Blueprint("routines", "web.crm", template_folder="templates")
NAV = [
    NavItem("routines.checkins", _l("Check-in"), LEADERS),
    NavItem("routines.feature_requests", _l("Đề xuất tính năng")),
]
QUESTIONS = {
    "yesterday": _l("Hôm qua đã làm những gì?"),
    "today": _l("Công việc dự kiến làm trong hôm nay?"),
    "blockers": _l("Có khó khăn nào cần trình bày, cần anh em hỗ trợ hay trưởng phòng giải quyết?"),
    "ideas": _l("Có sáng kiến, giải pháp nào mới không?"),
}
CHECKIN_STATES = {"answered": _l("Đã check-in"), "waiting": _l("Chưa check-in"), "missed": _l("Không check-in")}
REQUEST_STATES = {
    "received": _l("Đã tiếp nhận"),
    "accepted": _l("Đã chấp nhận"),
    "in_progress": _l("Đang phát triển"),
    "done": _l("Hoàn thành"),
    "declined": _l("Từ chối"),
}


@bp.get("/checkins/")
@roles_required(*LEADERS)
def checkins():
    """One day's check-ins (today by default): each rep's four answers, or that they have not answered."""
    runner = get_runner()
    raw = request.args.get("day", "")
    try:
        day = date.fromisoformat(raw) if raw else runner.now().astimezone(runner.settings.tz).date()
    except ValueError:
        abort(400, description=_("day: nhập một ngày dạng YYYY-MM-DD."))
    rows = routines.checkin_day(runner, day)
    return render_template(
        "routines/checkins.html",
        day=day,
        rows=rows,
        questions=QUESTIONS,
        states=CHECKIN_STATES,
        answered=sum(1 for r in rows if r.state == "answered"),
    )


@bp.get("/feature-requests/")
@roles_required()
def feature_requests():
    """The signed-in person's feature requests, newest first, with their state and the product team's reply."""
    found = routines.feature_requests(get_runner(), current_user.username)
    return render_template("routines/feature_requests.html", requests=found, states=REQUEST_STATES)


@bp.get("/feature-requests/new")
@roles_required()
def new_feature_request():
    """The form, about a customer when ``?customer=`` names one the person may see."""
    customer = request.args.get("customer", "").strip()
    if customer:
        permissions.require_customer(customer)
    return _form_page({"customer": customer})


@bp.post("/feature-requests/new")
@roles_required()
def file_feature_request():
    """File the request; bad fields come back beside their inputs (422)."""
    values = {k: request.form.get(k, "") for k in ("title", "description", "customer")}
    customer = values["customer"].strip() or None
    if customer:
        permissions.require_customer(customer)
    try:
        routines.file_feature_request(
            get_runner(), current_user.username, values["title"], values["description"], customer
        )
    except FormInvalid as exc:
        return _form_page(values, exc.errors, 422)
    except NotFound:
        # NOTE: the diagram is not deployed: nothing the person typed is wrong
        return _form_page(values, {"": _("Quy trình đề xuất tính năng chưa được triển khai; báo quản trị.")}, 503)
    flash(_("Đã gửi đề xuất tính năng cho nhóm sản phẩm."), "success")
    return redirect(url_for("routines.feature_requests"))


def _form_page(values: dict[str, str], errors: dict[str, str] | None = None, status: int = 200):
    messages = {
        "required": _("Bắt buộc nhập."),
        "title": _("Tối đa %(n)d ký tự.", n=routines.TITLE_MAX),
        "description": _("Tối đa %(n)d ký tự.", n=routines.DESCRIPTION_MAX),
        "customer": _("Không có khách hàng này."),
    }
    shown = {
        field: messages["required"] if detail == "required" else messages.get(field, detail)
        for field, detail in (errors or {}).items()
    }
    return render_template("routines/new_feature_request.html", values=values, errors=shown), status
