"""The routines' pages with the real Flask app: the team leader's check-in page and feature requests.

The diagrams run on the test runner's virtual clock; people sign in through the real form and
post with CSRF tokens (``tests/webapp.py``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from runner.crm import routines
from runner.queries import tasklists as inbox
from runner.service.runtime import Runner
from tests.scenario import TZ, add_customer, settle
from tests.webapp import WebClient

PROCESSES = Path(__file__).resolve().parents[1] / "processes"


@pytest.fixture
def routined(runner: Runner, staff) -> Runner:
    """The test runner with both routines deployed, and its clock just past the first check-in's 08:30."""
    runner.deploy([PROCESSES / "checkin.bpmn", PROCESSES / "feature_request.bpmn"])
    for _ in range(24 * 4):
        if inbox.instances(runner, process_key=routines.CHECKIN):
            break
        runner.advance_clock(timedelta(hours=1))
        settle(runner)
    return runner


def checkin_day(runner: Runner):
    [first, *_] = sorted(i["created_at"] for i in inbox.instances(runner, process_key=routines.CHECKIN))
    return first.astimezone(TZ).date()


def test_the_team_leader_reads_each_reps_answers_on_one_page(client: WebClient, routined: Runner) -> None:
    day = checkin_day(routined)
    [task] = inbox.tasks(routined, user="sales1", process_key=routines.CHECKIN)
    client.login("sales1")
    form = client.get(f"/inbox/tasks/{task['id']}").get_data(as_text=True)
    assert all(q in form for q in ("Hôm qua đã làm những gì?", "Có sáng kiến, giải pháp nào mới không?"))
    page = client.post(
        f"/inbox/tasks/{task['id']}/complete",
        data={"yesterday": "Gọi 12 lead", "today": "Demo Sao Mai", "blockers": "Chờ duyệt giá", "ideas": ""},
    )
    assert page.status_code in (302, 303), page.get_data(as_text=True)[:500]
    client.logout()
    client.login("team_leader1")
    html = client.get(f"/checkins/?day={day.isoformat()}").get_data(as_text=True)
    assert 'data-rep="sales1" data-state="answered"' in html
    assert "Gọi 12 lead" in html and "Demo Sao Mai" in html and "Chờ duyệt giá" in html
    assert "Hôm qua đã làm những gì?" in html
    other = client.get(f"/checkins/?day={(day - timedelta(days=30)).isoformat()}").get_data(as_text=True)
    assert 'data-testid="no-checkin"' in other


def test_a_bad_day_is_a_400_naming_the_field(client: WebClient, routined: Runner) -> None:
    client.login("team_leader1")
    response = client.get("/checkins/?day=31-12-2026")
    assert response.status_code == 400 and "day" in response.get_data(as_text=True)


def test_a_sales_rep_may_not_read_the_check_in_page(client: WebClient, routined: Runner) -> None:
    client.login("sales1")
    assert client.get("/checkins/").status_code == 403


def test_a_feature_request_from_a_customer_page_reaches_the_product_group_and_its_state_the_requester(
    client: WebClient, routined: Runner
) -> None:
    add_customer(routined, "KH0001", "Trung tâm Anh ngữ Sao Mai")
    client.login("sales1")
    detail = client.get("/customers/KH0001").get_data(as_text=True)
    assert "/feature-requests/new?customer=KH0001" in detail
    assert client.get("/feature-requests/new?customer=KH0001").status_code == 200
    sent = client.post(
        "/feature-requests/new",
        data={"title": "Điểm danh bằng QR", "description": "Học sinh quét mã khi vào lớp", "customer": "KH0001"},
    )
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/feature-requests/")
    settle(routined)
    html = client.get("/feature-requests/").get_data(as_text=True)
    assert "Điểm danh bằng QR" in html and 'data-state="received"' in html and "Đã tiếp nhận" in html
    [task] = [t for t in inbox.tasks(routined, process_key=routines.FEATURE_REQUEST)]
    assert task["candidate_groups"] == ["product"] and task["business_key"] == "KH0001"
    routined.complete_task(task["id"], {"decision": "accept", "product_reply": "Quý 1"}, actor="product1")
    settle(routined)
    html = client.get("/feature-requests/").get_data(as_text=True)
    assert 'data-state="accepted"' in html and "Quý 1" in html
    client.post("/lang/en", data={"next": "/feature-requests/"})
    english = client.get("/feature-requests/").get_data(as_text=True)
    assert "Accepted" in english and "My feature requests" in english


def test_a_standalone_request_and_bad_input_naming_the_fields(client: WebClient, routined: Runner) -> None:
    client.login("teacher1")
    refused = client.post("/feature-requests/new", data={"title": " ", "description": ""})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="title-error"' in html and 'id="description-error"' in html
    assert client.post("/feature-requests/new", data={"title": "x", "description": "y"}, csrf=False).status_code == 400
    sent = client.post("/feature-requests/new", data={"title": "Lịch dạy trên điện thoại", "description": "Xem lịch"})
    assert sent.status_code == 302
    [mine] = routines.feature_requests(routined, "teacher1")
    assert (mine["customer_id"], mine["state"]) == (None, "received")


def test_a_customer_the_person_may_not_see_is_a_404(client: WebClient, routined: Runner) -> None:
    add_customer(routined, "KH0002", "Trường Tiểu học Hoa Sen", owner="sales1")
    client.login("teacher1")
    assert client.get("/feature-requests/new?customer=KH0002").status_code == 404
    refused = client.post("/feature-requests/new", data={"title": "a", "description": "b", "customer": "KH0002"})
    assert refused.status_code == 404
    assert routines.feature_requests(routined, "teacher1") == []
