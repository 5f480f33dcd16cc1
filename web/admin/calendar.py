"""The business calendar: working hours per weekday, whose public holidays count, company days off.

Business-time timers (``calendar=business`` on a timer event) count only this calendar's
working time; an edit here is seen by the next timer computed.
"""

from __future__ import annotations

from datetime import date

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from runner.errors import Invalid, NotFound
from runner.model import worktime
from web.admin.blueprint import bp
from web.auth import roles_required
from web.extensions import get_runner
from web.i18n import select_locale

WEEKDAY_LABELS = {
    "mon": _l("Thứ Hai"),
    "tue": _l("Thứ Ba"),
    "wed": _l("Thứ Tư"),
    "thu": _l("Thứ Năm"),
    "fri": _l("Thứ Sáu"),
    "sat": _l("Thứ Bảy"),
    "sun": _l("Chủ nhật"),
}


def _page(form: dict | None = None, status: int = 200):
    runner = get_runner()
    cal = runner.business_calendar()
    year = runner.now().astimezone(runner.settings.tz).year
    language = "vi" if select_locale() == "vi" else "en_US"
    public = (
        [(d, name) for y in (year, year + 1) for d, name in worktime.holiday_names(cal["country"], y, language)]
        if cal["country"]
        else []
    )
    return render_template(
        "admin/calendar.html",
        calendar=cal,
        form=form or {"hours": cal["hours"], "country": cal["country"] or ""},
        weekdays=WEEKDAY_LABELS,
        public=public,
    ), status


@bp.get("/calendar")
@roles_required("admin")
def business_calendar():
    """The calendar with its forms."""
    return _page()


@bp.post("/calendar")
@roles_required("admin")
def save_business_calendar():
    """Save the working hours and the holiday country; a bad value is named and nothing is saved."""
    hours = {day: (request.form.get(f"hours_{day}") or "").strip() for day in worktime.WEEKDAYS}
    country = (request.form.get("country") or "").strip()
    try:
        get_runner().save_business_calendar(hours, country, actor=current_user.get_id())
    except Invalid as exc:
        flash(_("Chưa lưu: %(error)s", error=str(exc)), "error")
        return _page({"hours": hours, "country": country}, 422)
    flash(_("Đã lưu lịch làm việc."), "success")
    return redirect(url_for("admin.business_calendar"))


@bp.post("/calendar/days-off")
@roles_required("admin")
def add_day_off():
    """Add a company day off."""
    try:
        get_runner().add_day_off(
            request.form.get("day") or "", (request.form.get("note") or "").strip(), actor=current_user.get_id()
        )
    except Invalid as exc:
        flash(_("Chưa thêm ngày nghỉ: %(error)s", error=str(exc)), "error")
        return _page(status=422)
    flash(_("Đã thêm ngày nghỉ."), "success")
    return redirect(url_for("admin.business_calendar"))


@bp.post("/calendar/days-off/<day>/delete")
@roles_required("admin")
def remove_day_off(day: str):
    """Remove a company day off."""
    try:
        get_runner().remove_day_off(day, actor=current_user.get_id())
    except (Invalid, NotFound) as exc:
        flash(_("Chưa bỏ ngày nghỉ: %(error)s", error=str(exc)), "error")
        return _page(status=404 if isinstance(exc, NotFound) else 422)
    flash(_("Đã bỏ ngày nghỉ %(day)s.", day=date.fromisoformat(day).strftime("%d/%m/%Y")), "success")
    return redirect(url_for("admin.business_calendar"))
