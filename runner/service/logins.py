"""Web sign-in sessions kept on the server, so that signing out and a new password end them.

A sign-in gets a random token (256 bits); the browser's signed session cookie carries it,
and only its SHA-256 is stored. The cookie alone proves nothing: a session that was closed
(sign-out), ended (new password, disabled user) or idle for ``IDLE_LIMIT`` no longer
finds its row, so a copied or replayed cookie signs no one in.

    token = logins.open_session(runner, "lan", now)     # at sign-in
    logins.session_username(runner, token, now)         # "lan", or None
    logins.close_session(runner, token)                 # at sign-out
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from runner.store.models import LoginSession

if TYPE_CHECKING:
    from runner.service.unit import Core

IDLE_LIMIT = timedelta(days=30)
SEEN_STEP = timedelta(minutes=5)  # NOTE: last_seen_at is written at most this often, not per request


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(runner: Core, username: str, now: datetime) -> str:
    """A new session for a user who just proved who they are; its token (kept by the browser only)."""
    token = secrets.token_urlsafe(32)
    with runner.db.unit() as s:
        # the user's sessions left idle (a browser closed without signing out) go now
        s.execute(
            delete(LoginSession).where(LoginSession.username == username, LoginSession.last_seen_at < now - IDLE_LIMIT)
        )
        s.add(LoginSession(token_hash=_hash(token), username=username, created_at=now, last_seen_at=now))
    return token


def session_username(runner: Core, token: str, now: datetime) -> str | None:
    """Whose live session ``token`` is, or None (closed, ended, idle too long or never issued)."""
    if not token:
        return None
    with runner.db.read() as s:
        row = s.get(LoginSession, _hash(token))
        if row is None or row.last_seen_at < now - IDLE_LIMIT:
            return None
        username, seen = row.username, row.last_seen_at
    if now - seen >= SEEN_STEP:
        with runner.db.unit() as s:
            s.execute(update(LoginSession).where(LoginSession.token_hash == _hash(token)).values(last_seen_at=now))
    return username


def close_session(runner: Core, token: str) -> None:
    """End one session (sign-out)."""
    with runner.db.unit() as s:
        s.execute(delete(LoginSession).where(LoginSession.token_hash == _hash(token)))


def end_sessions(s: Session, username: str, *, keep: str | None = None) -> None:
    """End every session of a user (in the caller's unit of work), except ``keep``'s token."""
    query = delete(LoginSession).where(LoginSession.username == username)
    if keep:
        query = query.where(LoginSession.token_hash != _hash(keep))
    s.execute(query)
