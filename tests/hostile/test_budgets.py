"""Scripts over their budget, reached from a web request, a timer and a handler job.

Each breach ends the unit of work: the request answers 422 naming the element and the
budget, with nothing stored; a timer or job becomes one incident naming them, and is not
run again by the next pass. Deployment refuses what can be seen before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from xml.sax.saxutils import escape

import pytest

from runner.errors import DeploymentInvalid, Invalid, StepFailed
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service import accounts as users
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store.models import Job, Timer
from tests.conftest import make_runner

TIMEOUT = 0.2
TIME = f"exceeded its time budget of {TIMEOUT:g} s"
SIZE = "exceeded its size budget"

# script of Task_x -> what its incident says; each passes deployment and breaks at run time
BREACHES = [
    ("x = 0\nwhile x >= 0:\n    x += 1", TIME),
    ("n = int('100000000')\nbig = 10 ** n", f"{SIZE}: a power with about 100,000,001 digits"),
    ("a = 10 ** 6\nbig = a ** a", f"{SIZE}: a power with about"),
    ("n = 10 ** 10\ns = 'a' * n", f"{SIZE}: a repetition of str"),
    ("n = 10 ** 10\nl = [0] * n", f"{SIZE}: a repetition of list"),
    ("total = sum(1 for a in range(10 ** 6) for b in range(10 ** 6))", TIME),
]

# script of Task_x -> what deployment says about it
REFUSED_AT_DEPLOY = [
    ("while True:\n    pass", "a 'while' loop whose condition is always true"),
    ("big = 10 ** 10 ** 10", "nested exponent"),
    ("s = 'a' * 10 ** 10", "would exceed the size budget: a repetition of str"),
    ("l = [0] * 10 ** 10", "would exceed the size budget: a repetition of list"),
    ("r = list(range(10 ** 12))", "range of more than 1000000 elements is not allowed"),
]

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs_budget" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="budget_{kind}" name="Budget" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1" />
    <bpmn:sequenceFlow id="f1" sourceRef="StartEvent_1" targetRef="before" />
    {before}
    <bpmn:sequenceFlow id="f2" sourceRef="before" targetRef="Task_x" />
    <bpmn:scriptTask id="Task_x" name="Tính điểm" scriptFormat="python">
      <bpmn:script>{script}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="Task_x" targetRef="EndEvent_1" />
    <bpmn:endEvent id="EndEvent_1" />
  </bpmn:process>
</bpmn:definitions>
"""
BEFORE = {
    "task": '<bpmn:userTask id="before" name="Hỏi" camunda:candidateGroups="sales" />',
    "timer": '<bpmn:intermediateCatchEvent id="before" name="Chờ"><bpmn:timerEventDefinition id="td1">'
    "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>",
    "job": '<bpmn:serviceTask id="before" name="Gọi" camunda:type="external" camunda:topic="budget.ok" />',
}


def diagram(kind: str, script: str) -> dict[str, bytes]:
    return {f"budget_{kind}.bpmn": PROCESS.format(kind=kind, before=BEFORE[kind], script=escape(script)).encode()}


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The web fixtures' runner, with a short script budget so that time breaches come quickly."""
    registry.add("budget.ok", lambda params, ctx: {"ok": True})
    r = make_runner(sqlite_url, registry, script_timeout=TIMEOUT)
    yield r
    r.db.engine.dispose()


def open_incident(runner: Runner) -> dict[str, Any]:
    [incident] = inbox.incidents(runner)
    return incident


@pytest.mark.parametrize(("script", "budget"), BREACHES)
def test_a_timer_whose_script_breaks_its_budget_becomes_one_incident(runner: Runner, script: str, budget: str) -> None:
    runner.deploy(diagram("timer", script))
    instance_id = runner.start_instance("budget_timer", "KH1")
    runner.run_due()
    assert inbox.incidents(runner) == []
    with runner.db.unit() as s:  # due now instead of in an hour
        s.query(Timer).filter(Timer.instance_id == instance_id).update({"due_at": runner.now()})
    assert runner.run_due() == 1
    incident = open_incident(runner)
    assert incident["element_id"] == "Task_x"
    assert "Task_x (Tính điểm): script" in incident["error"] and budget in incident["error"]
    assert runner.run_due() == 0, "the next pass must not run the breaking script again"
    assert inbox.instance(runner, instance_id)["status"] == "running"


