"""Importing leads in a real browser: upload an XLSX, read the preview, click import, watch the bar fill."""

from __future__ import annotations

from pathlib import Path

from tests.scenario import company
from tests.test_lead_import import HEADER, phones, row, xlsx_bytes
from tests.webapp import add_user

SALES = Path(__file__).resolve().parents[2] / "processes" / "sales.bpmn"


def test_marketing_imports_leads_from_an_xlsx_with_the_progress_bar(live_server, page, sign_in, tmp_path, shot) -> None:
    runner = live_server.runner
    company(runner)
    runner.deploy([SALES])
    add_user(runner, "thuy", ["marketing"])
    numbers = list(phones(23))
    leads = tmp_path / "leads.xlsx"
    leads.write_bytes(xlsx_bytes([HEADER, *(row(f"Trung tâm {i}", p) for i, p in enumerate(numbers)), row("", "1")]))
    sign_in("thuy")
    page.goto(f"{live_server.url}/customers/imports/")
    page.set_input_files("#import-file", str(leads))
    with page.expect_navigation():
        page.click("form button[type=submit].primary")
    assert "24 dòng: 23 hợp lệ, 1 có lỗi." in page.locator("[data-testid=counts]").inner_text()
    assert page.locator('tr[data-row="25"] [data-error="name"]').count() == 1
    shot(page, "preview")
    with page.expect_navigation(timeout=120_000):  # NOTE: the page reloads itself when the import is done
        page.click("#import-form button")
    assert "Đã tạo 23 khách hàng, bỏ qua 0." in page.locator("[data-testid=counts]").inner_text()
    assert page.locator("#import-progress").get_attribute("value") == "23"
    shot(page, "done")
