"""Interleaved A/B measurement that survives a noisy machine.

On a shared machine, load comes and goes in bursts of seconds. Measuring A for a minute
and then B for a minute lets a burst land on one side only; alternating A B A B ...
(or a shuffled order per round) lands it on both. So every bench module runs its
variants through :func:`interleave` and prints :func:`report` lines::

    from bench import harness

    samples = harness.interleave({"old": harness.timed(old), "new": harness.timed(new)}, rounds=15)
    for line in harness.report(samples, unit="ms"):
        print(line)
    print(harness.line("new_to_old", harness.paired_ratios(samples["new"], samples["old"])))

which prints ``name: median (min–max lo–hi, IQR iqr, n N)`` lines, e.g.::

    old: 12.301 (min–max 11.020–19.870, IQR 1.204, n 15)

A variant is a callable that returns one sample (any unit). :func:`timed` turns a plain
function into one that returns its wall time in milliseconds; a variant that times only
part of its work (set-up untimed) measures itself and returns the figure.

A ratio between two variants is best taken per round (:func:`paired_ratios`): the two
samples of one round ran seconds apart, under the same load, so their ratio cancels it.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

Variant = Callable[[], float]

# What a report line looks like; the value is the median (tests parse lines with it).
LINE = re.compile(r"^(?P<name>[a-z0-9_]+): (?P<value>-?[0-9.]+(?:e-?[0-9]+)?)(?: \((?P<spread>[^)]*)\))?$")


@dataclass(frozen=True)
class Summary:
    """The median of some samples and how far they spread."""

    median: float
    low: float
    high: float
    q1: float
    q3: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        """Median, min, max and quartiles of ``values`` (at least one)."""
        data = sorted(values)
        if not data:
            raise ValueError("no samples to summarise")
        if len(data) == 1:
            q1 = q3 = data[0]
        else:
            # NOTE: "inclusive" keeps the quartiles inside the sample range for small n.
            q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
        return cls(statistics.median(data), data[0], data[-1], q1, q3, len(data))

    @property
    def iqr(self) -> float:
        """Spread between the 25th and the 75th percentile."""
        return self.q3 - self.q1

    def text(self, digits: int = 3) -> str:
        """``median (min–max lo–hi, IQR iqr, n N)``."""
        d = digits
        return f"{self.median:.{d}f} (min–max {self.low:.{d}f}–{self.high:.{d}f}, IQR {self.iqr:.{d}f}, n {self.n})"


def timed(fn: Callable[[], object]) -> Variant:
    """A variant that runs ``fn`` and returns its wall time in milliseconds."""

    def variant() -> float:
        started = time.perf_counter()
        fn()
        return (time.perf_counter() - started) * 1000

    return variant


def order(names: list[str], rounds: int, *, shuffle: bool = False, seed: int = 11) -> list[list[str]]:
    """The order of the variants in each round: alternating (A B, B A, ...) or shuffled.

    NOTE: plain alternation reverses every other round, so neither variant always runs
    right after the other (a cache warmed by the previous variant favours whoever is second).
    """
    rng = random.Random(seed)
    plan = []
    for round_no in range(rounds):
        names_now = list(names)
        if shuffle:
            rng.shuffle(names_now)
        elif round_no % 2:
            names_now.reverse()
        plan.append(names_now)
    return plan


def interleave(
    variants: Mapping[str, Variant],
    rounds: int,
    *,
    warmup: int = 1,
    shuffle: bool = False,
    seed: int = 11,
) -> dict[str, list[float]]:
    """Run every variant once per round, interleaved; the samples per variant, in round order.

    ``warmup`` rounds run first and are dropped (imports, caches, the first connection).
    Samples of round ``i`` sit at index ``i`` of every list, for :func:`paired_ratios`.
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    for names in order(list(variants), warmup, shuffle=shuffle, seed=seed):
        for name in names:
            variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for names in order(list(variants), rounds, shuffle=shuffle, seed=seed):
        for name in names:
            samples[name].append(float(variants[name]()))
    return samples


def paired_ratios(numerator: list[float], denominator: list[float]) -> Summary:
    """The summary of ``numerator[i] / denominator[i]``: round by round, so load cancels out."""
    if len(numerator) != len(denominator):
        raise ValueError(f"{len(numerator)} samples against {len(denominator)}: not paired")
    return Summary.of(a / b for a, b in zip(numerator, denominator, strict=True) if b > 0)


def line(name: str, summary: Summary, digits: int = 3) -> str:
    """One output line, ``name: median (spread ...)``."""
    return f"{name}: {summary.text(digits)}"


def report(samples: Mapping[str, list[float]], unit: str = "", digits: int = 3) -> list[str]:
    """One line per variant; ``unit`` (e.g. "ms") is appended to every name."""
    suffix = f"_{unit}" if unit else ""
    return [line(f"{name}{suffix}", Summary.of(values), digits) for name, values in samples.items()]


def parse(text: str) -> dict[str, float]:
    """The ``name: value`` figures of a bench's output (the median where a spread follows)."""
    figures = {}
    for raw in text.splitlines():
        match = LINE.match(raw)
        if not match:
            raise ValueError(f"not a 'name: value' line: {raw!r}")
        figures[match["name"]] = float(match["value"])
    return figures
