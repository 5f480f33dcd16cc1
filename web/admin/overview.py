"""The admin overview (counts, the clock, what moving it set off) and the virtual clock's buttons."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from runner.queries import tasklists as inbox
from runner.service import accounts
from web.admin.blueprint import bp
from web.admin.incidents import undecided
from web.auth import roles_required
from web.edge import row_number
from web.extensions import get_runner

STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def _virtual() -> bool:
    return get_runner().settings.clock == "virtual"


@bp.get("/")
@roles_required("admin")
def index():
    """Overview: counts, the clock, and (after moving the clock) what happened on the way."""
    runner = get_runner()
    processes = inbox.process_versions(runner)
    since = request.args.get("since", type=row_number)
    return render_template(
        "admin/index.html",
        now=runner.now(),
        virtual=_virtual(),
        steps=STEPS,
        processes=len([p for p in processes if p["kind"] == "bpmn"]),
        running=sum(v["running"] for p in processes for v in p["versions"]),
        incidents=len(inbox.incidents(runner)),
        undecided=len(undecided()),
        users=len(accounts.list_users(runner)),
        effects=inbox.history_after(runner, since, limit=100) if since is not None else None,
    )


@bp.post("/clock/advance")
@roles_required("admin")
def advance_clock():
    """Move the virtual clock by an hour, a day or a week; everything due fires on the way."""
    step = STEPS.get(request.form.get("by", ""))
    if step is None:
        abort(400, description=_("Chọn 1 giờ, 1 ngày hoặc 1 tuần."))
    if not _virtual():
        flash(_("Chỉ chỉnh được đồng hồ khi chạy với RUNNER_CLOCK=virtual."), "error")
        return redirect(url_for("admin.index"))
    runner = get_runner()
    before = inbox.last_history_id(runner)
    now = runner.advance_clock(step)
    flash(
        _("Đồng hồ ảo đã chuyển tới %(now)s.", now=now.astimezone(runner.settings.tz).strftime("%d/%m/%Y %H:%M")),
        "success",
    )
    return redirect(url_for("admin.index", since=before))
