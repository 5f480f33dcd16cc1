"""History: every event of an instance's life, queryable per instance and per customer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from runtime_helpers import events, fixture, only_task

from runner.queries import tasklists as inbox
from runner.registry import HandlerContext
from runner.service.runtime import Runner

LIFE = [
    "instance.started",
    "task.created",
    "stage.entered",
    "task.completed",
    "timer.scheduled",
    "timer.fired",
    "stage.entered",
    "handler.called",
    "handler.failed",
    "incident.raised",
    "incident.resolved",
    "handler.called",
    "handler.succeeded",
    "message.correlated",
    "task.created",
    "stage.entered",
    "task.completed",
    "instance.completed",
]


@pytest.fixture
def flaky(any_runner: Runner) -> list[dict[str, Any]]:
    """A CRM handler that fails its first call; the list records every call's parameters."""
    calls: list[dict[str, Any]] = []

    def sync(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
        calls.append(params)
        if len(calls) == 1:
            raise RuntimeError("CRM is down")
        return {"crm_id": 7}

    any_runner.registry.add("test.flaky", sync)
    return calls


def live_one_life(runner: Runner, business_key: str) -> str:
    """Run one lifecycle instance to its end: task, timer, failing handler, incident, message, task."""
    instance_id = runner.start_instance("lifecycle", business_key, actor="sales-bot")
    runner.complete_task(only_task(runner, business_key, "intake")["id"], {"note": "ok", "seats": "30"}, actor="lan")
    runner.advance_clock(timedelta(hours=2))
    [incident] = inbox.incidents(runner, instance_id=instance_id)
    runner.retry_incident(incident["id"], actor="admin")
    assert runner.run_due() == 1
    runner.correlate("contract_signed", business_key, {"signed_by": "principal"}, actor="esign")
    runner.complete_task(only_task(runner, business_key, "close")["id"], actor="minh")
    return instance_id


def test_every_event_of_an_instance_is_recorded_in_order(any_runner: Runner, flaky: list) -> None:
    any_runner.deploy([fixture("lifecycle.bpmn")], actor="admin")
    instance_id = live_one_life(any_runner, "school-1")
    history = inbox.history(any_runner, instance_id=instance_id)
    assert [h["event"] for h in history] == LIFE
    assert all(h["business_key"] == "school-1" and h["process_key"] == "lifecycle" for h in history)
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    by = {(h["event"], h["element_id"]): h for h in history}
    assert by[("instance.started", None)]["actor"] == "sales-bot"
    intake = by[("task.completed", "intake")]
    assert intake["actor"] == "lan" and intake["details"]["data"] == {"note": "ok", "seats": 30}
    assert by[("task.completed", "close")]["actor"] == "minh"
    assert by[("timer.fired", "cool_down")]["details"]["value"] == "PT1H"
    assert "CRM is down" in by[("handler.failed", "sync")]["details"]["error"]
    assert "CRM is down" in by[("incident.raised", "sync")]["details"]["error"]
    assert by[("incident.resolved", "sync")]["actor"] == "admin"
    assert by[("handler.succeeded", "sync")]["details"]["result"] == {"crm_id": 7}
    correlated = by[("message.correlated", None)]
    assert (correlated["actor"], correlated["details"]) == (
        "esign",
        {"message": "contract_signed", "data": {"signed_by": "principal"}},
    )
    stages = [h["details"]["stage"] for h in history if h["event"] == "stage.entered"]
    assert stages == ["Tiếp nhận", "Xử lý", "Hoàn tất"]
    assert history[-1]["details"]["data"] == {"note": "ok", "seats": 30, "crm_id": 7, "signed_by": "principal"}
    assert flaky == [{"seats": 30}, {"seats": 30}]


def test_history_per_customer_and_by_event(any_runner: Runner, flaky: list) -> None:
    any_runner.deploy([fixture("lifecycle.bpmn")], actor="admin")
    flaky.append({})  # the handler now succeeds at once: no incident in this test
    any_runner.deploy([fixture("modeler_order.bpmn")])
    life = any_runner.start_instance("lifecycle", "school-1")
    order = any_runner.start_instance("order", "school-1")
    other = any_runner.start_instance("order", "school-2")
    any_runner.complete_task(only_task(any_runner, "school-2")["id"], {"amount": "1"}, actor="lan")
    mine = inbox.history(any_runner, business_key="school-1")
    assert {h["instance_id"] for h in mine} == {life, order}
    assert {h["instance_id"] for h in inbox.history(any_runner, business_key="school-2")} == {other}
    assert events(any_runner, business_key="school-2") == [
        "instance.started",
        "task.created",
        "stage.entered",
        "task.completed",
        "task.created",
        "stage.entered",
    ]
    started = inbox.history(any_runner, events=["instance.started"])
    assert [h["instance_id"] for h in started] == [life, order, other]
    deployed = inbox.history(any_runner, events=["process.deployed"])
    assert [(h["details"]["process_key"], h["actor"]) for h in deployed] == [("lifecycle", "admin"), ("order", "")]
    both = inbox.history(any_runner, business_key="school-1", events=["task.created", "instance.started"])
    assert [h["event"] for h in both] == ["instance.started", "task.created", "instance.started", "task.created"]
