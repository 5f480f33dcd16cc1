"""Business time: working hours per weekday, public holidays and days off, as pure functions.

A ``BusinessCalendar`` is a value; every function here takes one and an aware instant and
never reads the clock, the machine's time zone or the database. Hours are local times in
the calendar's time zone (the runner's business time zone).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

import holidays

from runner.errors import Invalid, TimerInvalid
from runner.model import timeparse
from runner.model.timeparse import Duration

CALENDAR_NAMES = ("business",)
"""The values a timer's ``calendar`` property may have: ``business`` counts working time only."""
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# NOTE: a calendar without a working minute in this many days is refused: the arithmetic
# would otherwise search for ever (an admin who clears every weekday).
HORIZON_DAYS = 400
NOON = time(12)

Period = tuple[time, time]
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")


def parse_time(text: str, field_name: str) -> time:
    """'08:00' → time(8); '24:00' ends a day. A bad value names the field."""
    text = (text or "").strip()
    if not _HHMM.fullmatch(text):
        raise Invalid(f"{field_name}: {text!r} is not a time of day like 08:00")
    return time.max if text == "24:00" else time(int(text[:2]), int(text[3:]))


def format_time(value: time) -> str:
    """time(8) → '08:00' (the end of the day is '24:00')."""
    return "24:00" if value == time.max else value.strftime("%H:%M")


def parse_periods(text: str, field_name: str) -> tuple[Period, ...]:
    """'08:00-12:00, 13:30-17:30' → periods, sorted and not overlapping; '' is a day off."""
    periods: list[Period] = []
    for part in [p for p in re.split(r"[,;]", text or "") if p.strip()]:
        bounds = [b for b in re.split(r"\s*[-–]\s*", part.strip()) if b]
        if len(bounds) != 2:
            raise Invalid(f"{field_name}: {part.strip()!r} is not a period like 08:00-12:00")
        start, end = parse_time(bounds[0], field_name), parse_time(bounds[1], field_name)
        if start >= end:
            raise Invalid(f"{field_name}: {part.strip()!r} ends before it starts")
        periods.append((start, end))
    periods.sort()
    for (_, end), (start, _) in zip(periods, periods[1:], strict=False):
        if start < end:
            raise Invalid(f"{field_name}: periods overlap")
    return tuple(periods)


def format_periods(periods: Iterable[Period]) -> str:
    """Periods → '08:00-12:00, 13:30-17:30'."""
    return ", ".join(f"{format_time(a)}-{format_time(b)}" for a, b in periods)


@functools.lru_cache(maxsize=64)
def public_holidays(country: str, year: int) -> frozenset[date]:
    """The public holidays of ``country`` in ``year`` (lunar ones included), from the holidays package."""
    try:
        return frozenset(holidays.country_holidays(country, years=year))
    except NotImplementedError as exc:
        raise Invalid(f"country: no public holidays are known for {country!r}") from exc


def holiday_names(country: str, year: int, language: str | None = None) -> list[tuple[date, str]]:
    """The public holidays of a year with their names (in ``language`` if known), in date order."""
    found = holidays.country_holidays(country, years=year)
    if language in found.supported_languages:
        found = holidays.country_holidays(country, years=year, language=language)
    return sorted(found.items())


