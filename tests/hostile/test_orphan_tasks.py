"""Orphan user tasks: deployment warns about each one, admins see and act on every task.

A task with no candidate group (no lane either), no candidate user and no assignee, or one
given to a user who does not exist, reached nobody's inbox. It still deploys, with a
warning naming it; at run time it is flagged and admins find it in "Tất cả việc" and in
``GET /api/tasks`` (with Camunda-like filters), and may claim, reassign and complete it.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from flask import Flask

from runner.cli import main
from runner.errors import Invalid
from runner.queries import tasklists as inbox
from runner.service.runtime import Runner
from tests.test_api import Api

DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs_orphans" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="orphans" name="Orphans" isExecutable="true">{lanes}
    <bpmn:startEvent id="StartEvent_1" />
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="split" />
    <bpmn:parallelGateway id="split" />
    <bpmn:sequenceFlow id="Flow_a" sourceRef="split" targetRef="task_a" />
    <bpmn:userTask id="task_a" name="Task A" {a} />
    <bpmn:sequenceFlow id="Flow_b" sourceRef="split" targetRef="task_b" />
    <bpmn:userTask id="task_b" name="Task B" {b} />
    <bpmn:sequenceFlow id="Flow_a_end" sourceRef="task_a" targetRef="join" />
    <bpmn:sequenceFlow id="Flow_b_end" sourceRef="task_b" targetRef="join" />
    <bpmn:parallelGateway id="join" />
    <bpmn:sequenceFlow id="Flow_end" sourceRef="join" targetRef="EndEvent_1" />
    <bpmn:endEvent id="EndEvent_1" />
  </bpmn:process>
</bpmn:definitions>
"""
LANE = """
    <bpmn:laneSet id="LaneSet_1"><bpmn:lane id="Lane_1" name="{name}">{props}
      <bpmn:flowNodeRef>task_a</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"""
GROUP_PROPERTY = (
    '<bpmn:extensionElements><camunda:properties><camunda:property name="group" value="sales" />'
    "</camunda:properties></bpmn:extensionElements>"
)
NOBODY = "has no candidate group, candidate user or assignee, so only an admin will see it"
SALES = 'camunda:candidateGroups="sales"'

# (row id, task_a's attributes, lane around task_a or "", a fragment of task_a's warning or None)
DEPLOY_ROWS: list[tuple[str, str, str, str | None]] = [
    ("nothing", "", "", NOBODY),
    ("unknown-assignee", 'camunda:assignee="ghost"', "", "is assigned to 'ghost', who is not a user"),
    (
        "unknown-candidate-users",
        'camunda:candidateUsers="ghost, phantom"',
        "",
        "is offered only to 'ghost', 'phantom', who are not users, and to no group",
    ),
    ("empty-candidate-groups", 'camunda:candidateGroups=" "', "", NOBODY),
    ("existing-assignee", 'camunda:assignee="sales1"', "", None),
    ("one-existing-candidate-user", 'camunda:candidateUsers="ghost,sales1"', "", None),
    ("assignee-expression", 'camunda:assignee="${owner}"', "", None),
    ("group-expression", 'camunda:candidateGroups="${team}"', "", None),
    ("candidate-group", SALES, "", None),
    ("lane-by-name", "", LANE.format(name="Kinh doanh", props=""), None),
    ("lane-with-group-property", "", LANE.format(name="Sales", props=GROUP_PROPERTY), None),
]


def diagram(a: str = "", b: str = SALES, lanes: str = "") -> bytes:
    """Two user tasks side by side: task_a as the row says, task_b offered to sales."""
    return DIAGRAM.format(a=a, b=b, lanes=lanes).encode()


