"""Deployment: files from disk or bytes, both Camunda namespaces, DMN, versions and content hashes."""

from __future__ import annotations

import json

import pytest
from runtime_helpers import RUNTIME, events, fixture, instance_row, only_task, row_counts
from sqlalchemy import select
from sqlalchemy.orm import undefer

from runner.errors import DeploymentInvalid, NotFound
from runner.queries import tasklists as inbox
from runner.service.runtime import Runner
from runner.store.models import HistoryEvent, ProcessVersion

DMN = fixture("tier_discount.dmn")
RULE = fixture("discount_rule.bpmn")


def versions(runner: Runner, key: str) -> list[ProcessVersion]:
    """Every stored version of a process key or decision, oldest first."""
    with runner.db.read() as s:
        query = select(ProcessVersion).where(ProcessVersion.process_key == key).order_by(ProcessVersion.version)
        return list(s.scalars(query.options(undefer(ProcessVersion.xml), undefer(ProcessVersion.spec))))


def test_deploy_paths_of_a_camunda_modeler_file(any_runner: Runner) -> None:
    path = fixture("modeler_order.bpmn")
    [deployed] = any_runner.deploy([path], actor="admin")
    assert (deployed.process_key, deployed.version, deployed.changed) == ("order", 1, True)
    [row] = versions(any_runner, "order")
    assert row.xml == path.read_text(encoding="utf-8")
    assert row.name == "Đơn hàng" and row.deployed_by == "admin" and row.kind == "bpmn"
    any_runner.start_instance("order", "school-1")
    task = only_task(any_runner, "school-1", "Activity_review")
    assert (task["name"], task["candidate_groups"], task["stage"]) == ("Duyệt đơn", ["sales"], "Tiếp nhận")
    assert [f["id"] for f in task["form"]["fields"]] == ["amount", "note"]


def test_deploy_a_mapping_of_file_names_to_bytes(runner: Runner) -> None:
    [deployed] = runner.deploy({"any-name.bpmn": fixture("modeler_order.bpmn").read_bytes()})
    assert (deployed.process_key, deployed.file_name) == ("order", "any-name.bpmn")
    assert [v.file_name for v in versions(runner, "order")] == ["any-name.bpmn"]


def test_deploy_a_folder_reads_its_bpmn_and_dmn_files(runner: Runner, tmp_path) -> None:
    for path in (DMN, RULE):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "notes.txt").write_text("not a model")
    deployed = runner.deploy([tmp_path])
    assert sorted(d.process_key for d in deployed) == ["decide_tier_discount", "discount"]


def test_legacy_activiti_namespace_runs_like_camunda(any_runner: Runner) -> None:
    any_runner.deploy([fixture("legacy_activiti.bpmn")])
    instance_id = any_runner.start_instance("legacy_care", "school-2")
    task = only_task(any_runner, "school-2", "review")
    assert (task["candidate_groups"], task["stage"]) == (["team_leader"], "Xét duyệt")
    any_runner.complete_task(task["id"], {"approved": "true"}, actor="lan")
    assert any_runner.run_due() == 1
    got = inbox.instance(any_runner, instance_id)
    assert got["status"] == "completed"
    assert got["data"] == {"approved": True, "echoed": True}


def test_business_rule_task_with_its_dmn_in_the_same_deployment(any_runner: Runner) -> None:
    deployed = any_runner.deploy([DMN, RULE])
    assert {(d.process_key, d.version) for d in deployed} == {("decide_tier_discount", 1), ("discount", 1)}
    gold = any_runner.start_instance("discount", "gold-school", {"tier": "gold"})
    other = any_runner.start_instance("discount", "small-school", {"tier": "basic"})
    assert inbox.instance(any_runner, gold)["data"] == {"tier": "gold", "discount": 20}
    assert inbox.instance(any_runner, other)["data"] == {"tier": "basic", "discount": 5}


def test_business_rule_task_deployed_after_its_dmn(any_runner: Runner) -> None:
    any_runner.deploy([DMN])
    [deployed] = any_runner.deploy([RULE])
    assert deployed.process_key == "discount"
    instance_id = any_runner.start_instance("discount", "gold-school", {"tier": "gold"})
    assert inbox.instance(any_runner, instance_id)["data"]["discount"] == 20


def test_a_new_dmn_deployed_with_its_bpmn_replaces_the_deployed_one(runner: Runner) -> None:
    runner.deploy([DMN, RULE])
    new_table = DMN.read_bytes().replace(b"<text>20</text>", b"<text>30</text>")
    new_rule = RULE.read_bytes().replace(b'name="Send offer"', b'name="Send the offer"')
    deployed = runner.deploy({DMN.name: new_table, RULE.name: new_rule})
    assert {(d.process_key, d.version) for d in deployed} == {("decide_tier_discount", 2), ("discount", 2)}
    instance_id = runner.start_instance("discount", "gold-school", {"tier": "gold"})
    assert inbox.instance(runner, instance_id)["data"]["discount"] == 30


def test_unknown_decision_is_a_problem_and_stores_nothing(runner: Runner) -> None:
    before = row_counts(runner)
    with pytest.raises(DeploymentInvalid) as caught:
        runner.deploy([RULE])
    [problem] = caught.value.problems
    assert problem.element_id == "decide" and "decide_tier_discount" in problem.reason
    assert row_counts(runner) == before


def test_identical_content_creates_no_new_version(any_runner: Runner) -> None:
    path = fixture("versions_v1.bpmn")
    [first] = any_runner.deploy([path])
    counts = row_counts(any_runner)
    [again] = any_runner.deploy({"renamed.bpmn": path.read_bytes()})
    assert (again.version, again.version_id, again.changed) == (1, first.version_id, False)
    assert row_counts(any_runner) == counts
    assert len(inbox.history(any_runner, events=["process.deployed"])) == 1


