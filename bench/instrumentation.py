"""What the metrics and the log context cost on a handler call, measured interleaved in one run.

    python -m bench.instrumentation               # 25 samples of 2,000 calls per case
    python -m bench.instrumentation --samples 5   # a smoke run

"without" is ``runner.service.jobs.call_with_timeout`` on a no-op handler, as a job calls it;
"with" is the same call inside what ``jobs.run_next`` and ``jobs._run`` add around it: a
``runner.logs.bind`` with the unit's fields and ``runner.metrics.handler_call`` (a counter and a
histogram per topic). ``bare`` / ``wrapped`` are the same without the handler's thread, so the
instrumentation's own cost shows apart from the thread start that dominates a call; ``copied`` is
``bare`` run in a copy of the context, as the handler's thread now starts (so "without" has it
too: ``context_copy_overhead`` is its share). The cases
are interleaved sample by sample (the order alternates), so load on the machine hits them
alike. Each figure is the median of the samples in microseconds per call; ``_iqr`` is the spread
between the 25th and 75th percentile, ``_min`` and ``_max`` the extremes. Output lines are
``name: value``.

The counters live in this process (no ``PROMETHEUS_MULTIPROC_DIR``) unless the variable is set
when the bench starts; then each increment also writes to a memory-mapped file, as under gunicorn.
"""

from __future__ import annotations

import argparse
import contextvars
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from runner import logs, metrics
from runner.registry import HandlerContext
from runner.service.jobs import call_with_timeout

PER_SAMPLE = 2_000
TOPIC = "bench.noop"
NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def noop(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """The cheapest handler: what is left is the call's own cost."""
    return {}


def _context() -> HandlerContext:
    return HandlerContext(
        instance_id="i-1",
        business_key="KH1",
        idempotency_key="i-1/j-1",
        element_id="work",
        topic=TOPIC,
        attempt=1,
        now=NOW,
    )


def without() -> None:
    call_with_timeout(noop, {}, _context(), 30.0)


def with_instrumentation() -> None:
    with logs.bind():
        logs.annotate(instance_id="i-1", business_key="KH1", element="work")
        with metrics.handler_call(TOPIC):
            call_with_timeout(noop, {}, _context(), 30.0)


def bare() -> None:
    noop({}, _context())


def wrapped() -> None:
    with logs.bind():
        logs.annotate(instance_id="i-1", business_key="KH1", element="work")
        with metrics.handler_call(TOPIC):
            noop({}, _context())


def copied() -> None:
    contextvars.copy_context().run(noop, {}, _context())


CASES: dict[str, Callable[[], None]] = {
    "call_without": without,
    "call_with": with_instrumentation,
    "bare": bare,
    "wrapped": wrapped,
    "copied": copied,
}


def _sample(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def _spread(values: list[float]) -> tuple[float, float]:
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[0], quartiles[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=25)
    parser.add_argument("--per-sample", type=int, default=PER_SAMPLE)
    args = parser.parse_args(argv)
    names = list(CASES)
    for name in names:  # warm up: first-use costs (labels, files) are not what a call pays
        _sample(CASES[name], 50)
    found: dict[str, list[float]] = {name: [] for name in names}
    for i in range(args.samples):
        for name in names if i % 2 == 0 else reversed(names):
            found[name].append(_sample(CASES[name], args.per_sample))
    for name in names:
        _print(f"{name}_us", found[name])
    pairs = {"call": ("call_with", "call_without"), "own": ("wrapped", "bare"), "context_copy": ("copied", "bare")}
    for label, (a, b) in pairs.items():
        _print(f"{label}_overhead_us", [x - y for x, y in zip(found[a], found[b], strict=True)])
    _print("call_ratio", [x / y for x, y in zip(found["call_with"], found["call_without"], strict=True)], 3)
    return 0


def _print(name: str, values: list[float], digits: int = 2) -> None:
    """The median, the interquartile spread and the extremes of one figure's samples."""
    low, high = _spread(values)
    print(f"{name}: {statistics.median(values):.{digits}f}")
    print(f"{name}_iqr: {high - low:.{digits}f}")
    print(f"{name}_min: {min(values):.{digits}f}")
    print(f"{name}_max: {max(values):.{digits}f}")


if __name__ == "__main__":
    raise SystemExit(main())
