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
alike (``bench.harness``). Each line is ``name: median (min–max, IQR, n)`` in microseconds per
call; the overheads are taken round by round (with minus without), and the ratio too.

The counters live in this process (no ``PROMETHEUS_MULTIPROC_DIR``) unless the variable is set
when the bench starts; then each increment also writes to a memory-mapped file, as under gunicorn.
"""

from __future__ import annotations

import argparse
import contextvars
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench import harness
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


def _per_call(fn: Callable[[], None], n: int) -> harness.Variant:
    """A variant returning the mean microseconds per call over ``n`` calls."""

    def variant() -> float:
        started = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - started) / n * 1e6

    return variant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=25)
    parser.add_argument("--per-sample", type=int, default=PER_SAMPLE)
    args = parser.parse_args(argv)
    variants = {name: _per_call(fn, args.per_sample) for name, fn in CASES.items()}
    samples = harness.interleave(variants, rounds=args.samples)
    for text in harness.report(samples, unit="us", digits=2):
        print(text)
    for label, (a, b) in {
        "call": ("call_with", "call_without"),
        "own": ("wrapped", "bare"),
        "context_copy": ("copied", "bare"),
    }.items():
        diffs = [x - y for x, y in zip(samples[a], samples[b], strict=True)]
        print(harness.line(f"{label}_overhead_us", harness.Summary.of(diffs), 2))
    print(harness.line("call_with_to_without", harness.paired_ratios(samples["call_with"], samples["call_without"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