def test_changed_content_gets_the_next_version(any_runner: Runner) -> None:
    v1, v2 = fixture("versions_v1.bpmn"), fixture("versions_v2.bpmn")
    assert [d.version for d in any_runner.deploy([v1])] == [1]
    assert [d.version for d in any_runner.deploy([v2])] == [2]
    assert [d.version for d in any_runner.deploy([v2])] == [2]
    assert [d.version for d in any_runner.deploy([v1])] == [3]
    stored = versions(any_runner, "onboard")
    assert [v.version for v in stored] == [1, 2, 3]
    assert stored[0].content_hash == stored[2].content_hash != stored[1].content_hash
    deployed = inbox.history(any_runner, events=["process.deployed"])
    assert [h["details"]["version"] for h in deployed] == [1, 2, 3]


def test_xml_and_spec_are_stored_once_per_version_not_per_instance(any_runner: Runner) -> None:
    any_runner.deploy([fixture("versions_v1.bpmn")])
    ids = [any_runner.start_instance("onboard", f"school-{n}") for n in range(3)]
    [version] = versions(any_runner, "onboard")
    spec = json.loads(version.spec)
    assert {"spec", "subprocess_specs"} <= set(spec) and "call" in spec["spec"]["task_specs"]
    for instance_id in ids:
        row = instance_row(any_runner, instance_id)
        assert row["version_id"] == version.id
        state = json.loads(row["state"])
        assert "spec" not in state and "task_specs" not in row["state"]
    assert row_counts(any_runner)["process_versions"] == 1


def test_running_instances_stay_on_their_version(any_runner: Runner) -> None:
    any_runner.deploy([fixture("versions_v1.bpmn")])
    old = any_runner.start_instance("onboard", "old-school")
    any_runner.deploy([fixture("versions_v2.bpmn")])
    new = any_runner.start_instance("onboard", "new-school")
    assert inbox.instance(any_runner, old)["version_id"] != inbox.instance(any_runner, new)["version_id"]
    any_runner.complete_task(only_task(any_runner, "old-school", "call")["id"], actor="an")
    any_runner.complete_task(only_task(any_runner, "new-school", "call")["id"], actor="an")
    only_task(any_runner, "old-school", "welcome")
    only_task(any_runner, "new-school", "visit")


def test_starting_an_undeployed_process_is_not_found(runner: Runner) -> None:
    before = row_counts(runner)
    with pytest.raises(NotFound, match="'nope' is not deployed"):
        runner.start_instance("nope", "school-1")
    assert row_counts(runner) == before


def test_deployment_history_names_key_version_file_and_actor(runner: Runner) -> None:
    runner.deploy([fixture("versions_v1.bpmn")], actor="admin")
    [event] = inbox.history(runner, events=["process.deployed"])
    assert event["actor"] == "admin" and event["instance_id"] is None
    assert event["details"] == {"process_key": "onboard", "version": 1, "file": "versions_v1.bpmn"}
    with runner.db.read() as s:
        assert s.scalars(select(HistoryEvent.event)).all() == ["process.deployed"]
    assert events(runner, events=["process.deployed"]) == ["process.deployed"]


def test_business_rule_task_with_comparison_input_entries(runner: Runner) -> None:
    rule = RULE.read_bytes().replace(b"decide_tier_discount", b"decide_days_discount")
    runner.deploy({"days_discount.dmn": fixture("days_discount.dmn").read_bytes(), "days_rule.bpmn": rule})
    late = runner.start_instance("discount", "late-school", {"days_since_demo": 10})
    early = runner.start_instance("discount", "early-school", {"days_since_demo": 1})
    assert inbox.instance(runner, late)["data"]["package"] == "default"
    assert inbox.instance(runner, early)["data"]["package"] == "none"


def test_juel_spellings_deploy_and_run(runner: Runner) -> None:
    runner.registry.add("crm.tag", lambda params, ctx: {"tagged": params["label"]})
    runner.deploy([RUNTIME.parent / "engine" / "juel.bpmn"])
    instance_id = runner.start_instance(
        "juel", "school-1", {"paid": True, "seats": 150, "region": "north", "owner": None}
    )
    assert runner.run_due() == 1
    got = inbox.instance(runner, instance_id)
    assert got["status"] == "completed" and got["data"]["tagged"] == "a && b || !c"


def test_a_process_moved_to_its_own_file_does_not_block_later_deployments(any_runner: Runner) -> None:
    any_runner.deploy([fixture("messages.bpmn")])  # holds await_payment and lead
    [payment] = any_runner.deploy([fixture("payment_only.bpmn")])
    assert (payment.process_key, payment.version) == ("await_payment", 2)
    [onboard] = any_runner.deploy([fixture("versions_v1.bpmn")])
    assert (onboard.process_key, onboard.version) == ("onboard", 1)
    [started] = any_runner.correlate("lead_created", "school-1", {})
    assert inbox.instance(any_runner, started)["process_key"] == "lead"


def test_called_processes_are_found_whatever_their_file_was_called(runner: Runner) -> None:
    runner.deploy({"process.bpmn": fixture("versions_v1.bpmn").read_bytes()})
    runner.deploy({"process.bpmn": fixture("timers.bpmn").read_bytes()})
    [caller] = runner.deploy([fixture("caller.bpmn")])
    assert caller.process_key == "caller"
    runner.start_instance("caller", "school-1")
    runner.complete_task(only_task(runner, "school-1", "call")["id"])
    runner.complete_task(only_task(runner, "school-1", "welcome")["id"])
    only_task(runner, "school-1", "prepare")
