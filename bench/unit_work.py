"""The per-item unit of work: N fired timers and N run no-op jobs, old vs new, on SQLite.

    python -m bench.unit_work --items 100 --rounds 7

Each sample starts N instances on a fresh SQLite file (not timed), then times one
``run_due`` that works all N off (each item its own unit of work): N timers of a
start → timer → end process with the clock moved past them, or N jobs of
start → no-op service task → end. "old" reads each claimed row with the statement
built anew per item (as before the held statement was cached), "new" with the code as
it is. The variants alternate within each round (``bench.harness``). Output: ``name: value``
lines, milliseconds per item, medians with spread, and the new/old ratio per round.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench import harness
from bench.timers import PROCESS
from runner.registry import installed
from runner.service import claims
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from runner.store.models import Instance

NOOP = Path(__file__).resolve().parents[1] / "tests" / "bpmn" / "jobs" / "noop_service.bpmn"
NEW = claims.held_query


def old_held_query(kind: claims.Kind, row_id: Any, worker: str, postgres: bool, *, with_instance: bool = False):
    """The held statement built anew for every item (the code before it was cached)."""
    model = kind.model
    query = select(model, Instance).join(Instance, model.instance_id == Instance.id) if with_instance else select(model)
    query = query.where(model.id == row_id, model.state == kind.state, model.locked_by == worker)
    return (query.with_for_update(skip_locked=True) if postgres else query), {}


def _runner(folder: Path, kind: str, items: int) -> Runner:
    url = f"sqlite:///{folder / 'runner.db'}"
    db.upgrade(url)
    registry = installed()
    registry.add("bench.noop", lambda params, ctx: {"done": True})
    runner = Runner(Settings.from_env({}, database_url=url, clock="virtual"), registry=registry)
    if kind == "job":
        runner.deploy([NOOP])
        key = "bench_noop"
    else:
        path = folder / "timer.bpmn"
        path.write_bytes(PROCESS)
        runner.deploy([path])
        key = "bench_timer"
    for i in range(items):
        runner.start_instance(key, f"K{i}", {"n": i})
    if kind == "timer":
        runner.clock.catch_up(runner.clock.now() + timedelta(hours=2))
        with runner.db.unit() as s:
            runner.save_clock(s)
    return runner


def variant(kind: str, items: int, held: Callable[..., Any]) -> harness.Variant:
    """One sample: ms per item of a ``run_due`` over ``items`` due items, with ``held`` as the held query."""

    def sample() -> float:
        with tempfile.TemporaryDirectory() as folder:
            runner = _runner(Path(folder), kind, items)
            claims.held_query = held  # type: ignore[assignment]
            try:
                done: list[int] = []
                ms = harness.timed(lambda: done.append(runner.run_due()))()
            finally:
                claims.held_query = NEW
                runner.db.engine.dispose()
            if done != [items]:
                raise RuntimeError(f"worked off {done} of {items}")
            return ms / items

    return sample


def main(argv: list[str] | None = None) -> None:
    """Run the interleaved A/B and print its lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.unit_work", description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100, help="items per sample (default 100)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    args = parser.parse_args(argv)
    for kind in ("timer", "job"):
        samples = harness.interleave(
            {
                f"{kind}_old": variant(kind, args.items, old_held_query),
                f"{kind}_new": variant(kind, args.items, NEW),
            },
            rounds=args.rounds,
        )
        for line in harness.report(samples, unit="ms_per_item"):
            print(line, flush=True)
        ratio = harness.paired_ratios(samples[f"{kind}_new"], samples[f"{kind}_old"])
        print(harness.line(f"{kind}_new_to_old", ratio), flush=True)


if __name__ == "__main__":
    main()
