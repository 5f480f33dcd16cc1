"""The browser sees each form constraint, and what it lets through the server still refuses per field."""

from __future__ import annotations

from pathlib import Path

from runner.queries import tasklists as inbox

FORM = Path(__file__).resolve().parent.parent / "bpmn" / "hostile" / "form_constraints.bpmn"


def test_constraints_reach_the_browser_and_a_refusal_names_the_field(live_server, page, sign_in, shot, staff) -> None:
    runner = live_server.runner
    runner.deploy([FORM])
    runner.start_instance("form_constraints", "KH1")
    [task] = inbox.tasks(runner, business_key="KH1")
    runner.claim_task(task["id"], "sales1", ["sales"])

    sign_in("sales1")
    page.goto(f"{live_server.url}/inbox/tasks/{task['id']}")
    # the browser knows the rules: an empty required text and an amount below 1 are invalid to it
    assert page.eval_on_selector("#f-code", "e => [e.required, e.minLength, e.maxLength]") == [True, 3, 12]
    assert page.eval_on_selector("#f-code", "e => e.validity.valueMissing") is True
    page.fill("#f-amount", "0")
    assert page.eval_on_selector("#f-amount", "e => [e.min, e.max, e.validity.rangeUnderflow]") == ["1", "1000", True]
    assert page.eval_on_selector("#f-note", "e => [e.required, e.minLength, e.maxLength]") == [True, 5, 300]
    assert page.eval_on_selector("#f-start_on", "e => [e.min, e.max]") == ["2026-01-01", "2027-12-31"]
    assert page.locator("#f-source").get_attribute("readonly") is not None

    # the page leaves the wording to the server, which refuses per field and keeps what was typed
    page.fill("#f-code", "DH-001")
    page.fill("#f-note", "Khách ký 12 tháng")
    page.select_option("#f-plan", "pro")
    page.check("#f-agreed")
    page.click("button:has-text('Hoàn thành')")
    assert page.locator("[data-field=amount] .error").inner_text() == "Giá trị phải từ 1 trở lên."
    assert page.locator("[data-field=amount] input").get_attribute("aria-invalid") == "true"
    assert page.locator("#f-code").input_value() == "DH-001"
    assert page.locator(".field.invalid").count() == 1
    shot(page, "1-amount-refused")

    page.fill("#f-amount", "500")
    page.click("button:has-text('Hoàn thành')")
    assert "Đã hoàn thành “Lập đơn hàng”" in page.locator(".flashes").inner_text()
    assert inbox.task(runner, task["id"])["state"] == "completed"
