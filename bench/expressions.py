"""What the evaluation budget costs per expression and script, measured in one run.

    python -m bench.expressions               # 25 samples of 2,000 evaluations per case
    python -m bench.expressions --samples 5   # a smoke run

"with" is ``runner.sandbox.expressions.evaluate``/``execute`` as the engine calls them: checked,
guarded by ``runner.sandbox.guards`` and run under a ``runner.sandbox.budget.Budget``. "without" is the
same check and compile with no guard rewrite and no budget, evaluated in the same
namespace. Two mechanisms that were not chosen are measured beside them, as evidence:
"tracer" runs the unguarded code under ``sys.settrace`` counting events (what an
operation-counting budget costs), and "subprocess" sends each evaluation to a long-lived
child process over a pipe (what isolation with rlimits costs, before any rlimit). All
are interleaved sample by sample, so load on the machine hits them alike. Each figure is
the median of the samples in microseconds per evaluation; ``_iqr`` is the spread between
the 25th and 75th percentile. Output lines are ``name: value``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from types import CodeType
from typing import Any

from runner.engine import scripting
from runner.sandbox import expressions

PER_SAMPLE = 2_000

# name -> (mode, text, data)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "condition": ("eval", "${score < 9}", {"score": 7}),
    "condition_with_call": ("eval", "${len(items) > 2 and sum(items) > 10}", {"items": [3, 4, 5, 6]}),
    "comprehension": ("eval", "[x * 2 for x in items if x > 3]", {"items": list(range(50))}),
    "script_with_loop": (
        "exec",
        "total = 0\nfor i in range(100):\n    total += i * i\nbig = total > 1000",
        {"customer": "KH1"},
    ),
}


@functools.lru_cache(maxsize=64)
def _unguarded(text: str, mode: str) -> CodeType:
    """The same allow-list check and compile as the runner's, without the guard rewrite."""
    source = expressions.unwrap(text) if mode == "eval" else text
    tree = ast.parse(source, mode=mode)
    expressions._check_tree(tree, "expression" if mode == "eval" else "script", source)
    return compile(tree, "<bench>", mode)


def without_budget(mode: str, text: str, data: dict[str, Any]) -> Any:
    """Evaluate as the runner did before budgets: same namespace, no guards."""
    if mode == "eval":
        return eval(_unguarded(scripting.translate(text), mode), expressions._namespace(data))  # noqa: S307
    namespace = expressions._namespace(copy.deepcopy(dict(data)))
    exec(_unguarded(text, mode), namespace)  # noqa: S102
    return namespace


def with_budget(mode: str, text: str, data: dict[str, Any]) -> Any:
    """Evaluate as the engine does now."""
    if mode == "eval":
        return expressions.evaluate(scripting.translate(text), data)
    return expressions.execute(text, data)


def _tracer(frame: Any, event: str, arg: Any) -> Any:
    """Count every event, as a budget that looks at the clock every N operations would."""
    _tracer.count += 1  # type: ignore[attr-defined]
    return _tracer


_tracer.count = 0  # type: ignore[attr-defined]


def with_tracer(mode: str, text: str, data: dict[str, Any]) -> Any:
    """The unguarded code under an event-counting tracer."""
    sys.settrace(_tracer)
    try:
        return without_budget(mode, text, data)
    finally:
        sys.settrace(None)


def _child(connection: Any) -> None:
    """Evaluate what the parent sends until it sends None."""
    while (request := connection.recv()) is not None:
        result = without_budget(*request)
        connection.send(result if request[0] == "eval" else len(result))


class Subprocess:
    """One long-lived child process that evaluates over a pipe."""

    def __init__(self) -> None:
        self.parent, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(target=_child, args=(child,), daemon=True)
        self.process.start()

    def __call__(self, mode: str, text: str, data: dict[str, Any]) -> Any:
        self.parent.send((mode, text, data))
        return self.parent.recv()

    def close(self) -> None:
        self.parent.send(None)
        self.process.join(10)


def _sample(fn: Callable[..., Any], case: tuple[str, str, dict[str, Any]]) -> float:
    """Microseconds per evaluation over PER_SAMPLE evaluations."""
    mode, text, data = case
    started = time.perf_counter()
    for _ in range(PER_SAMPLE):
        fn(mode, text, data)
    return (time.perf_counter() - started) / PER_SAMPLE * 1e6


def _iqr(values: list[float]) -> float:
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[2] - quartiles[0]


def measure(samples: int) -> dict[str, float]:
    """Every case by every mechanism, interleaved; medians and spreads."""
    figures: dict[str, float] = {}
    child = Subprocess()
    mechanisms = {"without": without_budget, "with": with_budget, "tracer": with_tracer, "subprocess": child}
    try:
        for name, case in CASES.items():
            assert with_budget(*case) is not None and without_budget(*case) is not None
            times: dict[str, list[float]] = {label: [] for label in mechanisms}
            for _ in range(samples):
                for label, fn in mechanisms.items():
                    times[label].append(_sample(fn, case))
            for label, values in times.items():
                figures[f"{name}_us_{label}"] = statistics.median(values)
                figures[f"{name}_iqr_{label}"] = _iqr(values)
            figures[f"{name}_overhead_us"] = figures[f"{name}_us_with"] - figures[f"{name}_us_without"]
    finally:
        child.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print every figure as ``name: value``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=25)
    args = parser.parse_args(argv)
    if args.samples < 2:
        parser.error("--samples must be 2 or more (a spread needs two samples)")
    for name, value in measure(args.samples).items():
        print(f"{name}: {value:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
