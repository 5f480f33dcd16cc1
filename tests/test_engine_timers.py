"""Timer events on the runner's clock: dates, durations, cycles, boundaries and timer starts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.harness import Harness, utc


def due(h: Harness) -> list[tuple[str, object]]:
    return [(t.element_id, t.due_at) for t in h.timers()]


def test_intermediate_timers_fire_in_turn(mode):
    h = Harness("timers.bpmn", "catch_timers", mode).start({"delay": "PT30M", "demo_at": "2026-03-04T10:00:00"})
    expected = [
        ("wait_date", utc(2026, 3, 3, 2, 0)),  # timeDate, naive = Asia/Ho_Chi_Minh
        ("wait_duration", utc(2026, 3, 3, 4, 0)),  # PT2H after the previous one fired
        ("wait_expr_duration", utc(2026, 3, 3, 4, 30)),  # ${delay}
        ("wait_expr_date", utc(2026, 3, 4, 3, 0)),  # ${demo_at}
        ("wait_cycle", utc(2026, 3, 4, 4, 0)),  # R3/PT1H on a catch event fires once
    ]
    for element, moment in expected:
        assert due(h) == [(element, moment)]
        assert h.fire_due(moment - timedelta(seconds=1)) == []
        assert h.fire_due(moment) == [element]
    assert h.completed
    assert h.history == ["StartEvent_1", *[e for e, _ in expected], "EndEvent_1"]


def test_non_interrupting_cycle_fires_three_times_then_interrupting_timer(mode):
    h = Harness("timers.bpmn", "boundary_timers", mode).start({"escalate_after": "PT5H"})
    assert due(h) == [("remind", utc(2026, 3, 2, 3, 0)), ("escalate", utc(2026, 3, 2, 7, 0))]
    assert h.fire_due(timedelta(hours=4)) == ["remind", "remind", "remind"]
    assert [t.element_id for t in h.ready()] == ["call"]  # the task stays open
    assert [j.element_id for j in h.snapshot().jobs] == ["nudge", "nudge", "nudge"]
    assert due(h) == [("escalate", utc(2026, 3, 2, 7, 0))]  # R3 is used up
    h.run_jobs({"notify.nudge": lambda p: {}})
    assert h.fire_due(timedelta(hours=2)) == ["escalate"]
    assert [t.element_id for t in h.ready()] == ["manager"]
    assert "call" in h.cancelled and due(h) == []
    h.complete("manager")
    assert h.completed
    assert h.history == ["StartEvent_2", *["nudge", "EndEvent_3"] * 3, "escalate", "remind", "manager", "EndEvent_2"]


def test_paths_started_by_a_cycle_outlive_the_task(mode):
    h = Harness("timers.bpmn", "boundary_timers", mode).start({"escalate_after": "PT5H"})
    assert h.fire_due(timedelta(hours=1)) == ["remind"]
    h.complete("call")
    assert due(h) == []  # the task is done: no more reminders, no escalation
    assert [j.element_id for j in h.snapshot().jobs] == ["nudge"]  # but the started reminder goes on
    assert not h.completed
    h.run_jobs({"notify.nudge": lambda p: {}})
    assert h.completed
    assert h.history == ["StartEvent_2", "call", "remind", "EndEvent_2", "nudge", "EndEvent_3"]


def test_endless_cycle_fires_until_the_task_completes(mode):
    h = Harness("timers.bpmn", "every_three_days", mode).start({"every": 3, "checks": 0})
    assert due(h) == [("check_in", utc(2026, 3, 5, 2, 0))]  # ${"R/P" + str(every) + "D"}
    assert h.fire_due(timedelta(days=10)) == ["check_in"] * 3
    assert h.history.count("log_check") == 3
    assert due(h) == [("check_in", utc(2026, 3, 14, 2, 0))]
    assert [t.element_id for t in h.ready()] == ["follow_up"]
    h.complete("follow_up")
    assert h.completed and due(h) == []


@pytest.mark.parametrize("outcome", ["job_done", "timed_out"])
def test_interrupting_timer_cancels_a_service_task(mode, outcome):
    h = Harness("timers.bpmn", "job_timeout", mode).start()
    assert due(h) == [("give_up", utc(2026, 3, 2, 2, 10))]  # R2/PT10M interrupts at its first due time
    if outcome == "job_done":
        h.run_jobs({"crm.sync": lambda p: {"synced": True}})
        assert due(h) == [] and h.history[-2:] == ["sync", "EndEvent_8"]
    else:
        assert h.fire_due(timedelta(hours=1)) == ["give_up"]
        assert h.snapshot().jobs == [] and "sync" in h.cancelled
        assert h.history[-3:] == ["give_up", "manual_sync", "EndEvent_9"]  # a manual task passes through
    assert h.completed


def test_timer_start_event(mode):
    h = Harness("timers.bpmn", "timer_start", mode).start(trigger=("timer", "weekly"))
    assert [t.element_id for t in h.ready()] == ["report"]
    assert due(h) == []  # the runner's scheduler, not the instance, repeats R/P7D
    h.complete("report")
    assert h.completed
    assert h.history == ["weekly", "report", "EndEvent_10"]
