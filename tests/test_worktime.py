"""Business time as pure functions: working hours, Vietnamese holidays (Tết too) and days off."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from runner.errors import Invalid, TimerInvalid
from runner.model import worktime
from runner.model.timeparse import Duration
from runner.model.worktime import BusinessCalendar

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# The company's week as the CRM demo seeds it: a lunch break on weekdays, Saturday mornings.
COMPANY = BusinessCalendar.from_text(
    TZ,
    {**{d: "08:00-12:00, 13:30-17:30" for d in ("mon", "tue", "wed", "thu", "fri")}, "sat": "08:00-12:00"},
    "VN",
    [date(2026, 12, 24)],
)


def at(*args: int) -> datetime:
    """A local (Asia/Ho_Chi_Minh) moment."""
    return datetime(*args, tzinfo=TZ)


def test_tet_2027_is_what_the_holidays_package_says():
    tet = {d for d in worktime.public_holidays("VN", 2027) if d.month == 2}
    assert tet == {date(2027, 2, d) for d in range(4, 11)}  # Thu 4 Feb (29 Tết) … Wed 10 Feb
    assert date(2027, 4, 16) in worktime.public_holidays("VN", 2027)  # Giỗ Tổ Hùng Vương (lunar 10/3)


@pytest.mark.parametrize(
    ("moment", "working"),
    [
        (at(2026, 12, 7, 8, 0), True),  # Monday, the first minute
        (at(2026, 12, 7, 7, 59), False),
        (at(2026, 12, 7, 12, 0), False),  # lunch
        (at(2026, 12, 7, 17, 29), True),
        (at(2026, 12, 7, 17, 30), False),  # the end is not working time
        (at(2026, 12, 12, 9, 0), True),  # Saturday morning
        (at(2026, 12, 12, 14, 0), False),  # Saturday afternoon
        (at(2026, 12, 13, 10, 0), False),  # Sunday
        (at(2026, 12, 24, 10, 0), False),  # a company day off
        (at(2027, 2, 8, 10, 0), False),  # Tết
        (at(2027, 2, 11, 10, 0), True),  # the first working day after Tết
        (datetime(2026, 12, 7, 1, 0, tzinfo=ZoneInfo("UTC")), True),  # 08:00 in Hanoi
    ],
)
def test_is_working_time(moment, working):
    assert worktime.is_working_time(COMPANY, moment) is working


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (at(2026, 12, 7, 10, 15), at(2026, 12, 7, 10, 15)),  # already working
        (at(2026, 12, 7, 12, 10), at(2026, 12, 7, 13, 30)),  # after lunch
        (at(2026, 12, 7, 0, 0), at(2026, 12, 7, 8, 0)),  # midnight → the morning
        (at(2026, 12, 11, 18, 0), at(2026, 12, 12, 8, 0)),  # Friday evening → Saturday morning
        (at(2026, 12, 12, 12, 0), at(2026, 12, 14, 8, 0)),  # Saturday noon → Monday
        (at(2026, 12, 23, 18, 0), at(2026, 12, 25, 8, 0)),  # over the day off
        (at(2027, 2, 3, 17, 45), at(2027, 2, 11, 8, 0)),  # over Tết
    ],
)
def test_next_working_instant(moment, expected):
    assert worktime.next_working_instant(COMPANY, moment) == expected


@pytest.mark.parametrize(
    ("moment", "minutes", "expected"),
    [
        (at(2026, 12, 7, 9, 0), 60, at(2026, 12, 7, 10, 0)),
        (at(2026, 12, 7, 11, 30), 60, at(2026, 12, 7, 14, 0)),  # 30 before lunch, 30 after
        (at(2026, 12, 7, 17, 0), 30, at(2026, 12, 7, 17, 30)),  # ends with the day's last minute
        (at(2026, 12, 11, 17, 0), 60, at(2026, 12, 12, 8, 30)),  # Friday 17:00 → Saturday 08:30
        (at(2026, 12, 12, 11, 30), 60, at(2026, 12, 14, 8, 30)),  # Saturday → Monday, Sunday skipped
        (at(2026, 12, 13, 22, 0), 60, at(2026, 12, 14, 9, 0)),  # arrives on Sunday night
        (at(2027, 2, 3, 17, 0), 60, at(2027, 2, 11, 8, 30)),  # the eve of Tết → after Tết
        (at(2026, 12, 7, 9, 0), 0, at(2026, 12, 7, 9, 0)),
        (at(2026, 12, 7, 20, 0), 0, at(2026, 12, 8, 8, 0)),  # nothing to count: the next working instant
        (at(2026, 12, 7, 8, 0), 8 * 60, at(2026, 12, 7, 17, 30)),  # a whole working day (4 h + 4 h)
        (at(2026, 12, 7, 8, 0), 8 * 60 + 1, at(2026, 12, 8, 8, 1)),
    ],
)
def test_add_working_minutes(moment, minutes, expected):
    assert worktime.add_working_minutes(COMPANY, moment, minutes) == expected


@pytest.mark.parametrize(
    ("moment", "text", "expected"),
    [
        (at(2026, 12, 7, 10, 0), "P3D", at(2026, 12, 10, 10, 0)),  # Monday → Thursday
        (at(2026, 12, 10, 10, 0), "P3D", at(2026, 12, 14, 10, 0)),  # Thu → Fri, Sat, Mon
        (at(2026, 12, 10, 15, 0), "P2D", at(2026, 12, 14, 8, 0)),  # Saturday 15:00 is off → Monday 08:00
        (at(2026, 12, 7, 10, 0), "P7D", at(2026, 12, 15, 10, 0)),  # 7 working days, Sunday skipped
        (at(2027, 2, 2, 10, 0), "P2D", at(2027, 2, 11, 10, 0)),  # Wed 3 Feb, then Tết, then Thu 11
        (at(2026, 12, 7, 10, 0), "PT90M", at(2026, 12, 7, 11, 30)),
        (at(2026, 12, 7, 10, 0), "P1DT1H", at(2026, 12, 8, 11, 0)),
        (at(2026, 11, 14, 10, 0), "P1M", at(2026, 12, 14, 10, 0)),  # a calendar month, then working time
    ],
)
def test_durations_in_business_time(moment, text, expected):
    assert worktime.add_duration(COMPANY, moment, Duration.parse(text)) == expected


@pytest.mark.parametrize(
    ("called", "expected"),
    [
        (at(2026, 12, 7, 9, 0), at(2026, 12, 7, 14, 0)),  # sáng → chiều
        (at(2026, 12, 7, 15, 0), at(2026, 12, 8, 8, 0)),  # chiều → sáng hôm sau
        (at(2026, 12, 11, 16, 0), at(2026, 12, 12, 8, 0)),  # Friday afternoon → Saturday morning
        (at(2026, 12, 12, 9, 0), at(2026, 12, 14, 8, 0)),  # Saturday morning: no afternoon → Monday
        (at(2026, 12, 12, 13, 0), at(2026, 12, 14, 8, 0)),  # never on a Sunday
        (at(2026, 12, 23, 15, 0), at(2026, 12, 25, 8, 0)),  # never on a day off
        (at(2027, 2, 3, 10, 0), at(2027, 2, 3, 14, 0)),
        (at(2027, 2, 3, 15, 0), at(2027, 2, 11, 8, 0)),  # never during Tết
    ],
)
def test_call_backs_go_to_the_next_working_half_day(called, expected):
    assert worktime.next_half_day(COMPANY, called) == expected


def test_the_result_keeps_the_zone_it_was_given():
    moment = datetime(2026, 12, 11, 10, 0, tzinfo=ZoneInfo("UTC"))  # Friday 17:00 in Hanoi
    due = worktime.add_working_minutes(COMPANY, moment, 60)
    assert due.tzinfo == ZoneInfo("UTC") and due == at(2026, 12, 12, 8, 30)


@pytest.mark.parametrize(
    ("hours", "field"),
    [
        ({"mon": "8:00-17:30"}, "hours.mon"),
        ({"tue": "17:30-08:00"}, "hours.tue"),
        ({"wed": "08:00-12:00, 11:00-13:00"}, "hours.wed"),
        ({"thu": "08:00"}, "hours.thu"),
        ({"xyz": "08:00-12:00"}, "hours"),
    ],
)
def test_bad_hours_name_the_field(hours, field):
    with pytest.raises(Invalid, match=field.replace(".", r"\.")):
        BusinessCalendar.from_text(TZ, hours)


def test_an_unknown_country_names_the_field():
    with pytest.raises(Invalid, match="country"):
        worktime.public_holidays("XX", 2027)


def test_a_calendar_without_working_time_is_refused_not_searched_for_ever():
    empty = BusinessCalendar.from_text(TZ, {})
    with pytest.raises(Invalid, match="no working time"):
        worktime.next_working_instant(empty, at(2026, 12, 7, 9, 0))


def test_business_first_due_per_kind():
    now = at(2026, 12, 11, 17, 0)
    assert worktime.first_due("duration", "PT60M", now, COMPANY) == (at(2026, 12, 12, 8, 30), 0)
    assert worktime.first_due("date", "2027-02-06T00:00:00", now, COMPANY) == (at(2027, 2, 11, 8, 0), 0)
    assert worktime.first_due("cycle", "R3/PT4H", now, COMPANY) == (at(2026, 12, 12, 11, 30), 2)
    assert worktime.next_due("R3/PT4H", at(2026, 12, 12, 11, 30), COMPANY) == at(2026, 12, 14, 11, 30)
    with pytest.raises(TimerInvalid):
        worktime.first_due("duration", "P", now, COMPANY)


def test_the_default_calendar_is_mon_fri_0800_1730_and_saturday_mornings():
    cal = worktime.default_calendar(TZ)
    assert cal.as_text()["mon"] == "08:00-17:30" and cal.as_text()["sat"] == "08:00-12:00"
    assert cal.as_text()["sun"] == "" and cal.country == "VN"
    assert cal.hours[0] == ((time(8), time(17, 30)),)
    assert worktime.add_working_time(cal, at(2026, 12, 11, 17, 0), timedelta(hours=1)) == at(2026, 12, 12, 8, 30)
