"""Embedded subprocesses, call activities and multi-instance activities."""

from __future__ import annotations

from datetime import timedelta

from tests.harness import Harness, utc


def test_embedded_subprocess_with_a_user_task(mode):
    h = Harness("subprocesses.bpmn", "embedded", mode).start({"x": 1})
    train = h.user_task("train")
    assert (train.stage, train.candidate_groups) == ("Đào tạo", ["trainers"])
    assert h.snapshot().stages == ["Triển khai", "Đào tạo"]
    assert [(t.element_id, t.due_at) for t in h.timers()] == [("too_slow", utc(2026, 3, 9, 2, 0))]
    h.complete("train", {"trained": True})
    assert h.completed and h.timers() == []
    assert h.history == ["StartEvent_1", "sub_start", "train", "sub_end", "onboarding", "EndEvent_1"]
    assert h.data == {"x": 1, "trained": True}


def test_boundary_timer_interrupts_the_subprocess(mode):
    h = Harness("subprocesses.bpmn", "embedded", mode).start({"x": 1})
    assert h.fire_due(timedelta(days=8)) == ["too_slow"]
    assert [t.element_id for t in h.ready()] == ["escalate"]
    assert {"onboarding", "train"} <= set(h.cancelled)
    h.complete("escalate")
    assert h.completed
    assert h.history == ["StartEvent_1", "sub_start", "too_slow", "escalate", "EndEvent_1"]


def test_call_activity_maps_variables_in_and_out(mode):
    h = Harness("subprocesses.bpmn", "caller", mode).start({"customer": "ACME", "secret": 1, "price_list": "std"})
    assert h.task_data("price_it") == {"customer": "ACME", "list_name": "std-2026"}
    h.complete("price_it", {"price": 10, "junk": 2})
    assert h.completed
    assert h.history == ["StartEvent_2", "StartEvent_3", "price_it", "EndEvent_3", "call_quote", "EndEvent_2"]
    assert h.data == {"customer": "ACME", "secret": 1, "price_list": "std", "quoted_price": 10, "doubled": 20}


def test_call_activity_without_mappings_shares_every_variable(mode):
    h = Harness("subprocesses.bpmn", "caller_all", mode).start({"customer": "ACME", "secret": 1})
    assert h.task_data("price_it") == {"customer": "ACME", "secret": 1}
    h.complete("price_it", {"price": 10})
    assert h.completed
    assert h.data == {"customer": "ACME", "secret": 1, "price": 10}


def test_parallel_multi_instance_user_task(mode):
    h = Harness("multi_instance.bpmn", "parallel_mi", mode).start({"items": ["an", "binh", "chi"]})
    views = h.ready()
    assert [(t.element_id, t.assignee) for t in views] == [("visit", "an"), ("visit", "binh"), ("visit", "chi")]
    for view in views[:2]:
        h.complete(view.task_id, {"seen": view.assignee})
        assert not h.completed
    h.complete(views[2].task_id, {"seen": "chi"})
    assert h.completed
    assert h.history == ["StartEvent_1", "visit", "visit", "visit", "visit", "EndEvent_1"]
    # The collection is left as it was; the element variable stays inside each instance.
    assert h.data == {"items": ["an", "binh", "chi"], "seen": "chi"}


def test_sequential_multi_instance_service_task(mode):
    h = Harness("multi_instance.bpmn", "sequential_mi", mode).start({"items": ["a@x.vn", "b@x.vn"]})
    assert [j.params for j in h.snapshot().jobs] == [{"to": "a@x.vn"}]  # one at a time
    done = h.run_jobs({"mail.send": lambda p: {"sent": p["to"]}})
    assert [j.params for j in done] == [{"to": "a@x.vn"}, {"to": "b@x.vn"}]
    assert h.completed
    assert h.history == ["StartEvent_2", "send", "send", "send", "EndEvent_2"]
    assert h.data == {"items": ["a@x.vn", "b@x.vn"], "sent": "b@x.vn"}
