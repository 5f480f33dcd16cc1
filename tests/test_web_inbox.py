"""The task inbox over a real SQLite runner: lists, filters, claim/unclaim/reassign, the task page, complete."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from runner.crm import customers as crm
from runner.crm.models import Note
from runner.errors import Conflict, Invalid
from runner.queries import tasklists as inbox
from runner.service.runtime import Runner
from tests.webapp import WebClient, add_user

WEB = Path(__file__).parent / "bpmn" / "web"
NOTIFY = Path(__file__).parent / "bpmn" / "jobs" / "notify.bpmn"


@pytest.fixture
def sales(runner: Runner, staff) -> Runner:
    """The lead and follow-up processes, two more sales reps, two customers, at 09:00 tomorrow.

    The virtual clock starts at the real time; a morning keeps "due today" filters about
    one day whenever the suite runs (the tasks fall due a few hours later).
    """
    local = runner.now().astimezone(runner.settings.tz)
    morning = datetime.combine(local.date() + timedelta(days=1), time(9), tzinfo=runner.settings.tz)
    runner.advance_clock(morning - runner.now())
    runner.deploy([WEB / "lead.bpmn", WEB / "followup.bpmn"])
    add_user(runner, "sales2", ["sales"], full_name="Trần Văn Hai")
    add_user(runner, "lead1", ["sales", "team_leader"], full_name="Lê Trưởng Nhóm")
    with runner.db.unit() as s:
        crm.add_customer(s, "KH1", "Trung tâm Anh ngữ Ánh Dương", phone="0912345678", owner="sales1", now=runner.now())
        crm.add_customer(s, "KH2", "Trường Tiểu học Hoa Sen", phone="0987654321", owner="sales2", now=runner.now())
    return runner


def _task(runner: Runner, business_key: str, element_id: str) -> dict:
    [row] = [t for t in inbox.tasks(runner, business_key=business_key) if t["element_id"] == element_id]
    return row


def _ids(page: str) -> list[str]:
    return re.findall(r'data-task="([^"]+)"', page)


# --- lists ------------------------------------------------------------------------------------


def test_group_tasks_are_the_unclaimed_tasks_of_my_roles(client: WebClient, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    client.login("sales1")
    assert _ids(client.get("/inbox/").get_data(as_text=True)) == []
    page = client.get("/inbox/group").get_data(as_text=True)
    assert _ids(page) == [_task(sales, "KH1", "verify_lead")["id"]]
    assert "Trung tâm Anh ngữ Ánh Dương" in page and "Nhận việc" in page
    client.logout()
    client.login("teacher1")
    assert _ids(client.get("/inbox/group").get_data(as_text=True)) == []


def test_overdue_tasks_come_first_and_are_marked(client: WebClient, sales: Runner) -> None:
    sales.start_instance("web_followup", "KH2")  # no due date: last
    sales.start_instance("web_lead", "KH1")  # due in 1 hour ...
    sales.advance_clock(timedelta(hours=2))  # ... now overdue
    sales.start_instance("web_lead", "KH2")  # due in 1 hour
    client.login("sales1")
    page = client.get("/inbox/group").get_data(as_text=True)
    expected = [
        _task(sales, "KH1", "verify_lead")["id"],
        _task(sales, "KH2", "verify_lead")["id"],
        _task(sales, "KH2", "care_call")["id"],
    ]
    assert _ids(page) == expected
    rows = re.findall(r'<tr class="([^"]*)" data-task="([^"]+)"', page)
    assert [cls for cls, _ in rows] == ["overdue", "", ""]
    assert page.count("Quá hạn ·") == 1


@pytest.mark.parametrize(
    "query,expected",
    [
        ("process=web_followup", [("KH2", "care_call")]),
        ("stage=Tiếp nhận", [("KH1", "verify_lead"), ("KH2", "verify_lead")]),
        ("customer=KH2", [("KH2", "verify_lead"), ("KH2", "care_call")]),
        ("due=overdue", [("KH1", "verify_lead")]),
        ("due=today", [("KH1", "verify_lead"), ("KH2", "verify_lead")]),
        ("customer=KH2&stage=Tiếp nhận", [("KH2", "verify_lead")]),
        ("due=bogus", [("KH1", "verify_lead"), ("KH2", "verify_lead"), ("KH2", "care_call")]),
    ],
)
def test_filters(client: WebClient, sales: Runner, query: str, expected: list[tuple[str, str]]) -> None:
    sales.start_instance("web_lead", "KH1")
    sales.advance_clock(timedelta(hours=2))
    sales.start_instance("web_lead", "KH2")
    sales.start_instance("web_followup", "KH2")
    client.login("sales1")
    page = client.get(f"/inbox/group?{query}").get_data(as_text=True)
    assert _ids(page) == [_task(sales, key, element)["id"] for key, element in expected]


def test_filter_choices_come_from_open_tasks_and_the_page(client: WebClient, sales: Runner) -> None:
    """Processes and stages of open tasks (not only this page's); customers are typed, suggested from the page."""
    sales.start_instance("web_lead", "KH1")
    sales.start_instance("web_followup", "KH2")
    client.login("sales1")
    page = client.get("/inbox/group?customer=KH1").get_data(as_text=True)
    assert '<option value="web_followup" >Chăm sóc sau demo (thử)</option>' in page
    assert '<option value="Đang chăm sóc" >' in page
    assert 'name="customer" value="KH1"' in page
    assert '<option value="KH1" label="Trung tâm Anh ngữ Ánh Dương"></option>' in page
    assert '<option value="KH2" label=' not in page


def test_inbox_queries_reject_an_unknown_due_filter(sales: Runner) -> None:
    with pytest.raises(Invalid, match="due filter 'soon'"):
        inbox.my_tasks(sales, "sales1", due="soon")


# --- claim, unclaim, reassign ---------------------------------------------------------------------


def test_claim_moves_the_task_to_my_tasks(client: WebClient, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    task_id = _task(sales, "KH1", "verify_lead")["id"]
    client.login("sales1")
    response = client.post(f"/inbox/tasks/{task_id}/claim")
    assert response.status_code == 302 and response.headers["Location"] == f"/inbox/tasks/{task_id}"
    assert _task(sales, "KH1", "verify_lead")["assignee"] == "sales1"
    assert _ids(client.get("/inbox/").get_data(as_text=True)) == [task_id]
    assert _ids(client.get("/inbox/group").get_data(as_text=True)) == []
    [event] = inbox.history(sales, events=["task.claimed"])
    assert event["actor"] == "sales1" and event["business_key"] == "KH1"


def test_a_task_claimed_by_someone_else_cannot_be_claimed(app, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    task_id = _task(sales, "KH1", "verify_lead")["id"]
    first, second = app.test_client(), app.test_client()
    first.login("sales1")
    second.login("sales2")
    page_before = second.get(f"/inbox/tasks/{task_id}")  # both see it offered
    assert page_before.status_code == 200 and "Nhận việc" in page_before.get_data(as_text=True)
    assert first.post(f"/inbox/tasks/{task_id}/claim").status_code == 302
    response = second.post(f"/inbox/tasks/{task_id}/claim", follow_redirects=True)
    assert response.status_code == 200
    assert "Việc “Xác minh lead” đã được Nhân viên sales nhận." in response.get_data(as_text=True)
    assert _task(sales, "KH1", "verify_lead")["assignee"] == "sales1"
    assert second.get(f"/inbox/tasks/{task_id}").status_code == 403  # someone else's task now


def test_only_candidates_see_and_claim_a_task(client: WebClient, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    task_id = _task(sales, "KH1", "verify_lead")["id"]
    client.login("teacher1")
    assert client.get(f"/inbox/tasks/{task_id}").status_code == 403
    assert client.post(f"/inbox/tasks/{task_id}/claim").status_code == 403
    assert client.post(f"/inbox/tasks/{task_id}/complete", data={"lead_quality": "good"}).status_code == 403
    assert _task(sales, "KH1", "verify_lead")["assignee"] is None


def test_unknown_tasks_are_404(client: WebClient, sales: Runner) -> None:
    client.login("sales1")
    assert client.get("/inbox/tasks/nope").status_code == 404
    assert client.post("/inbox/tasks/nope/claim").status_code == 404


def test_unclaim_gives_the_task_back(client: WebClient, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    task_id = _task(sales, "KH1", "verify_lead")["id"]
    client.login("sales1")
    client.post(f"/inbox/tasks/{task_id}/claim")
    response = client.post(f"/inbox/tasks/{task_id}/unclaim")
    assert response.status_code == 302 and response.headers["Location"] == "/inbox/group"
    assert _task(sales, "KH1", "verify_lead")["assignee"] is None
    with pytest.raises(Conflict, match="not claimed by sales2"):
        sales.unclaim_task(task_id, "sales2")


def test_team_leader_reassigns_to_a_candidate_only(app, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    task_id = _task(sales, "KH1", "verify_lead")["id"]
    sales.claim_task(task_id, "sales1", ["sales"])
    leader, rep = app.test_client(), app.test_client()
    leader.login("lead1")
    rep.login("sales1")
    assert rep.post(f"/inbox/tasks/{task_id}/reassign", data={"to": "sales1"}).status_code == 403
    page = leader.get("/inbox/all").get_data(as_text=True)
    assert _ids(page) == [task_id] and '<option value="sales2" >Trần Văn Hai</option>' in page
    assert 'value="teacher1"' not in page  # only candidates are offered
    response = leader.post(
        f"/inbox/tasks/{task_id}/reassign", data={"to": "sales2", "next": "/inbox/all"}, follow_redirects=True
    )
    assert "Đã giao việc “Xác minh lead” cho Trần Văn Hai." in response.get_data(as_text=True)
    assert _task(sales, "KH1", "verify_lead")["assignee"] == "sales2"
    response = leader.post(f"/inbox/tasks/{task_id}/reassign", data={"to": "teacher1"}, follow_redirects=True)
    assert "người này không thuộc nhóm được giao" in response.get_data(as_text=True)
    assert _task(sales, "KH1", "verify_lead")["assignee"] == "sales2"
    leader.post(f"/inbox/tasks/{task_id}/reassign", data={"to": ""})
    assert _task(sales, "KH1", "verify_lead")["assignee"] is None
    [moved, back] = inbox.history(sales, events=["task.reassigned"])
    assert moved["details"]["from"] == "sales1" and moved["details"]["to"] == "sales2" and moved["actor"] == "lead1"
    assert back["details"]["to"] is None


def test_claims_race_on_the_runner(sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    task_id = _task(sales, "KH1", "verify_lead")["id"]
    sales.claim_task(task_id, "sales1", ["sales"])
    sales.claim_task(task_id, "sales1", ["sales"])  # claiming one's own task again is harmless
    with pytest.raises(Conflict, match="already claimed by sales1"):
        sales.claim_task(task_id, "sales2", ["sales"])
    sales.start_instance("web_lead", "KH2")
    with pytest.raises(Invalid, match="may not claim"):
        sales.claim_task(_task(sales, "KH2", "verify_lead")["id"], "teacher1", ["teacher"])
    assert _task(sales, "KH2", "verify_lead")["assignee"] is None


# --- the task page -------------------------------------------------------------------------------


def test_task_page_shows_the_form_and_the_customer(client: WebClient, sales: Runner) -> None:
    sales.deploy([NOTIFY])
    sales.start_instance("jobs_notify", "KH1", {"channel": "zalo", "text": "Chào anh chị, em là Lan"})
    sales.run_due()
    with sales.db.unit() as s:
        s.add(Note(customer_id="KH1", text="Khách hẹn gọi lại chiều thứ Sáu", author="sales1", created_at=sales.now()))
    sales.start_instance("web_lead", "KH1")
    task = _task(sales, "KH1", "verify_lead")
    sales.claim_task(task["id"], "sales1", ["sales"])
    client.login("sales1")
    page = client.get(f"/inbox/tasks/{task['id']}").get_data(as_text=True)
    assert '<label for="f-lead_quality" class="required">Đánh giá lead</label>' in page
    assert re.search(r'<option value="doubtful"\s*>Nghi ngờ</option>', page)
    assert re.search(r'<input id="f-source" value="Facebook" readonly>', page)
    assert 'name="source"' not in page  # read-only fields are not posted back
    context = page[page.index('class="card customer-context"') :]
    assert "0912345678" in context and "Nhân viên sales" in context
    assert "Khách hẹn gọi lại chiều thứ Sáu" in context
    assert "zalo" in context and "Chào anh chị, em là Lan" in context
    assert "Tiếp nhận" in page  # the task's stage


def test_task_page_for_a_task_without_customer_record(client: WebClient, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH404")
    task = _task(sales, "KH404", "verify_lead")
    client.login("sales1")
    page = client.get(f"/inbox/tasks/{task['id']}").get_data(as_text=True)
    assert "Chưa có hồ sơ khách hàng cho mã này." in page


def test_validation_errors_are_per_field_and_keep_the_values(client: WebClient, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    sales.complete_task(_task(sales, "KH1", "verify_lead")["id"], {"lead_quality": "good"}, actor="sales1")
    task_id = _task(sales, "KH1", "contact_call")["id"]
    sales.claim_task(task_id, "sales1", ["sales"])
    client.login("sales1")
    response = client.post(
        f"/inbox/tasks/{task_id}/complete",
        data={
            "reached": "true",
            "business_model": "villa",
            "staff_count": "0",
            "demo_date": "not a date",
            "note": "Khách bận, gọi lại sau",
        },
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    errors = dict(
        re.findall(
            r'<div class="field invalid" data-field="(\w+)">.*?<p class="error"[^>]*>([^<]+)</p>', page, flags=re.S
        )
    )
    assert errors == {
        "business_model": "Hãy chọn một giá trị trong danh sách cho Mô hình kinh doanh.",
        "staff_count": "Số nhân viên phải từ 1 trở lên.",
        "demo_date": "Ngày hẹn demo phải là một ngày hợp lệ.",
    }
    assert 'value="0"' in page and "Khách bận, gọi lại sau</textarea>" in page and 'value="not a date"' in page
    assert re.search(r'id="f-reached" name="reached" value="true" checked', page)
    assert _task(sales, "KH1", "contact_call")["state"] == "open"
    missing = client.post(f"/inbox/tasks/{task_id}/complete", data={}).get_data(as_text=True)
    assert "Vui lòng nhập Số nhân viên." in missing


def test_completing_lands_on_my_next_task_for_the_same_customer(client: WebClient, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    task_id = _task(sales, "KH1", "verify_lead")["id"]
    client.login("sales1")
    client.post(f"/inbox/tasks/{task_id}/claim")
    response = client.post(f"/inbox/tasks/{task_id}/complete", data={"lead_quality": "good"})
    following = _task(sales, "KH1", "contact_call")["id"]
    assert response.status_code == 302 and response.headers["Location"] == f"/inbox/tasks/{following}"
    client.post(f"/inbox/tasks/{following}/claim")
    response = client.post(f"/inbox/tasks/{following}/complete", data={"staff_count": "25", "demo_date": "2026-12-01"})
    assert response.headers["Location"] == "/inbox/"  # the next one is the team leader's
    done = inbox.history(sales, events=["task.completed"])
    # an unticked checkbox is False; fields the browser did not send stay as they were
    assert done[-1]["details"]["data"] == {"staff_count": 25, "demo_date": "2026-12-01", "reached": False}


def test_two_people_completing_the_same_task(app, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    task_id = _task(sales, "KH1", "verify_lead")["id"]
    first, second = app.test_client(), app.test_client()
    first.login("sales1")
    second.login("sales2")
    assert first.post(f"/inbox/tasks/{task_id}/complete", data={"lead_quality": "good"}).status_code == 302
    response = second.post(f"/inbox/tasks/{task_id}/complete", data={"lead_quality": "bad"}, follow_redirects=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Việc “Xác minh lead” đã được Nhân viên sales hoàn thành trước bạn." in page
    [done] = inbox.history(sales, events=["task.completed"])
    assert done["actor"] == "sales1" and done["details"]["data"]["lead_quality"] == "good"


def test_completing_a_task_claimed_by_someone_else(app, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    task_id = _task(sales, "KH1", "verify_lead")["id"]
    sales.claim_task(task_id, "sales1", ["sales"])
    other = app.test_client()
    other.login("sales2")
    response = other.post(f"/inbox/tasks/{task_id}/complete", data={"lead_quality": "bad"}, follow_redirects=True)
    assert "Việc “Xác minh lead” đã được Nhân viên sales nhận." in response.get_data(as_text=True)
    assert _task(sales, "KH1", "verify_lead")["state"] == "open"


def test_a_finished_task_page_says_who_did_it(client: WebClient, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    task_id = _task(sales, "KH1", "verify_lead")["id"]
    sales.complete_task_as(task_id, {"lead_quality": "good"}, "sales1", ["sales"])
    client.login("sales1")
    page = client.get(f"/inbox/tasks/{task_id}").get_data(as_text=True)
    assert "Việc này đã kết thúc" in page and "hoàn thành bởi Nhân viên sales" in page


def test_the_inbox_in_english(client: WebClient, sales: Runner) -> None:
    sales.start_instance("web_lead", "KH1")
    client.login("sales1")
    client.post("/lang/en")
    page = client.get("/inbox/group").get_data(as_text=True)
    assert "Group tasks" in page and "Claim" in page and "Việc của nhóm" not in page
