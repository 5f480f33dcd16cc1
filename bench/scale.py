"""A vendor's worth of data: N customers with instances in every stage, their tasks, timers, jobs, history.

    python -m bench.scale --customers 500000 --url postgresql+psycopg://user@host/db
    python -m bench.scale --customers 2000                   # SQLite, in a temporary file
    python -m bench.scale --customers 500000 --url ... --templates scale-templates.pickle

The rows are genuine: first the demo company (``runner.crm.demo``: 40 customers moved
through sales, onboarding, monthly care and renewal by the real Runner on the virtual clock)
is loaded into the empty database. Those customers are the templates. With ``--templates FILE``
the loaded company is kept in that file, and the next run (same database kind, same
migrations) reads it back in a second instead of running the demo again (delete the file when
the demo or the processes change: only the migrations are checked). Then every row that
belongs to a template customer is copied in bulk with new ids and business keys, the boards'
``customer_stages`` rows and bookings included (``bench.scale_copy``), over two connections
on PostgreSQL; each copied customer has a name, phone and e-mail of its own.

``--active`` (default 0.1) of the customers are copies with everything, history included:
the customers someone is working with now. The rest are settled customers: their CRM
record (tags, orders, contracts, bookings, board) and their open work (running instances, open
tasks, waiting timers, pending jobs, subscriptions) without the history and the finished work.
At the demo's density (about 150 rows and 100 KB per customer) a full copy of 500,000
customers would not fit this machine's disk. The count is rounded up to whole copies
of the 40 templates.

The secondary indexes of the copied tables are dropped before the copies and built again
after them (one sort each instead of millions of insertions), then PostgreSQL's statistics
are taken. Output lines are ``name: value``: rows per table, seconds per phase, the database size.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Engine, MetaData, inspect, text

from bench import scale_copy, scale_load
from runner import extension
from runner.crm import demo
from runner.crm.customers import PIPELINES
from runner.registry import installed
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db

ROOT = Path(__file__).resolve().parents[1]  # the checkout
PROCESSES = ROOT / "processes"


def load_demo(runner: Runner) -> None:
    """The demo company: 40 customers moved to every stage by the real processes."""
    runner.deploy(sorted(PROCESSES.glob("*.bpmn")), actor="bench")
    with contextlib.redirect_stdout(io.StringIO()):  # NOTE: the demo's summary prints its logins
        demo.run(runner)


def templates(
    url: str, load: Callable[[Runner], None] = load_demo, cache: Path | None = None
) -> tuple[Runner, float, bool]:
    """The template customers in the empty database at ``url``: read from ``cache`` where it fits, else made
    by ``load`` (and kept in ``cache``); the seconds it took and whether the file served."""
    started = time.perf_counter()
    db.upgrade(url)
    env = {"DEMO_PASSWORD": secrets.token_urlsafe(12), "DEMO_ADMIN_PASSWORD": secrets.token_urlsafe(12)}
    settings = Settings.from_env(env, database_url=url, clock="virtual")
    runner = Runner(settings, installed(settings=settings), extensions=extension.discover(settings))
    with runner.db.engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM customers")).scalar_one()
    if count:
        raise SystemExit(f"the database already holds {count} customers: give an empty one")
    cached = cache is not None and scale_load.restore(runner.db.engine, cache)
    if not cached:
        load(runner)
        if cache is not None:
            scale_load.save(runner.db.engine, cache)
    return runner, time.perf_counter() - started, cached


def clone(engine: Engine, templates: int, active: int, settled: int, workers: int = 2) -> dict[str, float]:
    """``active`` full copies and ``settled`` open-work copies of every template; seconds per phase."""
    seconds = {}
    started = time.perf_counter()
    plans = scale_copy.prepare(engine, templates)
    indexes = scale_load.drop_indexes(engine, [p.table for p in plans])
    seconds["plan"] = time.perf_counter() - started
    # NOTE: a build that fails here leaves a database to throw away (indexes dropped, copies half made)
    started = time.perf_counter()
    took = scale_copy.run(engine, plans, active, settled, workers)
    seconds["copies"] = time.perf_counter() - started
    seconds |= {f"copies_{table}": s for table, s in took.most_common()}
    started = time.perf_counter()
    scale_copy.drop_templates(engine, plans)
    with engine.begin() as conn:
        metadata = MetaData()
        metadata.reflect(conn, only=[p.table for p in plans])
        scale_load.reset_sequences(conn, metadata.sorted_tables)
    with ThreadPoolExecutor(max_workers=workers if engine.dialect.name == "postgresql" else 1) as pool:
        list(pool.map(lambda sql: scale_load.create_index(engine, sql), [sql for _, sql in indexes]))
    seconds["indexes"] = time.perf_counter() - started
    started = time.perf_counter()
    keep_boards(engine)
    seconds["boards"] = time.perf_counter() - started
    return seconds


def keep_boards(engine: Engine) -> None:
    """What migration 0019's triggers keep, made afresh after a copy with triggers off: counts and earliest dues."""
    if "board_counts" not in inspect(engine).get_table_names():
        return  # NOTE: a checkout from before 0019 (bench.reads_crm --baseline)
    plus = "" if engine.dialect.name == "postgresql" else "+"  # SQLite: by business key, see migration 0019
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM board_counts")
        conn.exec_driver_sql(
            "INSERT INTO board_counts (pipeline, stage, owner, n)"
            " SELECT s.pipeline, s.stage, coalesce(c.owner, ''), count(*)"
            " FROM customer_stages s JOIN customers c ON c.id = s.customer_id"
            " GROUP BY s.pipeline, s.stage, coalesce(c.owner, '')"
        )
        for pipeline in set(PIPELINES.values()):
            keys = ", ".join(f"'{k}'" for k, p in PIPELINES.items() if p == pipeline)
            conn.execute(
                text(
                    "UPDATE customer_stages SET overdue_from = (SELECT min(t.due_at) FROM user_tasks t"
                    f" WHERE t.business_key = customer_stages.customer_id AND {plus}t.state = 'open'"
                    f" AND {plus}t.process_key IN ({keys})) WHERE pipeline = :pipeline"
                ),
                {"pipeline": pipeline},
            )


