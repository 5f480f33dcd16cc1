"""Messages: start events, catch events, boundaries, receive tasks, event-based gateways, throws."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runner.errors import NotFound
from tests.harness import Harness, utc


def test_message_start_runs_only_the_message_path(mode):
    h = Harness("messages.bpmn", "two_starts", mode).start(
        {"source": "web"}, trigger=("message", "signup"), payload={"email": "an@example.vn"}
    )
    assert [t.element_id for t in h.ready()] == ["review"]
    assert h.data == {"source": "web", "email": "an@example.vn"}  # the payload is merged into the data
    assert h.cancelled == ["manual_start"]
    h.complete("review", {"ok": True})
    assert h.completed
    assert h.history == ["signup_start", "review", "EndEvent_1"]


def test_plain_start_runs_only_the_none_path(mode):
    h = Harness("messages.bpmn", "two_starts", mode).start({"source": "phone"})
    assert [t.element_id for t in h.ready()] == ["enter"]
    assert h.snapshot().messages == []  # the message start no longer listens
    h.complete("enter")
    h.complete("review")
    assert h.completed
    assert h.history == ["manual_start", "enter", "review", "EndEvent_1"]


def test_start_by_an_unknown_message_is_refused(mode):
    with pytest.raises(NotFound, match="no message start event 'nope'"):
        Harness("messages.bpmn", "two_starts", mode).start(trigger=("message", "nope"))


def test_catch_boundaries_receive_task_and_throws(mode):
    h = Harness("messages.bpmn", "waits", mode).start()
    assert h.snapshot().messages == ["paid"]
    assert h.deliver("cancel") == 0  # nobody waits for it yet
    assert h.deliver("paid", {"amount": 5}) == 1
    assert sorted(h.snapshot().messages) == ["cancel", "note"]
    # A non-interrupting message boundary catches every message while the task is open.
    assert h.deliver("note", {"text": "first"}) == 1
    assert h.deliver("note", {"text": "second"}) == 1
    assert [j.element_id for j in h.snapshot().jobs] == ["log_note", "log_note"]
    assert [t.element_id for t in h.ready()] == ["onboard"]
    h.run_jobs({"crm.note": lambda p: {}})
    h.complete("onboard", {"rating": 4})
    # The intermediate throw event and the send task (no camunda:type) throw out of the instance.
    assert [name for name, _ in h.thrown] == ["welcome", "reply"]
    assert h.thrown[0][1]["rating"] == 4 and h.thrown[0][1]["amount"] == 5
    assert h.snapshot().messages == ["reply"]  # the receive task
    assert h.deliver("reply", {"answer": "yes"}) == 1
    assert h.completed
    # A message end event throws with its path's data; the note paths' data joins only at the end.
    assert h.thrown[-1] == ("done", {"amount": 5, "rating": 4, "answer": "yes"})
    assert h.data == {"amount": 5, "rating": 4, "answer": "yes", "text": "second"}
    assert h.history == [
        "StartEvent_2",
        "wait_paid",
        "log_note",
        "EndEvent_note",
        "log_note",
        "EndEvent_note",
        "onboard",
        "on_note",
        "greet",
        "ask",
        "get_reply",
        "EndEvent_2",
    ]


def test_interrupting_message_boundary_cancels_the_task(mode):
    h = Harness("messages.bpmn", "waits", mode).start()
    h.deliver("paid", {"amount": 5})
    assert h.deliver("cancel", {"why": "budget"}) == 1
    assert h.completed and h.ready() == []
    assert h.thrown == [("done", {"amount": 5, "why": "budget"})]
    assert sorted(h.cancelled) == ["on_note", "onboard"]
    assert h.history == ["StartEvent_2", "wait_paid", "on_cancel", "cancelled_end"]


@pytest.mark.parametrize("outcome", ["message", "timer"])
def test_event_based_gateway_races_a_message_and_a_timer(mode, outcome):
    h = Harness("messages.bpmn", "race", mode).start()
    assert h.snapshot().messages == ["reply"]
    assert [(t.timer_name, t.due_at) for t in h.timers()] == [("Ba ngày", utc(2026, 3, 5, 2, 0))]
    if outcome == "message":
        assert h.deliver("reply", {"answer": "no"}) == 1
        path = ["got_reply", "EndEvent_3"]
    else:
        assert h.fire_due(timedelta(days=2)) == []
        assert h.fire_due(timedelta(days=2)) == ["which"]  # the gateway holds the timer
        assert h.deliver("reply") == 0
        path = ["too_late", "EndEvent_4"]
    assert h.completed
    assert h.snapshot().messages == [] and h.timers() == []
    assert h.history == ["StartEvent_3", "which", *path]
