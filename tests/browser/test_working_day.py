"""A working day in a real chromium, on the virtual clock from Monday 7 December 2026, 15:00.

Marketing (mai) types a lead in and imports ten more from an XLSX; the sales rep the lead goes
to works it through verify → call → survey and books the demo for Tuesday 10:00; an admin moves
the clock a day on the admin page. On the way the demo reminder goes out at 09:00 (inside
working hours, an hour before), and an imported lead nobody touches is reassigned every 60
working minutes (over the evening, not through it), then escalated to the team leader and
marketing, whose inbox shows it.

NOTE: nothing here runs a worker, so ``settle`` does a worker's part (jobs after a form is sent);
the clock run of the admin page works off timers and jobs itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from runner.registry import Registry
from runner.service.runtime import Runner
from runner.windows import SendingWindow
from tests.scenario import (
    TZ,
    company,
    created_tasks,
    customer,
    history,
    open_tasks,
    outbox,
    runner_at,
    settle,
    task,
    timers_scheduled,
)
from tests.test_lead_import import HEADER, phones, row, xlsx_bytes
from tests.test_process_sales import PROCESSES, SURVEY
from tests.webapp import add_user

MONDAY_AFTERNOON = datetime(2026, 12, 7, 15, 0, tzinfo=TZ)
LEAD = "KH0001"  # typed in by marketing: the lead sales works
UNTOUCHED = "KH0002"  # the first imported lead: nobody verifies it


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of December 2026 in business time."""
    return datetime(2026, 12, day, hour, minute, tzinfo=TZ)


