"""Editing a customer (runner/crm/editing.py, the customer page's edit form, PATCH /api/customers/{bk}).

Customers come in through processes/sales.bpmn on the virtual clock (``tests.test_customer_views``):
a lead goes to a sales rep by round-robin, whose inbox holds its tasks. Every test here runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from runner.crm import customers as crm
from runner.crm import editing, views
from runner.crm.models import Missing
from runner.errors import Forbidden, FormInvalid
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service import accounts as users
from runner.service.policy import Person
from runner.service.runtime import Runner
from tests.scenario import advance, complete, customer, task
from tests.test_customer_views import company_runner, lead
from tests.webapp import AuthClock, WebClient, add_user
from web import create_app
from web.extensions import run_here

LEADER = Person.of("tuan", ["team_leader"])


@pytest.fixture(params=["sqlite", "postgresql"])
def r(request: pytest.FixtureRequest, registry: Registry) -> Iterator[Runner]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    runner = company_runner(url, registry)
    yield runner
    runner.db.engine.dispose()


def _rep(username: str) -> Person:
    return Person.of(username, ["sales"])


def _version(runner: Runner, customer_id: str) -> int:
    return editing.editable(runner, customer_id)["version"]


def _other(owner: str) -> str:
    return "binh" if owner != "binh" else "chi"


# --- each kind of field ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,typed,stored",
    [
        ("phone", "0912 000 111", "+84912000111"),  # a text column, a phone number stored as E.164
        ("staff_count", "25", 25),  # an integer column
        ("dedicated_department", "có", True),  # a boolean column
        ("contract_end", "2027-06-30", "2027-06-30"),  # a date column
        ("source", "Google", "Google"),  # a configured list
        ("branch_count", "3", 3),  # an integer extra field (seed 003's default configuration)
        ("website", "https://saomai.vn", "https://saomai.vn"),  # a text extra field
        ("tags", "vip, Hà Nội", ["HÀ NỘI", "VIP"]),
    ],
)
def test_each_kind_of_field_is_typed_stored_and_kept_in_the_timeline(r: Runner, field, typed, stored) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    before = editing.editable(r, "KH1")
    result = editing.edit_customer(r, "KH1", {field: typed}, person=_rep(owner), version=before["version"])
    assert result["changes"] == [field] and result["version"] == before["version"] + 1
    after = editing.editable(r, "KH1")["values"]
    assert after[field] == stored
    [entry] = views.timeline(r, "KH1", kinds=["change"])
    assert (entry["title"], entry["actor"], entry["at"]) == (field, owner, r.now())
    assert entry["old"] == before["values"][field] and entry["new"] == stored


def test_an_empty_value_clears_a_field_but_not_a_required_one(r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678", email="a@b.vn")
    editing.edit_customer(r, "KH1", {"email": ""}, person=_rep(owner), version=None)
    assert customer(r, "KH1")["email"] is None
    with pytest.raises(FormInvalid) as caught:
        editing.edit_customer(r, "KH1", {"phone": "", "name": " "}, person=_rep(owner), version=None)
    assert set(caught.value.errors) == {"phone", "name"}
    assert customer(r, "KH1")["phone"] == "0912345678"


@pytest.mark.parametrize(
    "values,bad",
    [
        ({"staff_count": "nhiều"}, {"staff_count"}),
        ({"email": "not-an-address", "phone": "abc"}, {"email", "phone"}),
        ({"source": "TikTok"}, {"source"}),
        ({"branch_count": "2.5"}, {"branch_count"}),
        ({"favourite_colour": "blue"}, {"favourite_colour"}),
        ({"contract_end": "30/02/2027"}, {"contract_end"}),
        ({"tags": ["ok", "x" * 101]}, {"tags"}),
        ({"tags": 5, "name": ["x"]}, {"tags", "name"}),
    ],
)
def test_bad_values_are_refused_by_field_and_nothing_is_stored(r: Runner, values, bad) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    before = editing.editable(r, "KH1")
    with pytest.raises(FormInvalid) as caught:
        editing.edit_customer(r, "KH1", {"name": "Tên mới", **values}, person=_rep(owner), version=None)
    assert set(caught.value.errors) == bad
    assert all(field in caught.value.errors[field] for field in bad)
    assert editing.editable(r, "KH1") == before


def test_a_phone_or_email_of_another_customer_is_refused_naming_it(r: Runner) -> None:
    lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678", email="saomai@example.vn")
    owner = lead(r, "KH2", "Trường Hoa Sen", phone="0987654321")
    with pytest.raises(FormInvalid) as caught:
        editing.edit_customer(
            r, "KH2", {"phone": "+84 912 345 678", "email": "SaoMai@example.vn"}, person=LEADER, version=None
        )
    assert set(caught.value.errors) == {"phone", "email"} and "KH1" in caught.value.errors["phone"]
    same = editing.edit_customer(r, "KH2", {"phone": "0987.654.321"}, person=_rep(owner), version=None)
    assert same["changes"] == []  # its own number in another spelling: no duplicate, no change
    editing.edit_customer(r, "KH2", {"phone": "0987.654.322"}, person=_rep(owner), version=None)
    assert customer(r, "KH2")["phone"] == "+84987654322"


def test_saving_the_values_shown_changes_nothing(r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    shown = editing.editable(r, "KH1")
    values = {k: v for k, v in shown["values"].items() if k != "owner"}
    result = editing.edit_customer(r, "KH1", values, person=_rep(owner), version=shown["version"])
    assert result == {"version": shown["version"], "changes": [], "tasks": []}
    assert views.timeline(r, "KH1", kinds=["change"]) == []


# --- two people at once ----------------------------------------------------------------------


def test_an_edit_on_an_older_version_is_a_conflict_naming_the_fields_and_who(r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    seen = _version(r, "KH1")
    editing.edit_customer(r, "KH1", {"phone": "0912000111", "staff_count": 9}, person=LEADER, version=seen)
    with pytest.raises(editing.EditConflict) as caught:
        editing.edit_customer(r, "KH1", {"phone": "0987000111"}, person=_rep(owner), version=seen)
    assert {(f["field"], f["actor"]) for f in caught.value.fields} == {("phone", "tuan"), ("staff_count", "tuan")}
    assert "phone" in str(caught.value) and caught.value.version == seen + 1
    assert customer(r, "KH1")["phone"] == "+84912000111"  # the first edit stands
    editing.edit_customer(r, "KH1", {"phone": "0987000111"}, person=_rep(owner), version=seen + 1)
    assert customer(r, "KH1")["phone"] == "+84987000111"


# --- the owner -----------------------------------------------------------------------------------


def test_a_new_owner_takes_the_open_tasks_and_the_later_ones(r: Runner) -> None:
    old = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    new = _other(old)
    complete(r, "KH1", "Task_verify", {"verdict": "good"}, by=old)
    assert task(r, "KH1", "Task_call")["assignee"] == old
    result = editing.edit_customer(r, "KH1", {"owner": new}, person=LEADER, version=_version(r, "KH1"))
    call = task(r, "KH1", "Task_call")
    assert call["assignee"] == new and result["tasks"] == [call["id"]]
    assert [t["id"] for t in inbox.tasks(r, user=new, groups=["sales"], business_key="KH1")] == [call["id"]]
    assert inbox.tasks(r, user=old, groups=[], business_key="KH1") == []
    complete(r, "KH1", "Task_call", {"call_result": "reached"}, by=new)
    assert task(r, "KH1", "Task_survey")["assignee"] == new  # ${owner} now names the new owner
    assert customer(r, "KH1")["owner"] == new
    [entry] = views.timeline(r, "KH1", kinds=["change"])
    assert (entry["title"], entry["old"], entry["new"], entry["actor"]) == ("owner", old, new, "tuan")


def test_the_sixty_minute_rule_passes_on_from_the_new_owner(r: Runner) -> None:
    old = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    new = _other(old)
    editing.edit_customer(r, "KH1", {"owner": new}, person=LEADER, version=None)
    assert task(r, "KH1", "Task_verify")["assignee"] == new
    advance(r, timedelta(minutes=61))
    third = crm_owner(r, "KH1")
    assert third != new and task(r, "KH1", "Task_verify")["assignee"] == third


def crm_owner(runner: Runner, customer_id: str) -> str:
    with runner.db.read() as s:
        return crm.get_customer(s, customer_id).owner


@pytest.mark.parametrize(
    "person,values",
    [
        (Person.of("an", ["sales"]), {"owner": "binh"}),  # a sales rep may not give customers away
        (Person.of("mai", ["marketing"]), {"owner": "binh"}),
        (Person.of("minh", ["teacher"]), {"phone": "0912000111"}),  # teachers only read
        (Person.of("ketoan", ["accountant"]), {"name": "Khác"}),
    ],
)
def test_who_may_not_edit_is_refused_and_nothing_changes(r: Runner, person, values) -> None:
    lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    before = editing.editable(r, "KH1")
    with pytest.raises(Forbidden) as caught:
        editing.edit_customer(r, "KH1", values, person=person, version=None)
    assert "owner" in str(caught.value) or "may not edit" in str(caught.value)
    assert editing.editable(r, "KH1") == before


@pytest.mark.parametrize("owner", ["nobody", "mai", ""])
def test_the_owner_must_be_an_active_sales_rep_or_team_leader(r: Runner, owner: str) -> None:
    lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    with pytest.raises(FormInvalid) as caught:
        editing.edit_customer(r, "KH1", {"owner": owner}, person=LEADER, version=None)
    assert list(caught.value.errors) == ["owner"]


def test_a_missing_customer_is_missing(r: Runner) -> None:
    with pytest.raises(Missing):
        editing.edit_customer(r, "KH404", {"phone": "0912000111"}, person=LEADER, version=None)


# --- the edit form on the customer page ----------------------------------------------------------


@pytest.fixture
def app(r: Runner) -> Flask:
    """The web app over ``r`` (CSRF on), every staff member able to sign in."""
    for username in ("mai", "an", "binh", "chi", "tuan", "ketoan", "hoa", "minh"):
        add_user(r, username, [])  # an account for an existing staff member (roles stay as they are)
    flask_app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "RUNNER": r,
            "RUNNER_SETTINGS": r.settings,
            "AUTH_CLOCK": AuthClock().now,
            "CLOCK_RUN_EXECUTOR": run_here,
        }
    )
    flask_app.test_client_class = WebClient
    return flask_app


def _client(app: Flask, username: str) -> WebClient:
    client: WebClient = app.test_client()  # type: ignore[assignment]
    client.login(username)
    return client


def _form(page: str) -> dict[str, str]:
    """What a browser would send back unchanged: every input's and select's value (and the shown-* ones)."""
    values = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', options)
        values[name] = chosen.group(1) if chosen else ""
    values.pop("csrf_token", None)
    return {k: v.replace("&#39;", "'").replace("&amp;", "&") for k, v in values.items()}


def _field_error(page: str, field: str) -> str | None:
    found = re.search(
        rf'<div class="field invalid" data-field="{field}">.*?<p class="error"[^>]*>(.*?)</p>', page, re.S
    )
    return found.group(1) if found else None


def test_a_rep_edits_a_customer_from_the_page_and_the_timeline_shows_old_and_new(app: Flask, r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    web = _client(app, owner)
    page = web.get("/customers/KH1").get_data(as_text=True)
    assert 'href="/customers/KH1/edit"' in page
    form = _form(web.get("/customers/KH1/edit").get_data(as_text=True))
    assert "owner" not in form  # a rep sees the owner but cannot change it
    saved = web.post("/customers/KH1/edit", data={**form, "phone": "0912 000 111", "branch_count": "2"})
    assert saved.status_code == 302
    assert customer(r, "KH1")["phone"] == "+84912000111" and customer(r, "KH1")["extra"]["branch_count"] == 2
    timeline = web.get("/customers/KH1?kind=change").get_data(as_text=True)
    assert timeline.count('data-kind="change"') == 2
    assert re.search(
        r"Điện thoại</strong>:\s*<span class=\"old\">0912345678</span> → <span class=\"new\">\+84912000111", timeline
    )
    assert "Số cơ sở</strong>" in timeline  # an extra field by its configured label


def test_the_form_needs_its_csrf_token(app: Flask, r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    web = _client(app, owner)
    form = _form(web.get("/customers/KH1/edit").get_data(as_text=True))
    assert web.post("/customers/KH1/edit", data={**form, "phone": "0900"}, csrf=False).status_code == 400
    assert customer(r, "KH1")["phone"] == "0912345678"


def test_bad_values_come_back_with_an_error_under_each_field_and_the_typing_kept(app: Flask, r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    web = _client(app, owner)
    form = _form(web.get("/customers/KH1/edit").get_data(as_text=True))
    answer = web.post("/customers/KH1/edit", data={**form, "staff_count": "mười", "email": "x@", "status": "Mới"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "staff_count" in _field_error(page, "staff_count") and "email" in _field_error(page, "email")
    assert _form(page)["staff_count"] == "mười" and _form(page)["status"] == "Mới"
    assert customer(r, "KH1")["status"] is None  # nothing of the edit was stored


def test_a_second_save_of_the_same_customer_is_a_conflict_that_loses_nothing(app: Flask, r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    rep, leader = _client(app, owner), _client(app, "tuan")
    mine = _form(rep.get("/customers/KH1/edit").get_data(as_text=True))
    theirs = _form(leader.get("/customers/KH1/edit").get_data(as_text=True))
    assert leader.post("/customers/KH1/edit", data={**theirs, "phone": "0912000111"}).status_code == 302
    answer = rep.post("/customers/KH1/edit", data={**mine, "phone": "0987000111", "staff_count": "12"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 409
    conflict = page[page.index('data-testid="conflict"') :]
    assert re.search(r'data-field="phone"><strong>Điện thoại</strong>: 0912345678 → \+84912000111\s*\(tuan', conflict)
    assert "0987000111" in conflict  # what the rep typed for the field, shown beside the new value
    again = _form(page)
    assert (again["phone"], again["staff_count"]) == ("+84912000111", "12")  # theirs stays, the rep's other typing too
    assert customer(r, "KH1")["staff_count"] is None
    assert rep.post("/customers/KH1/edit", data=again).status_code == 302
    assert (customer(r, "KH1")["phone"], customer(r, "KH1")["staff_count"]) == ("+84912000111", 12)


def test_a_field_a_process_set_while_the_form_was_open_is_not_put_back(app: Flask, r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    web = _client(app, owner)
    form = _form(web.get("/customers/KH1/edit").get_data(as_text=True))
    complete(r, "KH1", "Task_verify", {"verdict": "good"}, by=owner)
    complete(r, "KH1", "Task_call", {"call_result": "reached"}, by=owner)
    complete(r, "KH1", "Task_survey", {**SURVEY_FACTS}, by=owner)  # the survey writes the profile facts
    assert web.post("/customers/KH1/edit", data={**form, "email": "a@saomai.vn"}).status_code == 302
    assert customer(r, "KH1")["staff_count"] == SURVEY_FACTS["staff_count"]
    assert customer(r, "KH1")["email"] == "a@saomai.vn"


def test_a_team_leader_moves_the_customer_from_the_page(app: Flask, r: Runner) -> None:
    old = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    new = _other(old)
    leader = _client(app, "tuan")
    form = _form(leader.get("/customers/KH1/edit").get_data(as_text=True))
    assert form["owner"] == old
    assert leader.post("/customers/KH1/edit", data={**form, "owner": new}).status_code == 302
    assert task(r, "KH1", "Task_verify")["assignee"] == new
    page = leader.get("/customers/KH1?kind=change").get_data(as_text=True)
    assert re.search(r"Phụ trách</strong>:\s*<span class=\"old\">" + old, page)


@pytest.mark.parametrize(
    "username,status",
    [
        ("minh", 403),  # teachers and accountants never edit customers
        ("ketoan", 403),
        ("mai", 200),  # marketing edits the leads it sees
        ("hoa", 404),  # customer care does not see a lead before the sale
    ],
)
def test_who_may_open_the_form(app: Flask, r: Runner, username: str, status: int) -> None:
    lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    assert _client(app, username).get("/customers/KH1/edit").status_code == status


def test_a_rep_who_sends_an_owner_anyway_is_refused(app: Flask, r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    web = _client(app, owner)
    form = _form(web.get("/customers/KH1/edit").get_data(as_text=True))
    answer = web.post("/customers/KH1/edit", data={**form, "owner": _other(owner), "shown-owner": owner})
    assert answer.status_code == 403
    assert customer(r, "KH1")["owner"] == owner


def test_another_reps_customer_cannot_be_edited(app: Flask, r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    other = _client(app, _other(owner))
    assert other.get("/customers/KH1/edit").status_code == 404
    assert other.post("/customers/KH1/edit", data={"version": "1", "phone": "0900"}).status_code == 404


SURVEY_FACTS = {
    "business_model": "Trung tâm ngoại ngữ",
    "dedicated_department": True,
    "staff_count": 12,
    "student_count": 350,
    "course_model": "Theo khóa 3 tháng",
    "zalo_user_id": "zl-saomai",
    "demo_at": "2026-12-09T10:00:00",
    "trial_link": "https://trial.easyedu.vn/saomai",
    "call_note": "Trung tâm 2 cơ sở.",
}


# --- PATCH /api/customers/{bk} -----------------------------------------------------------------------


def _api(app: Flask, r: Runner, username: str):
    token = users.issue_token(r, username, label="test")
    client = app.test_client()

    def call(method: str, path: str, **kwargs: Any):
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return client.open(path, method=method, headers=headers, **kwargs)

    return call


def test_patch_changes_the_fields_given_under_the_etag_and_answers_the_new_one(app: Flask, r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    api = _api(app, r, owner)
    etag = api("GET", "/api/customers/KH1").headers["ETag"]
    answer = api(
        "PATCH", "/api/customers/KH1", json={"student_count": 300, "tags": ["vip"]}, headers={"If-Match": etag}
    )
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["customer"]["student_count"] == 300 and body["customer"]["tags"] == ["VIP"]
    assert answer.headers["ETag"] == f'"{body["version"]}"' != etag
    timeline = api("GET", "/api/customers/KH1").get_json()["timeline"]
    change = next(e for e in timeline if e["kind"] == "change" and e["title"] == "student_count")
    assert change["actor"] == owner and change["fields"] == [
        {"label": "old", "value": None},
        {"label": "new", "value": 300},
    ]


def test_patch_takes_the_version_of_the_customer_read_as_its_if_match(app: Flask, r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    api = _api(app, r, owner)
    version = api("GET", "/api/customers/KH1").get_json()["customer"]["version"]  # the ETag's number
    answer = api("PATCH", "/api/customers/KH1", json={"course_model": "Theo tháng"}, headers={"If-Match": str(version)})
    assert answer.status_code == 200 and answer.get_json()["version"] == version + 1


def test_patch_on_an_old_etag_is_a_409_naming_the_fields_changed_since(app: Flask, r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    rep, leader = _api(app, r, owner), _api(app, r, "tuan")
    etag = rep("GET", "/api/customers/KH1").headers["ETag"]
    assert (
        leader("PATCH", "/api/customers/KH1", json={"phone": "0912000111"}, headers={"If-Match": etag}).status_code
        == 200
    )
    answer = rep("PATCH", "/api/customers/KH1", json={"phone": "0987000111"}, headers={"If-Match": etag})
    assert answer.status_code == 409
    body = answer.get_json()
    assert [(c["field"], c["actor"], c["old"], c["new"]) for c in body["changed"]] == [
        ("phone", "tuan", "0912345678", "+84912000111")
    ]
    assert answer.headers["ETag"] == f'"{body["version"]}"'
    assert customer(r, "KH1")["phone"] == "+84912000111"


@pytest.mark.parametrize(
    "username,body,headers,status,named",
    [
        ("tuan", {"phone": "1"}, {}, 428, "If-Match"),
        ("tuan", {"phone": "1"}, {"If-Match": "soon"}, 400, "If-Match"),
        ("tuan", {"staff_count": "many", "source": "TikTok"}, {"If-Match": "*"}, 422, "staff_count"),
        ("tuan", {"owner": "mai"}, {"If-Match": "*"}, 422, "owner"),
        ("tuan", [1, 2], {"If-Match": "*"}, 400, "JSON object"),
        ("an", {"owner": "binh"}, {"If-Match": "*"}, 403, "owner"),
        ("minh", {"phone": "0912000111"}, {"If-Match": "*"}, 403, "Forbidden"),
        ("hoa", {"phone": "0912000111"}, {"If-Match": "*"}, 404, "KH1"),
    ],
)
def test_patch_refusals_name_what_is_wrong(app: Flask, r: Runner, username, body, headers, status, named) -> None:
    owner = lead(r, "KH1", "Trung tâm Sao Mai", phone="0912345678")
    who = owner if username == "an" else username
    before = editing.editable(r, "KH1")
    answer = _api(app, r, who)("PATCH", "/api/customers/KH1", json=body, headers=headers)
    assert answer.status_code == status, answer.get_json()
    assert named in str(answer.get_json())
    assert editing.editable(r, "KH1") == before


def test_patch_of_a_missing_customer_is_404(app: Flask, r: Runner) -> None:
    answer = _api(app, r, "tuan")(
        "PATCH", "/api/customers/KH404", json={"phone": "0912000111"}, headers={"If-Match": "*"}
    )
    assert answer.status_code == 404
