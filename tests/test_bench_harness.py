"""The shared bench harness: interleaving, summaries, paired ratios and the output lines."""

from __future__ import annotations

import pytest

from bench import harness


def test_variants_alternate_and_every_other_round_is_reversed() -> None:
    calls: list[str] = []
    variants = {name: (lambda name=name: calls.append(name) or 1.0) for name in ("a", "b", "c")}
    samples = harness.interleave(variants, rounds=3, warmup=1)
    # warm-up round, then rounds 0..2 (round 1 reversed)
    assert calls == ["a", "b", "c", "a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert samples == {"a": [1.0] * 3, "b": [1.0] * 3, "c": [1.0] * 3}


def test_shuffled_rounds_run_every_variant_once_per_round_in_a_seeded_order() -> None:
    plan = harness.order(["a", "b", "c", "d"], rounds=20, shuffle=True, seed=3)
    assert all(sorted(names) == ["a", "b", "c", "d"] for names in plan)
    assert len({tuple(names) for names in plan}) > 1
    assert plan == harness.order(["a", "b", "c", "d"], rounds=20, shuffle=True, seed=3)


def test_samples_of_one_round_share_an_index() -> None:
    counter = iter(range(100))
    variants = {"a": lambda: float(next(counter)), "b": lambda: float(next(counter))}
    samples = harness.interleave(variants, rounds=2, warmup=0)
    # round 0: a=0, b=1; round 1 reversed: b=2, a=3
    assert samples == {"a": [0.0, 3.0], "b": [1.0, 2.0]}


def test_summary_gives_median_range_and_quartiles() -> None:
    summary = harness.Summary.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (summary.median, summary.low, summary.high, summary.n) == (3.0, 1.0, 5.0, 5)
    assert (summary.q1, summary.q3, summary.iqr) == (2.0, 4.0, 2.0)
    assert summary.text(1) == "3.0 (min–max 1.0–5.0, IQR 2.0, n 5)"
    assert harness.Summary.of([7.0]).iqr == 0.0
    with pytest.raises(ValueError):
        harness.Summary.of([])


def test_paired_ratios_cancel_a_load_that_hits_both_sides_of_a_round() -> None:
    """Round 2 is ten times slower for both: the ratio per round stays 2, the ratio of medians would not."""
    fast = [1.0, 1.0, 10.0, 10.0, 10.0]
    slow = [2.0, 2.0, 20.0, 20.0, 20.0]
    ratio = harness.paired_ratios(slow, fast)
    assert (ratio.median, ratio.low, ratio.high) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError):
        harness.paired_ratios([1.0], [1.0, 2.0])


def test_timed_returns_milliseconds_of_the_call() -> None:
    calls = []
    assert harness.timed(lambda: calls.append(1))() >= 0.0
    assert calls == [1]


def test_report_lines_parse_back_to_their_medians() -> None:
    lines = harness.report({"old": [1.0, 2.0, 3.0], "new": [4.0, 6.0]}, unit="ms")
    assert lines == [
        "old_ms: 2.000 (min–max 1.000–3.000, IQR 1.000, n 3)",
        "new_ms: 5.000 (min–max 4.000–6.000, IQR 1.000, n 2)",
    ]
    assert harness.parse("\n".join([*lines, "rows: 12"])) == {"old_ms": 2.0, "new_ms": 5.0, "rows": 12.0}
    with pytest.raises(ValueError):
        harness.parse("Old MS = 3")


def test_interleave_refuses_zero_rounds() -> None:
    with pytest.raises(ValueError):
        harness.interleave({"a": lambda: 1.0}, rounds=0)
