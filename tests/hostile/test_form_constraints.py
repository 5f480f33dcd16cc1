"""camunda:validation constraints reach every side: the browser's attributes, the API's form, each completion path.

One tiny diagram (``tests/bpmn/hostile/form_constraints.bpmn``) has a field for each
constraint. Its form is what the task page gives the browser, what ``GET /api/tasks``
states, and what the web page, the API and ``runner complete`` refuse, naming the field:
one validation in the runner behind all three.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from runner.cli import main
from runner.errors import DeploymentInvalid, FormInvalid
from runner.queries import tasklists as inbox
from runner.service import accounts as users
from runner.service.runtime import Runner
from tests.webapp import WebClient
from web.openapi import document

FORM = Path(__file__).parent.parent / "bpmn" / "hostile" / "form_constraints.bpmn"
GOOD = {
    "code": "DH-001",
    "amount": 500,
    "start_on": "2026-06-01",
    "note": "Khách ký 12 tháng",
    "plan": "pro",
    "agreed": True,
}

# field, the attributes its input must carry (None: present without a value)
ATTRIBUTES = [
    ("code", {"required": None, "minlength": "3", "maxlength": "12", "type": "text"}),
    ("amount", {"required": None, "min": "1", "max": "1000", "type": "number"}),
    ("start_on", {"min": "2026-01-01", "max": "2027-12-31", "type": "date"}),
    ("note", {"required": None, "minlength": "5", "maxlength": "300"}),
    ("plan", {"required": None}),
    ("source", {"readonly": None}),
]

# field, value posted, the message in Vietnamese, the message in English
REFUSALS = [
    ("code", "ab", "Mã đơn cần ít nhất 3 ký tự.", "Mã đơn needs at least 3 characters."),
    ("code", "DH-0000000001", "Mã đơn tối đa 12 ký tự.", "Mã đơn can have at most 12 characters."),
    ("amount", "0", "Giá trị phải từ 1 trở lên.", "Giá trị must be at least 1."),
    ("amount", "1001", "Giá trị tối đa là 1000.", "Giá trị must be at most 1000."),
    ("amount", "abc", "Giá trị phải là số nguyên.", "Giá trị must be a whole number."),
    (
        "start_on",
        "2025-12-31",
        "Ngày bắt đầu không được trước ngày 2026-01-01.",
        "Ngày bắt đầu must not be before 2026-01-01.",
    ),
    (
        "start_on",
        "2028-01-01",
        "Ngày bắt đầu không được sau ngày 2027-12-31.",
        "Ngày bắt đầu must not be after 2027-12-31.",
    ),
    ("note", "  ", "Vui lòng nhập Ghi chú.", "Please fill in Ghi chú."),
    ("plan", "gold", "Hãy chọn một giá trị trong danh sách cho Gói.", "Choose one of the listed values for Gói."),
    ("source", "Facebook", "Nguồn chỉ được xem, không sửa được.", "Nguồn is read-only."),
]


@pytest.fixture
def order(runner: Runner, staff) -> str:
    """The open task of a new instance, claimed by sales1."""
    runner.deploy([FORM])
    runner.start_instance("form_constraints", "KH1")
    [task] = inbox.tasks(runner, business_key="KH1")
    runner.claim_task(task["id"], "sales1", ["sales"])
    return task["id"]


class _Inputs(HTMLParser):
    """The attributes of each form control, by its id."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, dict[str, str | None]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag in ("input", "textarea", "select") and str(named.get("id", "")).startswith("f-"):
            self.found[str(named["id"])[2:]] = named


def _inputs(page: str) -> dict[str, dict[str, str | None]]:
    parser = _Inputs()
    parser.feed(page)
    return parser.found


def _posted(field: str, value: str) -> dict[str, str]:
    form = {k: ("true" if v is True else str(v)) for k, v in GOOD.items()}
    return {**form, field: value}


def test_the_task_page_gives_the_browser_every_constraint(client: WebClient, order: str) -> None:
    client.login("sales1")
    inputs = _inputs(client.get(f"/inbox/tasks/{order}").get_data(as_text=True))
    for field, expected in ATTRIBUTES:
        assert {k: inputs[field].get(k, "absent") for k in expected} == expected, field
    assert "required" not in inputs["agreed"]  # a required checkbox would have to be ticked
    assert "name" not in inputs["source"]  # a read-only value is not posted back


