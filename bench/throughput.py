"""Instances per second, end to end: start -> one no-op service task -> end.

    python -m bench.throughput --db both --instances 300 --workers 1,2 --repeats 3
    python -m bench.throughput --db sqlite --baseline DIR   # A/B against another checkout

One trial: a fresh database (SQLite: a file in a temporary directory, with the runner's own
pragmas; PostgreSQL: a fresh schema in ``--pg``), ``tests/bpmn/jobs/noop_service.bpmn``
deployed, k worker processes started (each runs ``runner.service.scheduler.work``, as
``runner worker`` does, with the topic ``bench.noop`` registered and a poll interval of
``--poll`` seconds), then N instances started through ``Runner.start_instance`` by
``--starters`` processes (1 by default) while the workers drain their jobs. The figure is
N over the time from the first start to the last ``ended_at``; ``starts_per_s`` is the
starts alone (they run while the workers work; with one starter, the end-to-end figure
cannot exceed it). ``bare_commit_ms`` is a one-row durable commit on the same database, the
floor of a unit of work: the default path commits twice per instance (start, job).
``cpu_ms_per_instance`` is the CPU time (user + system, all threads) that the runner's
processes (starters and workers) spent from saying "ready" to the end, over N (their
start-up, about a second each of imports, is left out). ``machine_busy_pct`` is the share of
all the machine's cores that were busy from the first start to the last end (``/proc/stat``:
the database server and any other load included). Near 100 % busy, the run is CPU-bound and
``cores x 1000 / (cpu_ms_per_instance + the database server's share)`` is its ceiling.
Every trial runs in a process of its own. Trials are interleaved (``bench.harness``): each
repeat runs every (code, database, workers) combination once, so a loaded machine moves
them alike. Lines are ``name: median (min-max, IQR, n)``; with ``--baseline``, the new/base
ratio is taken repeat by repeat.

``--baseline DIR`` runs every combination a second time with the ``runner`` package of DIR
(e.g. ``git archive main | tar -x -C DIR``): the trials run this file with ``python -P``
and ``PYTHONPATH=DIR``, so DIR needs ``bench/harness.py`` (main has it) and nothing else of
this bench.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import harness
from runner.registry import HandlerContext, Registry
from runner.service import scheduler
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from runner.store.database import make_engine
from runner.store.models import Instance

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]  # this checkout
BPMN = ROOT / "tests" / "bpmn" / "jobs" / "noop_service.bpmn"
PROCESS, TOPIC = "bench_noop", "bench.noop"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BARE_UPDATE = sa.text("UPDATE bench_bare SET v = :v WHERE id = 1")


def noop(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """The service task's handler: does nothing, returns nothing to merge."""
    return {}


def make_runner(url: str, poll: float) -> Runner:
    registry = Registry()
    registry.add(TOPIC, noop)
    return Runner(Settings.from_env({}, database_url=url, clock="system", poll_seconds=poll), registry)


# --- a worker process ------------------------------------------------------------------


def worker(url: str, poll: float) -> None:
    """``runner worker`` with the bench topic: says it is ready, then works until SIGTERM."""
    # NOTE: a tick that outlasts the poll interval is skipped with a warning; not news here.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    runner = make_runner(url, poll)
    print(f"ready {time.process_time()}", flush=True)
    scheduler.work(runner)
    print(f"cpu {time.process_time()}", flush=True)


def starter(url: str, first: int, last: int) -> None:
    """Start instances ``first``..``last - 1`` once told to go; print when the first began and the last ended."""
    runner = make_runner(url, 1.0)
    print(f"ready {time.process_time()}", flush=True)
    sys.stdin.readline()
    began = time.time()
    for i in range(first, last):
        runner.start_instance(PROCESS, f"B{i}", {"i": i})
    print(f"{began} {time.time()} {time.process_time()}", flush=True)
    runner.db.engine.dispose()


# --- one trial (in a process of its own) --------------------------------------------------


def _spawn(commands: list[list[str]]) -> tuple[list[subprocess.Popen], float]:
    """Processes started with these commands, once each has said it is ready; and their CPU s until then."""
    procs = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        for command in commands
    ]
    cpu = 0.0
    for proc in procs:
        assert proc.stdout is not None
        said = proc.stdout.readline().split()
        if not said or said[0] != "ready":
            raise SystemExit(f"a bench process did not start (exit {proc.wait()})")
        cpu += float(said[1])
    return procs, cpu


