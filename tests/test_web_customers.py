"""web/crm/customers/ over a real SQLite runner: search, the 360° page, notes, boards, My Calendar and its feed.

The customers come through processes/sales.bpmn (``tests.test_customer_views.pipeline``):
on Tuesday 09:00 KH1 is in Cấp Demo, KH2 in Tiếp nhận, KH3 in Liên hệ lại with an overdue call-back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from icalendar import Calendar

from runner.crm import bookings as calendar
from runner.crm import customers as crm
from runner.crm import reads
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service import accounts as users
from runner.service.runtime import Runner
from tests.scenario import TZ
from tests.test_customer_views import SALES_ORDER, company_runner, pipeline
from tests.webapp import WebClient, add_user
from web.crm.customers import feed_token, token_user

STAFF = ("an", "binh", "chi", "tuan", "hoa", "minh")
WEEK = datetime(2026, 12, 14, 9, 0, tzinfo=TZ)  # the Monday after the pipeline's Tuesday


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The company of tests.scenario at Monday 09:00, every diagram deployed, staff able to sign in."""
    r = company_runner(sqlite_url, registry)
    for username in STAFF:
        add_user(r, username, [])  # an account for an existing staff member (roles stay as they are)
    yield r
    r.db.engine.dispose()


@pytest.fixture
def owners(runner: Runner) -> dict[str, str]:
    """KH1..KH3 moved through the sales process; customer id -> owner."""
    return pipeline(runner)


def _owner(runner: Runner, customer_id: str) -> str:
    """Who owns the customer now (the 60-minute rule may have moved the lead on): they may see it."""
    with runner.db.read() as s:
        return crm.get_customer(s, customer_id).owner


def _stages(page: str) -> list[str]:
    return re.findall(r'<section class="board-col"[^>]*data-stage="([^"]+)"', page)


def _column(page: str, stage: str) -> str:
    start = page.index(f'data-stage="{stage}"')
    end = page.find('<section class="board-col"', start)
    return page[start : end if end > 0 else len(page)]


# --- search -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query,found,absent",
    [
        ("q=sao+mai", ["KH1"], ["KH2", "KH3"]),
        ("q=0987654", ["KH2"], ["KH1", "KH3"]),
        ("q=li%C3%AAn+h%E1%BB%87+l%E1%BA%A1i", ["KH3"], ["KH1", "KH2"]),  # a tag typed in the box
        ("tag=C%E1%BA%A4P+DEMO", ["KH1"], ["KH2", "KH3"]),
        ("", ["KH1", "KH2", "KH3"], []),
    ],
)
def test_search_by_name_phone_or_tag(
    client: WebClient, owners, query: str, found: list[str], absent: list[str]
) -> None:
    client.login("tuan")  # a team leader sees every customer (see tests/hostile/test_permissions.py)
    page = client.get(f"/customers/?{query}").get_data(as_text=True)
    assert re.findall(r'data-customer="([^"]+)"', page) == found
    for customer_id in found:
        assert f'href="/customers/{customer_id}"' in page
    assert all(f'data-customer="{c}"' not in page for c in absent)


def test_search_without_a_match_says_so(client: WebClient, owners) -> None:
    client.login("an")
    page = client.get("/customers/?q=kh%C3%B4ng+c%C3%B3").get_data(as_text=True)
    assert "Không tìm thấy khách hàng nào khớp." in page and "data-customer" not in page


# --- the 360° page ------------------------------------------------------------------------------------


