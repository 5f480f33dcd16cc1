"""How long the CRM's pages take as the company grows: search, boards, the customer page.

    python -m bench.reads_crm --sizes 1000,10000,100000 --db both
    python -m bench.reads_crm --sizes 1000 --db sqlite --repeats 3     # a smoke run
    python -m bench.reads_crm --reads board --baseline DIR             # A/B against another checkout

For each database kind and size a company is built with ``bench.crm_data`` (bulk INSERT ...
SELECT; on PostgreSQL in a schema of its own, dropped at the end). Then, ``--repeats`` times,
every read runs once on every size in turn (interleaved, so a noisy moment of the shared machine
falls on all sizes alike: ``bench.harness``, shuffled), each timed around the runner function
the page calls. Each figure is the median in milliseconds with its spread, as
``reads_crm_<db>_<read>_<size>_ms: median (min–max ..., IQR ..., n ...)``.

``--baseline DIR`` measures a second checkout too (e.g. ``git worktree add DIR main``): each
code runs in a child process of its own (this file with ``python -P`` and ``PYTHONPATH`` set to
the checkout, so DIR needs ``runner`` and ``bench/crm_data.py``, ``bench/harness.py``), which
builds its companies with its own ``bench.crm_data`` and times the reads the parent names, one
at a time, in one shuffled order for both. Names end in ``_new`` and ``_base``, and
``..._new_to_base`` is the ratio taken round by round.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import harness
from bench.crm_data import build
from runner.crm import pages, views
from runner.crm.extension import easyedu
from runner.crm.settings import CrmSettings
from runner.registry import Registry
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[1]


def _column_page_two(r: Runner) -> Any:
    """The board's first page and a column's second, 10 cards each (the web app shows 50)."""
    first = views.pipeline_board(r, "sales", limit=10)
    column = next(c for c in first["columns"] if c["next"])
    return views.pipeline_board(r, "sales", limit=10, after={column["stage"]: column["next"]})


def _customer_page(r: Runner, customer_id: str) -> Any:
    return (
        pages.customer_profile(r, customer_id),
        views.timeline(r, customer_id),
        views.instances(r, customer_id),
        views.customer_bookings(r, customer_id),
    )


def reads(n: int) -> dict[str, Callable[[Runner], Any]]:
    """The reads timed at ``n`` customers, by name (customers of bench.crm_data, picked from the middle)."""
    middle = n // 2
    rare = max(i for i in range(1, n + 1) if i % 7 == 5)  # a "Trung tâm Luyện thi Phương Nam" customer
    phone = f"09{middle:08d}"
    return {
        "search_common_name": lambda r: views.find_customers(r, "trung tam"),
        "search_rare_name": lambda r: views.find_customers(r, f"phuong nam {rare}"),
        "search_accented_name": lambda r: views.find_customers(r, f"Đức Trí {middle - middle % 7 + 1}"),
        "search_phone_plus84": lambda r: views.find_customers(r, "+84 " + phone[1:]),
        "search_code": lambda r: views.find_customers(r, f"KH{middle:07d}"),
        "search_tag": lambda r: views.find_customers(r, "", tag="CẤP DEMO"),
        "search_next_page": lambda r: views.find_customers(r, "trung tam", after=f"KH{middle:07d}"),
        "board_sales": lambda r: views.pipeline_board(r, "sales"),
        "board_after_sale_one_owner": lambda r: views.pipeline_board(r, "onboarding", owner_name="hung"),
        "board_column_page_two": _column_page_two,
        "customer_page": lambda r: _customer_page(r, f"KH{middle:07d}"),
    }


@contextlib.contextmanager
def company(kind: str, n: int, tmp: Path, pg_url: str) -> Iterator[Runner]:
    """A runner on a database holding ``n`` customers (SQLite file or PostgreSQL schema)."""
    schema_name = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp / f'crm-{n}.db'}"
    else:
        schema_name = f"bench_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(pg_url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'create schema "{schema_name}"'))
        url = (
            sa.make_url(pg_url)
            .update_query_dict({"options": f"-csearch_path={schema_name}"})
            .render_as_string(hide_password=False)
        )
    try:
        db.upgrade(url)
        engine = sa.create_engine(url)
        started = time.perf_counter()
        build(engine, n, triggers=kind == "sqlite")
        engine.dispose()
        print(f"reads_crm_{kind}_build_{n}_s: {time.perf_counter() - started:.1f}", flush=True)
        settings = Settings.from_env({}, database_url=url, clock="virtual")
        runner = Runner(settings, registry=Registry(), extensions=(easyedu(crm=CrmSettings()),))
        try:
            yield runner
        finally:
            runner.db.engine.dispose()
    finally:
        if schema_name is not None:
            with admin.begin() as conn:
                conn.execute(sa.text(f'drop schema "{schema_name}" cascade'))
            admin.dispose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.reads_crm", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="customers per company (default: %(default)s)")
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=7, help="runs of every read at every size (default: 7)")
    parser.add_argument("--pg-url", default=PG_URL, help="the PostgreSQL database (default: %(default)s)")
    parser.add_argument("--reads", default="", help="only the reads whose name starts with this (e.g. board)")
    parser.add_argument("--baseline", help="a checkout whose runner package is measured too, interleaved")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # a --baseline child
    return parser


@contextlib.contextmanager
def companies(args: argparse.Namespace, tmp: Path) -> Iterator[dict[tuple[str, int], Runner]]:
    """A runner per (database kind, size), built in turn."""
    kinds = ["sqlite", "pg"] if args.db == "both" else [args.db]
    with contextlib.ExitStack() as stack:
        yield {
            (kind, n): stack.enter_context(company(kind, n, tmp, args.pg_url))
            for kind in kinds
            for n in (int(s) for s in args.sizes.split(","))
        }


def serve(args: argparse.Namespace) -> int:
    """A --baseline child: build the companies, then time the read named on each stdin line ("kind n read")."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-reads-crm-") as tmp,
        contextlib.redirect_stdout(sys.stderr),
        companies(args, Path(tmp)) as runners,
    ):
        print("ready", file=sys.__stdout__, flush=True)
        for request in sys.stdin:
            kind, n, name = request.split()
            ms = harness.timed(functools.partial(reads(int(n))[name], runners[(kind, int(n))]))()
            print(f"{ms!r}", file=sys.__stdout__, flush=True)
    return 0


