"""Outbox messages and their sending windows (``runner.windows``): deferring, and the next due one.

A message with a window class is written due at its window's next opening (``jobs``). These
two keep that true when time passes in jumps: ``defer_shut`` moves messages that are due while
their window is shut (the worker was down, the virtual clock jumped) on to the opening before
the outbox claims anything, and ``next_pending`` tells the virtual clock where to stop so that
a message goes out at its due time (a deferred one at the opening), not whenever the clock run
ends. A window is shut on the business calendar's days off too (``Core.windows_in``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Select, Update, select, update

from runner.service import calendars
from runner.service.unit import Core, Unit
from runner.store.models import OutboxMessage
from runner.windows import CLASSES

log = logging.getLogger(__name__)


def defer_statement(core: Core, window: str, now: datetime, opening: datetime) -> Update:
    """The UPDATE that moves the due messages of ``window`` on to ``opening`` (an index on the due rows).

    NOTE: no SKIP LOCKED subquery: a row a claimer holds is waited for (one short transaction),
    then skipped, as it is ``sending`` by then; the join a subquery needs read the whole table.
    """
    return (
        update(OutboxMessage)
        .where(OutboxMessage.state == "pending", OutboxMessage.due_at <= now, OutboxMessage.send_window == window)
        .values(due_at=opening)
        .execution_options(synchronize_session=False)
    )


def defer_shut(core: Core) -> int:
    """Move due messages whose window is shut now on to its opening; returns how many moved.

    Shut: outside the daily window, or on a day the business calendar does not work (read once
    per pass, so an admin's new day off holds from the next pass on).
    NOTE: all of them get the same opening (the next one after now), so one UPDATE does it.
    """
    if core.daily_windows.quiet_hours is None:
        return 0  # no window configured: nothing is ever shut
    now, moved = core.now(), 0
    with core.db.read() as s:
        windows = core.windows_in(core.calendars.source(s))
        openings = {window: windows.due(window, now) for window in sorted(CLASSES)}
    for window, opening in openings.items():
        if opening > now:
            with core.db.unit() as s:
                result = s.execute(defer_statement(core, window, now, opening))
            moved += cast(CursorResult[Any], result).rowcount
    if moved:
        log.info("outbox: %s message(s) wait for their sending window", moved)
    return moved


def defer_to_calendar(unit: Unit) -> int:
    """After a calendar edit: move waiting messages due on a day it shuts on to the next opening.

    In the edit's unit of work, so the customer's timeline shows when they will go at once, not
    when the day comes. NOTE: one UPDATE per distinct due time (waiting messages gather at the
    openings); a day reopened brings nothing forward, as the time a message first wanted is not kept.
    """
    core, s = unit.core, unit.session
    if core.daily_windows.quiet_hours is None:
        return 0
    s.flush()  # the edit, so that the calendar below is the new one
    edited = calendars.load(s, core.settings.tz)
    windows = core.windows_in(lambda: edited)
    waiting = select(OutboxMessage.send_window, OutboxMessage.due_at).where(
        OutboxMessage.state == "pending", OutboxMessage.due_at >= unit.now(), OutboxMessage.send_window.is_not(None)
    )
    moved = 0
    for window, due in s.execute(waiting.distinct()).all():
        later = windows.due(window, due)
        if later != due:
            statement = (
                update(OutboxMessage)
                .where(
                    OutboxMessage.state == "pending", OutboxMessage.send_window == window, OutboxMessage.due_at == due
                )
                .values(due_at=later)
                .execution_options(synchronize_session=False)
            )
            moved += cast(CursorResult[Any], s.execute(statement)).rowcount
    if moved:
        log.info("outbox: %s waiting message(s) moved past the calendar's new days off", moved)
    return moved


def next_pending_query(after: datetime | None = None) -> Select:
    """The due time of the earliest pending message (strictly after ``after``): ix_outbox_claim in order."""
    query = select(OutboxMessage.due_at).where(OutboxMessage.state == "pending")
    if after is not None:
        query = query.where(OutboxMessage.due_at > after)
    return query.order_by(OutboxMessage.due_at).limit(1)


def next_pending(core: Core, after: datetime | None = None) -> datetime | None:
    """When the earliest pending outbox message is due (strictly after ``after``).

    The virtual clock steps to it (``scheduler``), so every message goes out at its due time:
    at once, when its window opens, or when a retry's backoff is over.
    """
    with core.db.read() as s:
        return s.scalars(next_pending_query(after)).first()
