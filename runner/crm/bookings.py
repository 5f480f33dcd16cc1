"""Staff calendars: weekly availability, free slots, bookings, and the "My Calendar" feed.

A booking takes the 30-minute cells of its staff member's time that it touches
(``booking_slots``); a UNIQUE constraint on (staff member, cell) makes double-booking
impossible even for two transactions that both saw the time free. Times are stored in
UTC; availability windows and day boundaries are wall-clock times in the business zone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from urllib.parse import quote
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runner.crm.models import (
    BOOKING_KINDS,
    Availability,
    BadValue,
    Booking,
    BookingSlot,
    Customer,
    Missing,
    SlotTaken,
    Staff,
)
from runner.crm.staff import ensure_staff, staff_row
from runner.store.database import savepoint
from runner.store.models import User

SLOT = timedelta(minutes=30)
MAX_STRETCH = 800  # days looked at when closed days stretch a window (two years of them is a mistake)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
KIND_LABELS = {"training": "Đào tạo", "care": "Chăm sóc", "demo": "Demo", "negotiation": "Đàm phán hợp đồng"}
KIND_ROLES = {"training": "teacher", "care": "customer_care", "demo": "sales", "negotiation": "sales"}  # who holds it
MEETING_HOST = "online.emso.vn"


def meeting_link(customer_name: str) -> str:
    """The online meeting room of a customer: the room name is the customer's name (seeds 000, 001)."""
    return f"https://{MEETING_HOST}/{quote(customer_name.strip())}"


