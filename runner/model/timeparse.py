"""BPMN timer values as Camunda Modeler writes them: timeDate, timeDuration, timeCycle.

Pure functions over ISO 8601 text: the current moment and the settings timezone are
always passed in, never read from the machine.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TypeVar

from runner.errors import TimerInvalid

KINDS = ("date", "duration", "cycle")
_Moment = TypeVar("_Moment", bound=date)  # a date, or a datetime (its subclass)

_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?"
)
_REPEAT = re.compile(r"R(?P<count>\d*)")


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration; years and months are calendar units, the rest fixed lengths."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: float = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``PnYnMnWnDTnHnMnS`` (only seconds may have a fraction)."""
        value = text.strip().upper()
        match = _DURATION.fullmatch(value)
        if match is None:
            raise TimerInvalid(
                f"{text!r} is not an ISO 8601 duration: expected the form PnYnMnWnDTnHnMnS, e.g. PT30M, P3D or P1Y2M"
            )
        if value.endswith("T"):
            raise TimerInvalid(
                f"{text!r} is not an ISO 8601 duration: 'T' must be followed by hours, minutes or seconds"
            )
        parts = {name: found for name, found in match.groupdict().items() if found is not None}
        if not parts:
            raise TimerInvalid(f"{text!r} is not an ISO 8601 duration: it has no components")
        seconds = float(parts.pop("seconds", "0").replace(",", "."))
        return cls(
            **{name: int(found) for name, found in parts.items()},
            seconds=int(seconds) if seconds.is_integer() else seconds,
        )

    def is_zero(self) -> bool:
        """Tell whether adding this duration changes nothing."""
        return not any((self.years, self.months, self.weeks, self.days, self.hours, self.minutes, self.seconds))

    def add_to(self, moment: datetime) -> datetime:
        """Add calendar units on the wall clock of moment's zone, then elapsed time."""
        shifted = _add_months(moment, self.years * 12 + self.months)
        # Aware + timedelta keeps the wall time, so P1D is "same time tomorrow" across DST.
        shifted = shifted + timedelta(weeks=self.weeks, days=self.days)
        elapsed = timedelta(hours=self.hours, minutes=self.minutes, seconds=self.seconds)
        if shifted.tzinfo is None:
            return shifted + elapsed
        # Hours, minutes and seconds are elapsed time: PT1H across a DST change is 60 minutes.
        return (shifted.astimezone(UTC) + elapsed).astimezone(shifted.tzinfo)


@dataclass(frozen=True)
class Cycle:
    """An ISO 8601 repeating interval ``R[n]/[start/]duration``."""

    repetitions: int | None  # None repeats forever
    interval: Duration
    start: datetime | None


def _add_months(moment: _Moment, months: int) -> _Moment:
    """Move by whole months, clamping the day: Jan 31 + 1 month is Feb 28 or 29."""
    if months == 0:
        return moment
    year, month_index = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    month = month_index + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def add_months(moment: _Moment, months: int) -> _Moment:
    """A date or date-time moved by whole calendar months, the day clamped (May 31 - 3 months is Feb 28/29)."""
    if isinstance(months, bool) or not isinstance(months, int):
        raise TypeError(f"months must be a whole number, not {months!r}")
    return _add_months(moment, months)


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration such as ``PT30M`` or ``P1Y2M``."""
    return Duration.parse(text)


def parse_date(text: str, tz: tzinfo) -> datetime:
    """Parse an ISO 8601 date-time; naive values are in ``tz``. Returns aware UTC."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)  # Python 3.11+ also reads a trailing "Z"
    except ValueError as exc:
        raise TimerInvalid(f"{text!r} is not an ISO 8601 date-time: {exc}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def parse_cycle(text: str, tz: tzinfo) -> Cycle:
    """Parse ``R/P1M``, ``R3/PT72H`` or ``R3/2026-12-01T09:00:00Z/P1D``."""
    parts = text.strip().split("/")
    repeat = _REPEAT.fullmatch(parts[0].upper())
    if repeat is None or len(parts) not in (2, 3):
        raise TimerInvalid(
            f"{text!r} is not an ISO 8601 cycle: expected R[n]/<duration> "
            "or R[n]/<start>/<duration> (cron expressions are not supported)"
        )
    count = int(repeat["count"]) if repeat["count"] else None
    if count == 0:
        raise TimerInvalid(f"{text!r} is not a usable cycle: it must repeat at least once")
    start = parse_date(parts[1], tz) if len(parts) == 3 else None
    interval = Duration.parse(parts[-1])
    if interval.is_zero():
        # A zero interval would make an endless cycle fire in a tight loop.
        raise TimerInvalid(f"{text!r} is not a usable cycle: the interval must not be zero")
    return Cycle(repetitions=count, interval=interval, start=start)


def check(kind: str, text: str) -> None:
    """Raise TimerInvalid unless ``text`` is a valid value of the timer ``kind``."""
    if kind == "date":
        parse_date(text, UTC)
    elif kind == "duration":
        parse_duration(text)
    elif kind == "cycle":
        parse_cycle(text, UTC)
    else:
        raise TimerInvalid(f"unknown timer kind {kind!r}: expected one of {', '.join(KINDS)}")


def first_due(kind: str, value: str, now: datetime, tz: tzinfo) -> tuple[datetime, int | None]:
    """Return the first due moment (aware UTC) and the repetitions left after it."""
    _require_aware(now)
    check(kind, value)
    if kind == "date":
        return parse_date(value, tz), 0
    if kind == "duration":
        return _advance(parse_duration(value), now, tz, value), 0
    cycle = parse_cycle(value, tz)
    remaining = None if cycle.repetitions is None else cycle.repetitions - 1
    if cycle.start is not None:
        # A start in the past is kept on purpose: the caller fires overdue timers.
        return cycle.start, remaining
    return _advance(cycle.interval, now, tz, value), remaining


def next_due(cycle_text: str, previous_due: datetime, tz: tzinfo) -> datetime:
    """Return the cycle's next due moment (aware UTC): previous_due plus the interval."""
    _require_aware(previous_due)
    return _advance(parse_cycle(cycle_text, tz).interval, previous_due, tz, cycle_text)


def _advance(duration: Duration, moment: datetime, tz: tzinfo, text: str) -> datetime:
    """Add a duration in the settings timezone so months and days follow its calendar."""
    try:
        return duration.add_to(moment.astimezone(tz)).astimezone(UTC)
    except (OverflowError, ValueError) as exc:  # e.g. P9999Y lands after year 9999
        raise TimerInvalid(f"{text!r} moves the timer out of the supported range: {exc}") from exc


def _require_aware(moment: datetime) -> None:
    """Naive moments are ambiguous; callers must pass timezone-aware values."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} must be timezone-aware")