def working(moment: datetime) -> bool:
    """Inside the seeded company hours: Mon–Fri 08:00–17:30, Sat 08:00–12:00."""
    local = moment.astimezone(TZ)
    hm = (local.hour, local.minute)
    if local.weekday() < 5:
        return (8, 0) <= hm <= (17, 30)
    return local.weekday() == 5 and (8, 0) <= hm <= (12, 0)


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The company on Monday 15:00 with the real diagrams and quiet hours; its staff and an admin sign in."""
    # NOTE: the sending window production reads by default (RUNNER_SENDING_WINDOW); with it the
    # admin's clock run stops at each customer message's due time and sends it then.
    r = runner_at(sqlite_url, registry, MONDAY_AFTERNOON, sending_window=SendingWindow.parse("08:00-20:00"))
    company(r)
    r.deploy([PROCESSES])
    for username in ("mai", "an", "binh", "chi", "tuan"):
        add_user(r, username, [])  # the staff exist; this gives them a password
    add_user(r, "quan", ["admin"], full_name="Quản trị hệ thống")
    yield r
    r.db.engine.dispose()


# --- the people's steps -------------------------------------------------------------------------


def marketing_creates_a_lead(page, url: str) -> None:
    page.click("nav.mainnav >> text=Khách hàng")
    page.click("a.new-lead")
    page.fill("#f-name", "Trung tâm Anh ngữ Sao Mai")
    page.fill("#f-phone", "0912 345 678")
    page.fill("#f-email", "saomai@example.vn")
    page.select_option("#f-source", "Facebook")
    page.fill("#f-business_model", "Trung tâm ngoại ngữ")
    page.select_option("#f-dedicated_department", "true")
    page.fill("#f-staff_count", "12")
    page.fill("#f-student_count", "350")
    page.fill("#f-course_model", "Theo khóa 3 tháng")
    page.click("form.lead-form button[type=submit]")
    page.wait_for_url(f"{url}/customers/{LEAD}")


def marketing_imports_ten_leads(page, url: str, folder: Path) -> None:
    leads = folder / "leads.xlsx"
    numbers = phones(10)
    leads.write_bytes(xlsx_bytes([HEADER, *(row(f"Trung tâm Nhập {i}", p) for i, p in enumerate(numbers))]))
    page.goto(f"{url}/customers/imports/")
    page.set_input_files("#import-file", str(leads))
    with page.expect_navigation():
        page.click("form button[type=submit].primary")
    assert "10 dòng: 10 hợp lệ, 0 có lỗi." in page.locator("[data-testid=counts]").inner_text()
    with page.expect_navigation(timeout=120_000):  # NOTE: the page reloads itself when the import is done
        page.click("#import-form button")
    assert "Đã tạo 10 khách hàng, bỏ qua 0." in page.locator("[data-testid=counts]").inner_text()
    assert page.locator("#import-progress").get_attribute("value") == "10"


def open_my_task(page, url: str, customer_name: str, task_name: str) -> None:
    """From the rep's own inbox, open the customer's task by its name."""
    page.goto(f"{url}/inbox/")
    page.locator("tr", has_text=customer_name).locator("a", has_text=task_name).click()
    assert page.locator("h1").inner_text() == task_name


def finish(page) -> None:
    page.click("button:has-text('Hoàn thành')")
    assert "Đã hoàn thành" in page.locator(".flashes").inner_text()


def sales_books_the_demo(page, url: str, runner: Runner, demo: str) -> None:
    """verify → call → survey, the demo typed as dd/MM/yyyy HH:mm."""
    open_my_task(page, url, "Sao Mai", "Thẩm định thông tin lead (Google, Facebook)")
    page.select_option("#f-verdict", "good")
    finish(page)
    settle(runner)
    open_my_task(page, url, "Sao Mai", "Gọi điện liên hệ khách hàng")
    page.select_option("#f-call_result", "reached")
    finish(page)
    settle(runner)
    open_my_task(page, url, "Sao Mai", "Khảo sát khách hàng & cấp Demo")
    for field in ("business_model", "course_model", "zalo_user_id", "trial_link", "call_note"):
        page.fill(f"#f-{field}", SURVEY[field])
    page.check("#f-dedicated_department")
    page.fill("#f-staff_count", "12")
    page.fill("#f-student_count", "350")
    page.fill("#f-demo_at", demo)
    finish(page)
    settle(runner)


def admin_moves_the_clock_a_day(page, url: str) -> None:
    page.goto(f"{url}/admin/")
    page.click("button:has-text('+1 ngày')")
    # NOTE: the page reloads itself every 2 s while the run moves; the list appears once it is done.
    page.wait_for_selector("ul.timeline.effects", timeout=120_000)
    assert "timer.fired" in page.locator("ul.timeline.effects").inner_text()


# --- what the day left behind ---------------------------------------------------------------------


def reassigned_at(runner: Runner, customer_id: str) -> list[datetime]:
    return [
        h["at"].astimezone(TZ) for h in history(runner, customer_id, "timer.fired") if h["element_id"] == "Timer_60"
    ]


def verify_owners(runner: Runner, customer_id: str) -> list[str]:
    return [assignee for element, _, assignee in created_tasks(runner, customer_id) if element == "Task_verify"]


def test_a_working_day_of_marketing_sales_and_the_clock(live_server, page, sign_in, tmp_path, shot) -> None:
    runner, url = live_server.runner, live_server.url

    sign_in("mai")
    marketing_creates_a_lead(page, url)
    marketing_imports_ten_leads(page, url, tmp_path)
    shot(page, "1-imported")
    settle(runner)
    assert len(open_tasks(runner, LEAD)) == 1 and customer(runner, UNTOUCHED)["name"] == "Trung tâm Nhập 0"
    rep = task(runner, LEAD, "Task_verify")["assignee"]

    page.context.clear_cookies()
    sign_in(rep)
    sales_books_the_demo(page, url, runner, "08/12/2026 10:00")
    shot(page, "2-demo-booked")
    assert timers_scheduled(runner, LEAD, "Timer_demo_reminder") == [at(8, 9)]

    page.context.clear_cookies()
    sign_in("quan")
    admin_moves_the_clock_a_day(page, url)
    shot(page, "3-a-day-later")
    assert runner.now() == at(8, 15)
    settle(runner)

    # the demo reminder went out an hour before the demo, inside working hours
    [reminder] = [m for m in outbox(runner, LEAD) if m["payload"].get("template") == "demo_confirmation"]
    sent = reminder["sent_at"].astimezone(TZ)
    assert timedelta(minutes=30) <= at(8, 10) - sent <= timedelta(minutes=60) and working(sent), sent
    assert sent == reminder["due_at"] == at(8, 9)  # sent when it fell due, not when the run ended
    assert (reminder["channel"], reminder["state"], reminder["payload"]["recipient_id"]) == (
        "zalo",
        "sent",
        "zl-saomai",
    )
    assert "10:00 Thứ Ba, 08/12/2026" in reminder["payload"]["text"]
    assert task(runner, LEAD, "Task_confirm")["assignee"] == rep

    # the untouched lead: three reassignments in working minutes (over the evening), then escalated
    times = reassigned_at(runner, UNTOUCHED)
    assert times == [at(7, 16), at(7, 17), at(8, 8, 30), at(8, 9, 30)], times
    assert all(working(t) for t in times)
    owners = verify_owners(runner, UNTOUCHED)
    assert len(owners) == 4 and all(a != b for a, b in pairwise(owners)), owners
    escalated = task(runner, UNTOUCHED, "Task_lead_escalated")
    assert escalated["candidate_groups"] == ["team_leader", "marketing"]

    page.context.clear_cookies()
    sign_in("tuan")
    page.click("nav.tabs >> text=Việc của nhóm")
    row_ = page.locator("tr", has_text="Trung tâm Nhập 0")
    assert "Xử lý lead không Sale nào liên hệ" in row_.inner_text()
    shot(page, "4-team-leader-inbox")

    page.context.clear_cookies()
    sign_in("mai")  # marketing is told as well: the same task is in marketing's group inbox
    page.click("nav.tabs >> text=Việc của nhóm")
    assert "Xử lý lead không Sale nào liên hệ" in page.locator("tr", has_text="Trung tâm Nhập 0").inner_text()
