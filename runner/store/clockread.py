"""The persisted virtual clock read straight from the database driver, for ``runner clock show``.

NOTE: importing SQLAlchemy (and the models) costs more than the whole command may take, so
this reads the one row with the driver itself: ``sqlite3`` for a SQLite file, ``psycopg``
(imported by name only then) for PostgreSQL. Anything else, or a database without the row
yet, answers None and the caller goes the long way (the runner creates the row).
"""

from __future__ import annotations

import importlib
import sqlite3
from datetime import UTC, datetime
from urllib.parse import unquote

QUERY = "SELECT now FROM clock WHERE name = 'virtual'"


def virtual_now(url: str) -> datetime | None:
    """The virtual clock's persisted time, or None when this reader cannot tell (see the module's note)."""
    try:
        if url.startswith("sqlite:///") and "?" not in url and url != "sqlite:///:memory:":
            value = _sqlite(unquote(url.removeprefix("sqlite:///")))
        elif url.startswith(("postgresql+psycopg://", "postgresql://")) and "?" not in url:
            value = _postgres("postgresql://" + url.split("://", 1)[1])
        else:
            return None
    except Exception:  # noqa: BLE001 - no table yet, no file, a driver's own error: the long way says it properly
        return None
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sqlite(path: str) -> object:
    # NOTE: read-only: a missing file must not be created by a command that only looks.
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute(QUERY).fetchone()
    conn.close()
    return row[0] if row else None


def _postgres(conninfo: str) -> object:
    psycopg = importlib.import_module("psycopg")
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        row = conn.execute(QUERY).fetchone()
    return row[0] if row else None
