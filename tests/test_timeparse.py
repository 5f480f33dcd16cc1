"""Timer values: ISO 8601 dates, durations and cycles, calendar arithmetic, timezones."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from runner.errors import TimerInvalid
from runner.model.timeparse import (
    Cycle,
    Duration,
    check,
    first_due,
    next_due,
    parse_cycle,
    parse_date,
    parse_duration,
)

UTC = UTC
HCM = ZoneInfo("Asia/Ho_Chi_Minh")  # UTC+7, no daylight saving time
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT30M", Duration(minutes=30)),
        ("P3D", Duration(days=3)),
        ("P1M", Duration(months=1)),
        ("P1Y2M", Duration(years=1, months=2)),
        ("PT1H30M", Duration(hours=1, minutes=30)),
        ("P2W", Duration(weeks=2)),
        ("PT0.5S", Duration(seconds=0.5)),
        ("PT1,25S", Duration(seconds=1.25)),
        ("P1DT12H", Duration(days=1, hours=12)),
        (" pt10s ", Duration(seconds=10)),
        ("PT0S", Duration()),
    ],
)
def test_valid_durations(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected
    assert Duration.parse(text) == expected
    check("duration", text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("PT", "'PT' is not an ISO 8601 duration: 'T' must be followed"),
        ("P", "'P' is not an ISO 8601 duration: it has no components"),
        ("", "'' is not an ISO 8601 duration"),
        ("30M", "'30M' is not an ISO 8601 duration"),
        ("P1.5D", "'P1.5D' is not an ISO 8601 duration"),
        ("PT-5M", "'PT-5M' is not an ISO 8601 duration"),
        ("P1H", "'P1H' is not an ISO 8601 duration"),
        ("P1D2Y", "'P1D2Y' is not an ISO 8601 duration"),
        ("${delay}", "'${delay}' is not an ISO 8601 duration"),
    ],
)
def test_invalid_durations(text: str, fragment: str) -> None:
    with pytest.raises(TimerInvalid, match=re.escape(fragment)):
        check("duration", text)


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (datetime(2026, 1, 31, 9, 0), "P1M", datetime(2026, 2, 28, 9, 0)),
        (datetime(2028, 1, 31, 9, 0), "P1M", datetime(2028, 2, 29, 9, 0)),  # leap year
        (datetime(2028, 2, 29), "P1Y", datetime(2029, 2, 28)),
        (datetime(2028, 2, 29), "P4Y", datetime(2032, 2, 29)),
        (datetime(2026, 3, 31), "P1M", datetime(2026, 4, 30)),
        (datetime(2026, 11, 30), "P3M", datetime(2027, 2, 28)),
        (datetime(2026, 12, 15), "P1Y2M", datetime(2028, 2, 15)),
        (datetime(2026, 1, 31, 23, 30), "PT1H", datetime(2026, 2, 1, 0, 30)),
        (datetime(2026, 1, 1), "P2W", datetime(2026, 1, 15)),
        (datetime(2026, 1, 1), "PT1.5S", datetime(2026, 1, 1, 0, 0, 1, 500000)),
    ],
)
def test_calendar_arithmetic(start: datetime, duration: str, expected: datetime) -> None:
    assert parse_duration(duration).add_to(start) == expected


def test_days_keep_wall_time_and_hours_are_elapsed_across_dst() -> None:
    before = datetime(2026, 3, 28, 9, 0, tzinfo=BERLIN)  # DST starts on 2026-03-29
    assert parse_duration("P1D").add_to(before) == datetime(2026, 3, 29, 9, 0, tzinfo=BERLIN)
    after = parse_duration("PT24H").add_to(before)
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(hours=24)
    assert after.hour == 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T09:00:00", datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),  # naive = HCM
        ("2026-12-01T09:00:00Z", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("2026-12-01T09:00:00+02:00", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)),
        ("2026-12-01T09:00", datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 11, 30, 17, 0, tzinfo=UTC)),
        (" 2026-12-01T09:00:00.250Z ", datetime(2026, 12, 1, 9, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_valid_dates_are_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_date(text, HCM)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    check("date", text)


@pytest.mark.parametrize("text", ["tomorrow", "", "2026-13-01T09:00:00", "01/12/2026", "PT1H"])
def test_invalid_dates(text: str) -> None:
    with pytest.raises(TimerInvalid, match=re.escape(f"{text!r} is not an ISO 8601 date-time")):
        check("date", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("R/P1M", Cycle(None, Duration(months=1), None)),
        ("R3/PT72H", Cycle(3, Duration(hours=72), None)),
        ("R/PT10M", Cycle(None, Duration(minutes=10), None)),
        ("R3/2026-12-01T09:00:00Z/P1D", Cycle(3, Duration(days=1), datetime(2026, 12, 1, 9, 0, tzinfo=UTC))),
        ("R2/2026-12-01T09:00:00/PT1H", Cycle(2, Duration(hours=1), datetime(2026, 12, 1, 2, 0, tzinfo=UTC))),
    ],
)
def test_valid_cycles(text: str, expected: Cycle) -> None:
    assert parse_cycle(text, HCM) == expected
    check("cycle", text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("P1D", "'P1D' is not an ISO 8601 cycle"),
        ("R", "'R' is not an ISO 8601 cycle"),
        ("Rx/PT1H", "'Rx/PT1H' is not an ISO 8601 cycle"),
        ("R3/a/b/c", "'R3/a/b/c' is not an ISO 8601 cycle"),
        ("0 0/5 * * * ?", "cron expressions are not supported"),
        ("R0/PT1H", "must repeat at least once"),
        ("R/PT0S", "the interval must not be zero"),
        ("R3/PT", "'PT' is not an ISO 8601 duration"),
        ("R3/soon/P1D", "'soon' is not an ISO 8601 date-time"),
    ],
)
def test_invalid_cycles(text: str, fragment: str) -> None:
    with pytest.raises(TimerInvalid, match=re.escape(fragment)):
        check("cycle", text)


def test_unknown_kind() -> None:
    with pytest.raises(TimerInvalid, match="unknown timer kind 'cron'"):
        check("cron", "* * * * *")


@pytest.mark.parametrize(
    ("kind", "value", "expected_due", "expected_left"),
    [
        ("duration", "PT30M", datetime(2026, 1, 31, 10, 30, tzinfo=UTC), 0),
        ("duration", "P1M", datetime(2026, 2, 28, 10, 0, tzinfo=UTC), 0),
        ("date", "2026-12-01T09:00:00", datetime(2026, 12, 1, 2, 0, tzinfo=UTC), 0),
        ("cycle", "R/PT10M", datetime(2026, 1, 31, 10, 10, tzinfo=UTC), None),
        ("cycle", "R3/PT72H", datetime(2026, 2, 3, 10, 0, tzinfo=UTC), 2),
        ("cycle", "R1/P1D", datetime(2026, 2, 1, 10, 0, tzinfo=UTC), 0),
        ("cycle", "R3/2026-12-01T09:00:00Z/P1D", datetime(2026, 12, 1, 9, 0, tzinfo=UTC), 2),
        # A start in the past is kept: the caller fires the overdue timer.
        ("cycle", "R/2025-01-01T00:00:00Z/P1D", datetime(2025, 1, 1, tzinfo=UTC), None),
    ],
)
def test_first_due(kind: str, value: str, expected_due: datetime, expected_left: int | None) -> None:
    due, left = first_due(kind, value, NOW, HCM)
    assert (due, left) == (expected_due, expected_left)
    assert due.utcoffset() == timedelta(0)


def test_first_due_uses_the_settings_calendar_for_months() -> None:
    # 2026-01-30T20:00Z is already 31 January 03:00 in Ho Chi Minh City, so one month
    # later is clamped to 28 February 03:00 there (the UTC calendar would say 28 Feb 20:00Z).
    now = datetime(2026, 1, 30, 20, 0, tzinfo=UTC)
    due, _ = first_due("duration", "P1M", now, HCM)
    assert due == datetime(2026, 2, 27, 20, 0, tzinfo=UTC)


def test_first_due_rejects_bad_values_and_naive_now() -> None:
    with pytest.raises(TimerInvalid, match="'PT' is not an ISO 8601 duration"):
        first_due("duration", "PT", NOW, HCM)
    with pytest.raises(ValueError, match="must be timezone-aware"):
        first_due("duration", "PT1M", datetime(2026, 1, 1), HCM)


def test_out_of_range_result_is_timer_invalid() -> None:
    with pytest.raises(TimerInvalid, match="out of the supported range"):
        first_due("duration", "P9000Y", NOW, HCM)


def test_next_due_adds_the_interval() -> None:
    previous = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert next_due("R3/2026-12-01T09:00:00Z/P1D", previous, HCM) == previous + timedelta(days=1)
    assert next_due("R/PT10M", previous, HCM) == previous + timedelta(minutes=10)
    january_end = datetime(2026, 1, 31, 2, 0, tzinfo=UTC)  # 09:00 in Ho Chi Minh City
    assert next_due("R/P1M", january_end, HCM) == datetime(2026, 2, 28, 2, 0, tzinfo=UTC)


def test_functions_are_pure() -> None:
    first = first_due("cycle", "R/PT10M", NOW, HCM)
    assert first_due("cycle", "R/PT10M", NOW, HCM) == first