@pytest.mark.parametrize(("script", "budget"), BREACHES)
def test_a_job_whose_step_breaks_its_budget_is_an_incident_at_once(runner: Runner, script: str, budget: str) -> None:
    runner.deploy(diagram("job", script))
    instance_id = runner.start_instance("budget_job", "KH1")
    assert runner.run_due() == 1
    incident = open_incident(runner)
    assert incident["element_id"] == "before" and budget in incident["error"] and "Task_x" in incident["error"]
    with runner.db.read() as s:
        job = s.query(Job).filter(Job.instance_id == instance_id).one()
        assert (job.state, job.attempts) == ("incident", 1), "a budget breach is not worth another try"
    assert runner.run_due() == 0


def test_a_web_completion_whose_script_breaks_its_budget_is_a_422_page(
    runner: Runner,
    client,
    staff,
) -> None:
    runner.deploy(diagram("task", BREACHES[0][0]))
    instance_id = runner.start_instance("budget_task", "KH1")
    [task] = inbox.tasks(runner)
    history = len(inbox.history(runner, instance_id=instance_id))
    client.login("sales1")
    page = client.post(f"/inbox/tasks/{task['id']}/complete", data={})
    assert page.status_code == 422
    text = page.get_data(as_text=True)
    assert "Task_x" in text and TIME in text
    assert inbox.tasks(runner)[0]["state"] == "open"
    # nothing of the completion is stored; admins are told by one incident at the breaching element
    added = [h["event"] for h in inbox.history(runner, instance_id=instance_id)][history:]
    assert added == ["incident.raised"], added
    [incident] = inbox.incidents(runner)
    assert (incident["kind"], incident["element_id"]) == ("task", "Task_x") and TIME in incident["error"]


