"""Calendars and booking.*: free slots, the double-booking constraint (also under concurrency), the feed."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import icalendar
import pytest
from conftest import BPMN, make_runner
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from handlers import booking as booking_handlers
from runner.crm import bookings as calendar
from runner.crm import customers as crm
from runner.crm.models import Booking, BookingSlot, SlotTaken
from runner.errors import BadValue, Conflict, Missing
from runner.model import worktime
from runner.queries import tasklists as inbox
from runner.registry import HandlerContext, Registry
from runner.service import jobs
from runner.service.runtime import Runner

DOMAIN = BPMN / "domain"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MONDAY = datetime(2026, 11, 30, 7, 0, tzinfo=TZ)  # a Monday, 07:00 business time
MORNINGS = [(day, "08:00", "11:30") for day in range(5)]  # Monday to Friday


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time ``day`` days after MONDAY, in business time."""
    return datetime.combine(MONDAY.date() + timedelta(days=day), time(hour, minute), TZ)


def staff_and_customers(runner: Runner, teachers: dict[str, list] | None = None) -> None:
    """Lists, teachers with their weekly windows, a care person and three customers."""
    teachers = {"minh": MORNINGS} if teachers is None else teachers
    with runner.db.unit() as s:
        crm.seed_lists(s)
        for username, windows in teachers.items():
            crm.add_staff(s, username, f"Giáo viên {username.title()}", ["teacher"])
            crm.set_availability(s, username, windows)
        crm.add_staff(s, "ha", "Lê Thu Hà", ["customer_care"])
        for n, name in enumerate(("Trung tâm Anh ngữ Sao Mai", "Trung tâm Toán Tư Duy", "Trường Hoa Sen"), 1):
            crm.add_customer(s, f"KH000{n}", name, phone=f"091234567{n}", now=MONDAY)


def book(runner: Runner, teacher: str, customer_id: str, start: datetime, minutes: int = 90, **kw: Any) -> int:
    with runner.db.unit() as s:
        return calendar.book(s, teacher, customer_id, start, duration_minutes=minutes, now=MONDAY, **kw).id


def find(runner: Runner, now: datetime = MONDAY, **kw: Any) -> tuple[str, list[datetime]]:
    with runner.db.read() as s:
        staff, starts = calendar.find_slots(s, now, tz=TZ, **kw)
        return staff.username, [x.astimezone(TZ) for x in starts]


def counts(runner: Runner) -> tuple[int, int]:
    with runner.db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Booking).where(Booking.status == "booked")),
            s.scalar(select(func.count()).select_from(BookingSlot)),
        )


def to_monday(runner: Runner) -> None:
    """Move the virtual clock forward to the next Monday 07:00 business time."""
    local = runner.now().astimezone(TZ)
    days = (7 - local.weekday()) % 7 or 7
    runner.advance_clock(datetime.combine(local.date() + timedelta(days=days), time(7), TZ) - runner.now())


@contextmanager
def context(runner: Runner, customer_id: str = "KH0001") -> Iterator[HandlerContext]:
    with runner.db.unit() as s:
        yield HandlerContext(
            instance_id="i-1",
            business_key=customer_id,
            idempotency_key="i-1/j-1",
            element_id="step",
            topic="booking.test",
            attempt=1,
            now=runner.now(),
            session=s,
            tz=runner.settings.tz,
        )


# --- the grid and availability --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "n"),
    [
        ((9, 0), (10, 30), 3),
        ((9, 15), (10, 45), 4),
        ((9, 0), (9, 30), 1),
        ((9, 29), (9, 31), 2),
    ],
)
def test_cells_cover_every_half_hour_an_appointment_touches(start, end, n: int) -> None:
    got = calendar.cells(at(0, *start), at(0, *end))
    assert len(got) == n and got[0] <= at(0, *start) and got[-1] + calendar.SLOT >= at(0, *end)
    assert all(c.minute in (0, 30) and c.second == 0 for c in got)


