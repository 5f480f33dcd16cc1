"""Copies of the template customers in bulk: ``INSERT ... SELECT`` from a marked template table per copied table.

Before the first copy, each copied table's template rows go into ``bench_tpl_<table>``. There,
every value that holds an id to renew is rewritten once, in Python:

- a UUID (an instance id, an engine task id, anywhere in a column, the saved task tree
  included) keeps its first 24 characters, and a marker byte stands for its last 12;
- a business key ``KH0001`` is followed by a second marker byte.

A copy ``g`` is then two plain ``replace`` calls in SQL: the first marker becomes ``g`` in hex
(12 digits), the second ``-g``. The ids inside a cloned instance's state still match its user
task, job and timer rows, so a copy restores and can be worked on like its template. (The
regular expressions this replaces ran over every copy's 10 KB states, most of the build's time.)

Serial ids are ``id + g * span``, ``span`` the table's largest template id, and so are the
columns that refer to them: the copies' ids never meet, and two connections can copy at once.
Customers get a name, phone and e-mail of their own (``bench.scale_people``).
"""

from __future__ import annotations

import math
import queue
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import JSON, Connection, Engine, Integer, MetaData, Table, text
from sqlalchemy.dialects.postgresql import JSONB

from bench import scale_people
from bench.scale_load import bulk_session, sqlite_without_triggers

UUID_RE = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)[0-9a-f]{12}")
KEY_RE = re.compile(r"(KH[0-9]+)")
UUID_MARK, KEY_MARK = "\x01", "\x02"
TEMPLATE = "bench_tpl_"


@dataclass(frozen=True)
class Copy:
    """What one table copies: template rows (``rows``), and of those, which for active and for settled customers."""

    table: str
    active: str | None  # None: not copied
    settled: str | None
    rows: str = "1=1"


RUNNING = "instance_id IN (SELECT id FROM instances WHERE status = 'running')"
ABOUT_CUSTOMERS = "instance_id IS NOT NULL OR business_key IN (SELECT id FROM customers)"
COPIES = (
    Copy("customers", "1=1", "1=1"),
    Copy("customer_tags", "1=1", "1=1"),
    Copy("customer_notes", "1=1", None),
    Copy("orders", "1=1", "1=1"),
    Copy("contracts", "1=1", "1=1"),
    # NOTE: not booking_slots: a teacher's time cell is UNIQUE, so a copy cannot hold the same one.
    Copy("bookings", "1=1", "1=1"),
    Copy("instances", "1=1", "status = 'running'"),
    # NOTE: the board row names the instance the triggers picked, running ones first: a settled
    # copy keeps it when that instance is running (so copied), and has no row where it is not.
    Copy("customer_stages", "1=1", RUNNING),
    Copy("user_tasks", "1=1", f"state = 'open' AND {RUNNING}"),
    # NOTE: who an open task is offered to, where the schema has that table (rows only while the task is open).
    Copy("user_task_candidates", "1=1", "1=1"),
    Copy("jobs", "1=1", f"state = 'pending' AND {RUNNING}"),
    Copy("timers", "1=1", f"state = 'waiting' AND {RUNNING}"),
    Copy("subscriptions", "1=1", RUNNING),
    Copy("outbox", "1=1", None, ABOUT_CUSTOMERS),
    Copy("history", "1=1", None, ABOUT_CUSTOMERS),
)


def mark(value: str) -> str:
    """``value`` with a marker for each UUID's last 12 digits and after each business key."""
    if UUID_MARK in value or KEY_MARK in value:
        raise ValueError(f"a template value holds a marker byte: {value[:80]!r}")
    return KEY_RE.sub(lambda m: m[1] + KEY_MARK, UUID_RE.sub(lambda m: m[1] + UUID_MARK, value))