def _child(args: argparse.Namespace, code: str) -> subprocess.Popen:
    """This file run with the ``runner`` and ``bench`` of ``code`` (``python -P``: nothing else on the path)."""
    argv = ["--serve", "--sizes", args.sizes, "--db", args.db, "--pg-url", args.pg_url]
    env = os.environ | {"PYTHONPATH": code}
    child = subprocess.Popen(
        [sys.executable, "-P", __file__, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise SystemExit(f"the bench child for {code} did not start")
    return child


def _asking(child: subprocess.Popen, kind: str, n: int, name: str) -> harness.Variant:
    def variant() -> float:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(f"{kind} {n} {name}\n")
        child.stdin.flush()
        return float(child.stdout.readline())

    return variant


def main(argv: list[str] | None = None) -> int:
    """Build the companies, time the reads interleaved, print the figures."""
    parser = _parser()
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.repeats < 1 or not sizes or min(sizes) < 100:
        parser.error("--repeats must be at least 1 and every size at least 100")
    if args.serve:
        return serve(args)
    kinds = ["sqlite", "pg"] if args.db == "both" else [args.db]
    names = [name for name in reads(sizes[0]) if name.startswith(args.reads)]
    if args.baseline:
        # NOTE: each code in a process of its own, both built alike and asked in one shuffled
        # order; each times the read itself, so the pipe between them is not in the figure
        children = {"new": _child(args, str(ROOT)), "base": _child(args, str(Path(args.baseline).resolve()))}
        try:
            variants = {
                f"reads_crm_{kind}_{name}_{n}_{label}": _asking(child, kind, n, name)
                for name in names
                for kind in kinds
                for n in sizes
                for label, child in children.items()
            }
            samples = harness.interleave(variants, args.repeats, shuffle=True)
        finally:
            for child in children.values():
                child.communicate()
        lines = harness.report(samples, unit="ms", digits=1)
        for name in samples:
            if name.endswith("_new"):
                base = name.removesuffix("_new") + "_base"
                ratio = harness.paired_ratios(samples[name], samples[base])
                lines.append(harness.line(name.removesuffix("_new") + "_new_to_base", ratio, 3))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-reads-crm-") as tmp, companies(args, Path(tmp)) as runners:
            # NOTE: every read at every size and database is one variant, shuffled within each round
            variants = {
                f"reads_crm_{kind}_{name}_{n}": harness.timed(functools.partial(read, runner))
                for name in names
                for (kind, n), runner in runners.items()
                for read in [reads(n)[name]]
            }
            samples = harness.interleave(variants, args.repeats, shuffle=True)
        lines = harness.report(samples, unit="ms", digits=1)
    for line in lines:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
