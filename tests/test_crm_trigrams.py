"""Customer search on SQLite through the FTS5 trigram index of crm 0020 (runner.crm.trigrams).

The index follows every write of ``customers`` (FTS5's own integrity check compares it with the
table), revision 0020 fills it from the customers already there, and the search statement the
CRM sends reads it: EXPLAIN QUERY PLAN at 10,000 customers names the virtual table and reads
``customers`` only by key or through the bounded window, and the work SQLite does (virtual
machine steps, counted, not timed) stays flat from 2,500 to 10,000 customers where the LIKE
scan that PostgreSQL's statement makes on SQLite grows with the table. The steps count the rows
SQLite handles, not the work inside FTS5 (its doclists grow with the customers who share a
trigram): bench/reads_crm.py times that.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from bench.crm_data import build
from runner.crm import customers as crm
from runner.crm import reads, trigrams, views
from runner.crm.models import Customer
from runner.registry import Registry
from runner.service.runtime import Runner
from runner.store import schema
from tests.conftest import make_runner
from tests.test_task_lists import _statements

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
SIZES = (2_500, 10_000)  # NOTE: both beyond trigrams.SCAN_ROWS, the window the scan reads


@pytest.mark.parametrize(
    "needle,indexed",
    [("abc", True), ("ab", False), ("", False), ("a%b_c", False), ("a%bcd", True), ("đức", True), ("0%_", False)],
)
def test_the_index_serves_three_characters_in_a_row_besides_like_wildcards(needle: str, indexed: bool) -> None:
    assert trigrams.searchable(needle) is indexed


def _integrity_check(runner: Runner) -> None:
    """FTS5 compares the index with ``customers`` (rank 1: the external content too); malformed if they differ."""
    with runner.db.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO customer_search(customer_search, rank) VALUES ('integrity-check', 1)")


def _indexed(runner: Runner, column: str, pattern: str) -> set[int]:
    with runner.db.engine.connect() as conn:
        return set(conn.scalars(sa.text(f"SELECT rowid FROM customer_search WHERE {column} LIKE :p"), {"p": pattern}))


def test_the_index_follows_every_write_of_the_customers(runner: Runner) -> None:
    with runner.db.unit() as s:
        crm.add_customer(s, "KH0001", "Trung tâm Sao Mai", phone="0912 345 678", now=NOW)
        crm.add_customer(s, "KH0002", "Nguyễn Văn Hùng", now=NOW)
    _integrity_check(runner)
    with runner.db.unit() as s:
        crm.update_fields(s, s.get(Customer, "KH0002"), {"name": "Trần Thị Bích", "phone": "+84 33 999 8888"})
        s.get(Customer, "KH0001").status = "Đang chăm sóc"  # not the name nor the phone: the index is left alone
    _integrity_check(runner)
    assert _indexed(runner, "search_name", "%hung%") == set()
    assert len(_indexed(runner, "search_phone", "%0339998888%")) == 1
    with runner.db.engine.begin() as conn:  # written in SQL, not by the ORM: the triggers see it all the same
        conn.exec_driver_sql("UPDATE customers SET search_name = 'sao bac' WHERE id = 'KH0001'")
        conn.exec_driver_sql("DELETE FROM customers WHERE id = 'KH0002'")
    _integrity_check(runner)
    assert [r["id"] for r in views.find_customers(runner, "sao bac")] == ["KH0001"]
    assert views.find_customers(runner, "0339998888") == []


def test_revision_0020_indexes_the_customers_already_there_and_its_downgrade_takes_the_triggers(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'before.db'}"
    schema.upgrade(url)
    config = schema.alembic_config(url)
    command.downgrade(config, "0019")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO customers (id, name, extra, created_at, search_name, search_phone)"
                " VALUES ('KH0009', 'Trường Kim Đồng', '{}', '2026-12-01 03:00:00', 'truong kim dong', '0281234567')"
            )
        command.upgrade(config, "heads")
        runner = make_runner(url, Registry())
        try:
            _integrity_check(runner)
            assert [r["id"] for r in views.find_customers(runner, "kim dong")] == ["KH0009"]
            assert len(_indexed(runner, "search_phone", "%1234567%")) == 1
        finally:
            runner.db.engine.dispose()
        command.downgrade(config, "0019")
        with engine.begin() as conn:  # no trigger is left writing to the table that is gone
            conn.exec_driver_sql("UPDATE customers SET search_name = 'kim dong 2'")
            triggers = conn.scalars(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all()
        assert not [t for t in triggers if t.startswith("customer_search")]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def companies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Runner]]:
    """SQLite companies of bench.crm_data at each of SIZES customers."""
    runners = {}
    for n in SIZES:
        url = f"sqlite:///{tmp_path_factory.mktemp('trigrams') / f'crm-{n}.db'}"
        schema.upgrade(url)
        engine = sa.create_engine(url)
        build(engine, n)
        engine.dispose()
        runners[n] = make_runner(url, Registry())
    yield runners
    for runner in runners.values():
        runner.db.engine.dispose()


def _rare(n: int) -> str:
    """A name only one customer of bench.crm_data at ``n`` has: 'Trung tâm Luyện thi Phương Nam <i>'."""
    return f"phuong nam {max(i for i in range(n // 2, n + 1) if i % 7 == 5 and i * 10 > n)}"


SEARCHES = {
    "a rare name": lambda n: _rare(n),
    "a phone with +84": lambda n: f"+84 9{n // 2:08d}",
    "a common name": lambda n: "trung tam",
    "a name with accents": lambda n: f"Đức Trí {n // 2 - n // 2 % 7 + 1}",
}


def _search_statement(runner: Runner, text: str) -> tuple[str, Any]:
    """The search statement ``views.find_customers`` sends for ``text``, with its parameters."""
    sent = _statements(runner, lambda: views.find_customers(runner, text))
    [found] = [(sql, params) for sql, params in sent if "search_name" in sql]
    return found


def _steps(runner: Runner, sql: str, params: Any) -> int:
    """Hundreds of SQLite virtual machine instructions the statement runs (deterministic, not a timing)."""
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0

    raw = runner.db.engine.raw_connection()
    try:
        driver: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
        driver.set_progress_handler(count, 100)
        try:
            driver.execute(sql, params).fetchall()
        finally:
            driver.set_progress_handler(None, 0)
    finally:
        raw.close()
    return counted[0]


@pytest.mark.parametrize("name", ["a rare name", "a phone with +84"])
def test_the_search_sqlite_plans_reads_the_trigram_index_not_the_customers_at_10k(
    companies: dict[int, Runner], name: str
) -> None:
    runner = companies[10_000]
    text = SEARCHES[name](10_000)
    assert len(views.find_customers(runner, text)) == 1
    sql, params = _search_statement(runner, text)
    with runner.db.engine.connect() as conn:
        plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
    assert any(re.fullmatch(r"SCAN customer_search VIRTUAL TABLE INDEX \d+:L\d+", line) for line in plan), plan
    # NOTE: customers is read by key or key range (SEARCH); the only SCAN is the walk of its
    # primary key (alias ``following``, OFFSET trigrams.SCAN_ROWS LIMIT 1) that ends the window.
    assert not [line for line in plan if re.match(r"SCAN customers\b", line)], plan
    walks = [line for line in plan if line.startswith("SCAN following")]
    assert walks and set(walks) == {"SCAN following USING COVERING INDEX sqlite_autoindex_customers_1"}, plan


@pytest.mark.parametrize("name", list(SEARCHES))
def test_a_search_does_the_same_work_at_2500_and_10k_customers(companies: dict[int, Runner], name: str) -> None:
    """The statement sent, run with a step counter at each size: at most 1.5 times the work for 4 times the rows."""
    steps = {n: _steps(companies[n], *_search_statement(companies[n], SEARCHES[name](n))) for n in SIZES}
    assert steps[10_000] <= 1.5 * steps[2_500], steps


def test_the_like_scan_alone_grows_with_the_table_so_the_step_count_tells(companies: dict[int, Runner]) -> None:
    """PostgreSQL's statement (no trigram table) on SQLite: a rare name costs what the table holds."""
    steps = {}
    for n, runner in companies.items():
        query = reads.search_query(_rare(n), dialect="postgresql")
        steps[n] = _steps(runner, str(query.compile(runner.db.engine, compile_kwargs={"literal_binds": True})), ())
    assert steps[10_000] >= 3 * steps[2_500], steps