@pytest.mark.parametrize(
    ("field", "value", "vietnamese", "english"), REFUSALS, ids=[f"{f}={v!r}" for f, v, _, _ in REFUSALS]
)
def test_the_web_form_refuses_a_value_naming_the_field_in_both_languages(
    client: WebClient,
    runner: Runner,
    order: str,
    field: str,
    value: str,
    vietnamese: str,
    english: str,
) -> None:
    client.login("sales1")
    for language, message in (("vi", vietnamese), ("en", english)):
        client.post(f"/lang/{language}")
        response = client.post(f"/inbox/tasks/{order}/complete", data=_posted(field, value))
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        block = page[page.index(f'data-field="{field}"') :]
        assert f'<p class="error" id="e-{field}">{message}</p>' in block[: block.index("</div>")]
    assert inbox.task(runner, order)["state"] == "open"


def test_the_web_form_completes_with_values_inside_the_constraints(
    client: WebClient,
    runner: Runner,
    order: str,
) -> None:
    client.login("sales1")
    response = client.post(f"/inbox/tasks/{order}/complete", data=_posted("source", "Web"))
    assert response.status_code == 302
    [done] = inbox.history(runner, business_key="KH1", events=["task.completed"])
    assert done["details"]["data"] == {**GOOD, "start_on": "2026-06-01"}  # the read-only value is not written


def _api(flask_app: Flask, runner: Runner):
    token = users.issue_token(runner, "sales1", label="test")
    http = flask_app.test_client()
    return lambda method, path, **kw: http.open(path, method=method, headers={"Authorization": f"Bearer {token}"}, **kw)


