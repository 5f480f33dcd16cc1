"""The task page's typed fields: date-times in business time, amounts, text areas, and the payment task
of the shipped sales diagram showing the amount due, the order and the contract value."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import START, add_customer, advance, company, complete, instance_of, runner_at, task
from tests.test_process_sales import KH, PROCESSES, at, demo_given, lead, reached
from tests.webapp import WebClient, add_user

FORM_TYPES = Path(__file__).parent / "bpmn" / "web" / "form_types.bpmn"


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The company at Monday 7 December 2026 09:00 (virtual clock) with the shipped diagrams; the app's runner."""
    r = runner_at(sqlite_url, registry, START)
    company(r)
    add_customer(r, KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn")
    r.deploy([PROCESSES, FORM_TYPES])
    yield r
    r.db.engine.dispose()


def field_html(page: str, field_id: str) -> str:
    """The markup of one field's block on the task page."""
    found = re.search(rf'<div class="field[^"]*" data-field="{field_id}">(.*?)\n    </div>', page, flags=re.S)
    assert found, field_id
    return found.group(1)


def booking_task(runner: Runner, client: WebClient) -> str:
    runner.start_instance("web_form_types", KH)
    row = task(runner, KH, "book")
    add_user(runner, "an", ["sales"])
    runner.claim_task(row["id"], "an", ["sales"])
    client.login("an")
    return row["id"]


def test_a_date_time_is_a_text_input_in_business_time_and_long_text_a_text_area(
    client: WebClient, runner: Runner
) -> None:
    task_id = booking_task(runner, client)
    page = client.get(f"/inbox/tasks/{task_id}").get_data(as_text=True)
    meeting = field_html(page, "meeting_at")
    assert 'type="text"' in meeting and 'class="datetime"' in meeting
    assert 'placeholder="ngày/tháng/năm giờ:phút, ví dụ 25/12/2026 09:30"' in meeting
    assert "Theo giờ Asia/Ho_Chi_Minh · từ bây giờ" in meeting
    assert re.search(r'<textarea id="f-minutes" name="minutes" rows="6"', field_html(page, "minutes"))
    assert '<input id="f-summary" name="summary" type="text"' in field_html(page, "summary")
    assert re.search(r'<input id="f-listed" value="15.000.000 ₫" readonly>', field_html(page, "listed"))
    assert 'inputmode="decimal"' in field_html(page, "price")


def test_a_past_appointment_is_refused_by_the_virtual_clock_naming_the_field(client: WebClient, runner: Runner) -> None:
    task_id = booking_task(runner, client)
    # 08:59 on the virtual clock's day is past for it, whatever the machine's clock says
    response = client.post(
        f"/inbox/tasks/{task_id}/complete",
        data={"meeting_at": "07/12/2026 08:59", "price": "12.900.000 đ", "minutes": "Khách hỏi giá"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    meeting = field_html(page, "meeting_at")
    assert "Lịch hẹn phải là thời điểm trong tương lai." in meeting and 'aria-invalid="true"' in meeting
    assert 'value="07/12/2026 08:59"' in meeting and 'value="12.900.000 đ"' in field_html(page, "price")
    assert task(runner, KH, "book")["state"] == "open"

    bad = client.post(f"/inbox/tasks/{task_id}/complete", data={"meeting_at": "08/12/2026", "price": "12,9 đô"})
    errors = bad.get_data(as_text=True)
    assert "Lịch hẹn phải là ngày và giờ dạng ngày/tháng/năm giờ:phút (ví dụ 25/12/2026 09:30)." in errors
    assert "Giá báo khách phải là số tiền, ví dụ 12.900.000." in errors


def test_a_typed_appointment_and_amount_are_stored_typed(client: WebClient, runner: Runner) -> None:
    task_id = booking_task(runner, client)
    response = client.post(
        f"/inbox/tasks/{task_id}/complete",
        data={"meeting_at": "08/12/2026 14:30", "price": "12,9tr", "minutes": "Khách hỏi giá\nHẹn chiều mai"},
    )
    assert response.status_code == 302
    data = instance_of(runner, KH, "web_form_types")["data"]
    assert (data["meeting_at"], data["price"]) == ("2026-12-08T14:30:00+07:00", 12_900_000)
    assert data["minutes"] == "Khách hỏi giá\nHẹn chiều mai"


def test_the_english_page_words_the_date_time_rules_in_english(client: WebClient, runner: Runner) -> None:
    task_id = booking_task(runner, client)
    client.post("/lang/en")
    page = client.post(f"/inbox/tasks/{task_id}/complete", data={"meeting_at": "01/01/2020 10:00", "price": "1"})
    text = page.get_data(as_text=True)
    assert "Lịch hẹn must be in the future." in text and "In Asia/Ho_Chi_Minh time · from now" in text


def test_the_payment_task_shows_the_amount_due_the_order_and_the_contract_value(
    client: WebClient, runner: Runner
) -> None:
    lead(runner)
    advance(runner, to=at(7, 9, 30))
    reached(runner)
    demo_given(runner, promising=True)
    advance(runner, to=at(12, 11, 30))
    complete(runner, KH, "Task_w_hot", {"negotiation_result": "won", "negotiation_note": "Chốt."}, by="an")
    contract = {"package": "Gói Chuyên nghiệp", "amount": "12.900.000 đ", "contract_months": 12}
    complete(runner, KH, "Task_contract", contract, by="an")
    payment = task(runner, KH, "Task_payment")
    add_user(runner, "ketoan", ["accountant"])
    runner.claim_task(payment["id"], "ketoan", ["accountant"])
    client.login("ketoan")

    page = client.get(f"/inbox/tasks/{payment['id']}").get_data(as_text=True)
    assert re.search(r'<input id="f-amount" value="12.900.000 ₫" readonly>', field_html(page, "amount"))
    assert re.search(r'<input id="f-package" value="Gói Chuyên nghiệp" readonly>', page)
    order_id = instance_of(runner, KH, "sales")["data"]["order_id"]
    assert re.search(rf'<input id="f-order_id" value="{order_id}" readonly>', page)
    panel = page[page.index('class="facts payment"') :]
    assert re.search(r'class="amount-due">12.900.000 ₫<', panel)
    assert re.search(r'class="contract-value">12.900.000 ₫<', panel)
    assert f"#{order_id} · Gói Chuyên nghiệp" in panel and "Chờ tiền về" in panel and "12 tháng" in panel

    # only the checkbox is posted: the read-only amount cannot be changed from the page
    response = client.post(f"/inbox/tasks/{payment['id']}/complete", data={"paid": "true", "amount": "1"})
    assert response.status_code == 422 and "Số tiền phải thu chỉ được xem, không sửa được." in response.get_data(
        as_text=True
    )
    assert client.post(f"/inbox/tasks/{payment['id']}/complete", data={"paid": "true"}).status_code == 302
