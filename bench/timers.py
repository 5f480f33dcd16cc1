"""Draining timers that all fall due at one moment, with 1, 2, 4 worker processes, on PostgreSQL.

    python -m bench.timers --timers 10000 --workers 1,2,4 --repeats 3
    python -m bench.timers --timers 500 --workers 1,2 --repeats 1 --claim-sizes 1000   # a smoke run

A tiny process (start → timer catch event → end) is deployed in a fresh schema of the
database (``--url``, default the local ``test`` database); one instance is started and
then cloned in SQL N times, each clone with its own waiting timer, all due at the same
moment. k worker processes (``python -m bench.timers --worker``, the scheduler's
``run_due`` as ``runner worker`` runs it) start, wait until all are ready, and drain the
backlog; the time from "go" until the database shows no waiting timer is the drain time.

Runs are interleaved by ``bench.harness`` (1, 2, 4, then 4, 2, 1, ...; with ``--batches 1,50``
each worker count also alternates the one-at-a-time claim, ``RUNNER_CLAIM_BATCH=1``, with the
batch claim). Every figure is a median with its spread; the speed-up over one worker is taken
per round. Progress goes to stderr. The per-claim time at 10k and 100k
waiting timers compares the claim of before issue 11 (``ORDER BY due_at, id LIMIT 1 FOR
UPDATE SKIP LOCKED`` over the ``(state, due_at)`` index) with the batch claim over the
partial index, interleaved, each run in a rolled-back transaction. Output: ``name: value``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench import harness
from runner.registry import installed
from runner.service import claims, scheduler
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from runner.store.models import Timer

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PROCESS = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Defs_bench_timer"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="bench_timer" name="One timer" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:intermediateCatchEvent id="wait" name="Wait">
      <bpmn:timerEventDefinition id="td"><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@contextmanager
def schema(base_url: str) -> Iterator[str]:
    """A fresh migrated schema, dropped afterwards; yields its URL."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{name}"'))
    url = sa.make_url(base_url).update_query_dict({"options": f"-csearch_path={name}"})
    rendered = url.render_as_string(hide_password=False)
    try:
        db.upgrade(rendered)
        yield rendered
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop schema "{name}" cascade'))
        admin.dispose()


def open_runner(url: str, **overrides: Any) -> Runner:
    return Runner(Settings.from_env({}, database_url=url, clock="system", **overrides), registry=installed())


def backlog(runner: Runner, count: int) -> None:
    """``count`` instances waiting on a timer, all due at one moment (just past), made in SQL."""
    with runner.db.read() as s:
        template = s.scalar(sa.select(Timer.instance_id).where(Timer.state == "waiting").limit(1))
    if template is None:
        runner.deploy({"bench_timer.bpmn": PROCESS})
        template = runner.start_instance("bench_timer", "TEMPLATE", {})
        with runner.db.unit() as s:  # the template's own timer never fires: it waits a year
            s.execute(
                sa.update(Timer).where(Timer.instance_id == template).values(due_at=runner.now() + timedelta(days=365))
            )
    due = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    with runner.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "create temp table clones on commit drop as "
                "select gen_random_uuid()::text id, g from generate_series(1, :n) g"
            ),
            {"n": count},
        )
        conn.execute(
            sa.text(
                "insert into instances (id, process_key, version_id, business_key, status, state, data, "
                "called_versions, stages, waits, parent_id, created_at, updated_at, ended_at, row_version) "
                "select c.id, i.process_key, i.version_id, 'KH' || c.g, i.status, i.state, i.data, i.called_versions, "
                "i.stages, i.waits, null, i.created_at, i.updated_at, null, i.row_version "
                "from clones c cross join instances i where i.id = :t"
            ),
            {"t": template},
        )
        conn.execute(
            sa.text(
                "insert into timers (instance_id, task_id, process_key, element_id, timer_name, due_at, state, value) "
                "select c.id, t.task_id, t.process_key, t.element_id, t.timer_name, :due, 'waiting', t.value "
                "from clones c cross join timers t where t.instance_id = :t"
            ),
            {"t": template, "due": due},
        )
        conn.execute(sa.text("analyze timers; analyze instances"))


def waiting(runner: Runner) -> int:
    with runner.db.read() as s:
        now = datetime.now(UTC)
        return s.scalar(
            sa.select(sa.func.count()).select_from(Timer).where(Timer.state == "waiting", Timer.due_at <= now)
        )


