"""The admin overview (counts, the clock, what moving it set off) and the virtual clock's buttons.

A button queues a clock run (``runner.service.clockruns``) and comes back at once; the page
shows the run's progress, refreshes itself while it moves and disables the buttons. The
form carries the time the admin saw, so a second click, or a click on a page left open,
never moves the clock a second time by accident.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from runner.errors import Conflict
from runner.queries import overview
from runner.queries import tasklists as inbox
from runner.service.clockruns import RunActive
from web.admin.blueprint import bp
from web.auth import roles_required
from web.edge import row_number
from web.extensions import get_runner, resume_clock_run, start_clock_run

STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def _virtual() -> bool:
    return get_runner().settings.clock == "virtual"


@bp.get("/")
@roles_required("admin")
def index():
    """Overview: counts, the clock, the clock run in progress, and what the last one set off."""
    runner = get_runner()
    counts = overview.counts(runner)
    run = runner.current_clock_run() if _virtual() else None
    moving = run is not None and run["state"] in ("queued", "running")
    if moving:
        resume_clock_run(run["id"])  # NOTE: a run whose executor died goes on here
    since = request.args.get("since", type=row_number)
    if since is None and run is not None and request.args.get("run", type=row_number) == run["id"] and not moving:
        since = run["history_from"]
    return render_template(
        "admin/index.html",
        now=runner.now(),
        virtual=_virtual(),
        steps=STEPS,
        run=run,
        moving=moving,
        counts=counts,
        shown=overview.shown,
        effects=inbox.history_after(runner, since, limit=100) if since is not None else None,
    )


@bp.post("/clock/advance")
@roles_required("admin")
def advance_clock():
    """Queue a clock run of an hour, a day or a week from the time the admin saw; everything due fires on the way."""
    step = STEPS.get(request.form.get("by", ""))
    if step is None:
        abort(400, description=_("Chọn 1 giờ, 1 ngày hoặc 1 tuần."))
    if not _virtual():
        flash(_("Chỉ chỉnh được đồng hồ khi chạy với RUNNER_CLOCK=virtual."), "error")
        return redirect(url_for("admin.index"))
    seen = _seen(request.form.get("seen", ""))
    runner = get_runner()
    try:
        run = runner.request_clock_run(step, current_user.username, expected=seen)
    except RunActive:
        flash(_("Đồng hồ đang được chuyển; chờ lượt này xong rồi bấm lại."), "error")
        return redirect(url_for("admin.index"))
    except Conflict:
        flash(_("Đồng hồ đã chuyển đi từ lúc bạn mở trang; xem giờ mới rồi bấm lại."), "error")
        return redirect(url_for("admin.index"))
    start_clock_run(run["id"])
    target = run["target"].astimezone(runner.settings.tz).strftime("%d/%m/%Y %H:%M")
    flash(_("Đồng hồ ảo đang chuyển tới %(target)s.", target=target), "success")
    return redirect(url_for("admin.index", run=run["id"]))


def _seen(text: str) -> datetime | None:
    """The clock time the page showed (None if the form did not say, or said something unreadable)."""
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        abort(400, description=_("Thời điểm trên trang không đọc được; tải lại trang."))
    if moment is not None and moment.tzinfo is None:
        abort(400, description=_("Thời điểm trên trang không đọc được; tải lại trang."))
    return moment
