"""Connection settings for many processes on one PostgreSQL: pool sizes, statement timeout, PgBouncer."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from runner.errors import Invalid
from runner.service.unit import pool_options
from runner.settings import Settings
from runner.store.database import PoolOptions, make_engine


def test_pool_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "RUNNER_DB_POOL_SIZE": "3",
            "RUNNER_DB_MAX_OVERFLOW": "0",
            "RUNNER_DB_POOL_TIMEOUT": "7.5",
            "RUNNER_DB_STATEMENT_TIMEOUT": "2.5",
            "RUNNER_DB_PREPARED_STATEMENTS": "false",
        }
    )
    assert pool_options(settings) == PoolOptions(
        size=3, max_overflow=0, timeout=7.5, statement_timeout=2.5, prepared_statements=False
    )
    assert pool_options(Settings.from_env({})) == PoolOptions()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RUNNER_DB_POOL_SIZE", "0"),
        ("RUNNER_DB_POOL_SIZE", "many"),
        ("RUNNER_DB_MAX_OVERFLOW", "-1"),
        ("RUNNER_DB_STATEMENT_TIMEOUT", "-5"),
        ("RUNNER_DB_PREPARED_STATEMENTS", "perhaps"),
    ],
)
def test_a_bad_pool_setting_is_refused_naming_its_variable(variable: str, value: str) -> None:
    with pytest.raises(Invalid, match=variable):
        Settings.from_env({variable: value})


def test_the_statement_timeout_joins_the_urls_own_options() -> None:
    url = "postgresql+psycopg://u@h/db?options=-csearch_path%3Dt_1"
    assert PoolOptions(statement_timeout=1.5).connect_args(url) == {
        "options": "-csearch_path=t_1 -c statement_timeout=1500"
    }
    assert PoolOptions().connect_args(url) == {}
    assert PoolOptions(prepared_statements=False).connect_args(url) == {"prepare_threshold": None}


@pytest.mark.postgres
def test_the_pool_has_the_configured_size(pg_url: str) -> None:
    engine = make_engine(pg_url, pool=PoolOptions(size=2, max_overflow=1, timeout=3))
    try:
        assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._timeout) == (2, 1, 3)  # type: ignore[attr-defined]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_statement_past_the_timeout_is_cancelled_by_the_server_and_the_schema_is_kept(pg_url: str) -> None:
    engine = make_engine(pg_url, pool=PoolOptions(statement_timeout=0.2))
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.text("show statement_timeout")) == "200ms"
            assert conn.scalar(sa.text("select count(*) from instances")) == 0  # the test's own schema
            with pytest.raises(OperationalError) as caught:
                conn.execute(sa.text("select pg_sleep(30)"))
            assert caught.value.orig.sqlstate == "57014"  # type: ignore[union-attr]  # query_canceled
    finally:
        engine.dispose()


def _prepared_after_repeats(engine: sa.Engine) -> int:
    """Server-side prepared statements on the connection after one query ran ten times."""
    with engine.connect() as conn:
        for n in range(10):
            conn.execute(sa.text("select count(*) from instances where business_key = :k"), {"k": f"KH-{n}"})
        return int(conn.scalar(sa.text("select count(*) from pg_prepared_statements")))


@pytest.mark.postgres
def test_without_prepared_statements_nothing_is_prepared_on_the_server(pg_url: str) -> None:
    """What PgBouncer in transaction mode needs; by default psycopg prepares a statement after 5 runs."""
    default, off = make_engine(pg_url), make_engine(pg_url, pool=PoolOptions(prepared_statements=False))
    try:
        assert _prepared_after_repeats(default) >= 1
        assert _prepared_after_repeats(off) == 0
    finally:
        default.dispose()
        off.dispose()