def drain(url: str, workers: int, batch: int, expected: int) -> float:
    """Start ``workers`` processes, say go once all are ready; seconds until none is due, and fired count."""
    env = {**os.environ, "RUNNER_DATABASE_URL": url, "RUNNER_CLOCK": "system", "RUNNER_CLAIM_BATCH": str(batch)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.timers", "--worker"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        began = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = [json.loads(proc.communicate(timeout=3600)[0].strip().splitlines()[-1]) for proc in procs]
        took = time.perf_counter() - began
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    fired = sum(r["ran"] for r in reports)
    if fired != expected:
        raise SystemExit(f"expected {expected} firings, the workers report {fired}")
    return took


def worker() -> int:
    """One worker process: ready, wait for go, ``run_due`` until nothing is due; prints what it did."""
    runner = Runner(Settings.from_env(), registry=installed())
    print("ready", flush=True)
    sys.stdin.readline()
    ran = 0
    while True:
        count = scheduler.run_due(runner)
        ran += count
        if count == 0:
            if waiting(runner) == 0:
                break
            time.sleep(0.02)  # the rest is leased to other workers: poll, as a tick would
    runner.db.engine.dispose()
    print(json.dumps({"pid": os.getpid(), "ran": ran}), flush=True)
    return 0


def old_claim(now: datetime) -> sa.Select:
    """The claim before issue 11 (runner/service/scheduler.py ``_due_query``), as it was built."""
    return (
        sa.select(Timer)
        .where(Timer.state == "waiting", Timer.due_at <= now)
        .order_by(Timer.due_at, Timer.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def _timed(runner: Runner, statement: sa.Executable, before: str = "") -> float:
    """Milliseconds one claim statement takes, in a transaction rolled back afterwards."""
    with runner.db.engine.connect() as conn, conn.begin() as tx:
        if before:
            conn.execute(sa.text(before))
        began = time.perf_counter()
        conn.execute(statement).all()
        took = time.perf_counter() - began
        tx.rollback()
    return took * 1000


def per_claim(base_url: str, sizes: list[int], repeats: int) -> None:
    """Milliseconds per claim with ``sizes`` waiting timers due at one moment: old vs new, interleaved."""
    for size in sizes:
        with schema(base_url) as url:
            runner = open_runner(url, worker_id="bench")
            backlog(runner, size)
            with runner.db.engine.begin() as conn:
                conn.execute(sa.text("create index ix_timers_due_old on timers (state, due_at)"))
            now = datetime.now(UTC)
            n = runner.settings.claim_batch
            statements: dict[str, tuple[sa.Executable, str]] = {
                # NOTE: the old claim runs with the new index dropped (in its rolled-back transaction).
                "old_claim_1": (old_claim(now), "drop index ix_timers_claim"),
                "new_claim_1": (claims.lease_statement(runner, claims.TIMERS, "bench", now, 1), ""),
                f"new_claim_{n}": (claims.lease_statement(runner, claims.TIMERS, "bench", now, n), ""),
            }
            variants = {
                f"claim_ms_at_{size}_{name}": functools.partial(_timed, runner, statement, before)
                for name, (statement, before) in statements.items()
            }
            for text in harness.report(harness.interleave(variants, rounds=repeats), digits=2):
                print(text, flush=True)
            runner.db.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--batches", default="50", help="claim sizes to compare, e.g. 1,50 (1 = one at a time)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--claim-sizes", default="10000,100000", help="backlogs for the per-claim figure ('' skips)")
    parser.add_argument("--claim-repeats", type=int, default=15)
    args = parser.parse_args(argv)
    if args.worker:
        return worker()
    counts = [int(w) for w in args.workers.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    print(f"timers: {args.timers}")
    print(f"claim_batch: {Settings.from_env({}).claim_batch}")
    if args.claim_sizes:
        per_claim(args.url, [int(n) for n in args.claim_sizes.split(",")], args.claim_repeats)
    with schema(args.url) as url:
        runner = open_runner(url)

        def variant(k: int, b: int) -> float:
            backlog(runner, args.timers)  # untimed
            took = drain(url, k, b, args.timers)
            print(f"# {k} worker(s), claim {b}: {took:.1f} s ({args.timers / took:.0f}/s)", file=sys.stderr, flush=True)
            return took

        variants = {f"drain_s_{k}_workers_claim_{b}": functools.partial(variant, k, b) for k in counts for b in batches}
        samples = harness.interleave(variants, rounds=args.repeats, warmup=0)
        runner.db.engine.dispose()
    for name, values in samples.items():
        print(harness.line(name, harness.Summary.of(values), digits=1))
        rate = name.replace("drain_s_", "timers_per_s_")
        print(harness.line(rate, harness.Summary.of(args.timers / v for v in values), digits=0))
    first = counts[0]
    for k in counts[1:]:
        for b in batches:
            ratio = harness.paired_ratios(
                samples[f"drain_s_{first}_workers_claim_{b}"], samples[f"drain_s_{k}_workers_claim_{b}"]
            )
            print(harness.line(f"speedup_{k}_workers_over_{first}_claim_{b}", ratio, digits=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
