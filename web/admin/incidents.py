"""Incidents and outbox decisions: open and recently resolved incidents, retrying them, and resending or
dismissing outbox messages whose delivery is unknown or failed."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from runner.errors import Conflict, Invalid, NotFound
from runner.queries import tasklists as inbox
from runner.service import outbox
from web.admin.blueprint import bp
from web.auth import roles_required
from web.extensions import get_runner

MAX_ID = 2**31 - 1


def undecided() -> list[dict[str, Any]]:
    """Outbox messages waiting for an admin's decision (delivery unknown or failed), oldest first."""
    runner = get_runner()
    return sorted(inbox.outbox(runner, state="unknown") + inbox.outbox(runner, state="failed"), key=lambda m: m["id"])


@bp.get("/incidents")
@roles_required("admin")
def incidents():
    """Open incidents with their error, outbox messages waiting for a decision, recently resolved incidents."""
    runner = get_runner()
    return render_template(
        "admin/incidents.html",
        incidents=inbox.incidents_with_instances(runner),
        messages=undecided(),
        resolved=inbox.incidents_with_instances(runner, state="resolved", limit=20),
    )


@bp.post("/incidents/<int:incident_id>/retry")
@roles_required("admin")
def retry_incident(incident_id: int):
    """Try the incident's job, timer or message again (the worker picks it up now)."""
    try:
        if incident_id > MAX_ID:
            raise NotFound(f"incident {incident_id} does not exist")
        get_runner().retry_incident(incident_id, actor=current_user.username)
    except NotFound:
        flash(_("Không có sự cố #%(id)s.", id=incident_id), "error")
    except Conflict:
        flash(_("Sự cố #%(id)s đã được xử lý trước đó.", id=incident_id), "warning")
    else:
        flash(_("Đã thử lại sự cố #%(id)s; worker sẽ chạy lại ngay.", id=incident_id), "success")
    return redirect(url_for("admin.incidents"))


@bp.post("/outbox/<int:message_id>/resolve")
@roles_required("admin")
def resolve_message(message_id: int):
    """Resend or dismiss an outbox message whose delivery is unknown or failed."""
    action = request.form.get("action", "")
    try:
        if message_id > MAX_ID:
            raise NotFound(f"outbox message {message_id} does not exist")
        outbox.resolve(get_runner(), message_id, action)
    except NotFound:
        flash(_("Không có tin nhắn #%(id)s.", id=message_id), "error")
    except Conflict:
        flash(_("Tin nhắn #%(id)s không còn chờ quyết định.", id=message_id), "warning")
    except Invalid:
        flash(_("Chọn gửi lại hoặc bỏ qua."), "error")
    else:
        flash(
            _("Sẽ gửi lại tin nhắn #%(id)s.", id=message_id)
            if action == "resend"
            else _("Đã bỏ qua tin nhắn #%(id)s.", id=message_id),
            "success",
        )
    return redirect(url_for("admin.incidents"))
