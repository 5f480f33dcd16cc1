"""The new-lead page (web/crm/customers/leads.py) over a real SQLite runner with the sales diagram deployed.

Marketing, sales and admins enter a lead; a bad field comes back beside its input with what was
typed kept; a duplicate shows the customer who has the number already and a link to open them;
a saved lead opens its own customer page, its sales procedure started.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from runner.crm.models import Customer
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import START, add_customer, company, runner_at
from tests.webapp import WebClient, add_user

SALES = Path(__file__).resolve().parents[1] / "processes" / "sales.bpmn"
LEAD = {
    "name": "Trung tâm Anh ngữ Sao Mai",
    "phone": "0912.345.678",
    "email": "LienHe@SaoMai.edu.vn",
    "source": "Facebook",
    "business_model": "Trung tâm ngoại ngữ",
    "dedicated_department": "true",
    "staff_count": "12",
    "student_count": "350",
    "course_model": "Theo khóa 3 tháng",
    "website": "https://saomai.edu.vn",
    "owner": "",
}


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The company of tests.scenario with the sales diagram; mai (marketing), an (sales), hoa (care) sign in."""
    r = runner_at(sqlite_url, registry, START)
    company(r)
    r.deploy([SALES])
    for username in ("mai", "an", "binh", "hoa", "tuan"):
        add_user(r, username, [])
    add_user(r, "quantri", ["admin"], full_name="Quản Trị")
    yield r
    r.db.engine.dispose()


def customer_ids(runner: Runner) -> list[str]:
    with runner.db.read() as s:
        return list(s.scalars(sa.select(Customer.id).order_by(Customer.id)))


def error_of(page: str, field: str) -> str | None:
    found = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    return found.group(1) if found else None


@pytest.mark.parametrize("username", ["mai", "an", "quantri"])
def test_marketing_sales_and_admins_get_the_form_with_the_required_fields_marked(
    client: WebClient, username: str
) -> None:
    client.login(username)
    page = client.get("/leads/new").get_data(as_text=True)
    assert '<label for="f-phone" class="required">Điện thoại</label>' in page
    assert '<label for="f-staff_count" class="required">Số nhân viên</label>' in page
    assert '<label for="f-source">Nguồn</label>' in page and '<option value="Facebook"' in page
    assert "Chia xoay vòng cho Sale" in page and '<option value="binh"' in page
    assert 'name="csrf_token"' in page


@pytest.mark.parametrize("username", ["hoa", "tuan"])
def test_other_roles_may_not_enter_leads(client: WebClient, runner: Runner, username: str) -> None:
    client.login(username)
    assert client.get("/leads/new").status_code == 403
    assert client.post("/leads/new", data=LEAD).status_code == 403
    assert customer_ids(runner) == []


def test_the_customers_list_links_to_the_form_for_who_may_use_it(client: WebClient) -> None:
    client.login("mai")
    assert 'href="/leads/new"' in client.get("/customers/").get_data(as_text=True)
    assert 'href="/leads/new"' in client.get("/boards/").get_data(as_text=True)
    client.post("/logout")
    client.login("hoa")
    assert 'href="/leads/new"' not in client.get("/customers/").get_data(as_text=True)


def test_a_saved_lead_opens_its_customer_page_with_its_sales_procedure_started(
    client: WebClient, runner: Runner
) -> None:
    client.login("mai")
    response = client.post("/leads/new", data=LEAD)
    assert response.status_code == 302 and response.headers["Location"] == "/customers/KH0001"
    page = client.get("/customers/KH0001").get_data(as_text=True)
    assert "Đã tạo khách hàng KH0001, giao cho Đỗ Thị An." in page
    assert "+84912345678" in page and "lienhe@saomai.edu.vn" in page
    assert [row["process_key"] for row in inbox.instances(runner, business_key="KH0001")] == ["sales"]


def test_a_sales_rep_is_the_owner_unless_they_choose_the_round_robin(client: WebClient, runner: Runner) -> None:
    client.login("binh")
    assert '<option value="binh" selected>' in client.get("/leads/new").get_data(as_text=True)
    assert client.post("/leads/new", data={**LEAD, "owner": "binh"}).headers["Location"] == "/customers/KH0001"
    with runner.db.read() as s:
        assert s.get(Customer, "KH0001").owner == "binh"


def test_field_errors_come_back_beside_their_inputs_with_the_values_kept(client: WebClient, runner: Runner) -> None:
    client.login("mai")
    bad = {**LEAD, "phone": "0912", "email": "lienhe@", "staff_count": "mười hai", "course_model": ""}
    response = client.post("/leads/new", data=bad)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert error_of(page, "phone").startswith("Số điện thoại không hợp lệ")
    assert error_of(page, "email") == "Địa chỉ e-mail không hợp lệ."
    assert error_of(page, "staff_count") == "Nhập một số nguyên không âm."
    assert error_of(page, "course_model") == "Bắt buộc nhập."
    assert error_of(page, "name") is None
    assert 'value="Trung tâm Anh ngữ Sao Mai"' in page and 'value="mười hai"' in page
    assert customer_ids(runner) == []


def test_a_duplicate_phone_shows_the_customer_and_a_link_to_open_it(client: WebClient, runner: Runner) -> None:
    add_customer(runner, "KH0001", "Trung tâm Anh ngữ Sao Mai", phone="+84 912 345 678")
    client.login("mai")
    response = client.post("/leads/new", data={**LEAD, "name": "Sao Mai nhập lại"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert 'data-duplicate="KH0001"' in page and "Trung tâm Anh ngữ Sao Mai" in page
    assert '<a class="button primary open-duplicate" href="/customers/KH0001">' in page
    assert customer_ids(runner) == ["KH0001"]


def test_the_form_needs_the_csrf_token(client: WebClient, runner: Runner) -> None:
    client.login("mai")
    assert client.post("/leads/new", data=LEAD, csrf=False).status_code == 400
    assert customer_ids(runner) == []


def test_the_form_in_english(client: WebClient) -> None:
    client.login("mai")
    client.post("/lang/en", data={"next": "/leads/new"})
    page = client.get("/leads/new").get_data(as_text=True)
    assert "New customer / lead" in page and "Round-robin to sales" in page
    bad = client.post("/leads/new", data={**LEAD, "phone": ""}).get_data(as_text=True)
    assert error_of(bad, "phone") == "Required."