@pytest.mark.parametrize("row_id,attributes,lanes,warning", DEPLOY_ROWS, ids=[row[0] for row in DEPLOY_ROWS])
def test_deployment_warns_about_each_task_nobody_would_see(
    runner: Runner,
    staff,
    row_id: str,
    attributes: str,
    lanes: str,
    warning: str | None,
) -> None:
    [deployed] = runner.deploy({f"{row_id}.bpmn": diagram(attributes, lanes=lanes)})
    assert deployed.changed and deployed.version == 1  # a warning never stops a deployment
    if warning is None:
        assert deployed.warnings == ()
        return
    [found] = deployed.warnings
    assert (found.file, found.element_id, found.name) == (f"{row_id}.bpmn", "task_a", "Task A")
    assert warning in found.reason


def test_a_task_inside_a_subprocess_is_checked_too(runner: Runner) -> None:
    xml = (
        diagram()
        .replace(
            b'<bpmn:userTask id="task_b" name="Task B" camunda:candidateGroups="sales" />',
            b'<bpmn:subProcess id="sub" name="Sub"><bpmn:startEvent id="sub_start" />'
            b'<bpmn:sequenceFlow id="sf" sourceRef="sub_start" targetRef="inner" />'
            b'<bpmn:userTask id="inner" name="Inner" />'
            b'<bpmn:sequenceFlow id="sf2" sourceRef="inner" targetRef="sub_end" />'
            b'<bpmn:endEvent id="sub_end" /></bpmn:subProcess>',
        )
        .replace(b'targetRef="task_b"', b'targetRef="sub"')
        .replace(b'sourceRef="task_b"', b'sourceRef="sub"')
    )
    [deployed] = runner.deploy({"sub.bpmn": xml})
    assert sorted(w.element_id for w in deployed.warnings) == ["inner", "task_a"]


