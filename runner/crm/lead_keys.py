"""Keys of website and landing-page forms (``POST /api/leads``): one per form, of a configured customer source.

    key_id, secret = lead_keys.create_key(runner, "Website", "trang dùng thử", origins=["https://easyedu.vn"])
    use = lead_keys.use_key(runner, secret)      # KeyUse(id, label, source, origins); KeyRefused, RateLimited
    lead_keys.revoke_key(runner, key_id)

The secret is shown once and stored as a SHA-256, as the staff API tokens are (``runner.service.tokens``):
256 random bits need no slow hash, and the lookup stays indexed. A lead key (``lk_…``) grants one thing,
posting leads of its own source; it is no staff API token (``rt_…``) and a staff token is no lead key.
Each key allows ``per_minute`` posts a minute, counted in its own row by one UPDATE, so concurrent posts
queue on the row lock and each sees the count the one before it left.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import case, select, update

from runner.crm.models import CustomerSource, LeadKey
from runner.errors import BadValue, Missing, RunnerError

if TYPE_CHECKING:
    from runner.service.runtime import Runner

KEY_PREFIX = "lk_"
PER_MINUTE = 30  # a person fills in a form in a minute or more; 30 a minute is a busy campaign, not a script
MAX_PER_MINUTE = 10_000
WINDOW = timedelta(minutes=1)


class KeyRefused(RunnerError):
    """Raised when a lead key is missing, unknown or revoked."""


class RateLimited(RunnerError):
    """Raised when a key has used up this minute's posts; ``retry_after`` says how long to wait."""

    def __init__(self, retry_after: timedelta):
        self.retry_after = retry_after
        super().__init__(f"too many posts with this key; retry in {max(1, int(retry_after.total_seconds()))} s")


@dataclass(frozen=True)
class KeyUse:
    """A live key as a post uses it: its id, label, source name and the web origins that may post with it."""

    id: int
    label: str
    source: str
    origins: tuple[str, ...]


def key_hash(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def clean_origins(lines: Iterable[str] | str) -> tuple[str, ...]:
    """Web origins (``https://easyedu.vn``, one per line or item), checked, lower case; ``BadValue`` names the field."""
    items = lines.splitlines() if isinstance(lines, str) else list(lines)
    found: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        parts = urlsplit(item)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise BadValue(f"field 'origins': {item[:100]!r} is not a web origin such as https://easyedu.vn")
        origin = f"{parts.scheme}://{parts.netloc.lower()}"
        if origin not in found:
            found.append(origin)
    return tuple(found)


def create_key(
    runner: Runner,
    source: str,
    label: str,
    *,
    origins: Iterable[str] | str = (),
    per_minute: int = PER_MINUTE,
    actor: str | None = None,
) -> tuple[int, str]:
    """A new key of the configured ``source``: (its id, the secret, returned once and never stored)."""
    label = (label or "").strip()
    if not label or len(label) > 200:
        raise BadValue("field 'label': what the key is for, 1 to 200 characters")
    if not 1 <= per_minute <= MAX_PER_MINUTE:
        raise BadValue(f"field 'per_minute': a whole number from 1 to {MAX_PER_MINUTE}")
    allowed = clean_origins(origins)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    with runner.db.unit() as s:
        source_id = s.scalar(select(CustomerSource.id).where(CustomerSource.name == (source or "").strip()))
        if source_id is None:
            raise BadValue(f"field 'source': {source!r} is not a configured customer source")
        row = LeadKey(
            source_id=source_id,
            label=label,
            key_hash=key_hash(secret),
            prefix=secret[:10],
            origins="\n".join(allowed),
            per_minute=per_minute,
            created_at=runner.now(),
            created_by=actor,
            window_posts=0,
        )
        s.add(row)
        s.flush()
        return row.id, secret


def list_keys(runner: Runner) -> list[dict[str, Any]]:
    """Every key (never the secret): id, prefix, label, source, origins, limit and dates, newest first."""
    with runner.db.read() as s:
        rows = s.execute(
            select(LeadKey, CustomerSource.name)
            .join(CustomerSource, CustomerSource.id == LeadKey.source_id)
            .order_by(LeadKey.created_at.desc(), LeadKey.id.desc())
        )
        return [
            {
                "id": k.id,
                "prefix": k.prefix,
                "label": k.label,
                "source": name,
                "origins": k.origins.split("\n") if k.origins else [],
                "per_minute": k.per_minute,
                "created_at": k.created_at,
                "created_by": k.created_by,
                "last_used_at": k.last_used_at,
                "revoked_at": k.revoked_at,
            }
            for k, name in rows
        ]


def revoke_key(runner: Runner, key_id: int) -> None:
    """Stop a key from working at once (the row stays, for the record and its posts)."""
    with runner.db.unit() as s:
        row = s.get(LeadKey, key_id)
        if row is None:
            raise Missing(f"lead key {key_id} does not exist")
        if row.revoked_at is None:
            row.revoked_at = runner.now()


def use_key(runner: Runner, secret: str | None) -> KeyUse:
    """The live key ``secret`` is, with this post counted; ``KeyRefused`` or ``RateLimited`` otherwise."""
    if not secret or not secret.startswith(KEY_PREFIX) or len(secret) > 100:
        raise KeyRefused("send the form's lead key: 'X-Lead-Key: lk_…' or 'Authorization: Bearer lk_…'")
    now = runner.now()
    fresh = LeadKey.window_start.is_(None) | (LeadKey.window_start <= now - WINDOW)
    with runner.db.unit() as s:
        row = s.execute(
            update(LeadKey)
            .where(LeadKey.key_hash == key_hash(secret), LeadKey.revoked_at.is_(None))
            .values(
                window_posts=case((fresh, 1), else_=LeadKey.window_posts + 1),
                window_start=case((fresh, now), else_=LeadKey.window_start),
                last_used_at=now,
            )
            .returning(
                LeadKey.id, LeadKey.label, LeadKey.source_id, LeadKey.origins, LeadKey.per_minute, LeadKey.window_posts
            )
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            raise KeyRefused("this lead key is unknown or revoked")
        started = s.scalar(select(LeadKey.window_start).where(LeadKey.id == row.id))
        source = s.scalar(select(CustomerSource.name).where(CustomerSource.id == row.source_id))
    if row.window_posts > row.per_minute:
        raise RateLimited((started or now) + WINDOW - now)
    return KeyUse(row.id, row.label, source or "", tuple(row.origins.split("\n")) if row.origins else ())


def allowed_origins(runner: Runner) -> set[str]:
    """The web origins some live key allows (a browser's preflight names no key, only its origin)."""
    with runner.db.read() as s:
        texts = s.scalars(select(LeadKey.origins).where(LeadKey.revoked_at.is_(None), LeadKey.origins != ""))
        return {origin for text in texts for origin in text.split("\n")}


def sources(runner: Runner) -> list[str]:
    """The configured customer sources a key may be made for, in their order."""
    with runner.db.read() as s:
        return list(s.scalars(select(CustomerSource.name).order_by(CustomerSource.id)))
