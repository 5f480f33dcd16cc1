"""Object-level permissions as a matrix: role × action × object → status, through the real web app and API.

Every role of the demo company signs in (``<role>1`` from tests.webapp, plus ``sales2``, the
other sales rep). The customers, each with an instance waiting for ``payment_received``:

- ``OWN``: a lead owned by sales1 · ``OTHER``: a lead owned by sales2 · ``FREE``: an unassigned lead
- ``POST``: owned by sales2, trained by teacher1, in the post-sale pipeline (a ``care_month`` instance)
- ``PAID``: a lead owned by sales2 with an order (the accountant's business)

The rules under test are ``runner.service.policy``'s (README, "Who may do what"). To extend the
matrix, add a row to ``SEES``, ``STARTS`` or ``MESSAGES``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_runner
from flask import Flask

from runner.crm import customers as crm
from runner.crm.models import ROLES, Order
from runner.engine import scripting
from runner.errors import DeploymentInvalid, Forbidden, Invalid, NotFound
from runner.queries import tasklists as inbox
from runner.registry import installed
from runner.service import accounts as users
from runner.service import policy
from runner.service.runtime import Runner
from runner.store import schema as db
from tests.webapp import WebClient, add_user

ROOT = Path(__file__).parent.parent.parent
MESSAGES_BPMN = ROOT / "tests" / "bpmn" / "runtime" / "messages.bpmn"
CUSTOMERS = {
    "OWN": {"owner": "sales1"},
    "OTHER": {"owner": "sales2"},
    "FREE": {},
    "POST": {"owner": "sales2", "teacher": "teacher1"},
    "PAID": {"owner": "sales2"},
}
ALL = tuple(CUSTOMERS)
# role -> the customers its user sees; every other customer is a 404 for them.
SEES: dict[str, tuple[str, ...]] = {
    "admin": ALL,
    "team_leader": ALL,
    "sales": ("OWN", "FREE"),
    "marketing": ("OWN", "OTHER", "FREE", "PAID"),
    "customer_care": ("POST",),
    "teacher": ("POST",),
    "accountant": ("PAID",),
    "product": (),  # only the customers of the feature requests offered to them
}
# (role, process key, customer, status): who may start which process for which customer.
STARTS = [
    ("teacher", "renewal", "POST", 403),  # a teacher may not start renewal, even for a customer they train
    ("teacher", "care_month", "POST", 403),
    ("teacher", "sales", "POST", 403),
    ("customer_care", "renewal", "POST", 201),
    ("customer_care", "care_month", "POST", 201),
    ("customer_care", "sales", "POST", 403),
    ("customer_care", "renewal", "OWN", 404),  # not their customer: as if it did not exist
    ("sales", "sales", "FREE", 201),
    ("sales", "sales", "OWN", 201),
    ("sales", "sales", "OTHER", 404),
    ("sales", "renewal", "OWN", 403),
    ("sales", "onboarding", "OWN", 201),
    ("marketing", "sales", "FREE", 201),
    ("marketing", "renewal", "OWN", 403),
    ("marketing", "sales", "POST", 404),
    ("accountant", "sales", "PAID", 403),
    ("accountant", "renewal", "PAID", 403),
    ("team_leader", "renewal", "OTHER", 201),
    ("team_leader", "sales", "POST", 201),
    ("admin", "renewal", "OWN", 201),
    ("admin", "sales", "NEW-KEY", 201),  # admins may start for a key that is no customer (yet)
    ("sales", "sales", "NEW-KEY", 404),
]
# (role, message name, customer, status): who may send which message (by hand: API or CLI).
MESSAGES = [
    ("accountant", "payment_received", "PAID", 200),
    ("accountant", "payment_received", "OWN", 404),
    ("sales", "payment_received", "OWN", 403),
    ("teacher", "payment_received", "POST", 403),
    ("admin", "payment_received", "OTHER", 200),
    ("team_leader", "start_renewal", "POST", 404),  # allowed, but nothing waits for it: NotCorrelated
    ("customer_care", "start_renewal", "POST", 404),
    ("teacher", "start_renewal", "POST", 403),
    ("sales", "start_onboarding", "OWN", 200),  # the hand-off starts onboarding
    ("customer_care", "start_onboarding", "POST", 403),
    ("marketing", "lead_created", "FREE", 403),  # a name not in the table: admins only
    ("admin", "lead_created", "FREE", 200),
]
# What each shipped process needs at its start (its first timers read them).
START_DATA = {
    "care_month": {"care_due_at": "2027-01-05T09:00:00+07:00"},
    "renewal": {"contract_end": "2027-06-30T00:00:00+07:00"},
}
RESERVED_SAMPLES = [
    "true",
    "false",
    "null",
    "now",
    "local_now",
    "currentUser",
    "len",
    "juel_empty",
    "date",
    "range",
    "add_months",
    "__builtins__",
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The company, built once: its SQLite file and customer -> instance waiting for a payment."""
    path = tmp_path_factory.mktemp("company") / "runner.db"
    db.upgrade(f"sqlite:///{path}")
    built = make_runner(f"sqlite:///{path}", installed())
    for role in ROLES:
        add_user(built, f"{role}1", [role])
    add_user(built, "sales2", ["sales"])
    built.deploy([ROOT / "processes", MESSAGES_BPMN])
    with built.db.unit() as s:
        crm.seed_lists(s)
        for key, fields in CUSTOMERS.items():
            crm.add_customer(s, key, f"Khách hàng {key}", now=built.now(), **fields)
        s.add(
            Order(customer_id="PAID", package="Gói chuẩn", amount=12_000_000, status="pending", created_at=built.now())
        )
    instances = {key: built.start_instance("await_payment", key) for key in CUSTOMERS}
    built.start_instance("care_month", "POST", START_DATA["care_month"])
    built.db.engine.dispose()  # NOTE: the last connection closed checkpoints the WAL into the file
    return path, instances


