"""The long-lived benchmark runs end to end on a short loop and prints its figures."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bench import harness, instrumentation, long_lived, reads_crm, timers, unit_work
from runner.registry import installed
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store.models import Instance

LINE = re.compile(r"^([a-z0-9_]+): (\S+)$")


def test_bench_prints_every_figure_as_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    """Only the shape of the output is checked; timings depend on the machine."""
    assert long_lived.main(["--rounds", "30", "--samples", "3"]) == 0
    figures = harness.parse(capsys.readouterr().out)
    assert list(figures) == [
        "rounds_aged",
        "state_bytes_aged",
        "ms_per_completion_aged",
        "ms_per_completion_fresh",
        "ms_per_bare_commit",
        "cpu_ms_per_completion_aged",
        "cpu_ms_per_completion_fresh",
        "cpu_ms_per_bare_commit",
        "ratio_aged_to_fresh",
        "ratio_aged_to_bare_commit",
        "ratio_fresh_to_bare_commit",
        "ratio_aged_to_fresh_wall",
        "ratio_aged_to_bare_commit_wall",
        "ratio_fresh_to_bare_commit_wall",
    ]
    assert figures["rounds_aged"] == 30
    assert all(value > 0 for value in figures.values())


def test_bench_samples_aged_fresh_and_bare_alternately_in_one_database(sqlite_url: str) -> None:
    """Each sampling round runs all three; the aged instance keeps looping, one fresh instance per round."""
    runner = Runner(Settings.from_env({}, database_url=sqlite_url, clock="virtual"), installed())
    try:
        lines = long_lived.measure(runner, rounds=5, samples=4)
        figures = harness.parse("\n".join(lines))
        with runner.db.read() as s:
            aged = s.scalars(select(Instance).where(Instance.business_key == long_lived.AGED)).one()
            fresh = s.scalars(select(Instance).where(Instance.business_key.like("bench-fresh-%"))).all()
        assert aged.data["rounds"] == 5 + 1 + 4  # aged, one warm-up round, four samples
        assert len(fresh) == 1 + 4
        assert all(row.data["note"] == "round 1" for row in fresh)
        assert figures["rounds_aged"] == 5
    finally:
        runner.db.engine.dispose()


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


def test_crm_reads_bench_prints_every_read_at_every_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert reads_crm.main(["--sizes", "100,200", "--db", "sqlite", "--repeats", "1"]) == 0
    figures = harness.parse(capsys.readouterr().out)
    for n in (100, 200):
        assert f"reads_crm_sqlite_build_{n}_s" in figures
        for name in reads_crm.reads(n):
            assert figures[f"reads_crm_sqlite_{name}_{n}_ms"] > 0


@pytest.mark.postgres
def test_timer_bench_prints_drains_rates_and_claim_times(pg_base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the shape, on a tiny backlog: every figure a number, every firing counted by the bench."""
    argv = ["--url", pg_base_url, "--timers", "12", "--workers", "1,2", "--repeats", "1"]
    assert timers.main([*argv, "--claim-sizes", "200", "--claim-repeats", "2"]) == 0
    figures = harness.parse(capsys.readouterr().out)
    assert {"claim_ms_at_200_old_claim_1", "claim_ms_at_200_new_claim_50", "drain_s_2_workers_claim_50"} <= set(figures)
    assert figures["timers"] == 12 and figures["speedup_2_workers_over_1_claim_50"] > 0


def test_unit_work_bench_prints_old_and_new_per_item_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """Only the shape: every sample worked all its items off (the bench raises otherwise)."""
    unit_work.main(["--items", "3", "--rounds", "1"])
    figures = harness.parse(capsys.readouterr().out)
    assert list(figures) == [
        f"{kind}_{name}" for kind in ("timer", "job") for name in ("old_ms_per_item", "new_ms_per_item", "new_to_old")
    ]
    assert all(value > 0 for value in figures.values())
