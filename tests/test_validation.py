"""Tests for runner.validation: every problem of a deployment, reported at once, never a crash."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.errors import DeploymentInvalid, Problem  # noqa: E402
from runner.model.validation import validate  # noqa: E402

FIXTURES = Path(__file__).parent / "bpmn" / "validation"
TOPICS = {"demo.echo", "crm.add_notes"}
JAVA_HINT = 'use camunda:type="external" camunda:topic="<handler topic>"'

# fixture -> (element_id, name, reason fragment) for every problem the fixture must produce.
EXPECTED: dict[str, list[tuple[str, str, str]]] = {
    "malformed.bpmn": [("", "", "XML is not well formed: Opening and ending tag mismatch")],
    "malformed.dmn": [("", "", "XML is not well formed")],
    "wrong_root.bpmn": [("bare_process", "Bare process", "not bpmn:definitions")],
    "wrong_root.dmn": [("Definitions_not_dmn", "", "not DMN 1.1-1.3 definitions")],
    "not_executable.bpmn": [
        ("draft", "Draft", 'process is not executable (set isExecutable="true")'),
        ("missing_flag", "Missing flag", 'process is not executable (set isExecutable="true")'),
    ],
    "no_executable_process.bpmn": [("Definitions_empty", "", "file has no executable process")],
    "start_events.bpmn": [
        ("no_start", "No start", "process has no start event"),
        ("Sub_no_start", "Sub without start", "embedded subprocess has no start event"),
        ("Event_sub_start", "Plain start", "event subprocess start event has no trigger"),
        ("Event_sub_two", "Two starts", "event subprocess needs exactly one start event, found 2"),
    ],
    "service_tasks.bpmn": [
        (
            "Java_class",
            "Java class",
            f'Java implementation camunda:class="com.example.SendMail" is not supported; {JAVA_HINT}',
        ),
        ("Delegate", "Delegate", 'camunda:delegateExpression="${mailDelegate}" is not supported'),
        ("Juel", "JUEL call", 'camunda:expression="${mailer.send()}" is not supported'),
        ("Connector", "HTTP connector", "camunda:connector is not supported"),
        ("Nothing", "Does nothing", "service task has no handler topic"),
        ("Typo", "Typo topic", "no handler registered for topic 'demo.ehco'; did you mean 'demo.echo'?"),
        ("Unknown", "Unknown topic", "no handler registered for topic 'crm.add_note'; did you mean 'crm.add_notes'?"),
        ("No_topic", "No topic", "external task has no camunda:topic"),
        ("Rules", "No decision", "business rule task has neither camunda:decisionRef nor a handler topic"),
        ("Send_java", "Send by Java", 'camunda:class="com.example.Send" is not supported'),
        ("Throw_java", "Throw by Java", 'camunda:delegateExpression="${thrower}" is not supported'),
        ("End_external", "End external", "no handler registered for topic 'no.such'"),
    ],
    "scripts.bpmn": [
        ("Js", "JavaScript", "scriptFormat 'javascript' is not supported; scripts must be Python"),
        ("Groovy", "Groovy", "scriptFormat 'groovy' is not supported"),
        ("External", "External", 'external script resource "deployment://score.py" is not supported'),
        ("Imports", "Imports os", "script: script 'import os"),
        ("Syntax", "Bad syntax", "script: syntax error"),
        ("Empty", "Empty", "script is empty"),
    ],
    "expressions.bpmn": [
        ("Flow_js", "JS condition", "condition: language 'javascript' is not supported"),
        ("Flow_syntax", "Broken condition", "condition: syntax error"),
        ("Flow_dunder", "", "condition: expression 'amount.__class__' refused"),
        ("Task_1", "Assign", "completion condition: syntax error"),
        ("Task_1", "Assign", "input parameter 'bad_in': expression \"open('/etc/passwd')\" refused"),
        ("Task_1", "Assign", "input parameter 'bad_list': syntax error"),
        ("Task_1", "Assign", "input parameter 'bad_map': expression 'eval(\"1\")' refused"),
        ("Task_1", "Assign", "input parameter 'groovy_script': scriptFormat 'groovy' is not supported"),
        ("Task_1", "Assign", "output parameter 'bad_out': syntax error"),
        ("Task_1", "Assign", "assignee: expression \"__import__('os')\" refused"),
        ("Task_1", "Assign", "candidateGroups: mixed text and ${...} in 'sales_${team}' is not supported"),
        ("Task_1", "Assign", "dueDate: syntax error"),
        ("Task_1", "Assign", "collection: syntax error"),
        ("Task_2", "Cardinality", "loop cardinality: syntax error"),
    ],
    "timers.bpmn": [
        ("Start_cron", "Cron start", "cron timer cycles are not supported; use ISO 8601 R/..."),
        ("Bad_duration", "Bad duration", "timer timeDuration: '60 minutes' is not an ISO 8601 duration"),
        ("Bad_date", "Bad date", "timer timeDate: 'tomorrow' is not an ISO 8601 date-time"),
        ("No_value", "No value", "timer has no timeDate, timeDuration or timeCycle"),
        ("Empty_value", "Empty value", "timer timeDuration is empty"),
        ("Bad_expression", "Bad expression", "timer timeDuration: syntax error"),
        ("Two_values", "Two values", "timer has more than one of timeDate, timeDuration and timeCycle"),
        ("Bad_cycle", "Bad cycle", "timer timeCycle: 'R0/PT1H' is not a usable cycle"),
    ],
    "messages.bpmn": [
        ("StartEvent", "Start", "messageRef 'Message_0abc' does not exist"),
        ("Catch_unnamed", "Unnamed message", "message 'Message_unnamed' has no name"),
        ("Catch_no_ref", "No ref", "message event has no messageRef"),
        ("Receive", "Receive without message", "receive task has no messageRef"),
        ("Send", "Send nothing", "send task has neither a messageRef nor a handler topic"),
    ],
    "unsupported.bpmn": [
        ("Conversation_1", "Talk", "conversations are not supported by the runner"),
        ("Choreography_1", "Dance", "choreographies are not supported by the runner"),
        ("Complex", "Complex", "complex gateways are not supported by the runner"),
        ("Tx", "Booking transaction", "transaction subprocesses are not supported by the runner"),
        ("AdHoc", "Ad hoc", "ad-hoc subprocesses are not supported by the runner"),
        ("Undo", "Undo booking", "compensation events are not supported by the runner"),
        ("Cancel_booking", "Cancel booking", "compensation handlers are not supported by the runner"),
        ("When_ready", "When ready", "conditional events are not supported by the runner"),
        ("Loop", "Loop task", "loop tasks are not supported by the runner"),
        ("Multi", "Multi without count", "multi-instance needs camunda:collection or a loop cardinality"),
        ("Store", "CRM database", "data stores are not supported by the runner"),
        ("unsupported", "", "listeners are not executed by the runner; model the step as a task"),
        ("Book", "Book", "listeners are not executed by the runner; model the step as a task"),
        ("Retry", "Retry a lot", "camunda:failedJobRetryTimeCycle is not supported; set a 'retries' extension"),
    ],
    "forms.bpmn": [
        ("Survey", "Survey customer", "form field 'phone': unsupported type 'phoneNumber'"),
        ("Survey", "Survey customer", "form field 'name': unsupported constraint 'pattern'"),
        ("Survey", "Survey customer", "form field 'staff': constraint 'min' has invalid config 'ten'"),
        ("Survey", "Survey customer", "form field 'model': enum field has no values"),
        ("Survey", "Survey customer", "form field 'name' is defined twice"),
        ("Survey", "Survey customer", "form field 'note' default value: syntax error"),
    ],
    "call_activities.bpmn": [
        ("Call_nothing", "Calls nothing", "call activity has no calledElement"),
        ("Call_expression", "Calls expression", "calledElement must be a process id, not an expression"),
        ("Call_case", "Calls case", "CMMN cases (camunda:caseRef) are not supported"),
        ("Call_binding", "Odd binding", "camunda:calledElementBinding 'newest' is not one of"),
        ("Call_mapping", "Bad mapping", "camunda:in sourceExpression: syntax error"),
        ("Rule_empty", "Empty decision", "camunda:decisionRef is empty"),
        ("Rule_expression", "Expression decision", "camunda:decisionRef must be a decision id"),
    ],
    "ids_and_flows.bpmn": [
        ("Task_1", "Copy of first", "id 'Task_1' is used by more than one element"),
        ("Flow_ghost", "To nowhere", "targetRef 'Ghost' does not exist"),
        ("Flow_into_sub", "Into subprocess", "targetRef 'Inner' is not in the same process or subprocess"),
        ("Flow_no_source", "", "sequence flow has no sourceRef"),
        ("Choice", "Choice", "default flow 'Flow_elsewhere' is not an outgoing flow of the gateway"),
        ("Choice", "Choice", "outgoing flow Flow_b has no condition and is not the default"),
        ("Choice", "Choice", "outgoing flow Flow_c has no condition and is not the default"),
        ("Flow_c", "Path C", "condition: expression is empty"),
        ("Stray", "Stray timer", "attachedToRef 'Nowhere' is not an activity of the same process"),
    ],
    "legacy_activiti_errors.bpmn": [
        ("Java", "Java bean", 'Java implementation camunda:class="com.example.Bean" is not supported'),
        ("Typo", "Typo", "no handler registered for topic 'demo.ecko'; did you mean 'demo.echo'?"),
        ("Listen", "Listen", "listeners are not executed by the runner"),
    ],
    "bad_hit_policies.dmn": [
        ("decide_priority", "Priority policy", "hit policy 'PRIORITY' is not supported"),
        ("decide_priority", "Priority policy", "1 rule element(s) of the decision table have no id"),
        ("decide_sum", "Collect sum", "COLLECT with aggregation 'SUM' is not supported"),
        ("decide_sum", "Collect sum", "only one decision per DMN file is supported"),
        ("decision (line 15)", "Literal without id", "only one decision per DMN file is supported"),
        ("decision (line 15)", "Literal without id", "decision has no id"),
        ("decision (line 15)", "Literal without id", "decision has no decision table"),
    ],
    "kitchen_sink_errors.bpmn": [
        ("StartEvent", "Every 9am", "cron timer cycles are not supported"),
        ("Mail", "Send mail", 'Java implementation camunda:class="com.example.Mail" is not supported'),
        ("Calc", "Calculate", "scriptFormat 'javascript' is not supported"),
        ("Ok", "Ok?", "outgoing flow Flow_no has no condition and is not the default"),
        ("Flow_yes", "yes", "condition: syntax error"),
        ("Wait", "Wait for reply", "messageRef 'Message_missing' does not exist"),
        ("Complex", "Complex join", "complex gateways are not supported by the runner"),
        ("Form", "Fill form", "form field 'when': unsupported type 'time'"),
        ("Call", "Call nothing", "call activity has no calledElement"),
    ],
}

VALID_SETS = {
    "features+dmn": ["valid_features.bpmn", "decide_discount.dmn"],
    "legacy-activiti": ["legacy_activiti.bpmn"],
    "dmn-1.1": ["legacy_dmn11.dmn"],
}


def run(*names: str, topics=TOPICS) -> list[Problem]:
    """Validate fixture files together, as one deployment."""
    return validate({n: (FIXTURES / n).read_bytes() for n in names}, topics=topics)


def matches(problem: Problem, element_id: str, name: str, fragment: str) -> bool:
    """Whether a problem is the expected one."""
    return (problem.element_id, problem.name) == (element_id, name) and fragment in problem.reason


CASES = [
    pytest.param(fixture, *expected, id=f"{fixture}-{expected[0] or 'file'}-{i}")
    for fixture, rows in EXPECTED.items()
    for i, expected in enumerate(rows)
]


@pytest.mark.parametrize(("fixture", "element_id", "name", "fragment"), CASES)
def test_problem_is_reported(fixture: str, element_id: str, name: str, fragment: str) -> None:
    problems = run(fixture)
    assert any(matches(p, element_id, name, fragment) for p in problems), "\n".join(map(str, problems))
    assert all(p.file == fixture for p in problems)


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_no_unexpected_problems(fixture: str) -> None:
    unexpected = [p for p in run(fixture) if not any(matches(p, *row) for row in EXPECTED[fixture])]
    assert unexpected == []


@pytest.mark.parametrize("names", VALID_SETS.values(), ids=VALID_SETS.keys())
def test_valid_files_have_no_problems(names: list[str]) -> None:
    assert run(*names) == []


def test_kitchen_sink_reports_every_problem_at_once() -> None:
    problems = run("kitchen_sink_errors.bpmn")
    assert len({p.reason.split(":")[0] for p in problems}) >= 6
    assert len({p.element_id for p in problems}) >= 6


def test_every_file_of_a_deployment_is_checked() -> None:
    problems = run("malformed.bpmn", "service_tasks.bpmn", "bad_hit_policies.dmn", "valid_features.bpmn")
    assert {p.file for p in problems} == {"malformed.bpmn", "service_tasks.bpmn", "bad_hit_policies.dmn"}
    assert "deployment rejected" in str(DeploymentInvalid(problems))


def test_malformed_xml_is_one_file_level_problem_with_position() -> None:
    [problem] = run("malformed.bpmn")
    assert (problem.element_id, problem.name, problem.file) == ("", "", "malformed.bpmn")
    assert "line 5" in problem.reason


def test_topic_without_close_match_has_no_hint() -> None:
    problems = run("service_tasks.bpmn", topics=["zzz"])
    reasons = [p.reason for p in problems if p.element_id == "Unknown"]
    assert reasons == ["no handler registered for topic 'crm.add_note'"]


def test_registered_topic_is_accepted() -> None:
    problems = run("service_tasks.bpmn", topics={"demo.echo", "demo.ehco", "crm.add_note", "no.such"})
    assert not [p for p in problems if "no handler registered" in p.reason]


def test_decision_refs_are_not_resolved_against_deployed_decisions() -> None:
    problems = run("call_activities.bpmn")
    assert not [p for p in problems if p.element_id == "Rule_elsewhere"]


def test_file_type_must_be_bpmn_or_dmn() -> None:
    [problem] = validate({"notes.txt": b"<a/>"}, topics=TOPICS)
    assert (problem.element_id, problem.file) == ("", "notes.txt")
    assert ".bpmn or .dmn" in problem.reason


GARBAGE = {
    "empty": b"",
    "nul": b"\x00\x00",
    "binary": bytes(range(256)),
    "text": b"not xml at all",
    "other-xml": b"<html><body/></html>",
    "bom-only": b"\xef\xbb\xbf",
    "latin1-declared-utf8": '<?xml version="1.0" encoding="UTF-8"?><a n="\xe9"/>'.encode("latin-1"),
    "deep": b"<a>" * 5000 + b"</a>" * 5000,
    "str-with-declaration": '<?xml version="1.0" encoding="UTF-8"?><a/>',
    "huge-timer": (FIXTURES / "timers.bpmn").read_bytes().replace(b"PT1H", b"P" + b"9" * 5000 + b"D"),
    "date-overflow": (FIXTURES / "timers.bpmn")
    .read_bytes()
    .replace(b"2026-01-01T00:00:00Z", b"0001-01-01T00:00:00+01:00"),
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
@pytest.mark.parametrize("name", ["x.bpmn", "x.dmn"])
def test_garbage_never_raises(name: str, data: bytes) -> None:
    problems = validate({name: data}, topics=TOPICS)  # type: ignore[dict-item]
    assert all(isinstance(p, Problem) and p.reason for p in problems)


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.iterdir()))
def test_truncated_files_never_raise(fixture: str) -> None:
    data = (FIXTURES / fixture).read_bytes()
    # NOTE: a cut that only drops the final newline leaves a whole file, so cuts stop before it.
    for end in range(0, len(data.rstrip()), max(1, len(data) // 40)):
        problems = validate({fixture: data[:end]}, topics=TOPICS)
        assert problems and all(p.reason for p in problems)


def _mutations(data: bytes) -> list[bytes]:
    """The file with each element removed in turn, then also without ids, names and references."""
    out = []
    for index in range(1, sum(1 for _ in etree.fromstring(data).iter())):
        root = etree.fromstring(data)
        victim = list(root.iter())[index]
        victim.getparent().remove(victim)
        out.append(etree.tostring(root))
        for el in root.iter():
            for attr in ("id", "name", "sourceRef", "targetRef", "messageRef", "default", "attachedToRef"):
                el.attrib.pop(attr, None)
        out.append(etree.tostring(root))
    return out


@pytest.mark.parametrize(
    "fixture",
    ["valid_features.bpmn", "kitchen_sink_errors.bpmn", "expressions.bpmn", "unsupported.bpmn", "bad_hit_policies.dmn"],
)
def test_files_with_parts_removed_never_raise(fixture: str) -> None:
    for data in _mutations((FIXTURES / fixture).read_bytes()):
        problems = validate({fixture: data}, topics=TOPICS)
        assert all(p.reason for p in problems)