@dataclass(frozen=True)
class BusinessCalendar:
    """When staff work: periods per weekday (Monday first), public holidays of a country, days off."""

    tz: tzinfo
    hours: tuple[tuple[Period, ...], ...]
    country: str | None = None
    days_off: frozenset[date] = field(default_factory=frozenset)
    version: int = 0

    def __post_init__(self) -> None:
        if len(self.hours) != 7:
            raise Invalid("hours: one entry per weekday, Monday first")

    @classmethod
    def from_text(
        cls, tz: tzinfo, hours: Mapping[str, str], country: str | None = None, days_off: Iterable[date] = ()
    ) -> BusinessCalendar:
        """A calendar from {'mon': '08:00-17:30', ...} (a missing weekday is a day off)."""
        unknown = set(hours) - set(WEEKDAYS)
        if unknown:
            raise Invalid(f"hours: unknown weekday {sorted(unknown)[0]!r}")
        periods = tuple(parse_periods(hours.get(day, ""), f"hours.{day}") for day in WEEKDAYS)
        return cls(tz=tz, hours=periods, country=country or None, days_off=frozenset(days_off))

    def as_text(self) -> dict[str, str]:
        """The hours as {'mon': '08:00-17:30', ...}, the form the database and the admin page keep."""
        return {day: format_periods(p) for day, p in zip(WEEKDAYS, self.hours, strict=True)}

    def is_holiday(self, day: date) -> bool:
        """A public holiday or a company day off."""
        return day in self.days_off or (self.country is not None and day in public_holidays(self.country, day.year))

    def is_day_off(self, day: date) -> bool:
        """No working time at all on a local date: a holiday, a company day off, a weekday without hours."""
        return not self.hours[day.weekday()] or self.is_holiday(day)

    def periods_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working periods of a local date as aware instants; none on a holiday."""
        if self.is_holiday(day):
            return []
        return [(_at(day, a, self.tz), _at(day, b, self.tz)) for a, b in self.hours[day.weekday()]]


def _at(day: date, moment: time, tz: tzinfo) -> datetime:
    if moment == time.max:
        return datetime.combine(day + timedelta(days=1), time(), tz)
    return datetime.combine(day, moment, tz)


def _periods_from(cal: BusinessCalendar, t: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Working periods that end after ``t``, in order, within the horizon."""
    day = t.astimezone(cal.tz).date()
    for offset in range(HORIZON_DAYS):
        for start, end in cal.periods_on(day + timedelta(days=offset)):
            if end > t:
                yield start, end
    raise Invalid(f"the business calendar has no working time in the {HORIZON_DAYS} days after {t.isoformat()}")


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise Invalid(f"{t.isoformat()} has no time zone")
    return t


def is_working_time(cal: BusinessCalendar, t: datetime) -> bool:
    """True while staff work: inside a period (start included, end excluded) of a working day."""
    t = _aware(t)
    return any(start <= t < end for start, end in cal.periods_on(t.astimezone(cal.tz).date()))


def next_working_instant(cal: BusinessCalendar, t: datetime) -> datetime:
    """``t`` itself in working time, else the start of the next working period."""
    t = _aware(t)
    start, _ = next(_periods_from(cal, t))
    return max(start, t).astimezone(t.tzinfo)


def add_working_time(cal: BusinessCalendar, t: datetime, span: timedelta) -> datetime:
    """The instant when ``span`` of working time has passed after ``t`` (time off does not count).

    NOTE: the result may be a period's end (17:30 for 30 minutes from 17:00): that is when
    the working time ran out, as Flowable's business calendar counts it.
    """
    t, left = _aware(t), span
    if left <= timedelta(0):
        return next_working_instant(cal, t)
    for start, end in _periods_from(cal, t):
        start = max(start, t)
        if end - start >= left:
            return (start + left).astimezone(t.tzinfo)
        left -= end - start
    raise AssertionError("unreachable: _periods_from raises at its horizon")  # pragma: no cover


def add_working_minutes(cal: BusinessCalendar, t: datetime, minutes: int) -> datetime:
    """``add_working_time`` in whole minutes."""
    return add_working_time(cal, t, timedelta(minutes=minutes))


def add_working_days(cal: BusinessCalendar, t: datetime, days: int) -> datetime:
    """The same local time ``days`` working days later, then the next working instant from there."""
    local = _aware(t).astimezone(cal.tz)
    day = local.date()
    for _ in range(days):
        day += timedelta(days=1)
        for _skip in range(HORIZON_DAYS):
            if cal.periods_on(day):
                break
            day += timedelta(days=1)
    moved = datetime.combine(day, local.time(), cal.tz)
    return next_working_instant(cal, moved).astimezone(t.tzinfo)


