"""POST /api/customers (web/crm/api.py): a new lead over the API, every answer checked against the OpenAPI document.

201 with the customer's address in Location and its sales procedure started; 409 naming the
customer who has the phone or e-mail already; 422 naming each bad field; nothing stored but
the one lead, whatever is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from runner.crm import customers as crm
from runner.crm.models import Customer
from runner.queries import tasklists as inbox
from runner.service.runtime import Runner
from tests.test_api import Api

SALES = Path(__file__).resolve().parents[1] / "processes" / "sales.bpmn"
LEAD: dict[str, Any] = {
    "name": "Trung tâm Anh ngữ Sao Mai",
    "phone": "+84 912 345 678",
    "email": "LienHe@SaoMai.edu.vn",
    "source": "Website",
    "business_model": "Trung tâm ngoại ngữ",
    "dedicated_department": True,
    "staff_count": 12,
    "student_count": "350",
    "course_model": "Theo khóa 3 tháng",
    "branch_count": 2,
}


@pytest.fixture
def api(app: Flask, runner: Runner, staff) -> Api:
    """The API over the seed-003 lists, one user per role (sales1 is the only sales rep) and the sales diagram.

    sales1 has a phone: the sales messages print the owner's, so a rep without one gets no lead.
    """
    with runner.db.unit() as s:
        crm.seed_lists(s)
        crm.staff_row(s, "sales1").phone = "+84901234567"
    runner.deploy([SALES])
    return Api(app, runner)


def customer_ids(runner: Runner) -> list[str]:
    with runner.db.read() as s:
        return list(s.scalars(sa.select(Customer.id).order_by(Customer.id)))


def test_a_lead_is_created_with_its_address_and_its_sales_procedure(api: Api, runner: Runner) -> None:
    response = api.post("/api/customers", user="marketing1", json=LEAD)
    assert response.status_code == 201
    assert response.headers["Location"] == "/api/customers/KH0001"
    created = response.get_json()
    assert {k: created[k] for k in ("id", "name", "owner")} == {
        "id": "KH0001",
        "name": "Trung tâm Anh ngữ Sao Mai",
        "owner": "sales1",
    }
    [instance] = inbox.instances(runner, business_key="KH0001")
    assert (instance["id"], instance["process_key"]) == (created["instance_id"], "sales")
    customer = api.get(response.headers["Location"], user="admin1").get_json()["customer"]
    assert (customer["phone"], customer["email"], customer["extra"]) == (
        "+84912345678",
        "lienhe@saomai.edu.vn",
        {"branch_count": 2},
    )


def test_a_known_phone_number_is_a_409_naming_the_customer(api: Api, runner: Runner) -> None:
    assert api.post("/api/customers", user="marketing1", json=LEAD).status_code == 201
    again = api.post("/api/customers", user="sales1", json={**LEAD, "phone": "0912.345.678", "email": None})
    assert again.status_code == 409
    body = again.get_json()
    assert body["field"] == "phone"
    assert body["customer"] == {"id": "KH0001", "name": "Trung tâm Anh ngữ Sao Mai", "url": "/api/customers/KH0001"}
    by_email = api.post(
        "/api/customers", user="admin1", json={**LEAD, "phone": "0987654321", "email": "LIENHE@saomai.edu.vn"}
    )
    assert by_email.status_code == 409 and by_email.get_json()["field"] == "email"
    assert customer_ids(runner) == ["KH0001"]


def test_bad_fields_are_a_422_naming_each(api: Api, runner: Runner) -> None:
    response = api.post(
        "/api/customers",
        user="marketing1",
        json={**LEAD, "phone": 912, "email": "lienhe@", "staff_count": -1, "course_model": None, "owner": "hoa"},
    )
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"phone", "email", "staff_count", "course_model", "owner"}
    assert customer_ids(runner) == []


@pytest.mark.parametrize("sent", [[LEAD], "KH0001", 42])
def test_a_body_that_is_no_object_is_a_400(api: Api, runner: Runner, sent: Any) -> None:
    assert api.post("/api/customers", user="marketing1", json=sent).status_code == 400
    assert customer_ids(runner) == []


@pytest.mark.parametrize("user", ["customer_care1", "teacher1", "accountant1", "team_leader1"])
def test_other_roles_are_refused(api: Api, runner: Runner, user: str) -> None:
    assert api.post("/api/customers", user=user, json=LEAD).status_code == 403
    assert customer_ids(runner) == []


def test_the_links_of_a_new_lead_lead_to_it_and_its_procedure(api: Api) -> None:
    created = api.post("/api/customers", user="marketing1", json=LEAD).get_json()
    links = api.get("/api/openapi.json", user=None).get_json()["paths"]["/api/customers"]["post"]["responses"]["201"]
    assert set(links["links"]) == {"GetCreatedCustomer", "GetLeadInstance"}
    assert api.get(f"/api/customers/{created['id']}").status_code == 200
    assert api.get(f"/api/instances/{created['instance_id']}").get_json()["business_key"] == created["id"]
