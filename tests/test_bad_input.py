"""Bad input: rejected deployments (all problems at once, nothing stored) and bad runtime calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import REJECTED, fixture, instance_row, only_task, row_counts

from runner.errors import Conflict, DeploymentInvalid, FormInvalid, Invalid, NotFound, Problem
from runner.queries import tasklists as inbox
from runner.service.runtime import Runner

JAVA = 'is not supported; use camunda:type="external" camunda:topic="<handler topic>"'
LOOP = "has no gateway; add an exclusive gateway so the loop can be predicted"

# file -> (element id, element name, reason fragment) for every problem it must produce
EXPECTED: dict[str, list[tuple[str, str, str]]] = {
    "malformed.bpmn": [("", "", "XML is not well formed: Opening and ending tag mismatch")],
    "no_start.bpmn": [("no_start", "No start", "process has no start event")],
    "not_executable.bpmn": [("draft", "Draft", 'process is not executable (set isExecutable="true")')],
    "implementations.bpmn": [
        ("java_class", "Java class", f'Java implementation camunda:class="com.example.Mailer" {JAVA}'),
        ("delegate", "Delegate", f'Java implementation camunda:delegateExpression="${{mailer}}" {JAVA}'),
        ("juel", "JUEL", f'Java implementation camunda:expression="${{mailer.send()}}" {JAVA}'),
        ("unknown_topic", "Unknown topic", "no handler registered for topic 'demo.ehco'; did you mean 'demo.echo'?"),
        ("js", "JavaScript", "scriptFormat 'javascript' is not supported; scripts must be Python"),
    ],
    "timers_bad.bpmn": [
        ("wait_words", "Wait in words", "timer timeDuration: 'two days' is not an ISO 8601 duration"),
        ("wait_date", "Wait until someday", "timer timeDate: '2026-13-45' is not an ISO 8601 date-time"),
        ("wait_cron", "Cron wait", "cron timer cycles are not supported; use ISO 8601 R/..."),
    ],
    "unsupported.bpmn": [
        ("complex", "Complex", "complex gateways are not supported by the runner"),
        ("tx", "Payment transaction", "transaction subprocesses are not supported by the runner"),
        ("when", "When ready", "conditional events are not supported by the runner"),
        ("listened", "With listener", "listeners are not executed by the runner"),
    ],
    "job_properties.bpmn": [
        ("sync", "Sync CRM", "property 'retries' is 'three'; it must be a whole number of tries, 1 or more"),
        ("sync", "Sync CRM", "property 'timeout' is 'soon'; it must be a number of seconds greater than 0"),
        ("notify", "Notify", "property 'retries' is '0'; it must be a whole number of tries, 1 or more"),
        ("notify", "Notify", "property 'retry_backoff' is '-5'; it must be a number of seconds greater than 0"),
    ],
    "loop_without_gateway.bpmn": [("call", "Call", f"loop through call → wait_week → note → call {LOOP}")],
    "unknown_message.bpmn": [("wait_paid", "Paid", "messageRef 'Msg_paid' does not exist")],
}

# flow id -> the refused expression: each escape attempt is named by its element.
ESCAPES = {
    "esc_subclasses": ("().__class__.__bases__[0].__subclasses__()", "dunder attribute '__class__'"),
    "esc_import": ("__import__('os').system('id')", "call of '__import__' is not allowed"),
    "esc_open": ("open('/etc/passwd').read()", "call of 'open' is not allowed"),
    "esc_eval": ("eval('1')", "call of 'eval' is not allowed"),
    "esc_exec": ("exec('x=1')", "call of 'exec' is not allowed"),
    "esc_compile": ("compile('1','','eval')", "call of 'compile' is not allowed"),
    "esc_getattr": ("getattr(a,'b')", "call of 'getattr' is not allowed"),
    "esc_format": ("'{0.__class__}'.format(1)", "attribute 'format' is not allowed"),
    "esc_globals_attr": ("(lambda: 0).__globals__", "dunder attribute '__globals__'"),
    "esc_globals": ("globals()", "call of 'globals' is not allowed"),
    "esc_type": ("type(1)", "call of 'type' is not allowed"),
    "esc_vars": ("vars()", "call of 'vars' is not allowed"),
    "esc_mro": ("[c for c in ().__class__.__mro__]", "dunder attribute '__mro__'"),
    "esc_juel": ("true && !__import__('os').system('id')", "call of '__import__' is not allowed"),
}


def rejected(runner: Runner, files: list[Path] | dict[str, bytes]) -> list[Problem]:
    """Deploy, expecting a rejection that stores nothing; return its problems."""
    before = row_counts(runner)
    with pytest.raises(DeploymentInvalid) as caught:
        runner.deploy(files)
    assert row_counts(runner) == before
    return caught.value.problems


def matches(problem: Problem, expected: tuple[str, str, str]) -> bool:
    return (problem.element_id, problem.name) == expected[:2] and expected[2] in problem.reason


@pytest.mark.parametrize("file_name", sorted(EXPECTED))
def test_each_rejected_file_names_every_problem(runner: Runner, file_name: str) -> None:
    problems = rejected(runner, [REJECTED / file_name])
    assert all(p.file == file_name for p in problems)
    for expected in EXPECTED[file_name]:
        assert any(matches(p, expected) for p in problems), (expected, [str(p) for p in problems])
    assert len(problems) == len(EXPECTED[file_name]), [str(p) for p in problems]


def test_one_deployment_reports_all_problems_of_all_files_and_stores_nothing(any_runner: Runner) -> None:
    good = fixture("versions_v1.bpmn")
    problems = rejected(any_runner, [good, *sorted(REJECTED.glob("*.bpmn"))])
    expected = [(name, e) for name, items in EXPECTED.items() for e in items]
    for file_name, item in expected:
        assert any(p.file == file_name and matches(p, item) for p in problems), (file_name, item)
    assert not any(p.file == good.name for p in problems)
    assert len(problems) >= len(expected) + len(ESCAPES) + 1
    message = str(DeploymentInvalid(problems))
    assert f"{len(problems)} problem(s)" in message and "implementations.bpmn: java_class (Java class)" in message


def test_escape_attempts_are_all_refused_at_once(runner: Runner) -> None:
    problems = rejected(runner, [REJECTED / "escapes.bpmn"])
    assert {p.element_id for p in problems} == {"shell", *ESCAPES}
    [script] = [p for p in problems if p.element_id == "shell"]
    assert script.name == "Shell out" and "import is not allowed" in script.reason


@pytest.mark.parametrize("flow_id", sorted(ESCAPES))
def test_escape_attempt_alone_is_refused_naming_its_flow(runner: Runner, flow_id: str) -> None:
    expression, reason = ESCAPES[flow_id]
    xml = (
        fixture("versions_v1.bpmn")
        .read_text(encoding="utf-8")
        .replace(
            '<bpmn:sequenceFlow id="Flow_3" sourceRef="welcome" targetRef="EndEvent_onboard" />',
            f"""
    <bpmn:sequenceFlow id="Flow_3" sourceRef="welcome" targetRef="check" />
    <bpmn:exclusiveGateway id="check" name="Check" default="Flow_ok" />
    <bpmn:sequenceFlow id="Flow_ok" sourceRef="check" targetRef="EndEvent_onboard" />
    <bpmn:sequenceFlow id="{flow_id}" name="Attempt" sourceRef="check" targetRef="EndEvent_onboard">
    <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"><![CDATA[${{{expression}}}]]></bpmn:conditionExpression>
    </bpmn:sequenceFlow>""",
        )
        .replace("xmlns:camunda=", 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:camunda=')
    )
    [problem] = rejected(runner, {"attempt.bpmn": xml.encode()})
    assert (problem.element_id, problem.name, problem.file) == (flow_id, "Attempt", "attempt.bpmn")
    assert problem.reason.startswith("condition: expression ") and "refused" in problem.reason
    assert reason in problem.reason and ("&&" in expression or expression in problem.reason)


def test_unknown_topic_depends_on_the_registry(runner: Runner) -> None:
    xml = fixture("lifecycle.bpmn").read_bytes()
    [problem] = rejected(runner, {"lifecycle.bpmn": xml})
    assert (problem.element_id, problem.name) == ("sync", "Sync CRM")
    assert problem.reason.startswith("no handler registered for topic 'test.flaky'")
    runner.registry.add("test.flaky", lambda params, ctx: {})
    assert [d.process_key for d in runner.deploy({"lifecycle.bpmn": xml})] == ["lifecycle"]


# --- bad input at run time ---------------------------------------------------------------


def test_wrong_form_value_type_is_refused_naming_the_field(any_runner: Runner) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn")])
    instance_id = any_runner.start_instance("order", "school-1")
    task = only_task(any_runner, "school-1", "Activity_review")
    before, row = row_counts(any_runner), instance_row(any_runner, instance_id)
    with pytest.raises(FormInvalid) as caught:
        any_runner.complete_task(task["id"], {"amount": "abc", "note": "ok"}, actor="lan")
    assert set(caught.value.errors) == {"amount"}
    assert "amount" in str(caught.value) and "Duyệt đơn" in str(caught.value)
    assert row_counts(any_runner) == before
    assert instance_row(any_runner, instance_id) == row
    assert inbox.task(any_runner, task["id"])["state"] == "open"
    any_runner.complete_task(task["id"], {"amount": "1200", "note": "ok"}, actor="lan")
    assert inbox.instance(any_runner, instance_id)["data"] == {"amount": 1200, "note": "ok"}


def test_unknown_task_and_instance_ids_are_not_found(any_runner: Runner) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn")])
    any_runner.start_instance("order", "school-1")
    before = row_counts(any_runner)
    for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        with pytest.raises(NotFound, match=f"task {bad} does not exist"):
            any_runner.complete_task(bad, {"amount": "1"})
        with pytest.raises(NotFound):
            inbox.task(any_runner, bad)
        with pytest.raises(NotFound):
            inbox.instance(any_runner, bad)
        with pytest.raises(NotFound):
            any_runner.migrate_instance(bad)
    assert row_counts(any_runner) == before


def test_completing_a_finished_task_again_is_a_conflict(runner: Runner) -> None:
    runner.deploy([fixture("modeler_order.bpmn")])
    runner.start_instance("order", "school-1")
    task = only_task(runner, "school-1", "Activity_review")
    runner.complete_task(task["id"], {"amount": "5"}, actor="lan")
    before = row_counts(runner)
    with pytest.raises(Conflict, match=r"task Activity_review \(Duyệt đơn\) was already completed by lan"):
        runner.complete_task(task["id"], {"amount": "7"}, actor="minh")
    assert row_counts(runner) == before


@pytest.mark.parametrize(
    "data, reason",
    [
        ({"seats": {1, 2}}, "start data is not JSON-safe: Object of type set"),
        ({"ratio": float("nan")}, "start data.ratio: nan is not a finite number"),
        ("seats=3", "start data must be a mapping of names to values, not str"),
    ],
)
def test_start_data_must_be_a_mapping_of_json_values(any_runner: Runner, data, reason: str) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn")])
    before = row_counts(any_runner)
    with pytest.raises(Invalid, match=reason):
        any_runner.start_instance("order", "school-1", data)
    assert row_counts(any_runner) == before


def test_message_and_form_data_are_checked_too(runner: Runner) -> None:
    runner.deploy([fixture("messages.bpmn"), fixture("modeler_order.bpmn")])
    runner.start_instance("order", "school-1")
    before = row_counts(runner)
    with pytest.raises(Invalid, match="message data is not JSON-safe"):
        runner.correlate("lead_created", "school-1", {"when": object()})
    with pytest.raises(Invalid, match="form data must be a mapping of names to values, not list"):
        runner.complete_task(only_task(runner, "school-1")["id"], [("amount", "3")])
    assert row_counts(runner) == before


def test_deploying_missing_files_or_nothing_is_rejected(runner: Runner, tmp_path: Path) -> None:
    missing = tmp_path / "gone.bpmn"
    problems = rejected(runner, [fixture("versions_v1.bpmn"), missing, tmp_path / "also_gone.dmn"])
    assert [(p.file, p.reason) for p in problems] == [
        (str(missing), "cannot read the file: No such file or directory"),
        (str(tmp_path / "also_gone.dmn"), "cannot read the file: No such file or directory"),
    ]
    [problem] = rejected(runner, {})
    assert problem.reason == "nothing to deploy: give .bpmn or .dmn files"
    [problem] = rejected(runner, [tmp_path])  # a folder without models
    assert problem.reason.startswith("nothing to deploy")
    assert [d.process_key for d in runner.deploy(str(fixture("versions_v1.bpmn")))] == ["onboard"]
