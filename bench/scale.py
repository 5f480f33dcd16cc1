"""A vendor's worth of data: N customers with instances in every stage, their tasks, timers, jobs, history.

    python -m bench.scale --customers 500000 --url postgresql+psycopg://user@host/db
    python -m bench.scale --customers 2000                   # SQLite, in a temporary file

The rows are genuine: first the demo company (``runner.crm.demo``: 40 customers moved
through sales, onboarding, monthly care and renewal by the real Runner on the virtual clock)
is loaded into the empty database. Those customers are the templates. Then every row that
belongs to a template customer is copied in bulk, ``INSERT ... SELECT`` over a series of
copy numbers ``g``, with new ids and business keys:

- a UUID (an instance id, an engine task id, anywhere in a column, the saved task tree
  included) keeps its first 24 characters and gets ``g`` in hex as its last 12, so the
  ids inside a cloned instance's state still match its user task, job and timer rows;
- a business key ``KH0001`` becomes ``KH0001-g`` wherever it appears;
- serial ids come from their sequences; everything else is the template's value.

So a copy restores and can be worked on like the template it came from.

``--active`` (default 0.1) of the customers are copies with everything, history included:
the customers someone is working with now. The rest are settled customers: their CRM
record (tags, orders, contracts) and their open work (running instances, open tasks,
waiting timers, pending jobs, subscriptions) without the history and the finished work.
At the demo's density (about 150 rows and 100 KB per customer) a full copy of 500,000
customers would not fit this machine's disk. The count is rounded up to whole copies
of the 40 templates. Output lines are ``name: value``: rows per table, seconds per phase, the
database size.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import JSON, Connection, Engine, Integer, MetaData, Table, inspect, text
from sqlalchemy.dialects.postgresql import JSONB

from runner import extension
from runner.crm import demo
from runner.registry import installed
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db

ROOT = Path(__file__).resolve().parents[1]  # the checkout
PROCESSES = ROOT / "processes"
UUID = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)[0-9a-f]{12}"
KEY = r"(KH[0-9]+)"
UUID_RE, KEY_RE = re.compile(UUID), re.compile(KEY)
SERIES = "bench_series"


@dataclass(frozen=True)
class Copy:
    """What one table copies: the template rows (a WHERE clause), for active and for settled customers."""

    table: str
    active: str | None  # None: not copied
    settled: str | None


RUNNING = "instance_id IN (SELECT id FROM instances WHERE status = 'running')"
COPIES = (
    Copy("customers", "1=1", "1=1"),
    Copy("customer_tags", "1=1", "1=1"),
    Copy("customer_notes", "1=1", None),
    Copy("orders", "1=1", "1=1"),
    Copy("contracts", "1=1", "1=1"),
    Copy("instances", "1=1", "status = 'running'"),
    Copy("user_tasks", "1=1", f"state = 'open' AND {RUNNING}"),
    # NOTE: who an open task is offered to, where the schema has that table (rows only while the task is open).
    Copy("user_task_candidates", "1=1", "1=1"),
    Copy("jobs", "1=1", f"state = 'pending' AND {RUNNING}"),
    Copy("timers", "1=1", f"state = 'waiting' AND {RUNNING}"),
    Copy("subscriptions", "1=1", RUNNING),
    Copy("outbox", "1=1", None),
    Copy("history", "1=1", None),
)
# NOTE: the template rows are those of the customers and instances that existed before the
# first copy (kept in two temporary tables), so a pass never copies an earlier copy.
TEMPLATE_CUSTOMERS, TEMPLATE_INSTANCES = "bench_customers", "bench_instances"
BY_CUSTOMER = f"customer_id IN (SELECT id FROM {TEMPLATE_CUSTOMERS})"
BY_INSTANCE = f"instance_id IN (SELECT id FROM {TEMPLATE_INSTANCES})"
TEMPLATE_ROWS = {
    "customers": f"id IN (SELECT id FROM {TEMPLATE_CUSTOMERS})",
    "customer_tags": BY_CUSTOMER,
    "customer_notes": BY_CUSTOMER,
    "orders": BY_CUSTOMER,
    "contracts": BY_CUSTOMER,
    "instances": f"id IN (SELECT id FROM {TEMPLATE_INSTANCES})",
    "user_tasks": BY_INSTANCE,
    "user_task_candidates": f"task_id IN (SELECT id FROM user_tasks WHERE {BY_INSTANCE})",
    "jobs": BY_INSTANCE,
    "timers": BY_INSTANCE,
    "subscriptions": BY_INSTANCE,
    "outbox": f"{BY_INSTANCE} OR (instance_id IS NULL AND business_key IN (SELECT id FROM {TEMPLATE_CUSTOMERS}))",
    "history": f"{BY_INSTANCE} OR (instance_id IS NULL AND business_key IN (SELECT id FROM {TEMPLATE_CUSTOMERS}))",
}


def new_uuid(value: str | None, g: int) -> str | None:
    """Every UUID in ``value`` with copy number ``g`` as its last 12 hex digits."""
    return None if value is None else UUID_RE.sub(lambda m: f"{m[1]}{g:012x}", value)


def new_key(value: str | None, g: int) -> str | None:
    """Every business key in ``value`` with ``-g`` appended."""
    return None if value is None else KEY_RE.sub(lambda m: f"{m[1]}-{g}", value)


PG_FUNCTIONS = (
    f"CREATE FUNCTION pg_temp.new_uuid(x text, g int) RETURNS text LANGUAGE sql IMMUTABLE AS "
    f"$$ SELECT regexp_replace(x, '{UUID}', '\\1' || lpad(to_hex(g), 12, '0'), 'g') $$",
    f"CREATE FUNCTION pg_temp.new_key(x text, g int) RETURNS text LANGUAGE sql IMMUTABLE AS "
    f"$$ SELECT regexp_replace(x, '{KEY}', '\\1-' || g, 'g') $$",
)


def prepare(conn: Connection) -> str:
    """Make ``new_uuid`` and ``new_key`` callable in SQL on this connection; their schema prefix."""
    if conn.dialect.name == "postgresql":
        for sql in PG_FUNCTIONS:
            conn.exec_driver_sql(sql)
        prefix = "pg_temp."
    else:
        raw = conn.connection.dbapi_connection
        raw.create_function("new_uuid", 2, new_uuid, deterministic=True)  # type: ignore[union-attr]
        raw.create_function("new_key", 2, new_key, deterministic=True)  # type: ignore[union-attr]
        prefix = ""
    conn.exec_driver_sql(f"CREATE TEMP TABLE {SERIES} (g integer PRIMARY KEY)")
    conn.exec_driver_sql(f"CREATE TEMP TABLE {TEMPLATE_CUSTOMERS} AS SELECT id FROM customers")
    conn.exec_driver_sql(f"CREATE TEMP TABLE {TEMPLATE_INSTANCES} AS SELECT id FROM instances")
    return prefix


def fill_series(conn: Connection, first: int, last: int) -> None:
    """The copy numbers ``first..last`` in the series table."""
    conn.exec_driver_sql(f"DELETE FROM {SERIES}")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"INSERT INTO {SERIES} SELECT generate_series({first:d}, {last:d})")
    else:
        conn.exec_driver_sql(f"INSERT INTO {SERIES} (g) VALUES (?)", [(g,) for g in range(first, last + 1)])


def column_sql(conn: Connection, table: Table, where: str, prefix: str) -> tuple[list[str], list[str]]:
    """The columns an INSERT names, and the SELECT expression of each (ids and keys renewed)."""
    rows = conn.execute(text(f"SELECT * FROM {table.name} WHERE {where}")).mappings().all()
    names, exprs = [], []
    for column in table.columns:
        if column.computed is not None:
            continue
        if column.primary_key and isinstance(column.type, Integer) and len(table.primary_key.columns) == 1:
            continue  # a serial id: the sequence gives the copy its own
        name = conn.dialect.identifier_preparer.quote(column.name)
        values = [str(r[column.name]) for r in rows if r[column.name] is not None]
        has_uuid = any(UUID_RE.search(v) for v in values)
        has_key = any(KEY_RE.search(v) for v in values)
        expr = f"t.{name}"
        if has_uuid or has_key:
            is_json = isinstance(column.type, JSON | JSONB)
            expr = f"CAST({expr} AS TEXT)" if is_json and conn.dialect.name == "postgresql" else expr
            expr = f"{prefix}new_uuid({expr}, s.g)" if has_uuid else expr
            expr = f"{prefix}new_key({expr}, s.g)" if has_key else expr
            if is_json and conn.dialect.name == "postgresql":
                expr = f"CAST({expr} AS {column.type.compile(conn.dialect)})"
        names.append(name)
        exprs.append(expr)
    return names, exprs


def copy_table(conn: Connection, table: Table, where: str, prefix: str) -> int:
    """Copy the template rows ``where`` once per number in the series table; rows inserted."""
    names, exprs = column_sql(conn, table, where, prefix)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"SELECT {', '.join(exprs)} FROM (SELECT * FROM {table.name} WHERE {where}) t CROSS JOIN {SERIES} s"
    )
    return conn.exec_driver_sql(sql).rowcount


def load_demo(runner: Runner) -> None:
    """The demo company: 40 customers moved to every stage by the real processes."""
    runner.deploy(sorted(PROCESSES.glob("*.bpmn")), actor="bench")
    with contextlib.redirect_stdout(io.StringIO()):  # NOTE: the demo's summary prints its logins
        demo.run(runner)


def templates(url: str, load: Callable[[Runner], None] = load_demo) -> tuple[Runner, float]:
    """The template customers ``load`` makes in the empty database at ``url``; the seconds it took."""
    started = time.perf_counter()
    db.upgrade(url)
    env = {"DEMO_PASSWORD": secrets.token_urlsafe(12), "DEMO_ADMIN_PASSWORD": secrets.token_urlsafe(12)}
    settings = Settings.from_env(env, database_url=url, clock="virtual")
    runner = Runner(settings, installed(settings=settings), extensions=extension.discover(settings))
    with runner.db.engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM customers")).scalar_one()
    if count:
        raise SystemExit(f"the database already holds {count} customers: give an empty one")
    load(runner)
    return runner, time.perf_counter() - started


def clone(engine: Engine, active: int, settled: int) -> dict[str, int]:
    """``active`` full copies and ``settled`` open-work copies of every template; rows per table."""
    metadata = MetaData()
    present = set(inspect(engine).get_table_names())
    copies = [c for c in COPIES if c.table in present]
    metadata.reflect(engine, only=[c.table for c in copies])
    made = {c.table: 0 for c in copies}
    with engine.begin() as conn:
        prefix = prepare(conn)
        for first, last, settled_pass in ((1, active, False), (active + 1, active + settled, True)):
            if last < first:
                continue
            fill_series(conn, first, last)
            for c in copies:
                where = c.settled if settled_pass else c.active
                if where is not None:
                    rows = f"({where}) AND ({TEMPLATE_ROWS[c.table]})"
                    made[c.table] += copy_table(conn, metadata.tables[c.table], rows, prefix)
    return made


def counts(engine: Engine) -> dict[str, int]:
    """Rows per copied table."""
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            c.table: conn.execute(text(f"SELECT count(*) FROM {c.table}")).scalar_one()
            for c in COPIES
            if c.table in present
        }


def database_bytes(engine: Engine) -> int:
    """Bytes on disk: on PostgreSQL the current schema's tables with their indexes and TOAST, else the files."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return int(conn.execute(text(SCHEMA_BYTES)).scalar_one() or 0)
    path = Path(engine.url.database or "")
    return sum(p.stat().st_size for p in path.parent.glob(f"{path.name}*") if p.is_file())  # with -wal, -shm