@pytest.fixture
def runner(template: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[Runner]:
    """A fresh copy of the company for each test (tests.webapp's ``app`` runs over it)."""
    copy = tmp_path / "runner.db"
    shutil.copyfile(template[0], copy)
    r = make_runner(f"sqlite:///{copy}", installed())
    yield r
    r.db.engine.dispose()


@pytest.fixture
def company(runner: Runner, template: tuple[Path, dict[str, str]]) -> dict[str, str]:
    """Customer -> its instance waiting for ``payment_received``."""
    return template[1]


class Caller:
    """One staff member on the web app (session) and the API (bearer token)."""

    def __init__(self, flask_app: Flask, runner: Runner, username: str):
        self.web: WebClient = flask_app.test_client()  # type: ignore[assignment]
        self.web.login(username)
        self.headers = {"Authorization": f"Bearer {users.issue_token(runner, username, label='matrix')}"}
        self.api = flask_app.test_client()

    def get(self, path: str) -> int:
        client, headers = (self.api, self.headers) if path.startswith("/api/") else (self.web, {})
        return client.get(path, headers=headers).status_code

    def post(self, path: str, body: dict[str, Any]):
        return self.api.post(path, json=body, headers=self.headers)


def _reads(customer: str, instance_id: str) -> dict[str, str]:
    """Every read of a customer's data: the 360° page, its API, an instance's history and its diagram."""
    return {
        "customer page": f"/customers/{customer}",
        "customer API": f"/api/customers/{customer}",
        "instance API": f"/api/instances/{instance_id}",
        "instance diagram": f"/instances/{instance_id}/diagram",
    }


@pytest.mark.parametrize("role", sorted(SEES))
def test_who_sees_which_customer(app: Flask, runner: Runner, company: dict[str, str], role: str) -> None:
    caller = Caller(app, runner, f"{role}1")
    got, expected = {}, {}
    for customer, instance_id in company.items():
        for read, path in _reads(customer, instance_id).items():
            got[(customer, read)] = caller.get(path)
            expected[(customer, read)] = 200 if customer in SEES[role] else 404
    assert got == expected


@pytest.mark.parametrize("role", sorted(SEES))
def test_lists_show_only_the_customers_one_sees(app: Flask, runner: Runner, company: dict[str, str], role: str) -> None:
    caller = Caller(app, runner, f"{role}1")
    listed = caller.api.get("/api/instances?process_key=await_payment", headers=caller.headers).get_json()
    assert sorted(i["business_key"] for i in listed["instances"]) == sorted(SEES[role])
    page = caller.web.get("/customers/").get_data(as_text=True)
    assert sorted(c for c in CUSTOMERS if f'data-customer="{c}"' in page) == sorted(SEES[role])


def test_every_demo_role_is_in_the_matrix() -> None:
    assert set(SEES) == set(ROLES)


@pytest.mark.parametrize("role,process_key,customer,status", STARTS)
def test_who_may_start_which_process_for_which_customer(
    app: Flask, runner: Runner, company: dict[str, str], role: str, process_key: str, customer: str, status: int
) -> None:
    before = len(inbox.instances(runner, process_key=process_key))
    response = Caller(app, runner, f"{role}1").post(
        "/api/instances",
        {"process_key": process_key, "business_key": customer, "data": START_DATA.get(process_key, {})},
    )
    assert response.status_code == status, response.get_json()
    assert len(inbox.instances(runner, process_key=process_key)) == before + (status == 201)
    if status == 403:
        assert process_key in response.get_json()["detail"]


@pytest.mark.parametrize("role,name,customer,status", MESSAGES)
def test_who_may_send_which_message(
    app: Flask, runner: Runner, company: dict[str, str], role: str, name: str, customer: str, status: int
) -> None:
    before = inbox.history(runner, business_key=customer, events=["message.correlated", "instance.started"])
    response = Caller(app, runner, f"{role}1").post("/api/messages", {"name": name, "business_key": customer})
    assert response.status_code == status, response.get_json()
    after = inbox.history(runner, business_key=customer, events=["message.correlated", "instance.started"])
    assert len(after) > len(before) if status == 200 else after == before


@pytest.mark.parametrize("name", RESERVED_SAMPLES)
def test_start_and_message_data_cannot_shadow_expression_names(
    app: Flask, runner: Runner, company: dict[str, str], name: str
) -> None:
    caller = Caller(app, runner, "admin1")
    for path, body in (
        ("/api/instances", {"process_key": "await_payment", "business_key": "OWN"}),
        ("/api/messages", {"name": "payment_received", "business_key": "OWN"}),
    ):
        response = caller.post(path, {**body, "data": {name: 1, "fine": 2}})
        assert response.status_code == 422 and repr(name) in response.get_json()["detail"], response.get_json()
    assert len(inbox.instances(runner, business_key="OWN")) == 1
    assert inbox.history(runner, business_key="OWN", events=["message.correlated"]) == []


def test_every_reserved_name_is_refused_by_the_runner_itself(runner: Runner, company: dict[str, str]) -> None:
    for name in sorted(scripting.RESERVED_NAMES):
        with pytest.raises(Invalid, match=repr(name)):
            runner.start_instance("await_payment", "OWN", {name: 1})
        with pytest.raises(Invalid, match=repr(name)):
            runner.correlate("payment_received", "OWN", {name: 1})


def test_the_cli_applies_the_permissions_of_the_staff_member_it_acts_as(
    runner: Runner, company: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from runner.cli import main

    monkeypatch.setenv("RUNNER_DATABASE_URL", runner.settings.database_url)
    monkeypatch.setenv("RUNNER_CLOCK", "virtual")
    assert main(["start", "renewal", "--customer", "POST", "--actor", "teacher1"]) == 1
    assert "teacher1 may not start process 'renewal'" in capsys.readouterr().err
    data = json.dumps(START_DATA["renewal"])
    assert main(["start", "renewal", "--customer", "POST", "--data", data, "--actor", "customer_care1"]) == 0
    assert main(["correlate", "payment_received", "--customer", "OWN", "--actor", "accountant1"]) == 1
    assert "customer 'OWN' does not exist" in capsys.readouterr().err
    assert main(["correlate", "payment_received", "--customer", "OWN"]) == 0  # the operator ("cli")


def test_a_person_outside_the_policy_is_forbidden_at_the_runner(runner: Runner, company: dict[str, str]) -> None:
    teacher = policy.Person.of("teacher1", ["teacher"])
    with pytest.raises(Forbidden, match="may not start process 'renewal'"):
        runner.start_instance("renewal", "POST", person=teacher)
    with pytest.raises(NotFound, match="customer 'OWN' does not exist"):
        runner.correlate("payment_received", "OWN", person=policy.Person.of("accountant1", ["accountant"]))


def test_every_shipped_process_names_who_may_start_it() -> None:
    for path in sorted((ROOT / "processes").glob("*.bpmn")):
        xml = path.read_text(encoding="utf-8")
        groups, users_ = policy.starters(xml, path.stem)
        # teachers start nothing but feature requests (seed 001: anyone files one); admins start anything
        assert groups and ("teacher" not in groups or path.stem == "feature_request"), path.name


def test_a_starter_list_given_as_an_expression_is_refused_at_deploy(runner: Runner) -> None:
    xml = (
        (ROOT / "tests" / "bpmn" / "hostile" / "race.bpmn")
        .read_bytes()
        .replace(b'isExecutable="true"', b'isExecutable="true" camunda:candidateStarterGroups="${starters}"')
    )
    with pytest.raises(DeploymentInvalid, match="candidateStarterGroups must list names"):
        runner.deploy({"race.bpmn": xml})
