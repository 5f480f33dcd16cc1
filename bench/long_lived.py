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

Each call is timed twice: wall time, and the CPU time of the bench's thread (SQLite runs
in it). The ratios are taken round by round (aged / fresh and aged / bare commit of the same
round, a fraction of a second apart) and their median and spread printed; ``ratio_*`` are
of CPU times, ``ratio_*_wall`` of wall times. NOTE: why CPU time heads the output: on a
loaded machine a sample of a few ms is preempted or not, and waiting for a core adds the
same milliseconds to a 0.3 ms commit as to a 2 ms completion, so a ratio of wall times moves
with the load (loaded runs gave 3.4 to 8.5 times a bare commit); the CPU a call spends does
not wait. Keep the default 100 rounds for a figure that counts.
Output lines are ``name: value`` or ``name: median (min–max, IQR, n)``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
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


def clocked(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, CPU ms of this thread) of one call."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    return (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000


def complete(runner: Runner, instance_id: str, note: str) -> tuple[float, float]:
    """Complete the instance's open task; the call's (wall ms, CPU ms)."""
    task_id = open_task(runner, instance_id)
    return clocked(lambda: runner.complete_task(task_id, {"note": note}, actor="bench"))


class Loop:
    """The aged instance, the fresh ones and the bare-commit table, in one database."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.aged = ""
        self.rounds = 0
        self.fresh = 0
        # CPU ms per variant, one per call (the harness keeps the wall times)
        self.cpu: dict[str, list[float]] = {"aged": [], "fresh": [], "bare_commit": []}

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
        wall, cpu = complete(self.runner, self.aged, f"round {self.rounds}")
        self.runner.advance_clock(MONTH)
        self.cpu["aged"].append(cpu)
        return wall

    def fresh_round(self) -> float:
        """Start a one-round instance (untimed) and complete its first task (timed)."""
        self.fresh += 1
        instance_id = self.runner.start_instance("care_loop", f"bench-fresh-{self.fresh}", {"rounds": 0, "limit": 1})
        wall, cpu = complete(self.runner, instance_id, "round 1")
        self.cpu["fresh"].append(cpu)
        return wall

    def bare_commit(self) -> float:
        """A durable UPDATE of a state as large as the aged one, plus COMMIT, on the runner's engine.

        NOTE: the median of a few commits in a row: one commit is a fraction of a millisecond,
        where a single scheduling hiccup would decide the sample.
        """
        value = self.state()
        walls, cpus = [], []
        for commit in range(BARE_PER_ROUND):
            # A changed value each time, so that every commit really writes.
            changed = value + " " * (commit % 2)
            wall, cpu = clocked(lambda changed=changed: self._update(changed))
            walls.append(wall)
            cpus.append(cpu)
        self.cpu["bare_commit"].append(statistics.median(cpus))
        return statistics.median(walls)

    def _update(self, value: str) -> None:
        with self.runner.db.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE bench_bare SET state=? WHERE id=?", (value, "bench"))

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
    for kept in loop.cpu.values():
        kept.clear()
    wall = harness.interleave(
        {"aged": loop.aged_round, "fresh": loop.fresh_round, "bare_commit": loop.bare_commit},
        rounds=samples,
    )
    loop.check()
    # NOTE: the harness dropped its warm-up round; the last ``samples`` CPU figures are the same rounds.
    cpu = {name: values[-samples:] for name, values in loop.cpu.items()}
    lines = [f"rounds_aged: {aged_at}", f"state_bytes_aged: {len(loop.state().encode())}"]
    for kind, times in (("ms", wall), ("cpu_ms", cpu)):
        lines += harness.report(
            {
                f"{kind}_per_completion_aged": times["aged"],
                f"{kind}_per_completion_fresh": times["fresh"],
                f"{kind}_per_bare_commit": times["bare_commit"],
            }
        )
    for suffix, times in (("", cpu), ("_wall", wall)):
        for top, bottom in (("aged", "fresh"), ("aged", "bare_commit"), ("fresh", "bare_commit")):
            ratio = harness.paired_ratios(times[top], times[bottom])
            lines.append(harness.line(f"ratio_{top}_to_{bottom}{suffix}", ratio))
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
