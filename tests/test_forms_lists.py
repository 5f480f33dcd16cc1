"""Enum fields whose options come from a configured list (``options`` = ``list:NAME``): parsing,
the deployment's refusal of an unknown list, and the list as it is now on the task page, in the
API's form metadata and in the check of a completion, with no redeploy (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from lxml import etree
from sqlalchemy import delete, select

from runner.crm import customers as crm
from runner.crm.extension import easyedu
from runner.crm.models import DEFAULT_LISTS, CustomerGroup, StopCareReason
from runner.crm.option_lists import customer_groups
from runner.crm.settings import CrmSettings
from runner.errors import DeploymentInvalid, FormInvalid, Invalid, NotFound, Problem
from runner.extension import Extension, Extensions
from runner.model import forms
from runner.model.validation import validate
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.conftest import make_runner
from tests.test_api import Api
from tests.webapp import WebClient

FIXTURE = Path(__file__).parent / "bpmn" / "forms_lists.bpmn"
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
PROCESS = "forms_stop_reason"
SEEDED = [title for title, _ in DEFAULT_LISTS["stop_care_reasons"]]


def user_task(fields: str) -> etree._Element:
    return etree.fromstring(
        f'<bpmn:userTask xmlns:bpmn="{BPMN}" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="T" name="Task T">'
        f"<bpmn:extensionElements><camunda:formData>{fields}</camunda:formData>"
        f"</bpmn:extensionElements></bpmn:userTask>"
    )


def listed(attrs: str = 'type="enum"', prop: str = 'id="options" value="list:stop_reasons"', inner: str = "") -> str:
    return (
        f'<camunda:formField id="why" label="Lý do" {attrs}>'
        f"<camunda:properties><camunda:property {prop} /></camunda:properties>{inner}</camunda:formField>"
    )


# --- parsing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prop", ['id="options" value="list:stop_reasons"', 'name="options" value=" list: stop_reasons "']
)
def test_an_enum_field_names_its_list_and_keeps_no_options_of_its_own(prop: str) -> None:
    form = forms.parse_form(user_task(listed(prop=prop)))
    [field] = form.fields
    assert (field.type, field.option_list, field.options) == ("enum", "stop_reasons", ())
    assert form.option_lists == {"stop_reasons"}
    assert forms.form_from_dict(form.to_dict()) == form  # stored per task as it was deployed


def test_the_list_fills_the_options_when_read_and_each_list_is_read_once() -> None:
    form = forms.parse_form(
        user_task(listed() + listed(prop='id="options" value="list:stop_reasons"').replace("why", "why2"))
    )
    reads: list[str] = []

    def read(name: str) -> list[tuple[str, str]]:
        reads.append(name)
        return [("a", "A"), ("b", "B")]

    filled = forms.with_lists(form, read)
    assert reads == ["stop_reasons"]
    assert [o.id for o in filled.field("why").options] == ["a", "b"] == [o.id for o in filled.field("why2").options]
    plain = forms.parse_form(user_task('<camunda:formField id="n" type="string" />'))
    assert forms.with_lists(plain, read) is plain and reads == ["stop_reasons"]  # nothing to read


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        (
            listed(prop='id="options" value="stop_reasons"'),
            "property 'options' is 'stop_reasons'; it must be 'list:NAME'",
        ),
        (listed(prop='id="options" value="list:"'), "it must be 'list:NAME'"),
        (listed(attrs='type="string"'), "property 'options' applies to enum fields, not 'string'"),
        (
            listed(inner='<camunda:value id="x" name="X" />'),
            "takes its options from the list 'stop_reasons'; remove its own values",
        ),
        (listed(attrs='type="enum" defaultValue="x"'), "it cannot have a default value"),
        ('<camunda:formField id="why" type="enum" />', "enum field has no values"),
    ],
)
def test_a_misused_options_property_is_refused_naming_the_field(field: str, reason: str) -> None:
    with pytest.raises(DeploymentInvalid) as caught:
        forms.parse_form(user_task(field))
    [problem] = caught.value.problems
    assert problem.element_id == "T" and "form field 'why'" in problem.reason and reason in problem.reason


# --- deployment --------------------------------------------------------------------------------------


def test_validation_refuses_an_unknown_list_naming_the_element_and_the_field() -> None:
    data = FIXTURE.read_bytes()
    assert validate({"x.bpmn": data}, topics=(), lists={"stop_reasons"}) == []
    wrong = data.replace(b"list:stop_reasons", b"list:stop_reason")
    assert validate({"x.bpmn": wrong}, topics=(), lists={"stop_reasons", "schools"}) == [
        Problem(
            "Task_stop_reason",
            "Chọn lý do dừng",
            "form field 'stop_reason': options name the list 'stop_reason', which is not configured "
            "(did you mean 'stop_reasons'?)",
            "x.bpmn",
        )
    ]


def test_deploy_refuses_an_unknown_list_and_stores_nothing(runner: Runner) -> None:
    wrong = FIXTURE.read_bytes().replace(b"list:stop_reasons", b"list:ly_do")
    with pytest.raises(DeploymentInvalid) as caught:
        runner.deploy({"forms_lists.bpmn": wrong})
    [problem] = caught.value.problems
    assert (problem.element_id, problem.file) == ("Task_stop_reason", "forms_lists.bpmn")
    assert "form field 'stop_reason'" in problem.reason and "'ly_do', which is not configured" in problem.reason
    assert "stop_reasons" in problem.reason  # the configured lists are named
    assert inbox.process_versions(runner) == []
    assert [d.process_key for d in runner.deploy([FIXTURE])] == [PROCESS]


def test_a_runner_without_extensions_knows_no_list(sqlite_url: str, registry: Registry) -> None:
    bare = make_runner(sqlite_url, registry, extensions=())
    try:
        with pytest.raises(DeploymentInvalid, match=r"'stop_reasons', which is not configured \(configured: none\)"):
            bare.deploy([FIXTURE])
    finally:
        bare.db.engine.dispose()


def test_two_extensions_cannot_offer_one_list_and_an_unknown_list_is_not_found() -> None:
    lists = {"stop_reasons": lambda s: []}
    with pytest.raises(Invalid, match="option lists named twice: \\['stop_reasons'\\]"):
        Extensions((Extension("a", option_lists=lists), Extension("b", option_lists=lists)))
    with pytest.raises(NotFound, match="no configured list 'nope'"):
        Extensions((easyedu(crm=CrmSettings()),)).options(None, "nope")  # type: ignore[arg-type]


def test_the_crm_offers_the_lists_of_seed_003(runner: Runner) -> None:
    assert runner.extensions.option_lists == {"stop_reasons", "sources", "occupations", "schools", "customer_groups"}
    with runner.db.unit() as s:
        crm.seed_lists(s)
    with runner.db.read() as s:
        assert [id for id, _ in runner.extensions.options(s, "stop_reasons")] == [
            r["title"] for r in crm.lists(s)["stop_care_reasons"]
        ]
        groups = dict(customer_groups(s))
        assert groups["Tiếng Anh"] == "Trung tâm ngoại ngữ › Tiếng Anh" and groups["Trường học"] == "Trường học"
        assert s.scalar(select(CustomerGroup.id).where(CustomerGroup.name == "Tiếng Anh")) is not None


# --- the list as it is now: page, API, completion (SQLite and PostgreSQL) ----------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def runner(request: pytest.FixtureRequest, registry: Registry) -> Iterator[Runner]:
    """The app's runner (``app``, ``client`` and ``staff`` use it) on both databases, the lists seeded."""
    r = make_runner(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"), registry)
    with r.db.unit() as s:
        crm.seed_lists(s)
    yield r
    r.db.engine.dispose()


@pytest.fixture
def api(app: Flask, runner: Runner, staff: dict[str, dict[str, Any]]) -> Api:
    return Api(app, runner)


def stop_task(runner: Runner) -> str:
    runner.deploy([FIXTURE])
    runner.start_instance(PROCESS, "KH1")
    [row] = inbox.tasks(runner, business_key="KH1")
    return row["id"]


def page_options(client: WebClient, task_id: str) -> list[str]:
    page = client.get(f"/inbox/tasks/{task_id}").get_data(as_text=True)
    block = re.search(r'<select[^>]*name="stop_reason".*?</select>', page, flags=re.S)
    assert block, page[:500]
    return [o for o in re.findall(r'<option value="([^"]*)"', block.group(0)) if o]


def api_options(api: Api, task_id: str) -> list[str]:
    """The options in the API's form metadata: the task list, and the answer to a claim."""
    [row] = [r for r in api.get("/api/tasks?business_key=KH1").get_json()["tasks"] if r["id"] == task_id]
    [field] = [f for f in row["form"] if f["id"] == "stop_reason"]
    assert field["properties"] == {"options": "list:stop_reasons"}
    claimed = api.post(f"/api/tasks/{task_id}/claim", user="team_leader1").get_json()
    assert claimed["form"][0] == field
    return [o["id"] for o in field["options"]]


def edit_the_list(runner: Runner) -> None:
    """An admin adds a reason and renames another, straight in the configured list."""
    with runner.db.unit() as s:
        s.add(StopCareReason(title="Sáp nhập trung tâm", description="Trung tâm sáp nhập vào đơn vị khác."))
        row = s.scalars(select(StopCareReason).where(StopCareReason.title == "Chi phí không phù hợp")).one()
        row.title = "Chi phí vượt ngân sách"


def test_a_change_to_the_list_reaches_the_open_task_with_no_redeploy(
    runner: Runner, client: WebClient, api: Api, staff: dict[str, dict[str, Any]]
) -> None:
    task_id = stop_task(runner)
    client.login("team_leader1")
    assert page_options(client, task_id) == SEEDED == api_options(api, task_id)

    edit_the_list(runner)

    now = [t.replace("Chi phí không phù hợp", "Chi phí vượt ngân sách") for t in SEEDED] + ["Sáp nhập trung tâm"]
    assert page_options(client, task_id) == now == api_options(api, task_id)
    assert [d.changed for d in runner.deploy([FIXTURE])] == [False]  # nothing was redeployed
    refused = api.post(f"/api/tasks/{task_id}/complete", json={"data": {"stop_reason": "Chi phí không phù hợp"}})
    assert refused.status_code == 422
    assert "is not in the configured list 'stop_reasons'" in refused.get_json()["errors"]["stop_reason"]
    assert "Sáp nhập trung tâm" in refused.get_json()["errors"]["stop_reason"]
    done = api.post(f"/api/tasks/{task_id}/complete", json={"data": {"stop_reason": "Sáp nhập trung tâm"}})
    assert done.status_code == 200 and done.get_json()["task"]["state"] == "completed"


def test_a_reason_taken_off_the_list_after_the_task_was_made_is_refused_on_the_page(
    runner: Runner, client: WebClient, staff: dict[str, dict[str, Any]]
) -> None:
    task_id = stop_task(runner)
    client.login("team_leader1")
    assert "Không liên hệ được" in page_options(client, task_id)  # what the person saw
    with runner.db.unit() as s:
        s.execute(delete(StopCareReason).where(StopCareReason.title == "Không liên hệ được"))

    response = client.post(f"/inbox/tasks/{task_id}/complete", data={"stop_reason": "Không liên hệ được"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Hãy chọn một giá trị trong danh sách cho Lý do dừng chăm sóc." in page
    assert '<option value="Không liên hệ được"' not in page
    with pytest.raises(FormInvalid, match="Lý do dừng chăm sóc is not in the configured list 'stop_reasons'"):
        runner.complete_task(task_id, {"stop_reason": "Không liên hệ được"}, actor="team_leader1")
    runner.complete_task(task_id, {"stop_reason": "Không còn nhu cầu"}, actor="team_leader1")
    assert inbox.task(runner, task_id)["state"] == "completed"