def _start_all(url: str, n: int, starters: int) -> tuple[float, float, float]:
    """Start ``n`` instances from ``starters`` processes at once.

    Returns (first start, last start returned) in epoch s, and the starters' CPU s after "ready".
    """
    bounds = [n * i // starters for i in range(starters + 1)]
    base = [sys.executable, "-P", str(HERE), "--starter", url, "--range"]
    procs, ready_cpu = _spawn([[*base, f"{bounds[i]}:{bounds[i + 1]}"] for i in range(starters)])
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    times = [proc.communicate(timeout=600)[0].split() for proc in procs]
    if any(proc.returncode != 0 for proc in procs):
        raise SystemExit("a starter failed")
    cpu = sum(float(t[2]) for t in times) - ready_cpu
    return min(float(t[0]) for t in times), max(float(t[1]) for t in times), cpu


def _stop(procs: list[subprocess.Popen]) -> float:
    """Stop the workers (SIGTERM, as a service manager does); their CPU s in total, as each said on its way out."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    cpu = 0.0
    for proc in procs:
        try:
            out = proc.communicate(timeout=30)[0].split()
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise SystemExit("a worker did not stop within 30 s of SIGTERM") from None
        cpu += float(out[out.index("cpu") + 1])
    return cpu


def _drain(runner: Runner, n: int, timeout: float) -> float:
    """Wait until ``n`` instances completed; the epoch time the last one ended."""
    done = sa.select(sa.func.count()).select_from(Instance).where(Instance.status == "completed")
    deadline = time.monotonic() + timeout
    while True:
        with runner.db.read() as s:
            if s.scalar(done) == n:
                last = s.scalar(sa.select(sa.func.max(Instance.ended_at)))
                assert last is not None, "completed instances have an end time"
                return last.timestamp()
        if time.monotonic() > deadline:
            raise SystemExit(f"only some of {n} instances completed within {timeout:g} s")
        time.sleep(0.02)


def bare_commit_ms(url: str, samples: int = 51) -> float:
    """Median ms of a one-row UPDATE + COMMIT on the trial's database, with the runner's engine set-up.

    The floor of any durable unit of work there (an fsync): the default path commits twice per
    instance (the start, then the job), so a single writer tops out near 1000 / (2 x this).
    """
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE bench_bare (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            conn.exec_driver_sql("INSERT INTO bench_bare (id, v) VALUES (1, '')")
        timings = []
        for sample in range(samples):
            started = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(BARE_UPDATE, {"v": str(sample)})
            timings.append((time.perf_counter() - started) * 1000)
        return statistics.median(timings)
    finally:
        engine.dispose()


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from ``/proc/stat``; (0, 0) where there is none."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # NOTE: idle + iowait
    return sum(fields) - idle, sum(fields)


def run_trial(url: str, n: int, k: int, poll: float, starters: int) -> tuple[float, float, float, float, float]:
    """(instances/s end to end, starts/s, bare commit ms, runner CPU ms per instance, machine busy %) of one trial."""
    runner = make_runner(url, poll)
    runner.deploy([BPMN], actor="bench")
    procs, ready_cpu = _spawn(
        [[sys.executable, "-P", str(HERE), "--worker", url, "--poll", str(poll)] for _ in range(k)]
    )
    stopped = False
    try:
        busy_before, total_before = _machine_jiffies()
        first, started, starters_cpu = _start_all(url, n, starters)
        last = _drain(runner, n, timeout=60 + n)
        busy_after, total_after = _machine_jiffies()
        workers_cpu, stopped = _stop(procs) - ready_cpu, True
    finally:
        if not stopped:
            _stop(procs)
        runner.db.engine.dispose()
    # NOTE: the workers' CPU includes their idle polls from the last end to SIGTERM: a slight overcount.
    cpu_ms = (starters_cpu + workers_cpu) * 1000 / n
    busy = 100 * (busy_after - busy_before) / max(total_after - total_before, 1)
    return n / (last - first), n / (started - first), bare_commit_ms(url), cpu_ms, busy


def trial(database: str, n: int, k: int, poll: float, pg: str, starters: int) -> tuple[float, ...]:
    """A trial on a fresh SQLite file or a fresh PostgreSQL schema (dropped afterwards)."""
    if database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'runner.db'}"
            db.upgrade(url)
            return run_trial(url, n, k, poll, starters)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg)
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    try:
        scoped = sa.make_url(pg).update_query_dict({"options": f"-csearch_path={schema}"})
        rendered = scoped.render_as_string(hide_password=False)
        db.upgrade(rendered)
        return run_trial(rendered, n, k, poll, starters)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


# --- the interleaved run -----------------------------------------------------------------


def _run_child(code: str, database: str, k: int, args: argparse.Namespace) -> tuple[float, ...]:
    env = {**os.environ, "PYTHONPATH": code}
    command = [sys.executable, "-P", str(HERE), "--trial", database, "--instances", str(args.instances)]
    command += ["--workers", str(k), "--poll", str(args.poll), "--pg", args.pg, "--starters", str(args.starters)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"trial {database} {k}w ({code}) failed:\n{out.stderr[-3000:]}")
    return tuple(float(v) for v in out.stdout.split()[-5:])


def interleaved(args: argparse.Namespace) -> list[str]:
    """Every combination once per repeat (``bench.harness`` order); lines with medians and spreads."""
    databases = ["sqlite", "pg"] if args.db == "both" else [args.db]
    codes = {"new": str(ROOT)} | ({"base": str(Path(args.baseline).resolve())} if args.baseline else {})
    combos = {
        f"{d}_{k}w" + ("" if len(codes) == 1 else f"_{label}"): (code, d, k)
        for d in databases
        for k in (int(w) for w in args.workers.split(","))
        for label, code in codes.items()
    }
    extra: dict[str, list[tuple[float, ...]]] = {name: [] for name in combos}

    def variant(name: str) -> harness.Variant:
        def run() -> float:
            rate, *others = _run_child(*combos[name], args)
            extra[name].append(tuple(others))
            print(f"# {name}: {rate:.1f}/s", file=sys.stderr, flush=True)
            return rate

        return run

    rates = harness.interleave({name: variant(name) for name in combos}, rounds=args.repeats, warmup=0)
    lines = []
    for name in combos:
        starts, bare, cpu, busy = zip(*extra[name], strict=True)
        lines.append(harness.line(f"{name}_instances_per_s", harness.Summary.of(rates[name]), 1))
        lines.append(harness.line(f"{name}_starts_per_s", harness.Summary.of(starts), 1))
        lines.append(harness.line(f"{name}_bare_commit_ms", harness.Summary.of(bare), 2))
        lines.append(harness.line(f"{name}_cpu_ms_per_instance", harness.Summary.of(cpu), 2))
        lines.append(harness.line(f"{name}_machine_busy_pct", harness.Summary.of(busy), 0))
        if name.endswith("_new") and name.removesuffix("_new") + "_base" in rates:
            base = rates[name.removesuffix("_new") + "_base"]
            ratio = harness.paired_ratios(rates[name], base)
            lines.append(harness.line(f"{name.removesuffix('_new')}_new_to_base", ratio, 2))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "pg", "both"], default="both")
    parser.add_argument("--instances", type=int, default=300, help="instances per trial (default: %(default)s)")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default: %(default)s)")
    parser.add_argument("--poll", type=float, default=0.1, help="workers' poll interval, s (default: %(default)s)")
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL database URL (default: %(default)s)")
    parser.add_argument("--baseline", help="a checkout whose runner package is measured too, interleaved")
    parser.add_argument("--starters", type=int, default=1, help="processes starting instances (default: %(default)s)")
    parser.add_argument("--trial", choices=["sqlite", "pg"], help=argparse.SUPPRESS)
    parser.add_argument("--starter", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--range", help=argparse.SUPPRESS)  # a starter's instances, FIRST:LAST
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.poll)
        return 0
    if args.starter:
        first, last = args.range.split(":")
        starter(args.starter, int(first), int(last))
        return 0
    if args.trial:
        figures = trial(args.trial, args.instances, int(args.workers), args.poll, args.pg, args.starters)
        print(" ".join(f"{v:.4f}" for v in figures))
        return 0
    for line in interleaved(args):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
