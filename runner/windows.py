"""Sending windows: when an outbox message that carries a window class may go out.

A handler marks a message with a window class (``ctx.send(..., window=QUIET_HOURS)``); the
runner knows what a class means, the handler (the product) decides which of its messages
belong to it. The one class so far, ``quiet_hours``, is the daily sending window of
``RUNNER_SENDING_WINDOW`` (e.g. ``08:00-20:00`` in the business time zone): a message due
outside it is due at the next opening instead.

A window is half-open, ``[opens, closes)``: at 08:00 a message goes, at 20:00 it waits for
08:00 the next day. A window may wrap midnight (``22:00-06:00``). ``next_open`` is a pure
function; days on which nothing is sent (the business calendar's Sundays, holidays and days
off) come in as a ``closed(day)`` predicate, so the calendar plugs in without this module
knowing it (``Core.windows_in`` gives the windows closed on the stored calendar's days off).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from runner.errors import Invalid

QUIET_HOURS = "quiet_hours"  # the customer-facing class: sent only inside the sending window
CLASSES = frozenset({QUIET_HOURS})
MAX_DAYS = 400  # a calendar that closes every day for longer than this is a mistake, not a wait

_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*$")

ClosedDay = Callable[[date], bool]


def never_closed(day: date) -> bool:
    """The default calendar: every day has its sending window."""
    return False


@dataclass(frozen=True)
class SendingWindow:
    """A daily window ``[opens, closes)`` in the business zone; it wraps midnight when ``closes < opens``."""

    opens: time
    closes: time

    @classmethod
    def parse(cls, text: str) -> SendingWindow:
        """``"08:00-20:00"`` as a window; Invalid says what is wrong."""
        match = _SPAN.match(text)
        if match is None:
            raise Invalid(f"expected a daily window such as 08:00-20:00, not {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise Invalid(f"{text!r} has a time of day that does not exist (00:00 to 23:59)")
        if (h1, m1) == (h2, m2):
            raise Invalid(f"{text!r} opens and closes at the same time; leave the setting empty for no window")
        return cls(time(h1, m1), time(h2, m2))

    def __str__(self) -> str:
        return f"{self.opens:%H:%M}-{self.closes:%H:%M}"

    def contains(self, moment: time) -> bool:
        """Whether a wall-clock time of day lies inside the window."""
        if self.opens < self.closes:
            return self.opens <= moment < self.closes
        return moment >= self.opens or moment < self.closes


def next_open(moment: datetime, window: SendingWindow, tz: tzinfo, closed: ClosedDay = never_closed) -> datetime:
    """The earliest moment at or after ``moment`` inside the window on a day that is not closed.

    NOTE: a wrapping window's night belongs to the day it opened on: 02:00 of a window
    22:00-06:00 is sendable only if the previous day is open.
    """
    if moment.tzinfo is None:
        raise Invalid(f"{moment.isoformat()} has no time zone; the runner's moments are aware")
    local = moment.astimezone(tz)
    for _ in range(MAX_DAYS * 2):
        if window.contains(local.time()) and not closed(_window_day(local, window)):
            return local.astimezone(moment.tzinfo)
        local = _next_opening(local, window, tz)
    raise Invalid(f"no sending window opens within {MAX_DAYS} days of {moment.isoformat()}")


def _window_day(local: datetime, window: SendingWindow) -> date:
    """The day whose window ``local`` falls in (the day before, in a wrapping window's small hours)."""
    wraps = window.closes < window.opens
    if wraps and local.time() < window.closes:
        return local.date() - timedelta(days=1)
    return local.date()


def _next_opening(local: datetime, window: SendingWindow, tz: tzinfo) -> datetime:
    """The next time the window opens, strictly after ``local``."""
    today = datetime.combine(local.date(), window.opens, tzinfo=tz)
    if today > local:
        return today
    return datetime.combine(local.date() + timedelta(days=1), window.opens, tzinfo=tz)


@dataclass(frozen=True)
class Windows:
    """The runner's sending windows: when a message of each class may go out.

    ``closed`` is the calendar seam: the days on which no window opens (none by default).
    """

    tz: tzinfo
    quiet_hours: SendingWindow | None = None
    closed: ClosedDay = field(default=never_closed)

    def due(self, window: str | None, moment: datetime) -> datetime:
        """When a message of class ``window`` wanted at ``moment`` may go out (``moment`` if at once)."""
        check_class(window)
        if window is None or self.quiet_hours is None:
            return moment
        return next_open(moment, self.quiet_hours, self.tz, self.closed)


def check_class(window: str | None) -> None:
    """Refuse a window class the runner does not know (a handler's mistake, named)."""
    if window is not None and window not in CLASSES:
        raise Invalid(f"unknown sending window {window!r}; known: {', '.join(sorted(CLASSES))}")