def test_set_availability_replaces_the_week_and_checks_windows(runner: Runner) -> None:
    staff_and_customers(runner)
    with runner.db.unit() as s:
        crm.set_availability(s, "minh", [(5, "14:00", "17:00"), (0, time(8), time(10))])
        assert calendar.availability(s, "minh") == [
            {"weekday": 0, "start": "08:00", "end": "10:00"},
            {"weekday": 5, "start": "14:00", "end": "17:00"},
        ]
        with pytest.raises(BadValue, match=r"\(7, "):
            crm.set_availability(s, "minh", [(7, "08:00", "10:00")])
        with pytest.raises(BadValue, match="start < end"):
            crm.set_availability(s, "minh", [(1, "10:00", "08:00")])
        with pytest.raises(BadValue, match="'8h'"):
            crm.set_availability(s, "minh", [(1, "8h", "10:00")])
        with pytest.raises(Missing, match="'nobody'"):
            crm.set_availability(s, "nobody", [])


# --- finding slots ----------------------------------------------------------------------------------


def test_sessions_are_on_different_days_after_the_lead_time_and_around_bookings(runner: Runner) -> None:
    staff_and_customers(runner)
    assert find(runner) == ("minh", [at(0, 8), at(1, 8)])
    assert find(runner, MONDAY + timedelta(minutes=30), sessions=3) == ("minh", [at(0, 8, 30), at(1, 8), at(2, 8)])
    book(runner, "minh", "KH0002", at(0, 8, 30))  # 08:30-10:00 taken: 10:00 fits (ends 11:30)
    assert find(runner) == ("minh", [at(0, 10), at(1, 8)])
    book(runner, "minh", "KH0003", at(0, 10, 15), minutes=30)  # touches 10:00-11:00
    assert find(runner, duration_minutes=60) == ("minh", [at(1, 8), at(2, 8)])
    # Friday afternoon: the weekend has no windows, Monday comes next
    assert find(runner, at(4, 13)) == ("minh", [at(7, 8), at(8, 8)])


def test_the_teacher_who_fits_the_first_days_wins_then_the_least_booked(runner: Runner) -> None:
    staff_and_customers(
        runner,
        {
            "an": MORNINGS,
            "binh": MORNINGS,
            "chau": [(0, "08:00", "17:00"), (4, "08:00", "17:00")],  # Monday and Friday only
        },
    )
    assert find(runner) == ("an", [at(0, 8), at(1, 8)])  # a tie: by username
    book(runner, "an", "KH0001", at(3, 8))
    assert find(runner) == ("binh", [at(0, 8), at(1, 8)])  # fewer bookings in the window
    book(runner, "binh", "KH0002", at(3, 8))
    book(runner, "binh", "KH0003", at(3, 10))
    assert find(runner) == ("an", [at(0, 8), at(1, 8)])
    # nobody fits 2 sessions into 1 day: the earliest finish wins (an and binh tie, chau ends Friday)
    assert find(runner, prefer_days=1) == ("an", [at(0, 8), at(1, 8)])
    assert find(runner, teacher="chau") == ("chau", [at(0, 8), at(4, 8)])
    # 4 hours fit only chau's long days, although Friday is past the first 4 days
    assert find(runner, duration_minutes=240) == ("chau", [at(0, 8), at(4, 8)])


def test_no_teacher_with_enough_free_days_is_missing(runner: Runner) -> None:
    staff_and_customers(runner, {"chau": [(4, "08:00", "10:00")]})
    with pytest.raises(Missing, match="no active staff member with role 'teacher' has 3 free slot"):
        find(runner, sessions=3)
    with pytest.raises(Missing, match="teacher: 'chau' does not have 2 free slot"):
        find(runner, teacher="chau", window_days=7)
    assert find(runner, teacher="chau", window_days=12) == ("chau", [at(4, 8), at(11, 8)])
    with pytest.raises(Missing, match="role 'customer_care' has 2 free slot"):  # ha has no windows
        find(runner, role="customer_care")


