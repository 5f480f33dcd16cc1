"""Alembic environment of the old single history (0001-0005), kept to build databases as it left them."""

from __future__ import annotations

from alembic import context

from runner.store.database import make_engine


def run() -> None:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        context.configure(connection=conn, render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
