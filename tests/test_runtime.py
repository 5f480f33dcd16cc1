"""The runner's public API: start per customer, messages, data and stages, moving instances between versions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from runtime_helpers import events, fixture, instance_row, only_task, row_counts

from runner.errors import Conflict, Invalid, NotCorrelated, NotFound
from runner.queries import tasklists as inbox
from runner.service.runtime import Runner

MESSAGES = fixture("messages.bpmn")


# --- start per customer ----------------------------------------------------------------


def test_start_by_process_key_with_a_business_key_and_query_per_customer(any_runner: Runner) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn"), fixture("versions_v1.bpmn")])
    first = any_runner.start_instance("order", "school-1", {"amount": 10}, actor="lan")
    second = any_runner.start_instance("onboard", "school-1")
    other = any_runner.start_instance("order", "school-2")
    mine = inbox.instances(any_runner, business_key="school-1")
    assert {i["id"] for i in mine} == {first, second}
    assert {i["process_key"] for i in mine} == {"order", "onboard"}
    assert [i["id"] for i in inbox.instances(any_runner, business_key="school-2")] == [other]
    assert {i["id"] for i in inbox.instances(any_runner, process_key="order")} == {first, other}
    assert {t["element_id"] for t in inbox.tasks(any_runner, business_key="school-1")} == {"Activity_review", "call"}
    assert {t["business_key"] for t in inbox.tasks(any_runner, process_key="order")} == {"school-1", "school-2"}
    started = inbox.history(any_runner, instance_id=first, events=["instance.started"])
    assert [(h["actor"], h["business_key"], h["details"]["data"]) for h in started] == [
        ("lan", "school-1", {"amount": 10})
    ]


def test_instance_data_and_stages_follow_the_latest_step(any_runner: Runner) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn")])
    instance_id = any_runner.start_instance("order", "school-1", {"source": "web"})
    got = inbox.instance(any_runner, instance_id)
    assert (got["data"], got["stages"], got["status"]) == ({"source": "web"}, ["Tiếp nhận"], "running")
    any_runner.complete_task(only_task(any_runner, "school-1")["id"], {"amount": "50", "note": "ok"})
    got = inbox.instance(any_runner, instance_id)
    assert got["data"] == {"source": "web", "amount": 50, "note": "ok"}
    assert got["stages"] == ["Triển khai"]
    any_runner.complete_task(only_task(any_runner, "school-1", "Activity_deliver")["id"])
    got = inbox.instance(any_runner, instance_id)
    assert got["status"] == "completed" and got["ended_at"] is not None
    assert got["data"] == {"source": "web", "amount": 50, "note": "ok"}
    stages = [
        h["details"]["stage"] for h in inbox.history(any_runner, instance_id=instance_id, events=["stage.entered"])
    ]
    assert stages == ["Tiếp nhận", "Triển khai"]


# --- messages ---------------------------------------------------------------------------


def test_a_message_reaches_only_the_customers_waiting_instances(any_runner: Runner) -> None:
    any_runner.deploy([MESSAGES])
    mine = [any_runner.start_instance("await_payment", "school-1") for _ in range(2)]
    theirs = any_runner.start_instance("await_payment", "school-2")
    delivered = any_runner.correlate("payment_received", "school-1", {"amount": 500}, actor="bank")
    assert sorted(delivered) == sorted(mine)
    for instance_id in mine:
        assert inbox.instance(any_runner, instance_id)["data"] == {"amount": 500}
        [event] = inbox.history(any_runner, instance_id=instance_id, events=["message.correlated"])
        assert event["actor"] == "bank" and event["details"] == {"message": "payment_received", "data": {"amount": 500}}
    assert [t["element_id"] for t in inbox.tasks(any_runner, business_key="school-1")] == ["activate"] * 2
    assert inbox.instance(any_runner, theirs)["waits"]["messages"] == ["payment_received"]
    assert inbox.tasks(any_runner, business_key="school-2") == []


def test_a_message_starts_processes_with_a_matching_message_start_event(any_runner: Runner) -> None:
    any_runner.deploy([MESSAGES])
    [instance_id] = any_runner.correlate("lead_created", "school-9", {"source": "web", "seats": 40})
    got = inbox.instance(any_runner, instance_id)
    assert (got["process_key"], got["business_key"]) == ("lead", "school-9")
    assert got["data"] == {"source": "web", "seats": 40}
    only_task(any_runner, "school-9", "contact")


def test_an_uncorrelated_message_stores_nothing(any_runner: Runner) -> None:
    any_runner.deploy([MESSAGES])
    any_runner.start_instance("await_payment", "school-1")
    before = row_counts(any_runner)
    with pytest.raises(NotCorrelated) as caught:
        any_runner.correlate("payment_received", "school-2", {"amount": 1})
    assert "'payment_received'" in str(caught.value) and "'school-2'" in str(caught.value)
    assert "no instance is waiting for it and no deployed process starts with it" in str(caught.value)
    with pytest.raises(NotCorrelated, match="'no_such_message'"):
        any_runner.correlate("no_such_message", "school-1", {})
    assert row_counts(any_runner) == before


# --- moving an instance to another version -------------------------------------------------


def test_migrate_to_the_latest_version_follows_its_path(any_runner: Runner) -> None:
    any_runner.deploy([fixture("versions_v1.bpmn")])
    instance_id = any_runner.start_instance("onboard", "school-1", {"seats": 12})
    task = only_task(any_runner, "school-1", "call")
    [v2] = any_runner.deploy([fixture("versions_v2.bpmn")])
    assert any_runner.migrate_instance(instance_id, actor="admin") == 2
    assert inbox.instance(any_runner, instance_id)["version_id"] == v2.version_id
    [event] = inbox.history(any_runner, instance_id=instance_id, events=["instance.migrated"])
    assert (event["actor"], event["details"]) == ("admin", {"from": 1, "to": 2})
    assert only_task(any_runner, "school-1", "call")["id"] == task["id"]  # same open task, same id
    any_runner.complete_task(task["id"], actor="lan")
    any_runner.complete_task(only_task(any_runner, "school-1", "visit")["id"], actor="lan")
    got = inbox.instance(any_runner, instance_id)
    assert (got["status"], got["data"]) == ("completed", {"seats": 12})


def test_migrate_to_an_older_version_by_number(runner: Runner) -> None:
    runner.deploy([fixture("versions_v1.bpmn")])
    runner.deploy([fixture("versions_v2.bpmn")])
    instance_id = runner.start_instance("onboard", "school-1")
    assert runner.migrate_instance(instance_id, to_version=1) == 1
    assert runner.migrate_instance(instance_id, to_version=1) == 1  # already there: nothing to do
    assert events(runner, instance_id=instance_id).count("instance.migrated") == 1
    runner.complete_task(only_task(runner, "school-1", "call")["id"])
    only_task(runner, "school-1", "welcome")


def test_migrate_refuses_when_an_active_task_is_missing_and_changes_nothing(any_runner: Runner) -> None:
    any_runner.deploy([fixture("versions_v1.bpmn")])
    instance_id = any_runner.start_instance("onboard", "school-1")
    any_runner.complete_task(only_task(any_runner, "school-1", "call")["id"])
    any_runner.deploy([fixture("versions_v2.bpmn")])
    before, row = row_counts(any_runner), instance_row(any_runner, instance_id)
    with pytest.raises(Invalid) as caught:
        any_runner.migrate_instance(instance_id, actor="admin")
    assert "from version 1 to 2" in str(caught.value) and str(caught.value).endswith(": welcome")
    assert row_counts(any_runner) == before and instance_row(any_runner, instance_id) == row
    any_runner.complete_task(only_task(any_runner, "school-1", "welcome")["id"])
    assert inbox.instance(any_runner, instance_id)["status"] == "completed"


def test_migrate_refreshes_the_open_task_from_the_target_version(runner: Runner) -> None:
    v1 = fixture("versions_v1.bpmn").read_bytes()
    runner.deploy({"onboard.bpmn": v1})
    instance_id = runner.start_instance("onboard", "school-1")
    renamed = v1.replace(b'name="Call the school"', b'name="Phone the school" camunda:candidateGroups="sales"')
    runner.deploy({"onboard.bpmn": renamed})
    runner.migrate_instance(instance_id)
    task = only_task(runner, "school-1", "call")
    assert (task["name"], task["candidate_groups"]) == ("Phone the school", ["sales"])


def test_migrate_keeps_who_claimed_the_open_task(runner: Runner) -> None:
    v1 = (
        fixture("versions_v1.bpmn")
        .read_bytes()
        .replace(b'name="Call the school"', b'name="Call the school" camunda:candidateGroups="sales"')
    )
    runner.deploy({"onboard.bpmn": v1})
    instance_id = runner.start_instance("onboard", "school-1")
    task = only_task(runner, "school-1", "call")
    runner.claim_task(task["id"], "lan", ["sales"])
    runner.deploy({"onboard.bpmn": v1.replace(b'name="Call the school"', b'name="Phone the school"')})
    runner.migrate_instance(instance_id)
    task = only_task(runner, "school-1", "call")
    assert (task["name"], task["assignee"]) == ("Phone the school", "lan")


def test_migrate_errors(runner: Runner) -> None:
    runner.deploy([fixture("versions_v1.bpmn")])
    instance_id = runner.start_instance("onboard", "school-1")
    with pytest.raises(NotFound, match="has no version 7"):
        runner.migrate_instance(instance_id, to_version=7)
    for name in ("call", "welcome"):
        runner.complete_task(only_task(runner, "school-1", name)["id"])
    with pytest.raises(Conflict, match="is completed"):
        runner.migrate_instance(instance_id)


def test_migrate_keeps_a_waiting_timer_and_its_due_time(any_runner: Runner) -> None:
    v1 = fixture("timers.bpmn").read_bytes()
    any_runner.deploy({"timers.bpmn": v1})
    instance_id = any_runner.start_instance("follow_up", "school-1")
    any_runner.complete_task(only_task(any_runner, "school-1", "prepare")["id"])
    [timer] = inbox.instance(any_runner, instance_id)["timers"]
    any_runner.advance_clock(timedelta(hours=5))
    any_runner.deploy({"timers.bpmn": v1.replace(b'name="Call back"', b'name="Call the school back"')})
    any_runner.migrate_instance(instance_id)
    assert inbox.instance(any_runner, instance_id)["timers"] == [timer]
    assert events(any_runner, instance_id=instance_id).count("timer.scheduled") == 1
    any_runner.advance_clock(timedelta(hours=19))
    assert only_task(any_runner, "school-1", "call_back")["name"] == "Call the school back"
    assert events(any_runner, instance_id=instance_id).count("timer.fired") == 1


def test_message_refs_with_a_namespace_prefix_work(runner: Runner) -> None:
    prefixed = (
        MESSAGES.read_bytes()
        .replace(b'messageRef="Msg_', b'messageRef="tns:Msg_')
        .replace(b"xmlns:camunda=", b'xmlns:tns="http://bpmn.io/schema/bpmn" xmlns:camunda=')
    )
    runner.deploy({"prefixed.bpmn": prefixed})
    waiting = runner.start_instance("await_payment", "school-1")
    assert runner.correlate("payment_received", "school-1", {"amount": 5}) == [waiting]
    [started] = runner.correlate("lead_created", "school-2", {"source": "fair"})
    assert inbox.instance(runner, started)["process_key"] == "lead"


def test_migrate_points_a_pending_handler_job_at_the_new_topic(runner: Runner) -> None:
    v1 = fixture("legacy_activiti.bpmn").read_bytes()
    runner.deploy({"care.bpmn": v1})
    instance_id = runner.start_instance("legacy_care", "school-1")
    runner.complete_task(only_task(runner, "school-1", "review")["id"], {"approved": "true"})
    assert [j["topic"] for j in inbox.instance(runner, instance_id)["jobs"]] == ["demo.echo"]
    runner.registry.add("test.crm", lambda params, ctx: {"crm": params["echoed"]})
    runner.deploy({"care.bpmn": v1.replace(b'activiti:topic="demo.echo"', b'activiti:topic="test.crm"')})
    runner.migrate_instance(instance_id)
    assert [j["topic"] for j in inbox.instance(runner, instance_id)["jobs"]] == ["test.crm"]
    assert runner.run_due() == 1
    got = inbox.instance(runner, instance_id)
    assert got["status"] == "completed" and got["data"]["crm"] is True


def test_migrate_inside_an_embedded_subprocess_with_a_boundary_timer(any_runner: Runner) -> None:
    v1 = fixture("embedded.bpmn").read_bytes()
    any_runner.deploy({"rollout.bpmn": v1})
    instance_id = any_runner.start_instance("rollout", "school-1")
    slow = any_runner.start_instance("rollout", "school-2")
    [timer] = inbox.instance(any_runner, instance_id)["timers"]
    certify = (
        b'<bpmn:sequenceFlow id="Flow_s2" sourceRef="train" targetRef="certify" />'
        b'<bpmn:userTask id="certify" name="Certify" />'
        b'<bpmn:sequenceFlow id="Flow_s3" sourceRef="certify" targetRef="EndEvent_sub" />'
    )
    any_runner.deploy(
        {
            "rollout.bpmn": v1.replace(
                b'<bpmn:sequenceFlow id="Flow_s2" sourceRef="train" targetRef="EndEvent_sub" />', certify
            )
        }
    )
    assert any_runner.migrate_instance(instance_id) == 2
    assert inbox.instance(any_runner, instance_id)["timers"] == [timer]
    any_runner.complete_task(only_task(any_runner, "school-1", "train")["id"])
    any_runner.complete_task(only_task(any_runner, "school-1", "certify")["id"])
    got = inbox.instance(any_runner, instance_id)
    assert got["status"] == "completed" and got["timers"] == []
    any_runner.migrate_instance(slow)
    any_runner.advance_clock(timedelta(days=8))  # the boundary timer still interrupts
    only_task(any_runner, "school-2", "escalate")
    assert events(any_runner, instance_id=slow).count("task.cancelled") == 1