def test_holidays_and_days_off_are_left_out_without_using_up_the_window(runner: Runner) -> None:
    """Tết 2027 (the ``holidays`` package's dates) and a company day off: no slot on them, and a window of
    5 days still finds its days after them (a closed day stretches the window by one)."""
    staff_and_customers(runner)
    tet = sorted(d for d, name in holidays.country_holidays("VN", years=2027).items() if "Lunar New Year" in name)
    assert (tet[0], tet[-1]) == (date(2027, 2, 4), date(2027, 2, 10))  # Thursday to Wednesday
    calendar_2027 = worktime.default_calendar(TZ)
    eve = datetime(2027, 2, 3, 7, 0, tzinfo=TZ)  # Wednesday, the last working day before Tết
    # without the calendar: Tết's Thursday and Friday are offered
    assert find(runner, eve, window_days=5) == ("minh", [datetime(2027, 2, d, 8, 0, tzinfo=TZ) for d in (3, 4)])
    # with it: Wednesday, then Thursday 11 February, the first working day after Tết
    found = find(runner, eve, window_days=5, closed=calendar_2027.is_holiday)
    assert found == ("minh", [datetime(2027, 2, 3, 8, 0, tzinfo=TZ), datetime(2027, 2, 11, 8, 0, tzinfo=TZ)])
    # an admin's day off (Tuesday of the first week) is left out the same way
    day_off = dataclasses.replace(calendar_2027, days_off=frozenset({at(1, 0).date()}))
    assert find(runner, closed=day_off.is_holiday) == ("minh", [at(0, 8), at(2, 8)])


# --- the double-booking constraint ---------------------------------------------------------------


def test_an_overlapping_booking_is_refused_and_leaves_nothing(any_runner: Runner) -> None:
    staff_and_customers(any_runner, {"minh": MORNINGS, "lan": MORNINGS})
    first = book(any_runner, "minh", "KH0001", at(0, 9))
    with pytest.raises(SlotTaken, match="minh already has an appointment at 2026-11-30 10:00"):
        book(any_runner, "minh", "KH0002", at(0, 10))
    assert counts(any_runner) == (1, 3)
    book(any_runner, "lan", "KH0002", at(0, 9))  # another teacher, same time
    book(any_runner, "minh", "KH0002", at(0, 10, 30))  # right after: no overlap
    assert counts(any_runner) == (3, 9)
    # the database itself refuses a second row for the same teacher and cell, whoever writes it
    with pytest.raises((IntegrityError, Conflict)), any_runner.db.unit() as s:
        s.execute(insert(BookingSlot).values(teacher="minh", slot_start=at(0, 9).astimezone(UTC), booking_id=first))
    with any_runner.db.unit() as s:
        calendar.cancel(s, calendar.get_booking(s, first), MONDAY)
        calendar.cancel(s, calendar.get_booking(s, first), MONDAY)  # harmless twice
    book(any_runner, "minh", "KH0003", at(0, 9), minutes=60)  # the freed time can be booked again
    assert counts(any_runner) == (3, 8)


