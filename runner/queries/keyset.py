"""Keyset (cursor) paging: a page is read from where the last one stopped, never by OFFSET.

Every list orders by a non-null sort key and then a unique id, the columns that end the index
serving it. A cursor is an opaque token holding the (key, id) of a page's edge row; the next
page asks ``key >= k AND (key > k OR id > i)``, whose first half is an index range on both
SQLite and PostgreSQL (a row-value comparison is one on PostgreSQL only).

    page = keyset.Window.of(limit=50, cursor=token)  # Invalid naming ``limit``/``cursor`` on bad input
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_

from runner.errors import Invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows, and the cursors of the pages after and before it (None: none)."""

    rows: list[dict[str, Any]]
    next_cursor: str | None = None
    prev_cursor: str | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Window:
    """Which page to read: ``limit`` rows after (or, ``backward``, before) the edge ``key``/``id``."""

    list_name: str
    limit: int = DEFAULT_LIMIT
    key: datetime | None = None
    id: str | None = None
    backward: bool = False

    @classmethod
    def of(cls, list_name: str, limit: int | str | None = None, cursor: str | None = None) -> Window:
        """The window a caller asked for; Invalid naming ``limit`` or ``cursor`` when they are not usable."""
        size = _limit(limit)
        if not cursor:
            return cls(list_name, size)
        backward, key, row_id = decode(list_name, cursor)
        return cls(list_name, size, key, row_id, backward)

    def bound(self, key: Any, row_id: Any, *, descending: bool = False) -> ColumnElement[bool] | None:
        """The SQL condition for rows past the cursor in this window's direction (None on a first page)."""
        if self.key is None:
            return None
        later = self.backward == descending  # walking toward larger keys
        if later:
            return and_(key >= self.key, or_(key > self.key, row_id > self.id))
        return and_(key <= self.key, or_(key < self.key, row_id < self.id))

    def order(self, key: Any, row_id: Any, *, descending: bool = False) -> tuple[Any, Any]:
        """ORDER BY terms that read this window's rows from its edge outward."""
        if self.backward != descending:
            return key.desc(), row_id.desc()
        return key.asc(), row_id.asc()

    def page(self, rows: list[dict[str, Any]], key_name: str) -> Page:
        """The page from up to ``limit + 1`` rows read in window order (the extra one says there are more)."""
        more = len(rows) > self.limit
        rows = rows[: self.limit]
        if self.backward:
            rows.reverse()
        if not rows:
            return Page([], None, None)
        first, last = (
            encode(self.list_name, rows[0][key_name], rows[0]["id"], backward=True),
            encode(self.list_name, rows[-1][key_name], rows[-1]["id"]),
        )
        if self.backward:
            return Page(rows, last, first if more else None)
        return Page(rows, last if more else None, first if self.key is not None else None)


def _limit(value: int | str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise Invalid(f"limit: {value!r} is not a whole number") from None
    if not 1 <= size <= MAX_LIMIT:
        raise Invalid(f"limit: {size} is not between 1 and {MAX_LIMIT}")
    return size


def encode(list_name: str, key: datetime, row_id: str, *, backward: bool = False) -> str:
    """The opaque cursor of a row's (key, id) in ``list_name``."""
    text = json.dumps([list_name, "<" if backward else ">", key.isoformat(), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(list_name: str, cursor: str) -> tuple[bool, datetime, str]:
    """(backward, key, id) of a cursor; Invalid naming ``cursor`` for anything not made by ``encode``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, direction, key, row_id = json.loads(raw)
        at = datetime.fromisoformat(key)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise Invalid("cursor: not a cursor this list gave out") from None
    if name != list_name or direction not in ("<", ">") or not isinstance(row_id, str) or at.tzinfo is None:
        raise Invalid("cursor: not a cursor this list gave out")
    return direction == "<", at, row_id