@dataclass(frozen=True)
class Plan:
    """The INSERT that copies one table's template rows for a range of copy numbers."""

    table: str
    insert: str  # with {series} and {flag} left to fill

    def sql(self, dialect: str, first: int, last: int, settled: bool) -> str:
        """The statement for copies ``first..last``, of the rows for settled or for active customers."""
        if dialect == "postgresql":
            series = f"generate_series({first:d}, {last:d}) AS s(g)"
        else:
            series = (
                f"(WITH RECURSIVE n(g) AS (SELECT {first:d} UNION ALL SELECT g + 1 FROM n WHERE g < {last:d})"
                " SELECT g FROM n) s"
            )
        return self.insert.format(series=series, flag="bench_settled" if settled else "bench_active")


def spans(conn: Connection, tables: list[Table]) -> dict[str, int]:
    """Per table with a serial id, the largest template id: copy ``g`` adds ``g`` times it."""
    found = {}
    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and isinstance(pk[0].type, Integer):
            found[table.name] = max(1, conn.execute(text(f"SELECT max({pk[0].name}) FROM {table.name}")).scalar() or 1)
    return found


def _template_table(conn: Connection, table: Table, copy: Copy) -> str:
    """``bench_tpl_<table>``: the template rows numbered by ``bench_k`` with their two flags; its name."""
    name = TEMPLATE + table.name
    order = ", ".join(f"x.{c.name}" for c in table.primary_key.columns)
    flags = (f"CASE WHEN {where or '1=0'} THEN 1 ELSE 0 END" for where in (copy.active, copy.settled))
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    conn.exec_driver_sql(
        f"CREATE TABLE {name} AS SELECT row_number() OVER (ORDER BY {order}) - 1 AS bench_k,"
        f" {next(flags)} AS bench_active, {next(flags)} AS bench_settled, x.*"
        f" FROM {table.name} x WHERE {copy.rows}"
    )
    return name


def _marked(conn: Connection, name: str, column: str) -> bool:
    """Add ``bench_m_<column>``, the column's values marked, where any holds an id to renew; whether it did."""
    rows = conn.exec_driver_sql(f'SELECT bench_k, CAST("{column}" AS TEXT) FROM {name} WHERE "{column}" IS NOT NULL')
    marked = [(mark(v), k) for k, v in rows if UUID_RE.search(v) or KEY_RE.search(v)]
    if not marked:
        return False
    conn.exec_driver_sql(f'ALTER TABLE {name} ADD COLUMN "bench_m_{column}" TEXT')
    conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name}_k ON {name} (bench_k)")  # NOTE: one row per UPDATE
    conn.exec_driver_sql(f'UPDATE {name} SET "bench_m_{column}" = CAST("{column}" AS TEXT)')
    conn.execute(
        text(f'UPDATE {name} SET "bench_m_{column}" = :v WHERE bench_k = :k'), [{"v": v, "k": k} for v, k in marked]
    )
    return True


def _renewed(conn: Connection, column: str) -> str:
    """SQL for a marked column's value in copy ``s.g``."""
    pg = conn.dialect.name == "postgresql"
    hex_g = "lpad(to_hex(s.g), 12, '0')" if pg else "printf('%012x', s.g)"
    marks = ("chr(1)", "chr(2)") if pg else ("char(1)", "char(2)")
    return f"replace(replace(t.\"bench_m_{column}\", {marks[0]}, {hex_g}), {marks[1]}, '-' || s.g)"


def plan(conn: Connection, table: Table, copy: Copy, span: dict[str, int], templates: int) -> Plan:
    """Make ``table``'s template table and the INSERT that copies it."""
    name = _template_table(conn, table, copy)
    people = scale_people.columns(f"s.g * {templates:d} + t.bench_k", conn.dialect.name)
    names, exprs = [], []
    for column in table.columns:
        if column.computed is not None:
            continue
        expr = f't."{column.name}"'
        refs = [fk.column.table.name for fk in column.foreign_keys if fk.column.table.name in span]
        if column.primary_key and table.name in span:
            expr = f"{expr} + s.g * {span[table.name]:d}"
        elif refs:
            expr = f"{expr} + s.g * {span[refs[0]]:d}"
        elif table.name == "customers" and column.name in people:
            expr = people[column.name]
        elif _marked(conn, name, column.name):
            expr = _renewed(conn, column.name)
            if isinstance(column.type, JSON | JSONB) and conn.dialect.name == "postgresql":
                expr = f"CAST({expr} AS {column.type.compile(conn.dialect)})"
        names.append(f'"{column.name}"')
        exprs.append(expr)
    insert = (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(exprs)}"
        f" FROM {name} t CROSS JOIN {{series}} WHERE t.{{flag}} = 1"
    )
    return Plan(table.name, insert)


