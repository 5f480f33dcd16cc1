"""Clocks: the wall clock by default, a persisted virtual clock for demos and tests."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

from runner.errors import Invalid
from runner.model import timeparse


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


# NOTE: a clock run's thread moves a virtual clock while request threads catch it up with the
# database; one lock for every clock (not one each: scripts copy the clock with their data).
_MOVING = threading.Lock()


class FixedClock:
    """A clock that moves only when told to; the virtual clock keeps one in the database."""

    def __init__(self, start: datetime):
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        """Move to a moment (never backwards)."""
        moment = moment.astimezone(UTC)
        with _MOVING:
            if moment < self._now:
                raise Invalid(f"the clock cannot go back from {self._now.isoformat()} to {moment.isoformat()}")
            self._now = moment

    def catch_up(self, moment: datetime) -> None:
        """Move to a moment if it is later; an earlier one is no error (another thread got further)."""
        moment = moment.astimezone(UTC)
        with _MOVING:
            if moment > self._now:
                self._now = moment

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new time."""
        self.set(self._now + delta)
        return self._now


_SPAN = re.compile(r"(\d+)\s*(w|d|h|m|s)", re.I)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_span(text: str) -> timedelta:
    """'3d', '1h30m', '2w' or an ISO 8601 duration such as 'PT30M' → timedelta."""
    text = text.strip()
    if text.upper().startswith("P"):
        duration = timeparse.parse_duration(text)
        start = datetime(2000, 1, 1, tzinfo=UTC)
        return duration.add_to(start) - start
    parts = _SPAN.findall(text)
    if not parts or _SPAN.sub("", text).strip():
        raise Invalid(f"{text!r} is not a time span like 3d, 1h30m, 2w or PT30M")
    try:
        return timedelta(**{_UNITS[u.lower()]: int(n) for n, u in parts})
    except OverflowError:
        raise Invalid(f"{text!r} is a longer time span than the clock can hold") from None
