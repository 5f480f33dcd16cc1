"""Tests for runner.forms: parsing Camunda formData, JSON round trip and coerce()."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.errors import DeploymentInvalid, FormInvalid  # noqa: E402
from runner.model.forms import Field, Form, Option, coerce, form_from_dict, parse_form  # noqa: E402

BPMN_DIR = Path(__file__).parent / "bpmn"
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def load_task(file: str, task_id: str) -> etree._Element:
    tree = etree.parse(str(BPMN_DIR / file))
    (node,) = tree.xpath("//bpmn:userTask[@id=$id]", namespaces={"bpmn": BPMN}, id=task_id)
    return node


@pytest.fixture(scope="module")
def form() -> Form:
    return parse_form(load_task("forms.bpmn", "Task_call"))


def submit(form: Form, **values: Any) -> dict[str, Any]:
    return coerce(form, {"staff_count": 5, **values})


def task_xml(fields: str, ns: str = "http://camunda.org/schema/1.0/bpmn") -> etree._Element:
    return etree.fromstring(
        f'<bpmn:userTask xmlns:bpmn="{BPMN}" xmlns:camunda="{ns}" id="T" name="Task T">'
        f"<bpmn:extensionElements><camunda:formData>{fields}</camunda:formData>"
        f"</bpmn:extensionElements></bpmn:userTask>"
    )


# ---------------------------------------------------------------- parsing


def test_parse_reads_every_field(form: Form) -> None:
    assert [f.id for f in form.fields] == ["reached", "staff_count", "model", "note", "demo_at", "follow_up", "source"]
    assert form.field("staff_count") == Field("staff_count", "Số nhân viên", "long", required=True, min=0, max=10000)
    assert form.field("model").options == (Option("center", "Trung tâm"), Option("school", "Trường học"))
    note = form.field("note")
    assert (note.minlength, note.maxlength) == (2, 500)
    assert note.properties == {"placeholder": "Nội dung cuộc gọi", "rows": "4"}
    assert form.field("demo_at").readonly and not form.field("demo_at").required
    assert (form.field("follow_up").min, form.field("follow_up").max) == (date(2026, 1, 1), date(2026, 12, 31))
    with pytest.raises(KeyError):
        form.field("nope")


def test_default_values(form: Form) -> None:
    assert form.field("reached").default == "false"
    assert form.field("reached").default_value() is False
    assert form.field("source").default_value() == "web"
    assert form.field("staff_count").default_value() is None


def test_task_without_form_data_gives_empty_form() -> None:
    assert parse_form(load_task("forms.bpmn", "Task_plain")) == Form(())


def test_legacy_activiti_namespace() -> None:
    legacy = parse_form(load_task("forms_legacy.bpmn", "Task_legacy"))
    assert [f.id for f in legacy.fields] == ["staff_count", "model"]
    assert legacy.field("staff_count").required and legacy.field("staff_count").min == 0
    assert legacy.field("model").default_value() == "school"
    assert coerce(legacy, {"staff_count": "3"}) == {"staff_count": 3}


def test_fixture_loads_in_spiffworkflow() -> None:
    from SpiffWorkflow.camunda.parser import CamundaParser

    parser = CamundaParser()
    parser.add_bpmn_file(str(BPMN_DIR / "forms.bpmn"))
    assert "Task_call" in parser.get_spec("forms").task_specs


@pytest.mark.parametrize(
    "fields, reason",
    [
        ('<camunda:formField id="a" type="custom" />', "unsupported type 'custom'"),
        (
            '<camunda:formField id="a" type="long"><camunda:validation>'
            '<camunda:constraint name="min" config="abc" /></camunda:validation></camunda:formField>',
            "constraint 'min' has invalid config 'abc'",
        ),
        (
            '<camunda:formField id="a" type="long"><camunda:validation>'
            '<camunda:constraint name="minlength" config="1" /></camunda:validation></camunda:formField>',
            "constraint 'minlength' does not apply to type 'long'",
        ),
        (
            '<camunda:formField id="a" type="string"><camunda:validation>'
            '<camunda:constraint name="validator" config="com.acme.X" /></camunda:validation></camunda:formField>',
            "unsupported constraint 'validator'",
        ),
        ('<camunda:formField id="a" type="enum" />', "enum field has no values"),
        ('<camunda:formField id="a" type="long" defaultValue="x" />', "default value 'x' must be a whole number"),
        (
            '<camunda:formField id="a" type="long" /><camunda:formField id="a" type="string" />',
            "form field 'a' is defined twice",
        ),
    ],
)
def test_bad_definitions_are_deployment_problems(fields: str, reason: str) -> None:
    with pytest.raises(DeploymentInvalid) as info:
        parse_form(task_xml(fields))
    (problem,) = info.value.problems
    assert (problem.element_id, problem.name) == ("T", "Task T")
    assert reason in problem.reason


def test_all_definition_problems_reported_together() -> None:
    fields = (
        '<camunda:formField id="a" type="custom" />'
        '<camunda:formField id="b" type="enum" />'
        '<camunda:formField id="c" type="long"><camunda:validation>'
        '<camunda:constraint name="min" config="5" /><camunda:constraint name="max" config="1" />'
        "</camunda:validation></camunda:formField>"
    )
    with pytest.raises(DeploymentInvalid) as info:
        parse_form(task_xml(fields, ns="http://activiti.org/bpmn"))
    assert len(info.value.problems) == 3


# ---------------------------------------------------------------- round trip


def test_to_dict_is_json_and_roundtrips(form: Form) -> None:
    stored = json.loads(json.dumps(form.to_dict()))
    assert form_from_dict(stored) == form
    follow_up = stored["fields"][5]
    assert (follow_up["min"], follow_up["max"]) == ("2026-01-01", "2026-12-31")
    assert stored["fields"][2]["options"] == [
        {"id": "center", "name": "Trung tâm"},
        {"id": "school", "name": "Trường học"},
    ]
    assert stored["fields"][3]["properties"]["rows"] == "4"
    assert hash(form) == hash(form_from_dict(stored))


def test_empty_form_roundtrips() -> None:
    assert form_from_dict(Form().to_dict()) == Form()


# ---------------------------------------------------------------- per-type values


@pytest.mark.parametrize(
    "field, raw, expected",
    [
        ("staff_count", "42", 42),
        ("staff_count", 42, 42),
        ("staff_count", " 7 ", 7),
        ("staff_count", "0", 0),
        ("staff_count", 10000, 10000),
        ("staff_count", 3.0, 3),
        ("reached", True, True),
        ("reached", False, False),
        ("reached", "true", True),
        ("reached", "FALSE", False),
        ("reached", "on", True),
        ("reached", "1", True),
        ("reached", "0", False),
        ("reached", "Yes", True),
        ("reached", "no", False),
        ("follow_up", "2026-12-01", "2026-12-01"),
        ("follow_up", "2026-12-01T09:30", "2026-12-01T09:30:00"),
        ("follow_up", "2026-12-01T09:30:00+07:00", "2026-12-01T09:30:00+07:00"),
        ("follow_up", "2026-12-01T09:30:00Z", "2026-12-01T09:30:00+00:00"),
        ("follow_up", date(2026, 12, 1), "2026-12-01"),
        ("follow_up", datetime(2026, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=7))), "2026-12-31T23:00:00+07:00"),
        ("model", "center", "center"),
        ("model", "school", "school"),
        ("note", "ok", "ok"),
        ("note", "x" * 500, "x" * 500),
        ("note", "Xin chào", "Xin chào"),
    ],
)
def test_valid_values(form: Form, field: str, raw: Any, expected: Any) -> None:
    result = submit(form, **{field: raw})
    assert result[field] == expected
    assert type(result[field]) is type(expected)


@pytest.mark.parametrize(
    "field, raw, message",
    [
        ("staff_count", "4.2", "Số nhân viên must be a whole number"),
        ("staff_count", "abc", "Số nhân viên must be a whole number"),
        ("staff_count", True, "Số nhân viên must be a whole number"),
        ("staff_count", 4.2, "Số nhân viên must be a whole number"),
        ("staff_count", "1e3", "Số nhân viên must be a whole number"),
        ("staff_count", -1, "Số nhân viên must be at least 0"),
        ("staff_count", "10001", "Số nhân viên must be at most 10000"),
        ("staff_count", 2**63, "Số nhân viên is out of range"),
        ("staff_count", "9" * 5000, "Số nhân viên must be a whole number"),
        ("reached", "maybe", "Liên hệ được? must be true or false"),
        ("reached", 2, "Liên hệ được? must be true or false"),
        ("follow_up", "01/12/2026", "Gọi lại must be a date (YYYY-MM-DD) or an ISO 8601 date-time"),
        ("follow_up", "2026-13-01", "Gọi lại must be a date (YYYY-MM-DD) or an ISO 8601 date-time"),
        ("follow_up", 20261201, "Gọi lại must be a date (YYYY-MM-DD) or an ISO 8601 date-time"),
        ("follow_up", "2025-12-31T23:59", "Gọi lại must not be before 2026-01-01"),
        ("follow_up", date(2027, 1, 1), "Gọi lại must not be after 2026-12-31"),
        ("model", "hospital", "Mô hình must be one of: center, school"),
        ("model", True, "Mô hình must be one of: center, school"),
        ("note", "x", "Ghi chú must be at least 2 characters"),
        ("note", "x" * 501, "Ghi chú must be at most 500 characters"),
        ("note", 12, "Ghi chú must be text"),
    ],
)
def test_invalid_values(form: Form, field: str, raw: Any, message: str) -> None:
    with pytest.raises(FormInvalid) as info:
        submit(form, **{field: raw})
    assert info.value.errors == {field: message}


# ---------------------------------------------------------------- required, empty, absent


@pytest.mark.parametrize("values", [{}, {"staff_count": ""}, {"staff_count": "  "}, {"staff_count": None}])
def test_required(form: Form, values: dict[str, Any]) -> None:
    with pytest.raises(FormInvalid) as info:
        coerce(form, values)
    assert info.value.errors == {"staff_count": "Số nhân viên is required"}
    assert info.value.codes == {"staff_count": "required"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("field", ["reached", "model", "note", "follow_up"])
@pytest.mark.parametrize("empty", ["", None, " "])
def test_empty_optional_becomes_none(form: Form, field: str, empty: Any) -> None:
    assert submit(form, **{field: empty})[field] is None


def test_absent_optional_is_omitted(form: Form) -> None:
    assert coerce(form, {"staff_count": "5"}) == {"staff_count": 5}


def test_html_absent_boolean_is_false(form: Form) -> None:
    assert coerce(form, {"staff_count": "5"}, html=True) == {"staff_count": 5, "reached": False}
    assert coerce(form, {"staff_count": "5", "reached": "on"}, html=True)["reached"] is True


# ---------------------------------------------------------------- read-only


@pytest.mark.parametrize(
    "values, current",
    [
        ({}, {}),
        ({"demo_at": "2026-12-01"}, {"demo_at": "2026-12-01"}),
        ({"demo_at": date(2026, 12, 1)}, {"demo_at": "2026-12-01"}),
        ({"demo_at": ""}, {}),
        ({"source": "web"}, {}),
        ({"source": "phone"}, {"source": "phone"}),
    ],
)
def test_readonly_unchanged_is_accepted_and_not_written(
    form: Form, values: dict[str, Any], current: dict[str, Any]
) -> None:
    assert coerce(form, {"staff_count": 1, **values}, current=current) == {"staff_count": 1}


@pytest.mark.parametrize(
    "values, current, field",
    [
        ({"demo_at": "2026-12-02"}, {"demo_at": "2026-12-01"}, "demo_at"),
        ({"demo_at": "2026-12-02"}, {}, "demo_at"),
        ({"source": "phone"}, {}, "source"),
        ({"source": "web"}, {"source": "phone"}, "source"),
    ],
)
def test_readonly_changed_is_rejected(form: Form, values: dict[str, Any], current: dict[str, Any], field: str) -> None:
    with pytest.raises(FormInvalid) as info:
        coerce(form, {"staff_count": 1, **values}, current=current)
    assert info.value.errors == {field: f"{form.field(field).label} is read-only"}


# ---------------------------------------------------------------- unknown fields, all errors


def test_unknown_field_is_rejected(form: Form) -> None:
    with pytest.raises(FormInvalid) as info:
        submit(form, x=1)
    assert info.value.errors == {"x": "unknown field 'x'"}


def test_all_errors_reported_at_once(form: Form) -> None:
    with pytest.raises(FormInvalid) as info:
        coerce(
            form,
            {"staff_count": "abc", "note": "x", "model": "hospital", "source": "phone", "zzz": 1},
            task="Task_call",
        )
    exc = info.value
    assert exc.errors == {
        "staff_count": "Số nhân viên must be a whole number",
        "model": "Mô hình must be one of: center, school",
        "note": "Ghi chú must be at least 2 characters",
        "source": "Nguồn is read-only",
        "zzz": "unknown field 'zzz'",
    }
    assert exc.codes == {
        "staff_count": "type",
        "model": "enum",
        "note": "minlength",  # type: ignore[attr-defined]
        "source": "readonly",
        "zzz": "unknown",
    }
    assert "Task_call" in str(exc)


def test_full_valid_submission(form: Form) -> None:
    result = coerce(
        form,
        {"reached": "on", "staff_count": "12", "model": "school", "note": "Gọi lại sau", "follow_up": "2026-03-04"},
        html=True,
    )
    assert result == {
        "reached": True,
        "staff_count": 12,
        "model": "school",
        "note": "Gọi lại sau",
        "follow_up": "2026-03-04",
    }
    assert json.loads(json.dumps(result)) == result


# ---------------------------------------------------------------- task without a form


def test_formless_task_accepts_any_json_dict() -> None:
    data = {"anything": [1, {"a": None}], "flag": True}
    assert coerce(Form(), data) == data


@pytest.mark.parametrize(
    "data, key",
    [
        ({"when": date(2026, 1, 1)}, "when"),
        ({"x": float("nan")}, "x"),
        ({1: "a"}, "1"),
    ],
)
def test_formless_task_rejects_non_json(data: dict[Any, Any], key: str) -> None:
    with pytest.raises(FormInvalid) as info:
        coerce(Form(), data)
    assert list(info.value.errors) == [key]
