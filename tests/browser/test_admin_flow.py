"""An admin uploads a broken diagram and sees the element-level report, then uploads a good new
version, sees it created, and moves the running instances to it with the progress bar."""

from __future__ import annotations

from pathlib import Path

from runner.queries import tasklists as inbox

ADMIN = Path(__file__).resolve().parent.parent / "bpmn" / "admin"


def test_admin_deploys_a_broken_then_a_good_version_and_migrates(live_server, page, sign_in, shot, staff) -> None:
    runner = live_server.runner
    runner.deploy([ADMIN / "signup_v1.bpmn"])
    waiting = [runner.start_instance("signup", f"KH{n}") for n in range(1, 8)]

    sign_in("admin1")
    page.click("nav.mainnav >> text=Quản trị")
    assert page.locator("h1").inner_text() == "Quản trị"
    page.click("nav.tabs >> text=Triển khai")

    # a broken diagram: every problem names its element, nothing is stored
    page.set_input_files("#files", str(ADMIN / "signup_broken.bpmn"))
    page.click("button:has-text('Kiểm tra và triển khai')")
    assert "Không triển khai được: 2 lỗi" in page.locator(".flashes").inner_text()
    report = page.locator("table.problems")
    assert report.locator("tr[data-element=create_account]").inner_text().count("Tạo tài khoản demo") == 1
    assert "camunda:class" in report.locator("tr[data-element=create_account] td.reason").inner_text()
    assert "no.such.topic" in report.locator("tr[data-element=send_welcome] td.reason").inner_text()
    shot(page, "1-broken-report")
    assert [v["version"] for v in inbox.process_versions(runner)[0]["versions"]] == [1]

    # the fixed file, as a new version
    page.set_input_files("#files", str(ADMIN / "signup_v2.bpmn"))
    page.click("button:has-text('Kiểm tra và triển khai')")
    created = page.locator("table.deployed tr[data-process=signup]")
    assert "v2" in created.inner_text() and "mới" in created.inner_text()
    shot(page, "2-version-created")

    # the dry run, then the migration with its progress bar
    created.locator("a:has-text('Chạy thử chuyển v1 → v2')").click()
    assert "7 chuyển được" in page.locator("#instances-title").inner_text()
    shot(page, "3-dry-run")
    page.click("button:has-text('Chuyển ngay')")
    page.wait_for_selector("#migrate-done:not([hidden])")
    assert page.locator("#migrate-status").inner_text() == "Xong: 7 chuyển được, 0 lỗi."
    assert page.locator("#migrate-bar").evaluate("bar => [bar.value, bar.max]") == [7, 7]
    assert page.locator("td.verdict:has-text('Đã chuyển sang v2')").count() == 7
    shot(page, "4-migrated")
    assert len(inbox.history(runner, events=["instance.migrated"])) == len(waiting)

    page.click("nav.tabs >> text=Quy trình")
    row = page.locator("section[data-process=signup] tr[data-version='2']")
    assert row.locator("td.running").inner_text() == "7"
    shot(page, "5-processes")
