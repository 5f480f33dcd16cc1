"""Sending windows as pure functions: edges, midnight, closed days (the business calendar's), and the setting."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from runner.errors import Invalid
from runner.model import worktime
from runner.model.worktime import BusinessCalendar
from runner.registry import HandlerContext
from runner.settings import Settings
from runner.windows import QUIET_HOURS, SendingWindow, Windows, next_open

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = SendingWindow.parse("08:00-20:00")
NIGHT = SendingWindow.parse("22:00-06:00")  # a window that wraps midnight


def vn(text: str) -> datetime:
    """A business-zone moment, e.g. '2026-12-07 21:00' (a Monday)."""
    return datetime.fromisoformat(text).replace(tzinfo=VN)


@pytest.mark.parametrize(
    ("wanted", "goes"),
    [
        ("2026-12-07 21:00", "2026-12-08 08:00"),  # evening: next morning
        ("2026-12-07 23:00", "2026-12-08 08:00"),
        ("2026-12-08 00:30", "2026-12-08 08:00"),  # small hours: the same morning
        ("2026-12-07 07:59", "2026-12-07 08:00"),
        ("2026-12-07 08:00", "2026-12-07 08:00"),  # the opening itself is inside
        ("2026-12-07 12:00", "2026-12-07 12:00"),
        ("2026-12-07 19:59", "2026-12-07 19:59"),
        ("2026-12-07 20:00", "2026-12-08 08:00"),  # the closing itself is outside
        ("2026-12-31 22:00", "2027-01-01 08:00"),  # over the year's end
    ],
)
def test_a_day_window_sends_inside_and_moves_the_rest_to_the_next_opening(wanted: str, goes: str) -> None:
    assert next_open(vn(wanted), DAY, VN) == vn(goes)


@pytest.mark.parametrize(
    ("wanted", "goes"),
    [
        ("2026-12-07 21:59", "2026-12-07 22:00"),
        ("2026-12-07 22:00", "2026-12-07 22:00"),
        ("2026-12-07 23:30", "2026-12-07 23:30"),
        ("2026-12-08 05:59", "2026-12-08 05:59"),  # past midnight, still the window of the 7th
        ("2026-12-08 06:00", "2026-12-08 22:00"),
        ("2026-12-08 12:00", "2026-12-08 22:00"),
    ],
)
def test_a_window_that_wraps_midnight(wanted: str, goes: str) -> None:
    assert next_open(vn(wanted), NIGHT, VN) == vn(goes)


def test_the_answer_keeps_the_zone_it_was_asked_in() -> None:
    utc = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # 21:00 in Hồ Chí Minh City
    goes = next_open(utc, DAY, VN)
    assert goes == datetime(2026, 12, 8, 1, 0, tzinfo=UTC) and goes.tzinfo == UTC


def test_closed_days_plug_in_as_a_predicate() -> None:
    sundays = lambda day: day.weekday() == 6  # noqa: E731 - a calendar as the seam sees it
    # Saturday 21:00: Sunday is closed, so Monday 08:00.
    assert next_open(vn("2026-12-12 21:00"), DAY, VN, sundays) == vn("2026-12-14 08:00")
    assert next_open(vn("2026-12-13 10:00"), DAY, VN, sundays) == vn("2026-12-14 08:00")
    # A wrapping window's small hours belong to the day it opened: Sunday 22:00 - Monday 06:00 is shut.
    assert next_open(vn("2026-12-14 02:00"), NIGHT, VN, sundays) == vn("2026-12-14 22:00")
    assert next_open(vn("2026-12-13 02:00"), NIGHT, VN, sundays) == vn("2026-12-13 02:00")


def test_the_business_calendar_shuts_holidays_days_off_and_weekdays_without_hours() -> None:
    tet = sorted(d for d, name in holidays.country_holidays("VN", years=2027).items() if "Lunar New Year" in name)
    cal = BusinessCalendar.from_text(VN, worktime.DEFAULT_HOURS, "VN", [date(2026, 12, 24)])
    february = [date(2027, 2, 1) + timedelta(days=n) for n in range(14)]
    assert [d for d in february if cal.is_day_off(d)] == [*tet, date(2027, 2, 14)]  # Tết (a Sunday in it), a Sunday
    assert [cal.is_day_off(date(2026, 12, n)) for n in (12, 13, 24, 25)] == [False, True, True, False]
    assert not BusinessCalendar.from_text(VN, {"sun": "09:00-10:00"}).is_day_off(date(2026, 12, 13))
    windows = Windows(VN, DAY, closed=cal.is_day_off)
    assert windows.due(QUIET_HOURS, vn("2027-02-03 21:00")) == vn("2027-02-11 08:00")  # the eve of Tết's first day
    assert windows.due(QUIET_HOURS, vn("2026-12-23 20:00")) == vn("2026-12-25 08:00")  # over the company's day off
    assert windows.due(QUIET_HOURS, vn("2026-12-12 19:59")) == vn("2026-12-12 19:59")  # Saturday works: at once


def test_a_calendar_that_never_opens_is_an_error_not_a_hang() -> None:
    with pytest.raises(Invalid, match="no sending window opens within"):
        next_open(vn("2026-12-07 21:00"), DAY, VN, lambda day: True)


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(Invalid, match="no time zone"):
        next_open(datetime(2026, 12, 7, 21, 0), DAY, VN)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("8-20", "such as 08:00-20:00"),
        ("08:00", "such as 08:00-20:00"),
        ("24:00-08:00", "does not exist"),
        ("08:60-20:00", "does not exist"),
        ("08:00-08:00", "same time"),
    ],
)
def test_bad_windows_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(Invalid, match=problem):
        SendingWindow.parse(text)


def test_the_setting_reads_a_window_and_names_itself_when_wrong() -> None:
    settings = Settings.from_env({"RUNNER_SENDING_WINDOW": " 8:00 – 20:30 "}, secret_key="k")
    assert settings.sending_window == SendingWindow(time(8, 0), time(20, 30))
    assert str(settings.sending_window) == "08:00-20:30"
    assert Settings.from_env({}, secret_key="k").sending_window is None  # an explicit mapping: any time
    assert Settings.from_env({"RUNNER_SENDING_WINDOW": "off"}, secret_key="k").sending_window is None
    with pytest.raises(Invalid, match="RUNNER_SENDING_WINDOW: .*'20:00'"):
        Settings.from_env({"RUNNER_SENDING_WINDOW": "20:00"}, secret_key="k")


def test_windows_leave_unmarked_messages_and_an_unset_window_alone() -> None:
    late = vn("2026-12-07 23:00")
    assert Windows(VN, DAY).due(None, late) == late
    assert Windows(VN, None).due(QUIET_HOURS, late) == late
    assert Windows(VN, DAY).due(QUIET_HOURS, late) == vn("2026-12-08 08:00")
    assert Windows(VN, DAY, closed=lambda d: d == date(2026, 12, 8)).due(QUIET_HOURS, late) == vn("2026-12-09 08:00")
    with pytest.raises(Invalid, match="unknown sending window 'lunch'"):
        Windows(VN, DAY).due("lunch", late)


def test_a_handler_names_a_known_window_or_fails() -> None:
    ctx = HandlerContext("i", "KH1", "i/j", "step", "t", 1, vn("2026-12-07 23:00"))
    ctx.send("zalo", {"text": "hi"}, key="a", window=QUIET_HOURS)
    ctx.send("log", {"text": "hi"}, key="b")
    assert ctx.windows == {"i/j/a": QUIET_HOURS}
    assert [key for _, _, key in ctx.outbox] == ["i/j/a", "i/j/b"]
    with pytest.raises(Invalid, match="unknown sending window"):
        ctx.send("zalo", {}, key="c", window="night")


def test_a_process_reading_its_own_environment_keeps_the_quiet_hours_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RUNNER_SENDING_WINDOW", raising=False)
    assert Settings.from_env(secret_key="k").sending_window == SendingWindow(time(8, 0), time(20, 0))
    monkeypatch.setenv("RUNNER_SENDING_WINDOW", "off")
    assert Settings.from_env(secret_key="k").sending_window is None
