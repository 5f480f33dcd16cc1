"""Does completing a task cost more after years of looping? Aged and fresh, interleaved.

    python -m bench.long_lived               # age one instance 10,000 rounds, then 100 rounds of samples
    python -m bench.long_lived --rounds 120  # a smoke run

The monthly care loop (tests/bpmn/loop.bpmn) runs on the runner's own SQLite set-up
(WAL, synchronous=FULL) in a temporary directory. First one instance is aged: it loops
``--rounds`` times, untimed. Then each sampling round measures three things, in an
alternating order (see ``bench.harness``), in the same database file:

- ``aged``: one ``Runner.complete_task`` of the aged instance (load, complete the user
  task, run the engine, prune, save, commit); its month and service task then pass
  through ``advance_clock``, untimed;
- ``fresh``: the same call on the first task of an instance started just before
  (untimed; it ends after its first month, so fresh instances do not pile up as open work);
- ``bare_commit``: a plain UPDATE of the aged instance's saved state in a table of its
  own, plus COMMIT: the floor any durable save pays (the median of five in a row).

The ratios are taken round by round (aged / fresh and aged / bare commit of the same
round, a fraction of a second apart), so load on a shared machine hits both sides and
cancels out; the median and spread of those ratios are printed. NOTE: on a loaded machine a
single ratio still scatters widely (a sample of a few ms is preempted or not); the median
of 100 rounds is what stays put, so do not cut ``--samples`` for a figure that counts.
Output lines are ``name: value`` or ``name: median (min–max, IQR, n)``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bench import harness
from runner.registry import installed
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from runner.store.models import Instance, UserTask

ROOT = Path(__file__).resolve().parents[1]  # the checkout
LOOP = ROOT / "tests" / "bpmn" / "loop.bpmn"
ROUNDS = 10_000
SAMPLES = 100
MONTH = timedelta(days=31)
AGED = "bench-aged"
BARE_PER_ROUND = 5


def open_task(runner: Runner, instance_id: str) -> str:
    """The id of the instance's one open user task."""
    with runner.db.read() as s:
        found = s.scalars(select(UserTask.id).where(UserTask.instance_id == instance_id, UserTask.state == "open"))
        return found.one()


def complete(runner: Runner, instance_id: str, note: str) -> float:
    """Complete the instance's open task; the call's wall time in ms."""
    task_id = open_task(runner, instance_id)
    started = time.perf_counter()
    runner.complete_task(task_id, {"note": note}, actor="bench")
    return (time.perf_counter() - started) * 1000


class Loop:
    """The aged instance, the fresh ones and the bare-commit table, in one database."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.aged = ""
        self.rounds = 0
        self.fresh = 0

    def age(self, rounds: int, samples: int) -> None:
        """Start the aged instance and loop it ``rounds`` times (untimed)."""
        self.runner.deploy([LOOP], actor="bench")
        # NOTE: enough rounds left that the instance is still looping when sampling ends.
        limit = rounds + samples + 10
        self.aged = self.runner.start_instance("care_loop", AGED, {"rounds": 0, "limit": limit})
        for _ in range(rounds):
            self.aged_round()
        with self.runner.db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE bench_bare (id TEXT PRIMARY KEY, state TEXT NOT NULL)")
            conn.exec_driver_sql("INSERT INTO bench_bare (id, state) VALUES (?, ?)", ("bench", self.state()))

    def state(self) -> str:
        """The aged instance's saved state."""
        with self.runner.db.read() as s:
            return s.get_one(Instance, self.aged).state

    def aged_round(self) -> float:
        """One completion of the aged instance (timed), then its month (untimed)."""
        self.rounds += 1
        elapsed = complete(self.runner, self.aged, f"round {self.rounds}")
        self.runner.advance_clock(MONTH)
        return elapsed

    def fresh_round(self) -> float:
        """Start a one-round instance (untimed) and complete its first task (timed)."""
        self.fresh += 1
        instance_id = self.runner.start_instance("care_loop", f"bench-fresh-{self.fresh}", {"rounds": 0, "limit": 1})
        return complete(self.runner, instance_id, "round 1")

    def bare_commit(self) -> float:
        """A durable UPDATE of a state as large as the aged one, plus COMMIT, on the runner's engine.

        NOTE: the median of a few commits in a row: one commit is a fraction of a millisecond,
        where a single scheduling hiccup would decide the sample.
        """
        value = self.state()
        timings = []
        for commit in range(BARE_PER_ROUND):
            # A changed value each time, so that every commit really writes.
            changed = value + " " * (commit % 2)
            started = time.perf_counter()
            with self.runner.db.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE bench_bare SET state=? WHERE id=?", (changed, "bench"))
            timings.append((time.perf_counter() - started) * 1000)
        return statistics.median(timings)

    def check(self) -> None:
        """The aged instance really looped, once per round."""
        with self.runner.db.read() as s:
            row = s.get_one(Instance, self.aged)
        if row.status != "running" or row.data.get("rounds") != self.rounds:
            raise SystemExit(f"the loop went wrong: status {row.status}, data {row.data}, {self.rounds} rounds")


def measure(runner: Runner, rounds: int, samples: int) -> list[str]:
    """Age, sample interleaved, and return the output lines."""
    loop = Loop(runner)
    loop.age(rounds, samples)
    aged_at = loop.rounds
    times = harness.interleave(
        {"aged": loop.aged_round, "fresh": loop.fresh_round, "bare_commit": loop.bare_commit},
        rounds=samples,
    )
    loop.check()
    lines = [f"rounds_aged: {aged_at}", f"state_bytes_aged: {len(loop.state().encode())}"]
    lines += harness.report({f"ms_per_completion_{k}": v for k, v in times.items() if k != "bare_commit"})
    lines += harness.report({"bare_commit_ms": times["bare_commit"]})
    for name, top, bottom in (
        ("ratio_aged_to_fresh", "aged", "fresh"),
        ("ratio_aged_to_bare_commit", "aged", "bare_commit"),
        ("ratio_fresh_to_bare_commit", "fresh", "bare_commit"),
    ):
        lines.append(harness.line(name, harness.paired_ratios(times[top], times[bottom])))
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.long_lived", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="rounds the aged instance loops first (default: %(default)s)"
    )
    parser.add_argument(
        "--samples", type=int, default=SAMPLES, help="interleaved rounds of aged, fresh, bare (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.samples < 2:
        parser.error("--rounds and --samples must be at least 2")
    with tempfile.TemporaryDirectory(prefix="bench-long-lived-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'runner.db'}"
        db.upgrade(url)
        runner = Runner(Settings.from_env({}, database_url=url, clock="virtual"), installed())
        try:
            lines = measure(runner, args.rounds, args.samples)
        finally:
            runner.db.engine.dispose()
    for line in lines:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
