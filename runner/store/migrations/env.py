"""Alembic environment: migrations run against the URL the runner gives, or RUNNER_DATABASE_URL."""

from __future__ import annotations

from alembic import context

import runner.crm.models  # noqa: F401 - the domain tables join Base.metadata
from runner.settings import Settings
from runner.store.database import make_engine
from runner.store.models import Base

config = context.config


def run() -> None:
    url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        _migrate(conn)
    engine.dispose()


def _migrate(connection) -> None:
    context.configure(
        connection=connection, target_metadata=Base.metadata, render_as_batch=connection.dialect.name == "sqlite"
    )
    with context.begin_transaction():
        context.run_migrations()


run()
