"""The stored business calendar: read (cached by version) where timers are computed, edited by admins.

Timers count business time in the engine step, inside a unit of work. ``CalendarCache``
keeps the last calendar built from the database with its row version; a unit asks for the
version once (one small read, and only when a business-time timer needs the calendar) and
rebuilds the calendar only when an edit moved it on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import date, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from runner.errors import Invalid, NotFound
from runner.model import worktime
from runner.model.worktime import BusinessCalendar
from runner.store.models import CalendarDayOff, CalendarRow

NAME = "default"
NOTE_LENGTH = 200


class CalendarCache:
    """The last calendar read from the database, keyed by its row version (shared by the units)."""

    def __init__(self, tz: tzinfo):
        self.tz = tz
        self._lock = threading.Lock()
        self._cached: BusinessCalendar | None = None

    def current(self, s: Session) -> BusinessCalendar:
        """The stored calendar as of this session's transaction; the default one if none is stored."""
        version = s.scalar(select(CalendarRow.row_version).where(CalendarRow.name == NAME))
        if version is None:
            return worktime.default_calendar(self.tz)
        with self._lock:
            cached = self._cached
        if cached is not None and cached.version == version:
            return cached
        fresh = load(s, self.tz)
        with self._lock:
            self._cached = fresh
        return fresh

    def source(self, s: Session) -> Callable[[], BusinessCalendar]:
        """A function giving the calendar to one unit of work: read on first call, then kept."""
        kept: list[BusinessCalendar] = []

        def calendar() -> BusinessCalendar:
            if not kept:
                kept.append(self.current(s))
            return kept[0]

        return calendar


def load(s: Session, tz: tzinfo) -> BusinessCalendar:
    """The stored calendar (the default one if none is stored)."""
    row = s.get(CalendarRow, NAME)
    if row is None:
        return worktime.default_calendar(tz)
    days = s.scalars(select(CalendarDayOff.day).where(CalendarDayOff.calendar == NAME))
    cal = BusinessCalendar.from_text(tz, row.hours, row.country, days)
    return BusinessCalendar(cal.tz, cal.hours, cal.country, cal.days_off, row.row_version)


def days_off(s: Session) -> list[dict[str, Any]]:
    """The company days off with their notes, in date order."""
    rows = s.scalars(select(CalendarDayOff).where(CalendarDayOff.calendar == NAME).order_by(CalendarDayOff.day))
    return [{"day": r.day.isoformat(), "note": r.note} for r in rows]


def _row(s: Session, tz: tzinfo, now, actor: str) -> CalendarRow:
    """The stored calendar's row, created from the default calendar on the first edit."""
    row = s.get(CalendarRow, NAME)
    if row is None:
        default = worktime.default_calendar(tz)
        row = CalendarRow(name=NAME, hours=default.as_text(), country=default.country, updated_at=now, updated_by=actor)
        s.add(row)
        s.flush()
    return row


def save(s: Session, tz: tzinfo, now, hours: Mapping[str, str], country: str | None, actor: str) -> BusinessCalendar:
    """Replace the working hours and the holiday country; a bad value is Invalid naming its field."""
    country = (country or "").strip().upper() or None
    cal = BusinessCalendar.from_text(tz, hours, country)  # validates every weekday first
    if country is not None:
        worktime.public_holidays(country, now.year)  # an unknown country is Invalid, naming the field
    row = _row(s, tz, now, actor)
    row.hours, row.country, row.updated_at, row.updated_by = cal.as_text(), country, now, actor
    s.flush()
    return load(s, tz)


def add_day_off(s: Session, tz: tzinfo, now, day: date, note: str, actor: str) -> None:
    """Add a company day off (or change its note)."""
    if len(note) > NOTE_LENGTH:
        raise Invalid(f"note: at most {NOTE_LENGTH} characters")
    row = _row(s, tz, now, actor)
    found = s.get(CalendarDayOff, (NAME, day))
    if found is None:
        s.add(CalendarDayOff(calendar=NAME, day=day, note=note))
    else:
        found.note = note
    _touch(row, now, actor)


def remove_day_off(s: Session, tz: tzinfo, now, day: date, actor: str) -> None:
    """Remove a company day off; one that is not there is NotFound."""
    found = s.get(CalendarDayOff, (NAME, day))
    if found is None:
        raise NotFound(f"day: {day.isoformat()} is not a company day off")
    s.delete(found)
    _touch(_row(s, tz, now, actor), now, actor)


def _touch(row: CalendarRow, now, actor: str) -> None:
    # NOTE: the row's version moves with every day off too, which is what the cache keys on.
    row.updated_at, row.updated_by = now, actor
    flag_modified(row, "hours")
