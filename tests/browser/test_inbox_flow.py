"""A sales rep signs in, claims and completes two tasks, fixing a validation error on the way."""

from __future__ import annotations

from pathlib import Path

from runner.crm import customers as crm
from runner.queries import tasklists as inbox

LEAD = Path(__file__).resolve().parent.parent / "bpmn" / "web" / "lead.bpmn"


def test_sales_rep_claims_and_completes_with_a_validation_error_fixed(live_server, page, sign_in, shot, staff) -> None:
    runner = live_server.runner
    runner.deploy([LEAD])
    with runner.db.unit() as s:
        crm.add_customer(s, "KH100", "Trung tâm Anh ngữ Sao Mai", phone="0912345678", owner="sales1", now=runner.now())
    instance_id = runner.start_instance("web_lead", "KH100")

    sign_in("sales1")
    assert page.url.endswith("/inbox/")
    assert page.locator("h1").inner_text() == "Việc của tôi"
    page.click("nav.tabs >> text=Việc của nhóm")
    row = page.locator("tr", has_text="Xác minh lead")
    assert "Trung tâm Anh ngữ Sao Mai" in row.inner_text()
    shot(page, "1-group-tasks")
    row.locator("button", has_text="Nhận việc").click()

    # the task page: form on the left, the customer on the right
    assert page.locator("h1").inner_text() == "Xác minh lead"
    assert "Bạn đã nhận việc" in page.locator(".flashes").inner_text()
    assert "0912345678" in page.locator(".customer-context").inner_text()
    assert page.locator("#f-source").input_value() == "Facebook"  # read-only field shows its value
    assert page.locator("#f-source").get_attribute("readonly") is not None
    page.select_option("#f-lead_quality", "good")
    shot(page, "2-verify-lead")
    page.click("button:has-text('Hoàn thành')")

    # lands on the next task for the same customer, which the rep claims
    assert page.locator("h1").inner_text() == "Gọi điện liên hệ"
    assert "Đã hoàn thành “Xác minh lead”" in page.locator(".flashes").inner_text()
    page.click(".task-actions button:has-text('Nhận việc')")
    page.check("#f-reached")
    page.select_option("#f-business_model", "center")
    page.fill("#f-staff_count", "0")
    page.fill("#f-note", "Khách quan tâm gói 12 tháng")
    page.click("button:has-text('Hoàn thành')")

    # the error names the field, and what was typed is still there
    error = page.locator("[data-field=staff_count] .error")
    assert error.inner_text() == "Số nhân viên phải từ 1 trở lên."
    assert page.locator("#f-note").input_value() == "Khách quan tâm gói 12 tháng"
    assert page.locator("#f-business_model").input_value() == "center"
    assert page.locator("#f-reached").is_checked()
    shot(page, "3-validation-error")
    page.fill("#f-staff_count", "12")
    page.click("button:has-text('Hoàn thành')")

    assert page.url.endswith("/inbox/")
    assert "Đã hoàn thành “Gọi điện liên hệ”" in page.locator(".flashes").inner_text()
    shot(page, "4-done")
    runner.start_instance("web_lead", "KH100")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing sticks out sideways
    page.goto(f"{live_server.url}/inbox/group")
    assert page.locator("tr", has_text="Xác minh lead").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    shot(page, "5-phone")
    done = [t for t in inbox.history(runner, instance_id=instance_id, events=["task.completed"])]
    assert [(h["element_id"], h["actor"]) for h in done] == [("verify_lead", "sales1"), ("contact_call", "sales1")]
    assert done[1]["details"]["data"]["staff_count"] == 12
    assert done[1]["details"]["data"]["reached"] is True