@pytest.mark.parametrize(("script", "budget"), BREACHES)
def test_an_api_completion_whose_script_breaks_its_budget_is_a_422(
    runner: Runner,
    app,
    staff,
    script: str,
    budget: str,
) -> None:
    runner.deploy(diagram("task", script))
    runner.start_instance("budget_task", "KH1")
    [task] = inbox.tasks(runner)
    token = users.issue_token(runner, "sales1", label="test")
    answer = app.test_client().post(
        f"/api/tasks/{task['id']}/complete", json={"data": {}}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 422
    detail = answer.get_json()["detail"]
    assert "Task_x (Tính điểm): script" in detail and budget in detail
    assert inbox.tasks(runner)[0]["state"] == "open"
    # admins see it: one incident naming the element and the budget, each try counted on it
    [incident] = inbox.incidents(runner)
    assert (incident["kind"], incident["ref"], incident["element_id"]) == ("task", task["id"], "Task_x")
    assert budget in incident["error"] and incident["tries"] == 1
    again = app.test_client().post(
        f"/api/tasks/{task['id']}/complete", json={"data": {}}, headers={"Authorization": f"Bearer {token}"}
    )
    assert again.status_code == 422 and [i["tries"] for i in inbox.incidents(runner)] == [2]
    runner.retry_incident(incident["id"], actor="admin")  # nothing to run again: it is resolved
    assert inbox.incidents(runner) == [] and inbox.tasks(runner)[0]["state"] == "open"


@pytest.mark.parametrize(("script", "reason"), REFUSED_AT_DEPLOY)
def test_a_breach_seen_before_anything_runs_is_refused_at_deploy(runner: Runner, script: str, reason: str) -> None:
    with pytest.raises(DeploymentInvalid) as refused:
        runner.deploy(diagram("timer", script))
    [problem] = refused.value.problems
    assert problem.element_id == "Task_x" and reason in problem.reason


# --- every kind of evaluation has the budget, not only scripts --------------------------------------

KINDS = {
    "condition": '<bpmn:exclusiveGateway id="Elem" default="f3" /><bpmn:sequenceFlow id="f2" sourceRef="Elem" '
    "targetRef=\"EndEvent_1\"><bpmn:conditionExpression>${len('a' * n) &gt; 0}"
    '</bpmn:conditionExpression></bpmn:sequenceFlow><bpmn:sequenceFlow id="f3" sourceRef="Elem" '
    'targetRef="EndEvent_1" />',
    "timer": '<bpmn:intermediateCatchEvent id="Elem"><bpmn:timerEventDefinition id="td1"><bpmn:timeDuration>'
    "${'PT' + str(len('a' * n)) + 'M'}</bpmn:timeDuration></bpmn:timerEventDefinition>"
    '</bpmn:intermediateCatchEvent><bpmn:sequenceFlow id="f2" sourceRef="Elem" targetRef="EndEvent_1" />',
    "input mapping": '<bpmn:serviceTask id="Elem" camunda:type="external" camunda:topic="budget.ok">'
    '<bpmn:extensionElements><camunda:inputOutput><camunda:inputParameter name="text">'
    "${'a' * n}</camunda:inputParameter></camunda:inputOutput></bpmn:extensionElements>"
    '</bpmn:serviceTask><bpmn:sequenceFlow id="f2" sourceRef="Elem" targetRef="EndEvent_1" />',
    "decision": '<bpmn:businessRuleTask id="Elem" camunda:decisionRef="budget_rule" />'
    '<bpmn:sequenceFlow id="f2" sourceRef="Elem" targetRef="EndEvent_1" />',
}
KIND_PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs_kind" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="budget_kind" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1" />
    <bpmn:sequenceFlow id="f1" sourceRef="StartEvent_1" targetRef="Elem" />
    {element}
    <bpmn:endEvent id="EndEvent_1" />
  </bpmn:process>
</bpmn:definitions>
"""
RULE = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="Defs_rule" name="Rule" namespace="x">
  <decision id="budget_rule" name="Rule">
    <decisionTable id="Table_1" hitPolicy="FIRST">
      <input id="Input_1"><inputExpression id="InputExpression_1" typeRef="string"><text>'a' * n</text>
      </inputExpression></input>
      <output id="Output_1" name="size" typeRef="integer" />
      <rule id="Rule_1"><inputEntry id="Entry_1"><text>"x"</text></inputEntry>
        <outputEntry id="Out_1"><text>1</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>
"""


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_evaluation_has_the_size_budget(runner: Runner, kind: str) -> None:
    runner.deploy({"kind.bpmn": KIND_PROCESS.format(element=KINDS[kind]).encode(), "rule.dmn": RULE.encode()})
    with pytest.raises(StepFailed, match=SIZE) as failed:
        runner.start_instance("budget_kind", "KH1", {"n": 10**10})
    assert failed.value.element_id == "Elem"
    assert inbox.instances(runner) == [], "nothing of the failed start is stored"


@pytest.mark.parametrize(("raw", "seconds"), [(None, 2.0), ("0.5", 0.5), ("30", 30.0)])
def test_the_script_timeout_is_a_setting(raw: str | None, seconds: float) -> None:
    env = {} if raw is None else {"RUNNER_SCRIPT_TIMEOUT": raw}
    assert Settings.from_env(env).script_timeout == seconds


@pytest.mark.parametrize("raw", ["0", "-1"])
def test_a_script_timeout_that_is_not_a_positive_number_is_refused(raw: str) -> None:
    with pytest.raises(Invalid, match="RUNNER_SCRIPT_TIMEOUT must be a number of seconds greater than 0"):
        Settings.from_env({"RUNNER_SCRIPT_TIMEOUT": raw})


def test_after_a_breach_the_same_pass_goes_on_with_other_work(runner: Runner) -> None:
    runner.deploy(diagram("timer", BREACHES[0][0]))
    healthy = {"healthy.bpmn": diagram("timer", "score = 1")["budget_timer.bpmn"].replace(b"budget_timer", b"healthy")}
    runner.deploy(healthy)
    broken_id = runner.start_instance("budget_timer", "KH1")
    healthy_id = runner.start_instance("healthy", "KH2")
    with runner.db.unit() as s:  # the breaking timer falls due first
        s.query(Timer).filter(Timer.instance_id == broken_id).update({"due_at": runner.now()})
        s.query(Timer).filter(Timer.instance_id == healthy_id).update({"due_at": runner.now() + timedelta(seconds=1)})
    runner.advance_clock(timedelta(seconds=1))
    assert open_incident(runner)["instance_id"] == broken_id
    assert inbox.instance(runner, healthy_id)["status"] == "completed"
    assert inbox.instance(runner, healthy_id)["data"]["score"] == 1
