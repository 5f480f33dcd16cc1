"""booking.* handlers: find a teacher's free slots, book sessions, hold an appointment, reschedule, cancel.

Times in results are ISO 8601 in the business zone ("2026-11-25T09:00:00+07:00"). Two
bookings of the same teacher can never overlap: the database refuses the second one
(``runner.crm.bookings``); a requested start taken meanwhile is replaced by the teacher's
next free slot on another day.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from runner.crm import bookings as calendar
from runner.crm import customers as crm
from runner.crm import schedule
from runner.crm.models import BOOKING_KINDS, Booking, SlotTaken
from runner.errors import BadValue, Missing, Retry
from runner.registry import HandlerContext, Registry

MAX_TRIES = 10  # taken slots replaced in one booking step before it gives up for now
LEAD_MINUTES = 60  # default notice before a session found for the customer (param lead_minutes)


def _iso(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).isoformat()


def _day(moment: datetime, tz: tzinfo) -> date:
    return moment.astimezone(tz).date()


def _int(params: dict[str, Any], name: str, default: int, minimum: int = 1) -> int:
    value = crm.coerce(name, "integer", params.get(name, default))
    if value is None or value < minimum:
        raise BadValue(f"{name}: a whole number of at least {minimum} is required, got {params.get(name)!r}")
    return value


def _kind(params: dict[str, Any], default: str = "training") -> str:
    kind = params.get("kind") or default
    if kind not in BOOKING_KINDS:
        raise BadValue(f"kind: {kind!r} is not one of {', '.join(BOOKING_KINDS)}")
    return kind


def _moment(name: str, value: Any, tz: tzinfo) -> datetime:
    """An ISO date-time; without an offset it means business time (``tz``)."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise BadValue(f"{name}: {value!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _starts(value: Any, tz: tzinfo) -> list[datetime]:
    items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise BadValue(f"starts: expected a list of ISO date-times, got {value!r}")
    return sorted(_moment("starts", item, tz) for item in items)


def _closed(ctx: HandlerContext) -> Callable[[date], bool] | None:
    """The business calendar's holidays and company days off, on which nothing is booked or proposed."""
    return ctx.calendar().is_holiday if ctx.calendar is not None else None


def _booked_days(ctx: HandlerContext, customer_id: str, kind: str) -> set[date]:
    """Days that already have one of the customer's coming appointments of this kind."""
    return {_day(start, ctx.tz) for start in schedule.coming_starts(ctx.session, customer_id, kind, ctx.now)}


def _search(params: dict[str, Any], ctx: HandlerContext, teacher: str | None):
    kind = _kind(params)
    return calendar.find_slots(
        ctx.session,
        ctx.now,
        sessions=_int(params, "sessions", 2),
        duration_minutes=_int(params, "duration_minutes", 90),
        window_days=_int(params, "window_days", 14),
        prefer_days=_int(params, "prefer_days", 4, minimum=0),
        teacher=teacher,
        role=calendar.KIND_ROLES[kind],
        lead_minutes=_int(params, "lead_minutes", LEAD_MINUTES, minimum=0),
        skip_days=_booked_days(ctx, ctx.business_key, kind),
        tz=ctx.tz,
        closed=_closed(ctx),
    )


def find_slots(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Propose ``sessions`` free starts on different days with one teacher (or ``teacher``)."""
    crm.get_customer(ctx.session, ctx.business_key)
    staff, starts = _search(params, ctx, params.get("teacher") or None)
    slots = [_iso(s, ctx.tz) for s in starts]
    return {"teacher": staff.username, "teacher_name": staff.full_name, "proposed_slots": slots}


def book_sessions(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Book the sessions at ``starts`` (or at the first free slots found) with one teacher.

    A start taken since it was proposed (or already past when the step runs) is replaced by
    the teacher's next free slot on a day that has none of this customer's other sessions.
    """
    customer = crm.get_customer(ctx.session, ctx.business_key)
    teacher = params.get("teacher") or None
    kind, duration = _kind(params), _int(params, "duration_minutes", 90)
    if params.get("starts"):
        if not teacher:
            raise BadValue("teacher: required when starts are given")
        staff, starts = crm.get_staff(ctx.session, teacher), _starts(params["starts"], ctx.tz)
    else:
        staff, starts = _search(params, ctx, teacher)
    tz = ctx.tz
    until = max(
        datetime.combine(_day(ctx.now, tz) + timedelta(days=_int(params, "window_days", 14)), time(), tz),
        datetime.combine(_day(starts[-1], tz) + timedelta(days=1), time(), tz),
    )
    first_no = _int(params, "first_session_no", 1)
    earlier = _booked_days(ctx, customer.id, kind)
    booked: list[Booking] = []
    for index, start in enumerate(starts):
        others = earlier | {_day(b.start_at, tz) for b in booked} | {_day(s, tz) for s in starts[index + 1 :]}
        booked.append(
            _book_or_next(
                ctx,
                staff.username,
                customer.id,
                start,
                until,
                others,
                duration=duration,
                kind=kind,
                session_no=first_no + index,
            )
        )
    booked.sort(key=lambda b: b.start_at)
    for number, row in enumerate(booked, first_no):
        row.session_no = number  # a replaced start may have moved past a later one
    return {
        "teacher": staff.username,
        "teacher_name": staff.full_name,
        "bookings": [
            {"id": b.id, "start": _iso(b.start_at, tz), "end": _iso(b.end_at, tz), "session_no": b.session_no}
            for b in booked
        ],
        "session_starts": [_iso(b.start_at, tz) for b in booked],
        "next_session_at": _iso(booked[0].start_at, tz),
    }


def _book_or_next(
    ctx: HandlerContext,
    teacher: str,
    customer_id: str,
    start: datetime,
    until: datetime,
    skip_days: set[date],
    **booking: Any,
) -> Booking:
    """Book at ``start``; when it is taken or already past, at the teacher's next free start on another day."""
    duration = timedelta(minutes=booking["duration"])
    for _ in range(MAX_TRIES):
        if start >= ctx.now:
            try:
                return calendar.book(
                    ctx.session,
                    teacher,
                    customer_id,
                    start,
                    now=ctx.now,
                    duration_minutes=booking["duration"],
                    kind=booking["kind"],
                    session_no=booking["session_no"],
                    tz=ctx.tz,
                )
            except SlotTaken:
                pass
        # NOTE: a failed INSERT waited for the other booking to commit, so this look-up sees
        # it; the slot found can still be taken before our INSERT: hence the loop.
        not_before = max(start, ctx.now + timedelta(minutes=LEAD_MINUTES))
        free = calendar.free_starts(
            ctx.session,
            teacher,
            not_before=not_before,
            until=until,
            duration=duration,
            count=1,
            tz=ctx.tz,
            skip_days=skip_days,
            closed=_closed(ctx),
        )
        if not free:
            raise Missing(
                f"starts: {_iso(start, ctx.tz)} is taken or past and {teacher} has no free slot after it "
                f"before {_iso(until, ctx.tz)}"
            )
        start = free[0]
    raise Retry(f"starts: {teacher}'s free slots were taken {MAX_TRIES} times in a row; trying again later")


def appointment(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Put the customer's appointment of ``kind`` (default demo) with ``staff`` at ``start`` in their calendar.

    Run again after the customer moved it, it moves the same booking, so calendar apps keep
    one event at the new time. The time was agreed with the customer, so it is kept as it
    is: when the staff member already has another appointment then, nothing is booked, the
    customer gets a note saying so, and the procedure goes on.
    """
    customer = crm.get_customer(ctx.session, ctx.business_key)
    staff = crm.get_staff(ctx.session, str(params.get("staff") or ""))
    kind = _kind(params, default="demo")
    start = _moment("start", params.get("start"), ctx.tz)
    minutes = _int(params, "duration_minutes", 60)
    current = schedule.current_appointment(ctx.session, customer.id, kind, ctx.now)
    try:
        if (
            current is not None
            and current.teacher == staff.username
            and current.end_at - current.start_at == timedelta(minutes=minutes)
        ):
            moved = current.start_at != start
            booking = calendar.move(ctx.session, current, start, ctx.now, ctx.tz) if moved else current
        else:
            if current is not None:
                calendar.cancel(ctx.session, current, ctx.now)
            booking = calendar.book(
                ctx.session,
                staff.username,
                customer.id,
                start,
                now=ctx.now,
                kind=kind,
                duration_minutes=minutes,
                tz=ctx.tz,
            )
    except SlotTaken:
        if current is not None:
            calendar.cancel(ctx.session, current, ctx.now)  # its time is no longer the appointment's
        local = start.astimezone(ctx.tz).strftime("%d/%m/%Y %H:%M")
        crm.add_note(
            ctx.session,
            customer.id,
            f"Lịch hẹn {kind} lúc {local} chưa được ghi vào lịch của {staff.full_name}: trùng với một lịch hẹn khác.",
            now=ctx.now,
            instance_id=ctx.instance_id,
        )
        return {f"{kind}_booking_id": None}
    return {f"{kind}_booking_id": booking.id}


def reschedule(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Move one of the customer's bookings to ``start`` (or the next free slot after it).

    A start already past when the step runs is treated like a taken one: the form that asks
    for it cannot say "not before now", so the step must not refuse what the form accepted.
    """
    booking = calendar.get_booking(ctx.session, params.get("booking_id"), ctx.business_key)
    start = _moment("start", params.get("start"), ctx.tz)
    if start >= ctx.now:
        try:
            calendar.move(ctx.session, booking, start, ctx.now, ctx.tz)
            return _placed(booking, ctx.tz)
        except SlotTaken:
            pass
    siblings = schedule.sibling_starts(ctx.session, booking)
    not_before = max(start, ctx.now + timedelta(minutes=LEAD_MINUTES))
    free = calendar.free_starts(
        ctx.session,
        booking.teacher,
        not_before=not_before,
        until=not_before + timedelta(days=14),
        duration=booking.end_at - booking.start_at,
        count=1,
        tz=ctx.tz,
        skip_days={_day(at, ctx.tz) for at in siblings},
        closed=_closed(ctx),
    )
    if not free:
        raise Missing(
            f"start: {_iso(start, ctx.tz)} is taken or past and {booking.teacher} has no free slot "
            f"in the 14 days after {_iso(not_before, ctx.tz)}"
        )
    calendar.move(ctx.session, booking, free[0], ctx.now, ctx.tz)
    return _placed(booking, ctx.tz)


def _placed(booking: Booking, tz: tzinfo) -> dict[str, Any]:
    return {"booking_id": booking.id, "start": _iso(booking.start_at, tz), "end": _iso(booking.end_at, tz)}


def cancel(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Cancel one of the customer's bookings and free the teacher's time."""
    booking = calendar.get_booking(ctx.session, params.get("booking_id"), ctx.business_key)
    calendar.cancel(ctx.session, booking, ctx.now)
    return {"cancelled": True}


def register(registry: Registry) -> None:
    """Add this module's topics to ``registry``."""
    registry.add("booking.find_slots", find_slots)
    registry.add("booking.book_sessions", book_sessions)
    registry.add("booking.appointment", appointment)
    registry.add("booking.reschedule", reschedule)
    registry.add("booking.cancel", cancel)
