"""Marketing enters a lead on the new-lead page in a real chromium: a duplicate is shown, then a new lead opens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import add_customer, settle
from tests.test_customer_views import company_runner
from tests.webapp import add_user


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The company at Monday 09:00 with the real diagrams; mai (marketing) can sign in."""
    r = company_runner(sqlite_url, registry)
    add_user(r, "mai", [])
    add_customer(r, "KH0001", "Trung tâm Anh ngữ Sao Mai", phone="0912345678")
    yield r
    r.db.engine.dispose()


def test_marketing_creates_a_lead_and_is_told_of_a_duplicate_first(live_server, page, sign_in, shot) -> None:
    sign_in("mai")
    page.click("nav.mainnav >> text=Khách hàng")
    page.click("a.new-lead")
    page.fill("#f-name", "Trung tâm Toán Đức Trí")
    page.fill("#f-phone", "+84 912.345.678")  # Sao Mai's number in another spelling
    page.fill("#f-email", "LienHe@DucTri.edu.vn")
    page.select_option("#f-source", "Facebook")
    page.fill("#f-business_model", "Trung tâm luyện thi")
    page.select_option("#f-dedicated_department", "false")
    page.fill("#f-staff_count", "6")
    page.fill("#f-student_count", "120")
    page.fill("#f-course_model", "Theo tháng")
    page.click("form.lead-form button[type=submit]")
    duplicate = page.locator("[data-duplicate='KH0001']")
    assert "Trung tâm Anh ngữ Sao Mai" in duplicate.inner_text()
    assert page.locator("#f-name").input_value() == "Trung tâm Toán Đức Trí"  # what was typed is kept
    shot(page, "1-duplicate")

    page.fill("#f-phone", "0987 654 321")
    page.click("form.lead-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/customers/KH0002")
    assert "Đã tạo khách hàng KH0002" in page.locator(".flashes").inner_text()
    assert "+84987654321" in page.content() and "lienhe@ductri.edu.vn" in page.content()
    shot(page, "2-customer-page")
    settle(live_server.runner)
    [task] = inbox.tasks(live_server.runner, business_key="KH0002")
    assert task["element_id"] == "Task_verify"