def prepare(engine: Engine, templates: int) -> list[Plan]:
    """The plans of the copied tables this schema has, their template tables made and committed."""
    metadata = MetaData()
    with engine.begin() as conn:
        present = set(engine.dialect.get_table_names(conn))
        copies = [c for c in COPIES if c.table in present]
        metadata.reflect(conn, only=[c.table for c in copies])
        tables = [metadata.tables[c.table] for c in copies]
        span = spans(conn, tables)
        return [plan(conn, t, c, span, templates) for t, c in zip(tables, copies, strict=True)]


def drop_templates(engine: Engine, plans: list[Plan]) -> None:
    """The template tables gone."""
    with engine.begin() as conn:
        for p in plans:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TEMPLATE}{p.table}")


def chunks(active: int, settled: int, per_range: int) -> list[tuple[int, int, bool]]:
    """Copy numbers 1..active (active), then the settled ones, in about ``per_range`` chunks each."""
    found = []
    for first, count, is_settled in ((1, active, False), (active + 1, settled, True)):
        size = max(1, math.ceil(count / per_range))
        found += [(g, min(g + size - 1, first + count - 1), is_settled) for g in range(first, first + count, size)]
    return found


def _copy(
    conn: Connection, plans: list[Plan], chunk: tuple[int, int, bool], made: Counter[str], took: Counter[str]
) -> None:
    """One chunk of copies, table by table, counted into ``made`` (rows) and ``took`` (seconds)."""
    for p in plans:
        started = time.perf_counter()
        made[p.table] += conn.execute(text(p.sql(conn.dialect.name, *chunk))).rowcount
        took[p.table] += time.perf_counter() - started


def run(engine: Engine, plans: list[Plan], active: int, settled: int, workers: int = 2) -> Counter[str]:
    """Copy every plan for the active and settled copy numbers over ``workers`` connections; seconds per table.

    On PostgreSQL each chunk of copy numbers is a transaction of its own, taken by the next free
    connection; the seconds are summed over the connections.
    """
    made: Counter[str] = Counter()
    took: Counter[str] = Counter()
    if engine.dialect.name != "postgresql":  # NOTE: SQLite has one writer; one transaction, its triggers off
        with engine.begin() as conn, sqlite_without_triggers(conn, [p.table for p in plans]):
            for chunk in chunks(active, settled, 1):
                _copy(conn, plans, chunk, made, took)
        return took
    todo: queue.Queue[tuple[int, int, bool]] = queue.Queue()
    for chunk in chunks(active, settled, 8 * workers):
        todo.put(chunk)
    lock, failures = threading.Lock(), []

    def work() -> None:
        with engine.connect() as conn:
            while not failures:
                try:
                    chunk = todo.get_nowait()
                except queue.Empty:
                    return
                rows: Counter[str] = Counter()
                seconds: Counter[str] = Counter()
                try:
                    with conn.begin():
                        bulk_session(conn)
                        _copy(conn, plans, chunk, rows, seconds)
                except Exception as exc:  # NOTE: raised by the caller below; the other workers stop
                    failures.append(exc)
                    return
                with lock:
                    made.update(rows)
                    took.update(seconds)
                print(f"copies {chunk[0]}-{chunk[1]}: {rows.total()} rows", file=sys.stderr, flush=True)

    threads = [threading.Thread(target=work, name=f"bench-scale-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return took
