"""Failures inside an engine step name the element they happened at."""

from __future__ import annotations

import pytest

from runner.errors import StepFailed, TimerInvalid
from tests.harness import Harness


def test_script_that_raises_names_the_script_task(mode):
    with pytest.raises(StepFailed) as caught:
        Harness("errors.bpmn", "bad_script", mode).start({"total": 10, "people": 0})
    assert (caught.value.element_id, caught.value.element_name) == ("divide", "Chia đều")
    assert "ZeroDivisionError" in str(caught.value)


def test_script_runs_when_the_data_is_right(mode):
    h = Harness("errors.bpmn", "bad_script", mode).start({"total": 10, "people": 4})
    assert h.completed and h.data["share"] == 2.5


@pytest.mark.parametrize(
    "wait, reason",
    [
        ("soon", "not an ISO 8601 date-time"),
        (42, "not an ISO 8601 duration"),
        (None, "not an ISO 8601 duration"),
        ("P", "no components"),
    ],
)
def test_timer_expression_with_a_bad_value_names_the_event(mode, wait, reason):
    h = Harness("errors.bpmn", "bad_timer", mode).start()
    with pytest.raises(StepFailed) as caught:
        h.complete("ask", {"wait": wait})
    assert (caught.value.element_id, caught.value.element_name) == ("pause", "Tạm dừng")
    assert reason in str(caught.value) and "${wait}" in str(caught.value)
    assert isinstance(caught.value.__cause__, TimerInvalid)


def test_timer_expression_with_an_unknown_variable_names_the_event(mode):
    h = Harness("errors.bpmn", "bad_timer", mode).start()
    with pytest.raises(StepFailed) as caught:
        h.complete("ask")
    assert caught.value.element_id == "pause"
    assert "'wait' is not defined" in str(caught.value)


def test_timer_expression_with_a_good_value_waits(mode):
    h = Harness("errors.bpmn", "bad_timer", mode).start()
    h.complete("ask", {"wait": "PT1H"})
    assert [t.element_id for t in h.timers()] == ["pause"]