def test_the_api_states_each_constraint_of_the_form(app: Flask, runner: Runner, order: str) -> None:
    call = _api(app, runner)
    [task] = call("GET", "/api/tasks").get_json()["tasks"]
    form = {
        f["id"]: {k: f[k] for k in ("type", "required", "readonly", "min", "max", "minlength", "maxlength")}
        for f in task["form"]
    }
    assert form == {
        "code": {
            "type": "string",
            "required": True,
            "readonly": False,
            "min": None,
            "max": None,
            "minlength": 3,
            "maxlength": 12,
        },
        "amount": {
            "type": "long",
            "required": True,
            "readonly": False,
            "min": 1,
            "max": 1000,
            "minlength": None,
            "maxlength": None,
        },
        "start_on": {
            "type": "date",
            "required": False,
            "readonly": False,
            "min": "2026-01-01",
            "max": "2027-12-31",
            "minlength": None,
            "maxlength": None,
        },
        "note": {
            "type": "string",
            "required": True,
            "readonly": False,
            "min": None,
            "max": None,
            "minlength": 5,
            "maxlength": 300,
        },
        "plan": {
            "type": "enum",
            "required": True,
            "readonly": False,
            "min": None,
            "max": None,
            "minlength": None,
            "maxlength": None,
        },
        "agreed": {
            "type": "boolean",
            "required": True,
            "readonly": False,
            "min": None,
            "max": None,
            "minlength": None,
            "maxlength": None,
        },
        "source": {
            "type": "string",
            "required": False,
            "readonly": True,
            "min": None,
            "max": None,
            "minlength": None,
            "maxlength": None,
        },
    }


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, v, _, _ in REFUSALS], ids=[f"{f}={v!r}" for f, v, _, _ in REFUSALS]
)
def test_the_api_refuses_a_value_with_422_naming_the_field(
    app: Flask,
    runner: Runner,
    order: str,
    field: str,
    value: Any,
) -> None:
    response = _api(app, runner)("POST", f"/api/tasks/{order}/complete", json={"data": {**GOOD, field: value}})
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [field]
    assert inbox.task(runner, order)["state"] == "open"


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, v, _, _ in REFUSALS], ids=[f"{f}={v!r}" for f, v, _, _ in REFUSALS]
)
def test_runner_complete_refuses_a_value_in_one_line_naming_the_field(
    runner: Runner,
    order: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: Any,
) -> None:
    monkeypatch.setenv("RUNNER_DATABASE_URL", runner.settings.database_url)
    monkeypatch.setenv("RUNNER_CLOCK", "virtual")
    assert main(["complete", order, "--data", json.dumps({**GOOD, field: value}), "--actor", "sales1"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and _label(field) in line, line
    assert inbox.task(runner, order)["state"] == "open"


def _label(field: str) -> str:
    return {
        "code": "Mã đơn",
        "amount": "Giá trị",
        "start_on": "Ngày bắt đầu",
        "note": "Ghi chú",
        "plan": "Gói",
        "source": "Nguồn",
    }[field]


def test_a_read_only_value_sent_unchanged_is_ignored_and_the_current_one_kept(runner: Runner, order: str) -> None:
    runner.complete_task(order, {**GOOD, "source": "Web"}, actor="sales1")
    [done] = inbox.history(runner, business_key="KH1", events=["task.completed"])
    assert "source" not in done["details"]["data"]


def test_a_read_only_value_changed_is_refused_by_the_runner(runner: Runner, order: str) -> None:
    with pytest.raises(FormInvalid) as refused:
        runner.complete_task(order, {**GOOD, "source": "Facebook"}, actor="sales1")
    assert refused.value.codes == {"source": "readonly"}  # type: ignore[attr-defined]


# --- constraints a deployment refuses ---------------------------------------------------------------------

DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="D" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="bad_form" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fill" />
    <bpmn:userTask id="fill" name="Điền đơn" camunda:candidateGroups="sales">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="x" label="X" type="{type}">{values}
          <camunda:validation><camunda:constraint name="{name}" config="{config}" /></camunda:validation>
        </camunda:formField>
      </camunda:formData></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="fill" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""
ENUM_VALUES = '<camunda:value id="a" name="A" />'

# field type, constraint, config, what the deployment says about field 'x'
BAD_CONSTRAINTS = [
    ("long", "min", "abc", "constraint 'min' has invalid config 'abc'"),
    ("long", "min", "1.5", "constraint 'min' has invalid config '1.5'"),
    ("long", "max", "1e3", "constraint 'max' has invalid config '1e3'"),
    ("long", "max", "9223372036854775808", "constraint 'max' has invalid config '9223372036854775808'"),
    ("long", "min", "", "constraint 'min' has invalid config ''"),
    ("date", "min", "2026-13-01", "constraint 'min' has invalid config '2026-13-01'"),
    ("date", "max", "tomorrow", "constraint 'max' has invalid config 'tomorrow'"),
    ("string", "minlength", "-1", "constraint 'minlength' has invalid config '-1'"),
    ("string", "maxlength", "ten", "constraint 'maxlength' has invalid config 'ten'"),
    ("string", "min", "1", "constraint 'min' does not apply to type 'string'"),
    ("boolean", "max", "1", "constraint 'max' does not apply to type 'boolean'"),
    ("enum", "maxlength", "3", "constraint 'maxlength' does not apply to type 'enum'"),
    ("long", "minlength", "3", "constraint 'minlength' does not apply to type 'long'"),
    ("date", "maxlength", "3", "constraint 'maxlength' does not apply to type 'date'"),
    ("string", "pattern", "[a-z]+", "unsupported constraint 'pattern'"),
]


@pytest.mark.parametrize(
    ("ftype", "name", "config", "reason"), BAD_CONSTRAINTS, ids=[f"{t}-{n}={c!r}" for t, n, c, _ in BAD_CONSTRAINTS]
)
def test_a_constraint_that_cannot_hold_is_a_deployment_problem_naming_element_and_field(
    runner: Runner, tmp_path: Path, ftype: str, name: str, config: str, reason: str
) -> None:
    diagram = tmp_path / "bad_form.bpmn"
    diagram.write_text(
        DIAGRAM.format(type=ftype, name=name, config=config, values=ENUM_VALUES if ftype == "enum" else ""),
        encoding="utf-8",
    )
    with pytest.raises(DeploymentInvalid) as refused:
        runner.deploy([diagram])
    assert [(p.element_id, p.reason) for p in refused.value.problems] == [("fill", f"form field 'x': {reason}")]
    assert inbox.process_versions(runner) == []


def test_the_openapi_document_describes_each_constraint_of_a_form_field() -> None:
    field = document()["components"]["schemas"]["FormField"]["properties"]
    assert {"required", "readonly", "min", "max", "minlength", "maxlength", "options"} <= set(field)
