"""How long completing a task takes after years of looping, on durable SQLite.

    python -m bench.long_lived               # the full 10,000 rounds (a few minutes)
    python -m bench.long_lived --rounds 120  # a smoke run

One instance of the monthly care loop (tests/bpmn/loop.bpmn) runs on the runner's own
SQLite set-up (WAL, synchronous=FULL) in a temporary directory. A "completion" is one
``Runner.complete_task`` call: load the instance, complete the user task, run the
engine, prune, save and commit. Only that call is timed; the month's timer and the
service task between completions run through ``advance_clock`` untimed. Each figure is
the median of rounds N..N+14. The bare commit is a plain UPDATE of the same saved state
plus COMMIT on a separate connection with the same pragmas: the floor any durable
save has to pay. Output lines are ``name: value``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from runner.queries import tasklists as inbox
from runner.registry import installed
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from runner.store.database import make_engine
from runner.store.models import Instance

ROOT = Path(__file__).resolve().parents[1]  # the checkout
LOOP = ROOT / "tests" / "bpmn" / "loop.bpmn"
CHECKPOINTS = (1, 100, 1_000, 10_000)
SAMPLES = 15
BARE_SAMPLES = 51
MONTH = timedelta(days=31)
BUSINESS_KEY = "bench-customer"


def checkpoints(rounds: int) -> list[int]:
    """The standard checkpoints below ``rounds``, then ``rounds`` itself."""
    return [c for c in CHECKPOINTS if c < rounds] + [rounds]


def one_round(runner: Runner, round_no: int) -> float:
    """Complete the open call (timed, in ms), then let the month and the service task pass."""
    [task] = inbox.tasks(runner, business_key=BUSINESS_KEY)
    started = time.perf_counter()
    runner.complete_task(task["id"], {"note": f"round {round_no}"}, actor="bench")
    elapsed = (time.perf_counter() - started) * 1000
    runner.advance_clock(MONTH)
    return elapsed


def run_loop(runner: Runner, rounds: int, samples_per_mark: int = SAMPLES) -> tuple[dict[int, float], str]:
    """Median completion time at each checkpoint, and the saved state at the end."""
    runner.deploy([LOOP], actor="bench")
    marks = checkpoints(rounds)
    total = rounds + samples_per_mark - 1
    instance_id = runner.start_instance("care_loop", BUSINESS_KEY, {"rounds": 0, "limit": total + 1})
    samples: dict[int, list[float]] = {mark: [] for mark in marks}
    for round_no in range(1, total + 1):
        elapsed = one_round(runner, round_no)
        for mark in marks:
            if mark <= round_no < mark + samples_per_mark:
                samples[mark].append(elapsed)
    with runner.db.read() as s:
        row = s.get(Instance, instance_id)
        if row.status != "running" or row.data.get("rounds") != total:
            raise SystemExit(f"the loop went wrong: status {row.status}, data {row.data}")
        state = row.state
    return {mark: statistics.median(values) for mark, values in samples.items()}, state


def bare_commit_ms(url: str, state: str) -> float:
    """Median ms of a plain durable UPDATE + COMMIT of ``state``, with the runner's pragmas."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE instances (id TEXT PRIMARY KEY, state TEXT NOT NULL)")
            conn.exec_driver_sql("INSERT INTO instances (id, state) VALUES (?, ?)", ("bench", state))
        timings = []
        for sample in range(BARE_SAMPLES):
            # A changed value each time, so that every commit really writes.
            value = state if sample % 2 else state + " "
            timings.append(_timed(functools.partial(_update, engine, value)))
        return statistics.median(timings)
    finally:
        engine.dispose()


def _update(engine, value: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE instances SET state=? WHERE id=?", (value, "bench"))


def _timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def report(figures: dict[int, float], bare: float) -> list[str]:
    """The output lines."""
    last = max(figures)
    lines = [f"ms_per_completion_at_{mark}: {ms:.3f}" for mark, ms in figures.items()]
    lines.append(f"ratio_{last}_to_1: {figures[last] / figures[1]:.3f}")
    lines.append(f"bare_commit_ms: {bare:.3f}")
    lines.append(f"ratio_to_bare_commit: {figures[last] / bare:.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.long_lived", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=CHECKPOINTS[-1],
        help="rounds of the loop before the last checkpoint (default: %(default)s)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=SAMPLES,
        help="completions timed from each checkpoint on; the median counts (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.samples < 1:
        parser.error("--rounds must be at least 2 and --samples at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-long-lived-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'runner.db'}"
        db.upgrade(url)
        runner = Runner(Settings.from_env({}, database_url=url, clock="virtual"), installed())
        try:
            figures, state = run_loop(runner, args.rounds, args.samples)
        finally:
            runner.db.engine.dispose()
        bare = bare_commit_ms(f"sqlite:///{Path(tmp) / 'bare.db'}", state)
    for line in report(figures, bare):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