def test_customer_page_shows_profile_stage_timeline_and_instances(client: WebClient, runner: Runner, owners) -> None:
    client.login("an")
    response = client.get("/customers/KH1")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>Trung tâm Anh ngữ Sao Mai" in page and "0912345678" in page and "saomai@example.vn" in page
    assert 'data-pipeline="Trong bán hàng">Cấp Demo<' in page
    assert ">CẤP DEMO</a>" in page and ">ĐÃ LIÊN HỆ</a>" in page
    owner = users.get_user(runner, owners["KH1"])["full_name"]
    assert f"<dd>{owner}</dd>" in page
    assert "<dt>Số nhân viên</dt><dd>12</dd>" in page and "<dt>Có bộ phận chuyên trách</dt><dd>Có</dd>" in page
    assert "Chưa có hợp đồng." in page
    # the timeline: completed tasks with who and what, messages, stages, the process's own note
    assert page.count('data-kind="task"') == 3 and page.count('data-kind="stage"') == 3
    assert f"hoàn thành bởi {owner}" in page
    assert "<dt>Kết quả thẩm định</dt><dd>Data chuẩn – liên hệ ngay</dd>" in page
    assert "<dt>Lịch hẹn Demo (ngày giờ)</dt><dd>09/12/2026 10:00</dd>" in page  # as typed, in business time
    assert "[EasyEdu] Tài khoản dùng thử Easy Edu Platform" in page and "Đã gửi" in page
    assert SALES_NOTE in page
    # the instance, linked to its diagram
    [instance] = inbox.instances(runner, business_key="KH1")
    assert f'href="/instances/{instance["id"]}/diagram"' in page
    assert "Quy trình Bán hàng" in page and "Đang chạy" in page


SALES_NOTE = "Trung tâm 2 cơ sở, muốn quản lý học phí và điểm danh."


def test_customer_page_lists_open_tasks_with_overdue_marked(client: WebClient, runner: Runner, owners) -> None:
    client.login("chi")
    page = client.get("/customers/KH3").get_data(as_text=True)
    [task] = inbox.tasks(runner, business_key="KH3")
    row = re.search(rf'<tr class="([^"]*)" data-task="{task["id"]}">(.*?)</tr>', page, re.S)
    assert row and row.group(1) == "overdue"
    assert "Gọi lại cho khách hàng" in row.group(2) and "Quá hạn" in row.group(2)
    assert f'href="/inbox/tasks/{task["id"]}"' in row.group(2)
    assert 'data-kind="timer"' in page and "Đến buổi gọi lại" in page


def test_customer_page_lists_the_customers_bookings(client: WebClient, runner: Runner, owners) -> None:
    with runner.db.unit() as s:
        calendar.book(s, "minh", "KH1", WEEK, duration_minutes=90, now=runner.now(), session_no=1)
    client.login("an")
    page = client.get("/customers/KH1").get_data(as_text=True)
    assert "14/12/2026 09:00–10:30" in page and "Đào tạo · buổi 1 · Trần Văn Minh" in page


def test_only_web_links_are_made_clickable(client: WebClient, runner: Runner, owners) -> None:
    with runner.db.unit() as s:
        crm.update_fields(s, crm.get_customer(s, "KH2"), {"trial_link": "javascript:alert(1)"})
    client.login("tuan")
    page = client.get("/customers/KH2").get_data(as_text=True)
    assert "<dd>javascript:alert(1)</dd>" in page and 'href="javascript:' not in page
    assert '<a href="https://trial.easyedu.vn/saomai"' in client.get("/customers/KH1").get_data(as_text=True)


def test_unknown_customer_is_404(client: WebClient, owners) -> None:
    client.login("an")
    assert client.get("/customers/KH404").status_code == 404
    assert client.post("/customers/KH404/notes", data={"text": "x"}).status_code == 404


def test_timeline_filter_shows_one_kind(client: WebClient, owners) -> None:
    client.login("an")
    page = client.get("/customers/KH1?kind=stage").get_data(as_text=True)
    assert re.findall(r'data-kind="(\w+)"', page) == ["stage"] * 3
    everything = client.get("/customers/KH1?kind=bogus").get_data(as_text=True)
    assert {"task", "stage", "message", "note", "instance"} <= set(re.findall(r'data-kind="(\w+)"', everything))


# --- notes (Thảo luận) -----------------------------------------------------------------------------