def next_half_day(cal: BusinessCalendar, t: datetime, afternoon: time = time(14)) -> datetime:
    """The next working half-day: a morning call → ``afternoon`` that day, an afternoon one → the next morning.

    Either is then moved to the next working instant, so no call-back lands in time off
    (a Saturday afternoon, a Sunday, a holiday).
    """
    local = _aware(t).astimezone(cal.tz)
    if local.time() < NOON:
        slot = datetime.combine(local.date(), afternoon, cal.tz)
    else:
        slot = datetime.combine(local.date() + timedelta(days=1), time(), cal.tz)
    return next_working_instant(cal, slot).astimezone(t.tzinfo)


def add_duration(cal: BusinessCalendar, t: datetime, duration: Duration) -> datetime:
    """An ISO 8601 duration in business time: days are working days, hours and less working time.

    Years, months and weeks stay calendar units (P1M is a month on the wall calendar); the
    result is then moved to working time.
    """
    plain = Duration(years=duration.years, months=duration.months, weeks=duration.weeks)
    moved = t if plain.is_zero() else plain.add_to(t.astimezone(cal.tz))
    if duration.days:
        moved = add_working_days(cal, moved, duration.days)
    elapsed = timedelta(hours=duration.hours, minutes=duration.minutes, seconds=duration.seconds)
    return add_working_time(cal, moved, elapsed).astimezone(t.tzinfo)


def first_due(kind: str, text: str, now: datetime, cal: BusinessCalendar) -> tuple[datetime, int | None]:
    """``timeparse.first_due`` counted in business time: the due moment always lies in working time."""
    timeparse.check(kind, text)
    if kind == "date":
        return next_working_instant(cal, timeparse.parse_date(text, cal.tz)), 0
    if kind == "duration":
        return _guarded(add_duration, cal, now, timeparse.parse_duration(text), text), 0
    cycle = timeparse.parse_cycle(text, cal.tz)
    remaining = None if cycle.repetitions is None else cycle.repetitions - 1
    if cycle.start is not None:
        return next_working_instant(cal, cycle.start), remaining
    return _guarded(add_duration, cal, now, cycle.interval, text), remaining


def next_due(cycle_text: str, previous_due: datetime, cal: BusinessCalendar) -> datetime:
    """A business-time cycle's next due moment: the interval counted in business time."""
    return _guarded(add_duration, cal, previous_due, timeparse.parse_cycle(cycle_text, cal.tz).interval, cycle_text)


def _guarded(
    fn: Callable[[BusinessCalendar, datetime, Duration], datetime],
    cal: BusinessCalendar,
    t: datetime,
    duration: Duration,
    text: str,
) -> datetime:
    try:
        return fn(cal, t, duration)
    except (OverflowError, ValueError) as exc:  # e.g. P9999Y lands after year 9999
        raise TimerInvalid(f"{text!r} moves the timer out of the supported range: {exc}") from exc


DEFAULT_HOURS: Mapping[str, str] = {
    **{day: "08:00-17:30" for day in WEEKDAYS[:5]},
    "sat": "08:00-12:00",
}
DEFAULT_COUNTRY = "VN"


def default_calendar(tz: tzinfo) -> BusinessCalendar:
    """The calendar before an admin sets one: Mon–Fri 08:00–17:30, Sat 08:00–12:00, Vietnam's holidays."""
    return BusinessCalendar.from_text(tz, DEFAULT_HOURS, DEFAULT_COUNTRY)


def as_record(cal: BusinessCalendar) -> dict[str, Any]:
    """The calendar as JSON-safe data (what the admin API shows)."""
    return {
        "hours": cal.as_text(),
        "country": cal.country,
        "days_off": sorted(d.isoformat() for d in cal.days_off),
        "version": cal.version,
    }
