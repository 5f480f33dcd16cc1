"""Editing a customer (runner/crm/editing.py, the customer page's edit form, PATCH /api/customers/{bk}).

Customers come in through processes/sales.bpmn on the virtual clock (``tests.test_customer_views``):
a lead goes to a sales rep by round-robin, whose inbox holds its tasks. Every test here runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from runner.crm import customers as crm
from runner.crm import editing, views
from runner.crm.models import Missing
from runner.errors import Forbidden, FormInvalid
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.policy import Person
from runner.service.runtime import Runner
from tests.scenario import advance, complete, customer, task
from tests.test_customer_views import company_runner, lead

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
        ("phone", "0912 000 111", "0912 000 111"),  # a text column
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
        editing.edit_customer(r, "KH1", {"phone": "0900000000"}, person=_rep(owner), version=seen)
    assert {(f["field"], f["actor"]) for f in caught.value.fields} == {("phone", "tuan"), ("staff_count", "tuan")}
    assert "phone" in str(caught.value) and caught.value.version == seen + 1
    assert customer(r, "KH1")["phone"] == "0912000111"  # the first edit stands
    editing.edit_customer(r, "KH1", {"phone": "0900000000"}, person=_rep(owner), version=seen + 1)
    assert customer(r, "KH1")["phone"] == "0900000000"


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