def test_a_note_is_added_and_shown_first_with_its_author(client: WebClient, runner: Runner, owners) -> None:
    client.login(_owner(runner, "KH2"))
    response = client.post("/customers/KH2/notes", data={"text": "Khách hẹn gọi lại sau 15h"})
    assert response.status_code == 302 and response.headers["Location"] == "/customers/KH2#timeline"
    page = client.get("/customers/KH2").get_data(as_text=True)
    assert "Đã lưu ghi chú." in page
    first = re.search(r'<li class="kind-(\w+)" data-kind="\w+">(.*?)</li>', page, re.S)
    assert first.group(1) == "note" and "Khách hẹn gọi lại sau 15h" in first.group(2)
    assert users.get_user(runner, _owner(runner, "KH2"))["full_name"] in first.group(2)


def test_a_website_forms_note_is_titled_in_words_not_by_its_kind(client: WebClient, runner: Runner, owners) -> None:
    with runner.db.unit() as s:
        crm.add_note(s, "KH2", "Form Website: Ai đó, 0912345678", now=runner.now(), kind="web_form")
    client.login(_owner(runner, "KH2"))
    first = re.search(
        r'<li class="kind-note" data-kind="note">(.*?)</li>', client.get("/customers/KH2").get_data(as_text=True), re.S
    )
    assert (
        first and '<span class="badge">Biểu mẫu website</span>' in first.group(1) and "web_form" not in first.group(1)
    )


@pytest.mark.parametrize(
    "text,error", [("   ", "Ghi chú không được để trống."), ("x" * 5001, "Ghi chú dài quá 5000 ký tự.")]
)
def test_a_bad_note_comes_back_with_the_text_kept(
    client: WebClient, runner: Runner, owners, text: str, error: str
) -> None:
    client.login(_owner(runner, "KH2"))
    response = client.post("/customers/KH2/notes", data={"text": text})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert error in page and f">{text}</textarea>" in page
    assert 'data-kind="note"' not in client.get("/customers/KH2").get_data(as_text=True)


def test_a_note_needs_the_csrf_token(client: WebClient, owners) -> None:
    client.login("binh")
    assert client.post("/customers/KH2/notes", data={"text": "x"}, csrf=False).status_code == 400
    assert 'data-kind="note"' not in client.get("/customers/KH2").get_data(as_text=True)


# --- boards -------------------------------------------------------------------------------------------


def test_board_has_the_stage_columns_in_order_with_cards_and_counts(client: WebClient, runner: Runner, owners) -> None:
    client.login("tuan")
    page = client.get("/boards/").get_data(as_text=True)
    assert _stages(page) == SALES_ORDER
    kh3 = _column(page, "Liên hệ lại")
    assert 'class="board-card overdue" href="/customers/KH3"' in kh3 and "Trung tâm Kỹ năng Ánh Dương" in kh3
    assert users.get_user(runner, owners["KH3"])["full_name"] in kh3 and "1 ngày" in kh3 and "Quá hạn" in kh3
    assert '<span class="count" title="Số khách hàng">1</span>' in kh3
    demo = _column(page, "Cấp Demo")
    assert 'class="board-card" href="/customers/KH1"' in demo
    assert '<span class="count" title="Số khách hàng">0</span>' in _column(page, "Chốt")
    assert "3 khách hàng" in page and "1 có việc quá hạn" in page


