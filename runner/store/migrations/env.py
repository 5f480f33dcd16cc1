"""Alembic environment: migrations run against the URL the runner gives, or RUNNER_DATABASE_URL.

The tables compared by autogenerate are those of the modules ``runner.store.schema`` lists
for the chosen branches (``config.attributes["models"]``; the core's when run without it).
On SQLite, foreign keys are not enforced while the migrations rebuild tables (batch mode
drops and re-creates a table that others refer to); ``PRAGMA foreign_key_check`` then
proves that every reference still holds before the transaction commits.
"""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import Connection, text

from runner.settings import Settings
from runner.store.database import make_engine
from runner.store.models import Base
from runner.store.schema import CORE

config = context.config


def _foreign_keys(conn: Connection, state: str) -> None:
    """SQLite's foreign_keys pragma, set on the DBAPI connection outside any transaction."""
    raw = conn.connection.dbapi_connection
    assert raw is not None, "an open connection has its DBAPI connection"
    raw.execute(f"PRAGMA foreign_keys={state}")


def run() -> None:
    for module in config.attributes.get("models", CORE.models):
        importlib.import_module(module)
    url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # NOTE: outside any transaction: inside one SQLite ignores the pragma
            _foreign_keys(conn, "OFF")
        try:
            _migrate(conn, check_keys=sqlite)
        finally:
            if sqlite:
                _foreign_keys(conn, "ON")
    engine.dispose()


def _migrate(connection, *, check_keys: bool = False) -> None:
    context.configure(
        connection=connection, target_metadata=Base.metadata, render_as_batch=connection.dialect.name == "sqlite"
    )
    with context.begin_transaction():
        context.run_migrations()
        if check_keys:
            broken = connection.execute(text("PRAGMA foreign_key_check")).all()
            if broken:
                raise RuntimeError(f"the migration left references that point nowhere: {broken}")


run()
