"""The failed-login slow-down, per account and per client address, counted atomically.

Each sign-in attempt first *reserves* itself: one ``UPDATE … SET failures = failures + 1
… RETURNING`` on the row of its address, then (unless the address must wait) on the row of
its account, in one short transaction, before any password is checked. Parallel attempts therefore queue on the row
lock and each sees the count the one before it left: when the count reaches the slow-down,
the attempts after it wait without a password check. A correct password then gives its
attempt back (``succeeded``). Every attempt counts, also one made while waiting, but only
an attempt that finds no wait sets a new one, so a wait always ends.

    wait = throttle.reserve(s, throttle.ACCOUNT, "lan", now)   # timedelta(0): go ahead
    throttle.succeeded(s, throttle.ACCOUNT, "lan")              # the password was right

Rows are keyed by a SHA-256 of the username or address, so a username of any length or
content (also one that does not exist, which is throttled the same way) fits the column.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, case, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from runner.store.models import LoginThrottle

FIRST_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
FORGET_AFTER = timedelta(days=1)  # NOTE: longer than MAX_DELAY, so forgetting never ends a wait early


@dataclass(frozen=True)
class Rule:
    """What is counted (``kind``) and how many failures in a row are free."""

    kind: str
    free: int


# NOTE: the fifth failure in a row on one account starts its slow-down.
ACCOUNT = Rule("account", free=4)
# A school's staff may share one address behind NAT, so an address gets more free tries; it
# stops one address from trying one password on many accounts (or on made-up usernames).
ADDRESS = Rule("address", free=20)


def lockout_delay(failures: int, free: int = ACCOUNT.free) -> timedelta:
    """How long to wait after ``failures`` failed attempts in a row (pure function).

    ``free`` cost nothing; the next waits 30 s, each further one doubles it, up to 15 minutes.
    """
    if failures <= free:
        return timedelta(0)
    return min(FIRST_DELAY * 2 ** min(failures - free - 1, 16), MAX_DELAY)


def digest(subject: str) -> str:
    """The row key of a username or address."""
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()


def _where(rule: Rule, subject: str):
    return (LoginThrottle.kind == rule.kind) & (LoginThrottle.digest == digest(subject))


def reserve(s: Session, rule: Rule, subject: str, now: datetime) -> timedelta:
    """Count one attempt; how long it must wait (``timedelta(0)``: check the password now).

    NOTE: the UPDATE holds the row lock (PostgreSQL) or the write lock (SQLite's BEGIN
    IMMEDIATE) until the caller's transaction ends, so setting the wait after it is atomic.
    """
    insert = (postgresql if s.get_bind().dialect.name == "postgresql" else sqlite).insert
    s.execute(
        insert(LoginThrottle)
        .values(kind=rule.kind, digest=digest(subject), failures=0, last_attempt_at=now)
        .on_conflict_do_nothing()
    )
    stale = LoginThrottle.last_attempt_at < now - FORGET_AFTER
    failures, locked_until = s.execute(
        update(LoginThrottle)
        .where(_where(rule, subject))
        .values(failures=case((stale, 1), else_=LoginThrottle.failures + 1), last_attempt_at=now)
        .returning(LoginThrottle.failures, LoginThrottle.locked_until)
        .execution_options(synchronize_session=False)
    ).one()
    if locked_until is not None and locked_until > now:
        return locked_until - now
    delay = lockout_delay(failures, rule.free)
    if delay:
        s.execute(
            update(LoginThrottle)
            .where(_where(rule, subject))
            .values(locked_until=now + delay)
            .execution_options(synchronize_session=False)
        )
    return timedelta(0)


def succeeded(s: Session, rule: Rule, subject: str) -> None:
    """A reserved attempt had the right password: an account starts afresh, an address gets it back."""
    values: dict[str, Any]
    if rule is ACCOUNT:
        values = {"failures": 0, "locked_until": None}
    else:  # NOTE: other failures from the same address still count (one staff member's success
        # must not wipe out someone else's guesses from there)
        left = LoginThrottle.failures - 1
        values = {"failures": left, "locked_until": case((left <= rule.free, None), else_=LoginThrottle.locked_until)}
    s.execute(
        update(LoginThrottle).where(_where(rule, subject)).values(**values).execution_options(synchronize_session=False)
    )


def unlock(s: Session, rule: Rule, subject: str) -> bool:
    """Forget the failures of an account or address (an admin's decision); False when there were none."""
    result = cast(
        CursorResult[Any],
        s.execute(
            update(LoginThrottle)
            .where(_where(rule, subject) & (LoginThrottle.failures > 0))
            .values(failures=0, locked_until=None)
            .execution_options(synchronize_session=False)
        ),
    )
    return bool(result.rowcount)


def state(s: Session, rule: Rule, subject: str) -> tuple[int, datetime | None]:
    """Failures in a row and the end of the current wait (None: no wait) of an account or address."""
    row = s.get(LoginThrottle, (rule.kind, digest(subject)))
    return (row.failures, row.locked_until) if row is not None else (0, None)