def test_the_cli_prints_each_warning_and_still_deploys(tmp_path, monkeypatch, capsys) -> None:
    from runner.store import schema as db

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db.upgrade(url)
    monkeypatch.setenv("RUNNER_DATABASE_URL", url)
    path = tmp_path / "orphans.bpmn"
    path.write_bytes(diagram('camunda:assignee="ghost"'))
    assert main(["deploy", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("orphans: version 1 (new version")
    assert err.splitlines() == [
        "warning: orphans.bpmn: task_a (Task A): user task is assigned to 'ghost', who is "
        "not a user, so only an admin will see it"
    ]


# --- the web app and the API ------------------------------------------------------------------------


def test_the_admin_page_and_the_api_show_the_warnings_of_a_deployment(app: Flask, runner: Runner, staff) -> None:
    admin = app.test_client()
    assert admin.login("admin1").status_code == 302
    page = admin.post(
        "/admin/deploy", data={"files": [(io.BytesIO(diagram()), "orphans.bpmn")]}, content_type="multipart/form-data"
    )
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="warnings-title"' in text
    assert '<tr data-element="task_a">' in text and NOBODY in text
    response = _api(
        app,
        runner,
        "admin1",
        "POST",
        "/api/deployments",
        content_type="multipart/form-data",
        data={"file": [(io.BytesIO(diagram('camunda:assignee="ghost"')), "ghost.bpmn")]},
    )
    assert response.status_code == 201
    [version] = response.get_json()["versions"]
    assert [(w["file"], w["element"], w["name"]) for w in version["warnings"]] == [("ghost.bpmn", "task_a", "Task A")]


def _api(flask_app: Flask, runner: Runner, user: str, method: str, path: str, **kwargs: Any):
    """Call the API as ``user``; the answer is checked against the OpenAPI document."""
    return Api(flask_app, runner).call(method, path, user, **kwargs)


@pytest.fixture
def orphaned(runner: Runner, staff) -> dict[str, str]:
    """Two instances: task_a unassigned and for nobody (KH1), task_a assigned to 'ghost' (KH2)."""
    runner.deploy({"nobody.bpmn": diagram()})
    runner.start_instance("orphans", "KH1")
    runner.deploy({"ghost.bpmn": diagram('camunda:assignee="ghost"')})
    runner.start_instance("orphans", "KH2")
    return {t["business_key"]: t["id"] for t in inbox.tasks(runner) if t["element_id"] == "task_a"}


def test_admins_list_every_open_task_with_camunda_like_filters(
    app: Flask, runner: Runner, orphaned: dict[str, str]
) -> None:
    def ids(query: str, user: str = "admin1") -> list[tuple[str, str]]:
        response = _api(app, runner, user, "GET", f"/api/tasks{query}")
        assert response.status_code == 200, response.get_json()
        return sorted((t["business_key"], t["element_id"]) for t in response.get_json()["tasks"])

    everything = [("KH1", "task_a"), ("KH1", "task_b"), ("KH2", "task_a"), ("KH2", "task_b")]
    assert ids("") == everything
    assert ids("?orphan=true") == [("KH1", "task_a"), ("KH2", "task_a")]
    assert ids("?orphan=false") == [("KH1", "task_b"), ("KH2", "task_b")]
    assert ids("?unassigned=false") == [("KH2", "task_a")]
    assert ids("?assignee=ghost") == [("KH2", "task_a")]
    assert ids("?candidate_group=sales&business_key=KH2") == [("KH2", "task_b")]
    assert ids("?process_key=orphans&unassigned=true&orphan=true") == [("KH1", "task_a")]
    assert ids("?process_key=other") == []
    assert ids("", user="sales1") == [("KH1", "task_b"), ("KH2", "task_b")]  # staff: only their groups'
    assert _api(app, runner, "admin1", "GET", "/api/tasks?orphan=maybe").status_code == 400


def test_an_admin_claims_and_completes_an_orphan_task_through_the_api(
    app: Flask, runner: Runner, orphaned: dict[str, str]
) -> None:
    task_id = orphaned["KH1"]
    assert _api(app, runner, "sales1", "POST", f"/api/tasks/{task_id}/claim").status_code == 403
    claimed = _api(app, runner, "admin1", "POST", f"/api/tasks/{task_id}/claim")
    assert claimed.status_code == 200 and claimed.get_json()["assignee"] == "admin1"
    done = _api(app, runner, "admin1", "POST", f"/api/tasks/{orphaned['KH2']}/complete", json={"data": {}})
    assert done.status_code == 200 and done.get_json()["task"]["state"] == "completed"
    assert inbox.task(runner, orphaned["KH2"])["completed_by"] == "admin1"


def test_admins_see_orphans_flagged_in_all_tasks_and_give_them_to_anyone(
    app: Flask, runner: Runner, orphaned: dict[str, str]
) -> None:
    admin = app.test_client()
    assert admin.login("admin1").status_code == 302
    page = admin.get("/inbox/all?orphan=1").get_data(as_text=True)
    assert sorted(re.findall(r'data-task="([^"]+)"', page)) == sorted(orphaned.values())
    assert page.count('class=" orphan"') == 2 and "Không ai thấy" in page
    response = admin.post(f"/inbox/tasks/{orphaned['KH2']}/reassign", data={"to": "teacher1", "next": "/inbox/all"})
    assert response.status_code == 302
    assert inbox.task(runner, orphaned["KH2"])["assignee"] == "teacher1"
    assert admin.get(f"/inbox/tasks/{orphaned['KH1']}").status_code == 200


def test_team_leaders_keep_candidate_only_reassignment(app: Flask, runner: Runner, orphaned: dict[str, str]) -> None:
    leader = app.test_client()
    assert leader.login("team_leader1").status_code == 302
    assert leader.get("/inbox/all").status_code == 200
    with pytest.raises(Invalid, match="cannot take task"):
        runner.reassign_task(orphaned["KH1"], "teacher1", actor="team_leader1")
    leader.post(f"/inbox/tasks/{orphaned['KH1']}/reassign", data={"to": "teacher1", "next": "/inbox/all"})
    assert inbox.task(runner, orphaned["KH1"])["assignee"] is None