def cells(start: datetime, end: datetime) -> list[datetime]:
    """The 30-minute grid cells (UTC) that the time ``[start, end)`` touches."""
    cell = _EPOCH + ((start - _EPOCH) // SLOT) * SLOT
    found = []
    while cell < end:
        found.append(cell)
        cell += SLOT
    return found


def _ceil(moment: datetime) -> datetime:
    """``moment`` moved up to the 30-minute grid."""
    steps = -((_EPOCH - moment) // SLOT)
    return _EPOCH + steps * SLOT


# --- availability ----------------------------------------------------------------------------


def _clock(value: time | str, what: str) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise BadValue(f"{what}: {value!r} is not a time of day (HH:MM)") from None


def set_availability(session: Session, teacher: str, windows: Iterable[tuple[int, time | str, time | str]]) -> None:
    """Replace a staff member's weekly windows: (weekday 0=Monday..6=Sunday, start, end) in business time."""
    if staff_row(session, teacher) is None:
        raise Missing(f"staff member {teacher!r} does not exist")
    rows = []
    for weekday, start, end in windows:
        start, end = _clock(start, f"{teacher} start"), _clock(end, f"{teacher} end")
        if weekday not in range(7) or not start < end:
            raise BadValue(f"availability of {teacher}: ({weekday}, {start}, {end}) needs weekday 0-6 and start < end")
        rows.append(Availability(teacher=teacher, weekday=weekday, start_time=start, end_time=end))
    session.execute(delete(Availability).where(Availability.teacher == teacher))
    session.add_all(rows)
    session.flush()


def availability(session: Session, teacher: str) -> list[dict]:
    """A staff member's weekly windows, Monday first."""
    rows = session.scalars(
        select(Availability)
        .where(Availability.teacher == teacher)
        .order_by(Availability.weekday, Availability.start_time)
    )
    return [
        {"weekday": r.weekday, "start": r.start_time.isoformat("minutes"), "end": r.end_time.isoformat("minutes")}
        for r in rows
    ]


# --- free slots ----------------------------------------------------------------------------------


def _candidates(windows: list[Availability], day: date, duration: timedelta, tz: ZoneInfo) -> Iterator[datetime]:
    """Grid-aligned starts of ``duration`` inside the day's windows, earliest first (UTC)."""
    for window in sorted((w for w in windows if w.weekday == day.weekday()), key=lambda w: w.start_time):
        end = datetime.combine(day, window.end_time, tz).astimezone(UTC)
        start = _ceil(datetime.combine(day, window.start_time, tz).astimezone(UTC))
        while start + duration <= end:
            yield start
            start += SLOT


Closed = Callable[[date], bool]  # a business date on which nothing is booked (a holiday, a company day off)


def stretch(first: date, until: datetime, closed: Closed | None, tz: ZoneInfo) -> datetime:
    """``until`` moved on by one day for each closed day from ``first``: closed days do not use up a window."""
    if closed is None:
        return until
    day, extra = first, 0
    for _ in range(MAX_STRETCH):
        if datetime.combine(day, time(), tz) >= until + timedelta(days=extra):
            break
        extra += closed(day)
        day += timedelta(days=1)
    return until + timedelta(days=extra)


def free_starts(
    session: Session,
    teacher: str,
    *,
    not_before: datetime,
    until: datetime,
    duration: timedelta,
    count: int,
    tz: ZoneInfo,
    skip_days: Iterable[date] = (),
    closed: Closed | None = None,
) -> list[datetime]:
    """The earliest free start on each day from ``not_before`` to ``until``, one per day, up to ``count``.

    ``closed`` days (the business calendar's holidays and days off) are left out, and the window
    grows by one day for each of them, so a search across Tết still finds the days after it.
    """
    until = stretch(not_before.astimezone(tz).date(), until, closed, tz)
    windows = list(session.scalars(select(Availability).where(Availability.teacher == teacher)))
    busy = set(
        session.scalars(
            select(BookingSlot.slot_start).where(
                BookingSlot.teacher == teacher,
                BookingSlot.slot_start >= not_before - duration,
                BookingSlot.slot_start < until + duration,
            )
        )
    )
    skip = set(skip_days)
    found: list[datetime] = []
    day = not_before.astimezone(tz).date()
    while len(found) < count and datetime.combine(day, time(), tz) < until:
        if day not in skip and not (closed is not None and closed(day)):
            for start in _candidates(windows, day, duration, tz):
                end = start + duration
                if start >= not_before and end <= until and busy.isdisjoint(cells(start, end)):
                    found.append(start)
                    break
        day += timedelta(days=1)
    return found


def find_slots(
    session: Session,
    now: datetime,
    *,
    sessions: int = 2,
    duration_minutes: int = 90,
    window_days: int = 14,
    prefer_days: int = 4,
    teacher: str | None = None,
    role: str = "teacher",
    lead_minutes: int = 60,
    skip_days: Iterable[date] = (),
    tz: ZoneInfo,
    closed: Closed | None = None,
) -> tuple[Staff, list[datetime]]:
    """One staff member (``teacher``, or any of ``role``) with ``sessions`` free starts on different days.

    The window runs from ``now`` (+ ``lead_minutes``) to the end of day ``window_days`` in
    business time. Teachers who fit every session in the first ``prefer_days`` days come
    first, the least booked of them; otherwise the one who finishes earliest. Ties go by
    username, so the choice is deterministic. Days in ``skip_days`` (business dates, e.g.
    the customer's other sessions) are left out, and ``closed`` days (holidays, company days
    off) too, without using up the window. ``Missing`` when nobody fits.
    """
    if sessions < 1 or duration_minutes < 1 or window_days < 1:
        raise BadValue(
            f"sessions, duration_minutes and window_days must be positive, got "
            f"{sessions}, {duration_minutes}, {window_days}"
        )
    today = now.astimezone(tz).date()
    until = datetime.combine(today + timedelta(days=window_days), time(), tz)
    prefer_until = stretch(today, datetime.combine(today + timedelta(days=prefer_days), time(), tz), closed, tz)
    duration = timedelta(minutes=duration_minutes)
    skip_days = set(skip_days)
    if teacher:
        staff = staff_row(session, teacher)
        if staff is None or not staff.active:
            raise Missing(f"teacher {teacher!r} does not exist or is not active")
        candidates = [staff]
    else:
        ensure_staff(session)
        candidates = [
            s
            for s in session.scalars(select(Staff).where(Staff.active).order_by(Staff.username))
            if role in (s.roles or [])
        ]
    ranked = []
    for staff in candidates:
        starts = free_starts(
            session,
            staff.username,
            not_before=now + timedelta(minutes=lead_minutes),
            until=until,
            duration=duration,
            count=sessions,
            tz=tz,
            skip_days=skip_days,
            closed=closed,
        )
        if len(starts) < sessions:
            continue
        if starts[-1] + duration <= prefer_until:
            load = session.scalar(
                select(func.count())
                .select_from(Booking)
                .where(
                    Booking.teacher == staff.username,
                    Booking.status == "booked",
                    Booking.end_at > now,
                    Booking.start_at < until,
                )
            )
            ranked.append(((0, load, starts[-1], staff.username), staff, starts))
        else:
            ranked.append(((1, 0, starts[-1], staff.username), staff, starts))
    if not ranked:
        wanted = f"{sessions} free slot(s) of {duration_minutes} minutes on different days within {window_days} days"
        raise Missing(
            f"teacher: {teacher!r} does not have {wanted}"
            if teacher
            else f"teacher: no active staff member with role {role!r} has {wanted}"
        )
    _, staff, starts = min(ranked, key=lambda item: item[0])
    return staff, starts


# --- bookings ----------------------------------------------------------------------------------------


def _take_cells(session: Session, booking: Booking, tz: tzinfo) -> None:
    """Insert the booking's cells; ``SlotTaken`` (naming the time in ``tz``) if another booking holds one."""
    rows = [
        {"teacher": booking.teacher, "slot_start": c, "booking_id": booking.id}
        for c in cells(booking.start_at, booking.end_at)
    ]
    try:
        with savepoint(session):
            # NOTE: one multi-row INSERT, not executemany: psycopg runs executemany in
            # pipeline mode and logs a warning when a taken cell aborts the pipeline.
            session.execute(insert(BookingSlot).values(rows))
    except IntegrityError as exc:
        text = str(exc.orig)
        if "uq_booking_slots_teacher_start" not in text and "booking_slots.teacher" not in text:
            raise
        local = booking.start_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        raise SlotTaken(f"{booking.teacher} already has an appointment at {local}") from exc


def book(
    session: Session,
    teacher: str,
    customer_id: str,
    start: datetime,
    *,
    duration_minutes: int,
    now: datetime,
    kind: str = "training",
    session_no: int | None = None,
    tz: tzinfo | None = None,
) -> Booking:
    """Book ``teacher`` for a customer; ``SlotTaken`` leaves nothing behind when the time is taken.

    ``tz`` is the zone a ``SlotTaken`` names the time in (default: the offset ``start`` has).
    """
    if kind not in BOOKING_KINDS:
        raise BadValue(f"kind: {kind!r} is not one of {', '.join(BOOKING_KINDS)}")
    if start.tzinfo is None:
        raise BadValue(f"start: {start.isoformat()} needs a UTC offset")
    shown = tz or start.tzinfo
    staff = staff_row(session, teacher)
    if staff is None or not staff.active:
        raise Missing(f"teacher {teacher!r} does not exist or is not active")
    if session.get(Customer, customer_id) is None:
        raise Missing(f"customer {customer_id!r} does not exist")
    start = start.astimezone(UTC)
    with savepoint(session):
        booking = Booking(
            teacher=teacher,
            customer_id=customer_id,
            kind=kind,
            session_no=session_no,
            start_at=start,
            end_at=start + timedelta(minutes=duration_minutes),
            status="booked",
            sequence=0,
            created_at=now,
            updated_at=now,
        )
        session.add(booking)
        session.flush()
        _take_cells(session, booking, shown)
    return booking


def get_booking(session: Session, booking_id: int | str, customer_id: str | None = None) -> Booking:
    """A booking (locked for update), of ``customer_id`` if given; ``Missing`` otherwise."""
    try:
        key = int(booking_id)
    except (TypeError, ValueError):
        raise BadValue(f"booking_id: {booking_id!r} is not a booking number") from None
    row = session.get(Booking, key, with_for_update=True)
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        whose = f" for customer {customer_id}" if customer_id else ""
        raise Missing(f"booking {booking_id!r} does not exist{whose}")
    return row


def move(session: Session, booking: Booking, start: datetime, now: datetime, tz: tzinfo | None = None) -> Booking:
    """Move a booked appointment to ``start``, keeping its length; ``SlotTaken`` changes nothing.

    ``tz`` is the zone a ``SlotTaken`` names the time in (default: the offset ``start`` has).
    """
    if booking.status != "booked":
        raise BadValue(f"booking {booking.id} is {booking.status}; only a booked appointment can be moved")
    length = booking.end_at - booking.start_at
    old = (booking.start_at, booking.end_at)
    try:
        with savepoint(session):
            session.execute(delete(BookingSlot).where(BookingSlot.booking_id == booking.id))
            booking.start_at, booking.end_at = start.astimezone(UTC), start.astimezone(UTC) + length
            _take_cells(session, booking, tz or start.tzinfo or UTC)
    except SlotTaken:
        booking.start_at, booking.end_at = old
        raise
    booking.sequence += 1
    booking.updated_at = now
    session.flush()
    return booking


def cancel(session: Session, booking: Booking, now: datetime) -> None:
    """Cancel an appointment and free its time (cancelling twice is harmless)."""
    if booking.status == "cancelled":
        return
    session.execute(delete(BookingSlot).where(BookingSlot.booking_id == booking.id))
    booking.status = "cancelled"
    booking.sequence += 1
    booking.updated_at = now
    session.flush()


# --- "My Calendar" feed ----------------------------------------------------------------------------


def feed(session: Session, username: str, *, tz: ZoneInfo, since: datetime | None = None) -> bytes:
    """The staff member's appointments as an iCalendar (RFC 5545) feed a calendar app can subscribe to.

    Each booking is one VEVENT with a stable UID; a moved or cancelled booking keeps its UID
    and raises its SEQUENCE, so subscribed calendars update it in place.
    """
    staff = session.get(User, username)  # NOTE: the user's, so that a user without a staff row has a feed too
    if staff is None:
        raise Missing(f"staff member {username!r} does not exist")
    cal = Calendar()
    cal.add("prodid", "-//EasyEdu BPMN runner//Lịch của tôi//VI")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"Lịch của tôi - {staff.full_name}")
    cal.add("x-wr-timezone", tz.key)
    query = (
        select(Booking, Customer).join(Customer, Booking.customer_id == Customer.id).where(Booking.teacher == username)
    )
    if since is not None:
        query = query.where(Booking.end_at >= since)
    for booking, customer in session.execute(query.order_by(Booking.start_at, Booking.id)):
        cal.add_component(_event(booking, customer, tz))
    cal.add_missing_timezones()
    return cal.to_ical()


def _event(booking: Booking, customer: Customer, tz: ZoneInfo) -> Event:
    label = KIND_LABELS.get(booking.kind, booking.kind)
    if booking.session_no:
        label += f" buổi {booking.session_no}"
    event = Event()
    event.add("uid", f"booking-{booking.id}@easyedu-runner")
    event.add("dtstamp", booking.updated_at)
    event.add("created", booking.created_at)
    event.add("last-modified", booking.updated_at)
    event.add("sequence", booking.sequence)
    event.add("dtstart", booking.start_at.astimezone(tz))
    event.add("dtend", booking.end_at.astimezone(tz))
    event.add("summary", f"{label} - {customer.name}")
    event.add("status", "CANCELLED" if booking.status == "cancelled" else "CONFIRMED")
    event.add("location", meeting_link(customer.name))
    event.add(
        "description",
        "\n".join(
            [
                f"Khách hàng: {customer.name} ({customer.id})",
                f"Điện thoại: {customer.phone or '-'}",
                f"Phòng học trực tuyến: {meeting_link(customer.name)}",
            ]
        ),
    )
    return event
