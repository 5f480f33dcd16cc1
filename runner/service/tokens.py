"""API tokens: bearer tokens of one user for the REST API, shown once, stored as a SHA-256.

A token is 256 random bits, so a fast hash is enough and lookups stay indexed. A token works
while it is not revoked and its user is active. Callers use it through ``runner.service.accounts``.

    token = tokens.issue_token(runner, "lan", label="zalo bot")  # shown once
    tokens.verify_token(runner, token)                           # the user dict, or None
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from runner.errors import Missing
from runner.service import directory
from runner.store.models import Account, ApiToken, User

if TYPE_CHECKING:
    from runner.service.unit import Core

TOKEN_PREFIX = "rt_"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(runner: Core, username: str, *, label: str = "", now: datetime | None = None) -> str:
    """A new API token for an active user; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with runner.db.unit() as s:
        directory.active_user(s, username)
        s.add(
            ApiToken(
                username=username,
                token_hash=_token_hash(token),
                prefix=token[:10],
                label=label,
                created_at=now or datetime.now(UTC),
            )
        )
    return token


def verify_token(runner: Core, token: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The active user a live token belongs to (and note its use), or None."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    with runner.db.unit() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).first()
        if row is None or row.revoked_at is not None:
            return None
        user = s.get(User, row.username)
        if user is None or not user.active:
            return None
        row.last_used_at = now or datetime.now(UTC)
        return directory.user_view(user, s.get(Account, row.username))


def list_tokens(runner: Core, username: str) -> list[dict[str, Any]]:
    """A user's tokens (never the tokens themselves): id, prefix, label, dates, newest first."""
    with runner.db.read() as s:
        rows = s.scalars(
            select(ApiToken)
            .where(ApiToken.username == username)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
        return [
            {
                "id": t.id,
                "prefix": t.prefix,
                "label": t.label,
                "created_at": t.created_at,
                "last_used_at": t.last_used_at,
                "revoked_at": t.revoked_at,
            }
            for t in rows
        ]


def revoke_token(runner: Core, token_id: int, *, now: datetime | None = None) -> None:
    """Stop a token from working (kept for the record)."""
    with runner.db.unit() as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            raise Missing(f"API token {token_id} does not exist")
        if row.revoked_at is None:
            row.revoked_at = now or datetime.now(UTC)
