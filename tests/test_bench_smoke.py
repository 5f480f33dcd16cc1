"""The long-lived benchmark runs end to end on a short loop and prints its figures."""

from __future__ import annotations

import re

import pytest

from bench import harness, instrumentation, long_lived

LINE = re.compile(r"^([a-z0-9_]+): (\S+)$")


def test_bench_prints_every_figure_as_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    """Only the shape of the output is checked; timings depend on the machine."""
    assert long_lived.main(["--rounds", "120"]) == 0
    lines = capsys.readouterr().out.splitlines()
    figures = {}
    for line in lines:
        match = LINE.match(line)
        assert match, f"not a 'name: value' line: {line!r}"
        figures[match[1]] = float(match[2])
    assert list(figures) == [
        "ms_per_completion_at_1",
        "ms_per_completion_at_100",
        "ms_per_completion_at_120",
        "ratio_120_to_1",
        "bare_commit_ms",
        "ratio_to_bare_commit",
    ]
    assert all(value > 0 for value in figures.values())


def test_bench_refuses_too_few_rounds() -> None:
    """A loop of one round has nothing to compare."""
    with pytest.raises(SystemExit):
        long_lived.main(["--rounds", "1"])


def test_expression_bench_prints_without_and_with_figures_per_case(capsys: pytest.CaptureFixture[str]) -> None:
    """Only the shape: every case has a median and a spread without and with the budget."""
    from bench import expressions

    assert expressions.main(["--samples", "2"]) == 0
    figures = {}
    for line in capsys.readouterr().out.splitlines():
        match = LINE.match(line)
        assert match, f"not a 'name: value' line: {line!r}"
        figures[match[1]] = float(match[2])
    for case in expressions.CASES:
        assert figures[f"{case}_us_without"] > 0 and figures[f"{case}_us_with"] > 0
        assert f"{case}_iqr_with" in figures and f"{case}_overhead_us" in figures


def test_instrumentation_bench_prints_with_and_without_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """Only the shape: each case, each overhead and the ratio, as harness lines."""
    assert instrumentation.main(["--samples", "3", "--per-sample", "20"]) == 0
    figures = harness.parse(capsys.readouterr().out)
    names = [f"{case}_us" for case in instrumentation.CASES]
    assert list(figures) == [
        *names,
        "call_overhead_us",
        "own_overhead_us",
        "context_copy_overhead_us",
        "call_with_to_without",
    ]
    assert figures["call_without_us"] > 0 and figures["call_with_us"] > 0
