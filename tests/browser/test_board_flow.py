"""A sales rep verifies a lead and calls it and the board follows; overdue markers, the 360° page, My Calendar."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from runner.crm import bookings as calendar
from runner.crm import views
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import TZ, settle
from tests.test_customer_views import company_runner, lead, pipeline
from tests.webapp import add_user

WEEK = datetime(2026, 12, 14, 9, 0, tzinfo=TZ)


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The company at Monday 09:00 with the real diagrams; sales reps an and binh can sign in."""
    r = company_runner(sqlite_url, registry)
    for username in ("an", "binh"):
        add_user(r, username, [])
    yield r
    r.db.engine.dispose()


def _card_stage(page, customer_id: str) -> str:
    """The stage of the board column holding the customer's card."""
    return page.locator(f".board-col:has([data-customer='{customer_id}'])").get_attribute("data-stage")


def test_board_follows_the_customer_through_the_sales_steps(live_server, page, sign_in, shot) -> None:
    runner = live_server.runner
    rep = lead(runner, "KH1", "Trung tâm Anh ngữ Sao Mai", phone="0912345678")
    other = lead(runner, "KH2", "Trường Tiểu học Hoa Sen", phone="0987654321")
    assert rep != other

    sign_in(rep)
    page.click("nav.mainnav >> text=Pipeline")
    assert page.locator(".board-col").evaluate_all("cols => cols.map(c => c.dataset.stage)") == [
        "Tiếp nhận",
        "Đã liên hệ",
        "Liên hệ lại",
        "Cấp Demo",
        "Đang chăm sóc",
        "Tiềm năng",
        "Chốt",
    ]
    # a rep's board holds their own customers: KH2 went to the other rep (runner.service.policy)
    assert _card_stage(page, "KH1") == "Tiếp nhận" and page.locator("[data-customer='KH2']").count() == 0
    assert page.locator(".board-col[data-stage='Tiếp nhận'] .count").inner_text() == "1"
    shot(page, "1-board-new-leads")

    # verify the lead from the inbox: a missing choice is refused first, then fixed
    page.click("nav.mainnav >> text=Việc của tôi")
    page.click("text=Thẩm định thông tin lead (Google, Facebook)")
    page.click("button:has-text('Hoàn thành')")
    assert page.locator("[data-field=verdict] .error").is_visible()
    page.select_option("#f-verdict", "good")
    page.click("button:has-text('Hoàn thành')")
    assert "Đã hoàn thành “Thẩm định thông tin lead" in page.locator(".flashes").inner_text()
    settle(runner)  # what a worker does: the service tasks after the step (tag ĐÃ LIÊN HỆ) run

    page.click("nav.mainnav >> text=Pipeline")
    assert _card_stage(page, "KH1") == "Đã liên hệ"
    card = page.locator("[data-customer='KH1']")
    assert "hôm nay" in card.inner_text() and "Đỗ Thị An" in card.inner_text()
    shot(page, "2-board-contacted")

    # the call does not reach the customer: back on the board under Liên hệ lại
    page.click("nav.mainnav >> text=Việc của tôi")
    page.click("text=Gọi điện liên hệ khách hàng")
    page.select_option("#f-call_result", "not_reached")
    page.click("button:has-text('Hoàn thành')")
    settle(runner)
    page.click("nav.mainnav >> text=Pipeline")
    assert _card_stage(page, "KH1") == "Liên hệ lại"
    shot(page, "3-board-call-back")

    # my customers only, then the customer page from the card
    with page.expect_navigation():
        page.select_option("select[name=owner]", rep)  # the filter submits itself
    assert page.locator(".board-card").count() == 1
    page.click("[data-customer='KH1']")
    assert page.locator("h1").inner_text().startswith("Trung tâm Anh ngữ Sao Mai")
    assert page.locator("[data-pipeline='Trong bán hàng']").inner_text() == "Liên hệ lại"
    timeline = page.locator("#timeline")
    assert timeline.locator("[data-kind=task]").count() == 2 and "Không liên hệ được" in timeline.inner_text()
    page.fill("#note-text", "Khách bận họp, hẹn gọi lại chiều nay.")
    page.click("button:has-text('Lưu ghi chú')")
    assert "Đã lưu ghi chú." in page.locator(".flashes").inner_text()
    assert page.locator("#timeline li").first.get_attribute("data-kind") == "note"
    shot(page, "4-customer-page")
    assert [e["kind"] for e in views.timeline(runner, "KH1", kinds=["note"])] == ["note"]

    # on a phone the board scrolls inside itself, the page does not
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/boards/sales")
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    assert page.locator(".board").evaluate("b => b.scrollWidth > b.clientWidth")
    shot(page, "5-board-phone")


def test_overdue_markers_the_360_page_and_my_calendar(live_server, page, sign_in, shot) -> None:
    runner = live_server.runner
    for username in ("chi", "minh"):
        add_user(runner, username, [])
    owners = pipeline(runner)  # Tuesday 09:00: KH3's call-back (due Monday 18:00) is overdue
    with runner.db.unit() as s:
        calendar.book(s, "minh", "KH1", WEEK, duration_minutes=90, now=runner.now(), session_no=1)
        calendar.book(
            s, "minh", "KH3", WEEK + timedelta(days=2, hours=5), duration_minutes=90, now=runner.now(), session_no=1
        )

    sign_in(owners["KH3"])
    page.goto(f"{live_server.url}/boards/sales")
    card = page.locator(".board-card.overdue")
    assert card.count() == 1 and card.get_attribute("data-customer") == "KH3"
    assert "Quá hạn" in card.locator(".badge.overdue").inner_text() and "1 ngày" in card.inner_text()
    assert page.locator(".board-col[data-stage='Liên hệ lại'] h2 .badge.overdue").inner_text() == "1"
    shot(page, "1-board-overdue")
    page.goto(f"{live_server.url}/customers/?q=0905")
    assert page.locator("[data-customer]").count() == 1
    shot(page, "3-search")

    page.click("text=Đăng xuất")
    sign_in(owners["KH1"])  # each rep sees their own customers (runner.service.policy)
    page.goto(f"{live_server.url}/customers/KH1")
    assert page.locator("#timeline [data-kind=message]").count() == 2
    page.locator("#timeline [data-kind=message] summary").first.click()  # the full message opens
    assert "trial.easyedu.vn/saomai" in page.locator("#timeline [data-kind=message] details[open]").inner_text()
    # the training session booked above, and the demo the sales procedure put in the rep's calendar
    bookings = page.locator("[data-booking]")
    assert bookings.count() == 2 and bookings.filter(has_text="14/12/2026 09:00–10:30").count() == 1
    assert bookings.filter(has_text="Demo").count() == 1
    shot(page, "2-customer-360")

    page.click("text=Đăng xuất")
    sign_in("minh")
    page.click("nav.mainnav >> text=Lịch của tôi")
    page.click("text=Tuần sau")
    assert page.locator(".day[data-date='2026-12-14'] .booking").inner_text().startswith("09:00–10:30")
    assert page.locator(".day[data-date='2026-12-16'] .booking").count() == 1
    feed_url = page.locator("#feed-url").input_value()
    shot(page, "4-my-calendar")
    with urllib.request.urlopen(feed_url, timeout=10) as response:  # a calendar app: no cookies, no session
        body = response.read().decode()
        assert response.headers["Content-Type"].startswith("text/calendar")
    assert body.count("BEGIN:VEVENT") == 2 and "Sao Mai" in body