def counts(engine: Engine) -> dict[str, int]:
    """Rows per copied table."""
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            c.table: conn.execute(text(f"SELECT count(*) FROM {c.table}")).scalar_one()
            for c in scale_copy.COPIES
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


def build(
    url: str,
    customers: int,
    active_share: float,
    load: Callable[[Runner], None] = load_demo,
    cache: Path | None = None,
    workers: int = 2,
) -> list[str]:
    """Load the templates, copy them, and return the output lines."""
    runner, template_seconds, cached = templates(url, load, cache)
    engine = runner.db.engine
    try:
        found = counts(engine)["customers"]
        copies = max(0, math.ceil(customers / found) - 1)
        active = min(copies, round(copies * active_share))
        seconds = {"templates": template_seconds, **clone(engine, found, active, copies - active, workers)}
        started = time.perf_counter()
        if engine.dialect.name == "postgresql":
            # NOTE: the copied tables only: a bare ANALYZE would read every schema of the database
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"ANALYZE {', '.join(counts(engine))}")
        seconds["analyze"] = time.perf_counter() - started
        lines = [f"template_customers: {found}", f"templates_from_file: {int(cached)}"]
        lines += [f"copies_active: {active}", f"copies_settled: {copies - active}"]
        lines += [f"rows_{table}: {n}" for table, n in counts(engine).items()]
        lines += [f"seconds_{phase}: {s:.1f}" for phase, s in seconds.items()]
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
    parser.add_argument("--templates", type=Path, help="a file keeping the template company between runs")
    parser.add_argument("--workers", type=int, default=2, help="connections copying at once (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.customers < 1 or not 0 <= args.active <= 1:
        parser.error("--customers must be at least 1 and --active between 0 and 1")
    started = time.perf_counter()
    with _sqlite_url(args.url) as url:
        lines = build(url, args.customers, args.active, cache=args.templates, workers=args.workers)
    for line in [*lines, f"seconds_total: {time.perf_counter() - started:.1f}"]:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