def test_two_concurrent_bookings_of_one_slot_on_postgresql_exactly_one_wins(pg_url: str, registry: Registry) -> None:
    """Two connections both see 09:00 free, then both book it: the constraint lets one through."""
    runners = [make_runner(pg_url, registry) for _ in range(2)]
    staff_and_customers(runners[0])
    both_checked = threading.Barrier(2, timeout=20)
    outcome: dict[str, Any] = {}

    def attempt(runner: Runner, customer_id: str) -> None:
        try:
            with runner.db.unit() as s:
                free = calendar.free_starts(
                    s, "minh", not_before=at(0, 9), until=at(1, 0), count=1, duration=timedelta(minutes=90), tz=TZ
                )
                outcome[f"{customer_id} saw"] = free
                both_checked.wait()
                outcome[customer_id] = calendar.book(
                    s, "minh", customer_id, at(0, 9), duration_minutes=90, now=MONDAY
                ).id
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            outcome[customer_id] = exc

    threads = [
        threading.Thread(target=attempt, args=(r, c)) for r, c in zip(runners, ("KH0001", "KH0002"), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for r in runners:
        r.db.engine.dispose()
    runner = make_runner(pg_url, registry)
    try:
        assert outcome["KH0001 saw"] == outcome["KH0002 saw"] == [at(0, 9)]
        results = [outcome["KH0001"], outcome["KH0002"]]
        winners = [r for r in results if isinstance(r, int)]
        losers = [r for r in results if not isinstance(r, int)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert isinstance(losers[0], SlotTaken)
        assert counts(runner) == (1, 3)
        with runner.db.read() as s:
            assert s.get(Booking, winners[0]).start_at == at(0, 9)
    finally:
        runner.db.engine.dispose()


# --- booking.* through the runner --------------------------------------------------------------------


def test_a_proposed_slot_taken_meanwhile_is_replaced_by_the_next_free_one(any_runner: Runner) -> None:
    to_monday(any_runner)
    staff_and_customers(any_runner)
    any_runner.deploy(DOMAIN / "booking.bpmn")
    instance = any_runner.start_instance("domain_booking", "KH0001")
    any_runner.run_due()
    monday = any_runner.now().astimezone(TZ).date()

    def local(day: int, hour: int, minute: int = 0) -> str:
        return datetime.combine(monday + timedelta(days=day), time(hour, minute), TZ).isoformat()

    data = inbox.instance(any_runner, instance)["data"]
    assert (data["teacher"], data["teacher_name"]) == ("minh", "Giáo viên Minh")
    assert data["proposed_slots"] == [local(0, 8), local(1, 8)]
    # while customer care is on the phone, another customer gets Monday 08:00-09:30
    with any_runner.db.unit() as s:
        calendar.book(
            s, "minh", "KH0002", datetime.fromisoformat(local(0, 8)), duration_minutes=90, now=any_runner.now()
        )
    [call] = inbox.tasks(any_runner, business_key="KH0001")
    any_runner.complete_task(call["id"], {})
    any_runner.run_due()

    data = inbox.instance(any_runner, instance)["data"]
    assert data["session_starts"] == [local(0, 9, 30), local(1, 8)]
    assert data["next_session_at"] == local(0, 9, 30)
    assert [(b["start"], b["end"], b["session_no"]) for b in data["bookings"]] == [
        (local(0, 9, 30), local(0, 11), 1),
        (local(1, 8), local(1, 9, 30), 2),
    ]
    with any_runner.db.read() as s:
        assert crm.customer_view(s, "KH0001")["teacher_name"] == "Giáo viên Minh"
        rows = s.scalars(select(Booking).where(Booking.customer_id == "KH0001").order_by(Booking.start_at)).all()
        assert [(r.id, r.kind, r.teacher) for r in rows] == [(b["id"], "training", "minh") for b in data["bookings"]]
    assert counts(any_runner) == (3, 9)


def test_a_replacement_skips_days_that_already_have_a_session(runner: Runner) -> None:
    to_monday(runner)
    staff_and_customers(runner)
    monday = runner.now().astimezone(TZ).date()
    day = lambda n, h: datetime.combine(monday + timedelta(days=n), time(h), TZ)  # noqa: E731
    book(runner, "minh", "KH0002", day(1, 8))  # Tuesday 08:00 taken
    with context(runner) as ctx:
        got = booking_handlers.book_sessions(
            {"teacher": "minh", "starts": [day(2, 8).isoformat(), day(1, 8).isoformat()], "first_session_no": 2}, ctx
        )
    # Tuesday 09:30 is still free, and Tuesday has none of the customer's other sessions
    assert got["session_starts"] == [day(1, 8).replace(hour=9, minute=30).isoformat(), day(2, 8).isoformat()]
    assert [b["session_no"] for b in got["bookings"]] == [2, 3]
    with context(runner) as ctx:
        booked = booking_handlers.book_sessions(
            {"teacher": "minh", "starts": day(3, 8).isoformat(), "duration_minutes": 210, "sessions": 1}, ctx
        )
    with context(runner, "KH0003") as ctx:
        # Thursday morning is full: the only next free morning that is not Friday (session 2's day) is Monday
        got = booking_handlers.book_sessions(
            {"teacher": "minh", "starts": [day(3, 8).isoformat(), day(4, 8).isoformat()]}, ctx
        )
    assert booked["session_starts"] == [day(3, 8).isoformat()]
    assert got["session_starts"] == [day(4, 8).isoformat(), day(7, 8).isoformat()]
    assert [b["session_no"] for b in got["bookings"]] == [1, 2]  # numbered in time order
    assert got["next_session_at"] == day(4, 8).isoformat()


def test_book_sessions_without_starts_finds_them_and_refuses_bad_input(runner: Runner) -> None:
    to_monday(runner)
    staff_and_customers(runner)
    with context(runner) as ctx:
        got = booking_handlers.book_sessions({"sessions": 3, "duration_minutes": "60"}, ctx)
    monday = runner.now().astimezone(TZ).date()
    assert got["session_starts"] == [
        datetime.combine(monday + timedelta(days=n), time(8), TZ).isoformat() for n in range(3)
    ]
    assert [b["session_no"] for b in got["bookings"]] == [1, 2, 3]
    with context(runner) as ctx:  # a third... fourth session: not on a day that has one already
        more = booking_handlers.book_sessions({"teacher": "minh", "sessions": 1, "first_session_no": 4}, ctx)
    assert more["session_starts"] == [datetime.combine(monday + timedelta(days=3), time(8), TZ).isoformat()]
    assert more["bookings"][0]["session_no"] == 4
    runner.advance_clock(timedelta(hours=2))  # 09:00 on Monday: a start proposed for 08:00 has passed
    with context(runner, "KH0002") as ctx:
        late = booking_handlers.book_sessions(
            {
                "teacher": "minh",
                "starts": [
                    datetime.combine(monday, time(8), TZ).isoformat(),
                    datetime.combine(monday + timedelta(days=4), time(8), TZ).isoformat(),
                ],
            },
            ctx,
        )
    # the next free start at least an hour ahead (10:00, after KH0001's 08:00-09:00) on a day without a session
    assert late["session_starts"] == [
        datetime.combine(monday, time(10), TZ).isoformat(),
        datetime.combine(monday + timedelta(days=4), time(8), TZ).isoformat(),
    ]
    for params, message in (
        ({"starts": ["2030-01-01T08:00:00+07:00"]}, "teacher: required"),
        ({"teacher": "minh", "starts": ["thứ hai"]}, "starts: 'thứ hai' is not an ISO 8601"),
        ({"teacher": "minh", "kind": "party"}, "kind: 'party'"),
        ({"teacher": "minh", "sessions": 0}, "^sessions:"),
    ):
        with context(runner) as ctx, pytest.raises(BadValue, match=message):
            booking_handlers.book_sessions(params, ctx)


def test_reschedule_moves_to_the_asked_time_or_the_next_free_one_and_cancel_frees_it(runner: Runner) -> None:
    to_monday(runner)
    staff_and_customers(runner)
    monday = runner.now().astimezone(TZ).date()
    day = lambda n, h, m=0: datetime.combine(monday + timedelta(days=n), time(h, m), TZ)  # noqa: E731
    with context(runner) as ctx:
        first, second = booking_handlers.book_sessions({"teacher": "minh"}, ctx)["bookings"]
    other = book(runner, "minh", "KH0002", day(2, 8))
    with context(runner) as ctx:
        assert booking_handlers.reschedule({"booking_id": first["id"], "start": day(3, 10).isoformat()}, ctx) == {
            "booking_id": first["id"],
            "start": day(3, 10).isoformat(),
            "end": day(3, 11, 30).isoformat(),
        }
        # Wednesday 08:00 is KH0002's; 09:30 is next free that day
        moved = booking_handlers.reschedule(
            {"booking_id": str(second["id"]), "start": day(2, 8).replace(tzinfo=None).isoformat()}, ctx
        )
        assert moved["start"] == day(2, 9, 30).isoformat()
        with pytest.raises(Missing, match=f"booking {other!r} does not exist for customer KH0001"):
            booking_handlers.cancel({"booking_id": other}, ctx)
        with pytest.raises(BadValue, match="booking_id: 'abc'"):
            booking_handlers.cancel({"booking_id": "abc"}, ctx)
        assert booking_handlers.cancel({"booking_id": first["id"]}, ctx) == {"cancelled": True}
        with pytest.raises(BadValue, match="is cancelled"):
            booking_handlers.reschedule({"booking_id": first["id"], "start": day(4, 8).isoformat()}, ctx)
    assert counts(runner) == (2, 6)
    with runner.db.read() as s:
        assert s.get(Booking, second["id"]).sequence == 1


def test_an_appointment_is_booked_moved_with_the_customer_and_a_clash_leaves_a_note(runner: Runner) -> None:
    to_monday(runner)
    staff_and_customers(runner)
    monday = runner.now().astimezone(TZ).date()
    day = lambda n, h, m=0: datetime.combine(monday + timedelta(days=n), time(h, m), TZ)  # noqa: E731

    def appointment(**params: Any) -> dict[str, Any]:
        with context(runner) as ctx:
            return booking_handlers.appointment({"staff": "minh", **params}, ctx)

    def demo(booking_id: int) -> tuple:
        with runner.db.read() as s:
            b = s.get(Booking, booking_id)
            return b.start_at.astimezone(TZ), b.end_at.astimezone(TZ), b.status, b.sequence

    booked = appointment(start=day(1, 10).replace(tzinfo=None).isoformat())  # business time when naive
    booking_id = booked["demo_booking_id"]
    assert demo(booking_id) == (day(1, 10), day(1, 11), "booked", 0)
    assert appointment(start=day(1, 10).isoformat()) == booked and demo(booking_id)[3] == 0  # again: unchanged
    assert appointment(start=day(2, 14).isoformat()) == booked  # the customer moved it: the same event moves
    assert demo(booking_id) == (day(2, 14), day(2, 15), "booked", 1)

    other = book(runner, "minh", "KH0002", day(3, 9), minutes=90)
    assert appointment(start=day(3, 10).isoformat()) == {"demo_booking_id": None}
    assert demo(booking_id)[2] == "cancelled"  # its time is no longer the appointment's
    with runner.db.read() as s:
        assert s.get(Booking, other).status == "booked"
        [note] = crm.customer_view(s, "KH0001")["notes"]
    assert f"lúc {day(3, 10):%d/%m/%Y %H:%M} chưa được ghi vào lịch của Giáo viên Minh" in note["text"]
    assert counts(runner) == (1, 3)

    with pytest.raises(Missing, match="'nobody'"):
        appointment(staff="nobody", start=day(4, 10).isoformat())
    with pytest.raises(BadValue, match="^start: 'soon'"):
        appointment(start="soon")
    with pytest.raises(BadValue, match="^kind: 'party'"):
        appointment(start=day(4, 10).isoformat(), kind="party")


def test_concurrent_book_sessions_jobs_on_postgresql_never_overlap(pg_url: str, registry: Registry) -> None:
    """Two workers book the same proposed slots for two customers at once: the second gets the next free ones."""
    both_started = threading.Barrier(2, timeout=20)

    def book_together(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
        both_started.wait()
        return booking_handlers.book_sessions(params, ctx)

    registry.add("test.book_together", book_together)
    main = make_runner(pg_url, registry)
    to_monday(main)
    workers = [main, make_runner(pg_url, registry)]  # the second reads the persisted virtual clock
    staff_and_customers(main)
    xml = (DOMAIN / "booking.bpmn").read_bytes().replace(b'"booking.book_sessions"', b'"test.book_together"')
    main.deploy({"booking_race.bpmn": xml})
    ids = [main.start_instance("domain_booking", key) for key in ("KH0001", "KH0002")]
    main.run_due()
    for task in inbox.tasks(main, groups=["customer_care"]):
        main.complete_task(task["id"], {})
    threads = [threading.Thread(target=jobs.run_next, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    try:
        results = [inbox.instance(main, i)["data"] for i in ids]
        assert all("session_starts" in d for d in results), [inbox.incidents(main), results]
        monday = main.now().astimezone(TZ).date()

        def slots(*pairs: tuple[int, int, int]) -> list[str]:
            return [datetime.combine(monday + timedelta(days=d), time(h, m), TZ).isoformat() for d, h, m in pairs]

        assert sorted(d["session_starts"] for d in results) == [
            slots((0, 8, 0), (1, 8, 0)),
            slots((0, 9, 30), (1, 9, 30)),
        ]
        assert counts(main) == (4, 12)
    finally:
        for w in workers:
            w.db.engine.dispose()


# --- My Calendar --------------------------------------------------------------------------------------


def test_the_feed_lists_a_staff_members_bookings_with_stable_uids_in_business_time(any_runner: Runner) -> None:
    staff_and_customers(any_runner, {"minh": MORNINGS, "lan": MORNINGS})
    first = book(any_runner, "minh", "KH0001", at(0, 8), session_no=1)
    second = book(any_runner, "minh", "KH0001", at(1, 8), session_no=2)
    book(any_runner, "lan", "KH0002", at(0, 8))
    care = book(any_runner, "minh", "KH0003", at(2, 10), minutes=30, kind="care")

    def events() -> dict[str, Any]:
        with any_runner.db.read() as s:
            cal = icalendar.Calendar.from_ical(calendar.feed(s, "minh", tz=TZ))
        assert str(cal["X-WR-CALNAME"]) == "Lịch của tôi - Giáo viên Minh"
        assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Asia/Ho_Chi_Minh"]
        return {str(e["UID"]): e for e in cal.walk("VEVENT")}

    got = events()
    assert list(got) == [f"booking-{n}@easyedu-runner" for n in (first, second, care)]
    one = got[f"booking-{first}@easyedu-runner"]
    assert one.decoded("DTSTART") == at(0, 8) and str(one.decoded("DTSTART").tzinfo) == "Asia/Ho_Chi_Minh"
    assert one.decoded("DTEND") == at(0, 9, 30)
    assert str(one["SUMMARY"]) == "Đào tạo buổi 1 - Trung tâm Anh ngữ Sao Mai"
    assert str(one["LOCATION"]) == "https://online.emso.vn/Trung%20t%C3%A2m%20Anh%20ng%E1%BB%AF%20Sao%20Mai"
    assert (str(one["STATUS"]), int(one["SEQUENCE"])) == ("CONFIRMED", 0)
    assert str(got[f"booking-{care}@easyedu-runner"]["SUMMARY"]) == "Chăm sóc - Trường Hoa Sen"
    assert b"DTSTART;TZID=Asia/Ho_Chi_Minh:20261130T080000" in _feed_bytes(any_runner)

    with any_runner.db.unit() as s:
        calendar.move(s, calendar.get_booking(s, second), at(3, 9), MONDAY + timedelta(hours=1))
        calendar.cancel(s, calendar.get_booking(s, care), MONDAY + timedelta(hours=2))
    got = events()
    moved, cancelled = got[f"booking-{second}@easyedu-runner"], got[f"booking-{care}@easyedu-runner"]
    assert (moved.decoded("DTSTART"), int(moved["SEQUENCE"])) == (at(3, 9), 1)
    assert moved.decoded("DTSTAMP") == MONDAY + timedelta(hours=1)
    assert (str(cancelled["STATUS"]), int(cancelled["SEQUENCE"])) == ("CANCELLED", 1)
    with any_runner.db.read() as s:
        since = calendar.feed(s, "minh", since=at(1, 0), tz=TZ)
        assert since.count(b"BEGIN:VEVENT") == 2
        with pytest.raises(Missing, match="'nobody'"):
            calendar.feed(s, "nobody", tz=TZ)


def _feed_bytes(runner: Runner) -> bytes:
    with runner.db.read() as s:
        return calendar.feed(s, "minh", tz=TZ)


def test_feed_of_someone_without_bookings_is_a_valid_empty_calendar(runner: Runner) -> None:
    staff_and_customers(runner)
    with runner.db.read() as s:
        cal = icalendar.Calendar.from_ical(calendar.feed(s, "ha", tz=TZ))
    assert (cal.walk("VEVENT"), str(cal["VERSION"])) == ([], "2.0")


def test_a_start_already_past_is_moved_to_the_next_free_slot_after_the_notice(runner: Runner) -> None:
    to_monday(runner)
    staff_and_customers(runner)
    with context(runner) as ctx:
        first, _ = booking_handlers.book_sessions({"teacher": "minh"}, ctx)["bookings"]
        yesterday = (runner.now() - timedelta(days=1)).astimezone(TZ).date()  # as <input type=date> sends it
        moved = booking_handlers.reschedule({"booking_id": first["id"], "start": yesterday.isoformat()}, ctx)
    assert datetime.fromisoformat(moved["start"]) >= runner.now() + timedelta(minutes=booking_handlers.LEAD_MINUTES)
    with runner.db.read() as s:
        assert s.get(Booking, first["id"]).sequence == 1
