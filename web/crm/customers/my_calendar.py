"""My Calendar: the signed-in staff member's appointments by week, and their iCalendar feed.

The feed is public on purpose (calendar apps cannot sign in): its address carries an HMAC of the
username made with the app's secret key, and a wrong one is a 404.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from runner.crm import bookings, pages, views
from runner.service import accounts as users
from web.auth import roles_required
from web.crm.customers.blueprint import bp
from web.crm.customers.display import LABELS, WEEKDAYS, clock
from web.extensions import get_runner

FEED_PAST = timedelta(days=90)  # how far back the calendar feed reaches


def _week_start(value: str | None, today: date) -> date:
    try:
        day = date.fromisoformat(value) if value else today
    except ValueError:
        day = today
    return day - timedelta(days=day.weekday())


@bp.get("/calendar/")
@roles_required()
def my_calendar():
    """The signed-in staff member's appointments, one week at a time, and their feed address."""
    runner = get_runner()
    tz = runner.settings.tz
    today = runner.now().astimezone(tz).date()
    monday = _week_start(request.args.get("week"), today)
    start = datetime.combine(monday, time(), tz)
    rows = views.staff_bookings(runner, current_user.username, start, start + timedelta(days=7))
    days = [{"date": monday + timedelta(days=i), "bookings": []} for i in range(7)]
    for row in rows:
        index = (row["start_at"].astimezone(tz).date() - monday).days
        days[min(max(index, 0), 6)]["bookings"].append(row)
    feed_url = url_for("customers.feed", token=feed_token(current_user.username), _external=True)
    return render_template(
        "customers/calendar.html",
        days=days,
        today=today,
        monday=monday,
        previous=monday - timedelta(days=7),
        following=monday + timedelta(days=7),
        count=len(rows),
        feed_url=feed_url,
        webcal_url="webcal://" + feed_url.split("://", 1)[1],
        labels=LABELS,
        meeting_link=bookings.meeting_link,
        clock=clock(tz),
        weekday_names=WEEKDAYS,
    )


def _signature(username: str, generation: int) -> str:
    key = current_app.config["SECRET_KEY"]
    key = key if isinstance(key, bytes) else str(key).encode()
    message = b"my-calendar-feed\x00" + username.encode()
    if generation:  # NOTE: generation 0 signs as before it existed, so addresses in use keep working
        message += b"\x00%d" % generation
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def feed_token(username: str) -> str:
    """The secret part of a staff member's feed address: the username and its HMAC with the app's key.

    The signature covers the user's feed generation, so asking for a new address retires the old one.
    """
    name = base64.urlsafe_b64encode(username.encode()).decode().rstrip("=")
    return f"{name}.{_signature(username, users.feed_generation(get_runner(), username))}"


def token_user(token: str) -> str | None:
    """The username a feed token was made for, or None when it is not one of ours."""
    name, sep, signature = token.rpartition(".")
    if not sep or not name:
        return None
    try:
        username = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = _signature(username, users.feed_generation(get_runner(), username))
    return username if hmac.compare_digest(signature, expected) else None


@bp.post("/calendar/feed")
@roles_required()
def renew_feed():
    """Give the signed-in staff member a new feed address; the old one stops working at once."""
    users.renew_feed(get_runner(), current_user.username)
    flash(
        _("Đã tạo địa chỉ lịch mới. Địa chỉ cũ không còn dùng được: hãy thêm lại địa chỉ mới vào ứng dụng lịch."),
        "success",
    )
    return redirect(url_for("customers.my_calendar", _anchor="h-feed"))


@bp.get("/calendar/<token>.ics")
def feed(token: str):
    """A staff member's appointments as iCalendar, for calendar apps (no session; 404 on a bad token)."""
    runner = get_runner()
    username = token_user(token)
    user = users.get_user(runner, username) if username else None
    if user is None or not user["active"]:
        abort(404)
    body = pages.calendar_feed(runner, username, since=runner.now() - FEED_PAST, tz=runner.settings.tz)
    headers: dict[str, Any] = {
        "Content-Disposition": 'inline; filename="lich-cua-toi.ics"',
        "Cache-Control": "private, max-age=300",
    }
    return Response(body, mimetype="text/calendar", headers=headers)
