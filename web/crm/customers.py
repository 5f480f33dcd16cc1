"""Customers: search, the 360° customer page, pipeline boards, and "My Calendar" with its feed.

The pages read ``runner.crm.pages`` and ``runner.crm.views``; the only write is a Thảo luận
note. Their templates are in ``web/crm/templates/customers/``. The iCalendar feed is public on
purpose (calendar apps cannot sign in): its address carries an HMAC of the username made with
the app's secret key, and a wrong one is a 404.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from runner.crm import bookings, pages, views
from runner.crm.customers import PIPELINES
from runner.crm.models import BadValue, Missing
from runner.queries import tasklists as inbox
from runner.service import accounts as users
from web import permissions
from web.auth import roles_required
from web.extensions import get_runner
from web.navigation import NavItem

bp = Blueprint("customers", __name__, template_folder="templates")
NAV = [
    NavItem("customers.search", _l("Khách hàng")),
    NavItem("customers.boards", _l("Pipeline")),
    NavItem("customers.my_calendar", _l("Lịch của tôi")),
]
ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?)?")
FEED_PAST = timedelta(days=90)  # how far back the calendar feed reaches
SEARCH_LIMIT = 50
CONTACT_FIELDS = {
    "phone": _l("Điện thoại"),
    "email": _l("E-mail"),
    "zalo_user_id": _l("Zalo"),
    "zalo_group_id": _l("Nhóm Zalo"),
}
CRM_FIELDS = {
    "owner_name": _l("Phụ trách"),
    "teacher_name": _l("Giáo viên"),
    "status": _l("Trạng thái"),
    "source": _l("Nguồn"),
    "group": _l("Nhóm khách hàng"),
    "occupation": _l("Nghề nghiệp"),
    "school": _l("Trường học"),
    "trial_link": _l("Link dùng thử"),
}
PROFILE_FACTS = {
    "business_model": _l("Mô hình kinh doanh"),
    "dedicated_department": _l("Có bộ phận chuyên trách"),
    "staff_count": _l("Số nhân viên"),
    "student_count": _l("Số học viên"),
    "course_model": _l("Mô hình khóa học"),
}
TIMELINE_LABELS = {
    "note": _l("Ghi chú"),
    "message": _l("Tin nhắn"),
    "task": _l("Việc đã làm"),
    "timer": _l("Hẹn giờ"),
    "incident": _l("Sự cố"),
    "stage": _l("Giai đoạn"),
    "instance": _l("Quy trình"),
}
MESSAGE_STATES = {
    "pending": _l("Chờ gửi"),
    "sending": _l("Đang gửi"),
    "sent": _l("Đã gửi"),
    "failed": _l("Gửi lỗi"),
    "unknown": _l("Chưa rõ đã gửi chưa"),
    "dismissed": _l("Đã bỏ qua"),
}
BOOKING_KINDS = {"training": _l("Đào tạo"), "care": _l("Chăm sóc"), "demo": _l("Demo")}
BOOKING_STATES = {"booked": _l("Đã đặt"), "cancelled": _l("Đã hủy")}
WEEKDAYS = (_l("Thứ Hai"), _l("Thứ Ba"), _l("Thứ Tư"), _l("Thứ Năm"), _l("Thứ Sáu"), _l("Thứ Bảy"), _l("Chủ Nhật"))
INSTANCE_STATES = {"running": _l("Đang chạy"), "completed": _l("Đã kết thúc"), "cancelled": _l("Đã hủy")}
LABELS = {
    "timeline": TIMELINE_LABELS,
    "message": MESSAGE_STATES,
    "booking_kind": BOOKING_KINDS,
    "booking": BOOKING_STATES,
    "instance": INSTANCE_STATES,
}


# --- search ---------------------------------------------------------------------------------------


@bp.get("/customers/")
@roles_required()
def search():
    """Customers by name, phone or tag (all of them, up to a limit, without a query)."""
    runner = get_runner()
    text = (request.args.get("q") or "").strip()[:200]
    tag = (request.args.get("tag") or "").strip() or None
    rows = pages.search_customers(runner, permissions.person(), text, tag=tag, limit=SEARCH_LIMIT)
    return render_template(
        "customers/search.html",
        rows=rows,
        q=text,
        tag=tag,
        tags=views.known_tags(runner),
        limit=SEARCH_LIMIT,
        boards=_board_tabs(),
    )


# --- the 360° page ----------------------------------------------------------------------------------


@bp.get("/customers/<customer_id>")
@roles_required()
def detail(customer_id: str):
    """Profile, stages, open tasks, one timeline, instances and bookings of a customer."""
    return _detail_page(customer_id)


@bp.post("/customers/<customer_id>/notes")
@roles_required()
def add_note(customer_id: str):
    """Add a Thảo luận note; an empty or too long note comes back with the text kept."""
    text = request.form.get("text") or ""
    permissions.require_customer(customer_id)
    try:
        views.add_note(get_runner(), customer_id, text, current_user.username)
    except Missing:
        abort(404)
    except BadValue:
        error = (
            _("Ghi chú không được để trống.")
            if not text.strip()
            else _("Ghi chú dài quá %(limit)d ký tự.", limit=views.NOTE_MAX)
            if len(text.strip()) > views.NOTE_MAX
            else _("Ghi chú chứa ký tự không lưu được (NUL hoặc ký tự lỗi).")
        )
        return _detail_page(customer_id, note=text, note_error=error, status=422)
    flash(_("Đã lưu ghi chú."), "success")
    return redirect(url_for("customers.detail", customer_id=customer_id, _anchor="timeline"))


def _detail_page(customer_id: str, *, note: str = "", note_error: str | None = None, status: int = 200):
    permissions.require_customer(customer_id)
    runner = get_runner()
    try:
        customer = pages.customer_profile(runner, customer_id)
    except Missing:
        abort(404)
    extra_labels = pages.extra_field_labels(runner)
    kind = request.args.get("kind")
    kind = kind if kind in views.TIMELINE_KINDS else None
    return render_template(
        "customers/detail.html",
        customer=customer,
        kind=kind,
        note=note,
        note_error=note_error,
        timeline=views.timeline(runner, customer_id, kinds=[kind] if kind else None),
        tasks=inbox.tasks(runner, business_key=customer_id),
        instances=views.instances(runner, customer_id),
        bookings=views.customer_bookings(runner, customer_id),
        now=runner.now(),
        extra_labels=extra_labels,
        contact_fields=CONTACT_FIELDS,
        crm_fields=CRM_FIELDS,
        profile_facts=PROFILE_FACTS,
        labels=LABELS,
        clock=_clock(runner.settings.tz),
        show_value=_show_value(runner.settings.tz),
    ), status


# --- boards -----------------------------------------------------------------------------------------


def _board_tabs() -> list[dict[str, str]]:
    names = inbox.process_names(get_runner())
    return [{"key": key, "pipeline": PIPELINES[key], "process_name": names.get(key, key)} for key in views.boards()]


@bp.get("/boards/")
@roles_required()
def boards():
    """The first pipeline's board (Trong bán hàng): the top bar's link."""
    return _board_page(next(iter(views.boards())))


@bp.get("/boards/<board>")
@roles_required()
def board(board: str):
    """A pipeline as columns of stages with customer cards; ``?owner=`` (or ``me``) narrows it."""
    return _board_page(board)


def _board_page(board: str):
    owner = (request.args.get("owner") or "").strip() or None
    if owner == "me":
        owner = current_user.username
    try:
        data = views.pipeline_board(get_runner(), board, owner_name=owner)
    except Missing:
        abort(404)
    seen = permissions.visible(card["id"] for column in data["columns"] for card in column["cards"])
    for column in data["columns"]:
        column["cards"] = [card for card in column["cards"] if card["id"] in seen]
        column["count"] = len(column["cards"])
        column["overdue"] = sum(1 for card in column["cards"] if card["overdue"])
    return render_template("customers/board.html", data=data, owner=owner, boards=_board_tabs())


# --- My Calendar and its feed ---------------------------------------------------------------------


def _clock(tz: Any):
    """HH:MM of a moment in the business zone, for the end of an appointment."""
    return lambda moment: moment.astimezone(tz).strftime("%H:%M")


def _show_value(tz: Any):
    """A value someone typed into a form: ISO dates and times as day/month/year [hour:minute].

    NOTE: a date-time without an offset is shown as typed: forms take it in business time.
    """

    def show(value: Any) -> Any:
        if not isinstance(value, str) or not ISO_MOMENT.fullmatch(value):
            return value
        try:
            moment = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return value
        if not isinstance(moment, datetime):
            return moment.strftime("%d/%m/%Y")
        moment = moment.astimezone(tz) if moment.tzinfo else moment
        return moment.strftime("%d/%m/%Y %H:%M")

    return show


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
        clock=_clock(tz),
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


def page_url(customer_id: str) -> str:
    """The 360° page of a customer (``app.extensions["customer_url"]``, for the generic pages' links)."""
    return url_for("customers.detail", customer_id=customer_id)
