"""How the customer pages show things: labels for fields, states and kinds, times and typed-in values."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l

ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?)?")
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
    "change": _l("Thay đổi"),
}
MESSAGE_STATES = {
    "pending": _l("Chờ gửi"),
    "sending": _l("Đang gửi"),
    "sent": _l("Đã gửi"),
    "failed": _l("Gửi lỗi"),
    "unknown": _l("Chưa rõ đã gửi chưa"),
    "dismissed": _l("Đã bỏ qua"),
}
BOOKING_KINDS = {
    "training": _l("Đào tạo"),
    "care": _l("Chăm sóc"),
    "demo": _l("Demo"),
    "negotiation": _l("Đàm phán hợp đồng"),
}
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


def clock(tz: Any):
    """HH:MM of a moment in the business zone, for the end of an appointment."""
    return lambda moment: moment.astimezone(tz).strftime("%H:%M")


def show_value(tz: Any):
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