SCHEMA_BYTES = """
SELECT CAST(sum(pg_total_relation_size(c.oid)) AS bigint) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r'
"""


def build(url: str, customers: int, active_share: float, load: Callable[[Runner], None] = load_demo) -> list[str]:
    """Load the templates, copy them, and return the output lines."""
    runner, template_seconds = templates(url, load)
    engine = runner.db.engine
    try:
        found = counts(engine)["customers"]
        copies = max(0, math.ceil(customers / found) - 1)
        active = min(copies, round(copies * active_share))
        started = time.perf_counter()
        clone(engine, active, copies - active)
        copy_seconds = time.perf_counter() - started
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
        lines = [f"template_customers: {found}", f"copies_active: {active}", f"copies_settled: {copies - active}"]
        lines += [f"rows_{table}: {n}" for table, n in counts(engine).items()]
        lines += [f"seconds_templates: {template_seconds:.1f}", f"seconds_copies: {copy_seconds:.1f}"]
        lines.append(f"database_mb: {database_bytes(engine) / 1e6:.1f}")
    finally:
        engine.dispose()
    return lines


@contextlib.contextmanager
def _sqlite_url(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'runner.db'}"


def main(argv: list[str] | None = None) -> int:
    """Build the company and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=500_000, help="customers wanted (default: %(default)s)")
    parser.add_argument("--url", default="", help="an empty database (default: SQLite in a temporary directory)")
    parser.add_argument("--active", type=float, default=0.1, help="share of copies with history (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.customers < 1 or not 0 <= args.active <= 1:
        parser.error("--customers must be at least 1 and --active between 0 and 1")
    started = time.perf_counter()
    with _sqlite_url(args.url) as url:
        lines = build(url, args.customers, args.active)
    for line in [*lines, f"seconds_total: {time.perf_counter() - started:.1f}"]:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