def test_an_overdue_badge_at_its_cap_says_there_may_be_more(
    client: WebClient, owners, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A column's overdue badge stops counting at reads.OVERDUE_CAP (100): here 1, which KH3 reaches."""
    monkeypatch.setattr(reads, "OVERDUE_CAP", 1)
    client.login("tuan")
    page = client.get("/boards/").get_data(as_text=True)
    assert '<span class="badge overdue" title="Khách có việc quá hạn">1+</span>' in _column(page, "Liên hệ lại")
    assert "1+ có việc quá hạn" in page
    client.post("/lang/en", data={"next": "/boards/"})
    assert "1+ with overdue tasks" in client.get("/boards/").get_data(as_text=True)


def test_board_moves_a_card_when_the_customer_moves(client: WebClient, runner: Runner, owners) -> None:
    client.login(_owner(runner, "KH2"))
    assert 'href="/customers/KH2"' in _column(client.get("/boards/sales").get_data(as_text=True), "Tiếp nhận")
    [task] = inbox.tasks(runner, business_key="KH2")
    runner.complete_task(task["id"], {"verdict": "good"}, actor=task["assignee"])
    runner.run_due()
    page = client.get("/boards/sales").get_data(as_text=True)
    assert 'href="/customers/KH2"' not in _column(page, "Tiếp nhận")
    assert 'href="/customers/KH2"' in _column(page, "Đã liên hệ") and "hôm nay" in _column(page, "Đã liên hệ")


def test_board_of_my_customers(client: WebClient, owners) -> None:
    me = owners["KH1"]
    client.login(me)
    page = client.get("/boards/sales?owner=me").get_data(as_text=True)
    cards = re.findall(r'data-customer="([^"]+)"', page)
    assert "KH1" in cards and "KH3" not in cards
    client.login("tuan")
    assert client.get(f"/boards/sales?owner={owners['KH3']}").get_data(as_text=True).count('data-customer="KH3"') == 1


def test_after_sale_board_and_unknown_board(client: WebClient, owners) -> None:
    client.login("hoa")
    page = client.get("/boards/onboarding").get_data(as_text=True)
    assert _stages(page)[:3] == ["TIẾP NHẬN", "ĐÀO TẠO", "BÀN GIAO"] and len(_stages(page)) == 8
    assert 'aria-current="page">Sau bán hàng</a>' in page
    assert client.get("/boards/nope").status_code == 404


def test_pages_in_english(client: WebClient, owners) -> None:
    client.login("tuan")
    client.post("/lang/en", data={"next": "/boards/"})
    page = client.get("/boards/").get_data(as_text=True)
    assert "1 day" in _column(page, "Liên hệ lại") and "Overdue" in page and "3 customers" in page
    detail = client.get("/customers/KH1").get_data(as_text=True)
    assert "Timeline" in detail and "completed by" in detail and "Moved to stage" in detail
    assert "Sync with the calendar on your phone" in client.get("/calendar/").get_data(as_text=True)


# --- My Calendar and its feed ------------------------------------------------------------------------


@pytest.fixture
def bookings(runner: Runner, owners) -> dict[str, int]:
    """Teacher minh: two sessions in the week of 14 December (one cancelled) and one the week after."""
    with runner.db.unit() as s:
        first = calendar.book(s, "minh", "KH1", WEEK, duration_minutes=90, now=runner.now(), session_no=1)
        second = calendar.book(
            s, "minh", "KH3", WEEK + timedelta(days=2, hours=5), duration_minutes=90, now=runner.now(), session_no=1
        )
        later = calendar.book(
            s, "minh", "KH1", WEEK + timedelta(days=7), duration_minutes=90, now=runner.now(), session_no=2
        )
        calendar.cancel(s, second, runner.now())
        return {"first": first.id, "second": second.id, "later": later.id}


def test_my_calendar_shows_my_week(client: WebClient, bookings) -> None:
    client.login("minh")
    page = client.get("/calendar/?week=2026-12-16").get_data(as_text=True)  # any day picks its week
    assert re.findall(r'data-date="([^"]+)"', page)[0] == "2026-12-14"
    assert re.findall(r'data-booking="(\d+)"', page) == [str(bookings["first"]), str(bookings["second"])]
    assert "09:00–10:30" in page and "Trung tâm Anh ngữ Sao Mai" in page and "buổi 1" in page
    assert f'class="booking cancelled" data-booking="{bookings["second"]}"' in page and "Đã hủy" in page
    assert 'href="/calendar/?week=2026-12-21"' in page and 'href="/calendar/?week=2026-12-07"' in page
    assert "https://online.emso.vn/Trung%20t%C3%A2m%20Anh%20ng%E1%BB%AF%20Sao%20Mai" in page


def test_my_calendar_starts_on_this_week_and_is_mine_only(client: WebClient, bookings) -> None:
    client.login("minh")
    page = client.get("/calendar/").get_data(as_text=True)
    assert re.findall(r'data-date="([^"]+)"', page)[0] == "2026-12-07"  # the clock is at Tuesday 8 December
    assert 'class="day today" data-date="2026-12-08"' in page and "data-booking" not in page
    client.logout()
    client.login("hoa")
    assert "data-booking" not in client.get("/calendar/?week=2026-12-14").get_data(as_text=True)
    assert client.get("/calendar/?week=not-a-date").status_code == 200


def test_the_feed_needs_no_session_and_lists_my_appointments(app: Flask, client: WebClient, bookings) -> None:
    client.login("minh")
    page = client.get("/calendar/").get_data(as_text=True)
    [url] = re.findall(r'id="feed-url" value="([^"]+)"', page)
    assert url.startswith("http://localhost/calendar/") and url.endswith(".ics")
    assert f'href="webcal://{url.split("://")[1]}"' in page
    anonymous = app.test_client()
    response = anonymous.get(url.replace("http://localhost", ""))
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    events = Calendar.from_ical(response.data).walk("VEVENT")
    assert [(str(e["SUMMARY"]), str(e["STATUS"])) for e in events] == [
        ("Đào tạo buổi 1 - Trung tâm Anh ngữ Sao Mai", "CONFIRMED"),
        ("Đào tạo buổi 1 - Trung tâm Kỹ năng Ánh Dương", "CANCELLED"),
        ("Đào tạo buổi 2 - Trung tâm Anh ngữ Sao Mai", "CONFIRMED"),
    ]


def test_a_wrong_feed_token_is_404(app: Flask, runner: Runner, bookings) -> None:
    anonymous = app.test_client()
    with app.test_request_context("/"):
        good = feed_token("minh")
        other = feed_token("hoa")
    name, signature = good.split(".")
    forged = f"{other.split('.')[0]}.{signature}"  # hoa's name with minh's signature
    for token in ("no-such-id", f"{name}.{'0' * 32}", forged, f"{name}.", "%%%.abc", signature):
        assert anonymous.get(f"/calendar/{token}.ics").status_code == 404, token
    assert anonymous.get(f"/calendar/{good}.ics").status_code == 200
    users.set_active(runner, "minh", False)
    assert anonymous.get(f"/calendar/{good}.ics").status_code == 404


def test_a_new_feed_address_retires_the_old_one(app: Flask, client: WebClient, runner: Runner, bookings) -> None:
    client.login("minh")
    [old] = re.findall(
        r'id="feed-url" value="http://localhost([^"]+)"', client.get("/calendar/").get_data(as_text=True)
    )
    anonymous = app.test_client()
    assert anonymous.get(old).status_code == 200
    assert client.post("/calendar/feed", csrf=False).status_code == 400  # a form, not a link
    response = client.post("/calendar/feed")
    assert response.status_code == 302 and response.headers["Location"].endswith("/calendar/#h-feed")
    page = client.get("/calendar/").get_data(as_text=True)
    [new] = re.findall(r'id="feed-url" value="http://localhost([^"]+)"', page)
    assert new != old and "Địa chỉ cũ không còn dùng được" in page
    assert anonymous.get(old).status_code == 404
    assert anonymous.get(new).status_code == 200
    assert users.feed_generation(runner, "minh") == 1 and users.feed_generation(runner, "hoa") == 0


def test_a_feed_address_made_before_generations_still_works(app: Flask) -> None:
    # Addresses handed out before feed generations existed are generation 0's.
    with app.test_request_context("/"):
        key = app.config["SECRET_KEY"]
        key = key if isinstance(key, bytes) else str(key).encode()
        legacy = hmac.new(key, b"my-calendar-feed\x00minh", hashlib.sha256).hexdigest()[:32]
        assert feed_token("minh").endswith("." + legacy)


def test_feed_tokens_depend_on_the_secret_key(app: Flask) -> None:
    with app.test_request_context("/"):
        token = feed_token("minh")
        assert token_user(token) == "minh"
        app.config["SECRET_KEY"] = "another-secret"
        assert token_user(token) is None and token_user(feed_token("minh")) == "minh"
