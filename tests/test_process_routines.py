"""Seed 001's internal routines: the daily check-in (checkin.bpmn) and feature requests (feature_request.bpmn).

The runner scenarios move the virtual clock (``tests/scenario.py``); every unit of work saves the
instance and the next restores it. The engine twins (``tests/harness.py``) run the same diagrams
straight through and with a save/restore after every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import holidays
import pytest

from runner.crm import routines
from runner.errors import FormInvalid
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.harness import Harness
from tests.scenario import STAFF, TZ, add_customer, advance, company, runner_at, settle

PROCESSES = Path(__file__).resolve().parents[1] / "processes"
REPS = ("an", "binh", "chi")  # the sales reps of tests/scenario.py's company
PRODUCT = ("tu", "Bùi Ngọc Tú", ("product",), "0901000009")
SUNDAY_START = datetime(2026, 12, 6, 20, 0, tzinfo=TZ)  # a Sunday evening
ANSWERS = {
    "yesterday": "Gọi 12 lead, demo 2 trung tâm",
    "today": "Đàm phán hợp đồng Sao Mai",
    "blockers": "Cần trưởng phòng duyệt khuyến mãi",
    "ideas": "Mẫu tin nhắn Zalo mới cho lead",
}


@pytest.fixture
def r(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """A company (three reps, a product member) on Sunday evening with both routines deployed."""
    runner = runner_at(sqlite_url, registry, SUNDAY_START)
    company(runner, (*STAFF, PRODUCT))
    runner.deploy([PROCESSES / "checkin.bpmn", PROCESSES / "feature_request.bpmn"])
    yield runner
    runner.db.engine.dispose()


def checkin_starts(r: Runner) -> list[datetime]:
    """When each check-in instance started (business time), in order."""
    rows = inbox.instances(r, process_key=routines.CHECKIN)
    return sorted(row["created_at"].astimezone(TZ) for row in rows)


def checkin_tasks(r: Runner) -> list[dict]:
    return [t for t in inbox.tasks(r, process_key=routines.CHECKIN) if t["element_id"] == routines.CHECKIN_TASK]


def answer(r: Runner, rep: str, values: dict[str, str] = ANSWERS) -> None:
    [task] = [t for t in checkin_tasks(r) if t["assignee"] == rep]
    r.complete_task(task["id"], dict(values), actor=rep)
    settle(r)


# --- the daily check-in ------------------------------------------------------------------------------


def test_check_ins_start_at_0830_on_working_days_and_skip_sundays_and_days_off(r: Runner) -> None:
    r.add_day_off(date(2026, 12, 10), "Nghỉ team building", actor="admin")  # a Thursday
    advance(r, to=datetime(2026, 12, 15, 9, 0, tzinfo=TZ))  # to Tuesday next week
    assert checkin_starts(r) == [
        datetime(2026, 12, day, 8, 30, tzinfo=TZ) for day in (7, 8, 9, 11, 12, 14, 15)
    ]  # Mon, Tue, Wed, (Thu off), Fri, Sat, (Sunday), Mon, Tue


def test_a_public_holiday_has_no_check_in(r: Runner) -> None:
    advance(r, to=datetime(2027, 1, 2, 9, 0, tzinfo=TZ))  # over New Year's Day 2027 (a Friday)
    days = [moment.date() for moment in checkin_starts(r)]
    assert date(2027, 1, 1) not in days and date(2026, 12, 31) in days and date(2027, 1, 2) in days
    assert all(moment.time() == datetime(2026, 1, 1, 8, 30).time() for moment in checkin_starts(r))
    assert not any(d.weekday() == 6 for d in days)


def test_no_check_in_during_tet(sqlite_url: str, registry: Registry) -> None:
    tet = sorted(d for d, name in holidays.country_holidays("VN", years=2027).items() if "Lunar New Year" in name)
    eve, after = tet[0] - timedelta(days=1), tet[-1] + timedelta(days=1)
    r = runner_at(sqlite_url, registry, datetime(eve.year, eve.month, eve.day, 9, 0, tzinfo=TZ))
    company(r)
    r.deploy([PROCESSES / "checkin.bpmn"])
    advance(r, to=datetime(after.year, after.month, after.day, 9, 0, tzinfo=TZ))
    assert checkin_starts(r) == [datetime(after.year, after.month, after.day, 8, 30, tzinfo=TZ)]
    r.db.engine.dispose()


def test_each_sales_rep_gets_one_check_in_due_at_0930(r: Runner) -> None:
    advance(r, to=datetime(2026, 12, 7, 8, 30, tzinfo=TZ))
    tasks = checkin_tasks(r)
    assert sorted(t["assignee"] for t in tasks) == sorted(REPS)
    assert {t["due_at"].astimezone(TZ) for t in tasks} == {datetime(2026, 12, 7, 9, 30, tzinfo=TZ)}
    assert {t["business_key"] for t in tasks} == {None}


def test_the_team_leader_sees_the_days_answers_and_who_has_not_answered(r: Runner) -> None:
    advance(r, to=datetime(2026, 12, 7, 8, 45, tzinfo=TZ))
    answer(r, "an")
    answer(r, "binh", {"yesterday": "Chăm sóc 5 khách", "today": "Demo Hoa Sen"})
    day = {row.rep: row for row in routines.checkin_day(r, date(2026, 12, 7))}
    assert day["an"].state == "answered" and day["an"].answers == ANSWERS
    assert day["an"].rep_name == "Đỗ Thị An"
    assert day["binh"].answers == {
        "yesterday": "Chăm sóc 5 khách",
        "today": "Demo Hoa Sen",
        "blockers": "",
        "ideas": "",
    }
    assert day["chi"].state == "waiting" and day["chi"].answers["today"] == ""
    assert routines.checkin_day(r, date(2026, 12, 6)) == []  # Sunday: none


def test_the_day_closes_at_2330_and_an_unanswered_check_in_is_missed(r: Runner) -> None:
    advance(r, to=datetime(2026, 12, 7, 9, 0, tzinfo=TZ))
    answer(r, "an")
    advance(r, to=datetime(2026, 12, 7, 23, 31, tzinfo=TZ))
    day = {row.rep: row.state for row in routines.checkin_day(r, date(2026, 12, 7))}
    assert day == {"an": "answered", "binh": "missed", "chi": "missed"}
    assert [i["status"] for i in inbox.instances(r, process_key=routines.CHECKIN)] == ["completed"]
    assert checkin_tasks(r) == []  # nothing left open from Monday


def test_a_check_in_answered_by_everyone_ends_the_days_instance(r: Runner) -> None:
    advance(r, to=datetime(2026, 12, 7, 8, 40, tzinfo=TZ))
    for rep in REPS:
        answer(r, rep)
    [inst] = inbox.instances(r, process_key=routines.CHECKIN)
    assert inst["status"] == "completed"


def test_a_check_in_needs_yesterday_and_today(r: Runner) -> None:
    advance(r, to=datetime(2026, 12, 7, 8, 40, tzinfo=TZ))
    [task] = [t for t in checkin_tasks(r) if t["assignee"] == "an"]
    with pytest.raises(FormInvalid) as caught:
        r.complete_task(task["id"], {"blockers": "x"}, actor="an")
    assert set(caught.value.errors) == {"yesterday", "today"}


# --- feature requests ----------------------------------------------------------------------------


def product_task(r: Runner, element_id: str) -> dict:
    [task] = [t for t in inbox.tasks(r, process_key=routines.FEATURE_REQUEST) if t["element_id"] == element_id]
    return task


def state_of(r: Runner, requester: str) -> list[str]:
    return [row["state"] for row in routines.feature_requests(r, requester)]


def test_a_request_from_a_customer_page_goes_to_the_product_group_and_its_states_reach_the_requester(
    r: Runner,
) -> None:
    add_customer(r, "KH0001", "Trung tâm Anh ngữ Sao Mai")
    routines.file_feature_request(r, "an", "Điểm danh bằng QR", "Trung tâm muốn học sinh quét QR", "KH0001")
    settle(r)
    task = product_task(r, "Task_triage")
    assert (task["candidate_groups"], task["business_key"]) == (["product"], "KH0001")
    # filed on Sunday evening: three working days from Monday 08:00, the first working minute
    assert task["due_at"].astimezone(TZ) == datetime(2026, 12, 10, 8, 0, tzinfo=TZ)
    assert state_of(r, "an") == ["received"]
    [mine] = routines.feature_requests(r, "an")
    assert (mine["customer_id"], mine["customer_name"], mine["title"]) == (
        "KH0001",
        "Trung tâm Anh ngữ Sao Mai",
        "Điểm danh bằng QR",
    )
    r.complete_task(task["id"], {"decision": "accept", "product_reply": "Đưa vào quý 1"}, actor="tu")
    settle(r)
    assert state_of(r, "an") == ["accepted"]
    r.complete_task(product_task(r, "Task_start_work")["id"], {"planned_release": "2027-02-01"}, actor="tu")
    settle(r)
    assert state_of(r, "an") == ["in_progress"]
    r.complete_task(product_task(r, "Task_finish")["id"], {"product_reply": "Có trong bản 3.2"}, actor="tu")
    settle(r)
    [done] = routines.feature_requests(r, "an")
    assert (done["state"], done["reply"]) == ("done", "Có trong bản 3.2")
    assert routines.feature_requests(r, "binh") == []  # another rep's requests are not theirs


def test_a_declined_request_says_so_to_the_requester(r: Runner) -> None:
    routines.file_feature_request(r, "hoa", "Xuất Excel lịch CSKH", "Cần tải lịch chăm sóc ra Excel")
    settle(r)
    task = product_task(r, "Task_triage")
    assert task["business_key"] is None
    r.complete_task(task["id"], {"decision": "decline", "product_reply": "Đã có trong báo cáo"}, actor="tu")
    settle(r)
    [row] = routines.feature_requests(r, "hoa")
    assert (row["state"], row["reply"]) == ("declined", "Đã có trong báo cáo")


def test_the_product_group_is_a_start_variable_with_a_default(r: Runner) -> None:
    r.start_instance(
        routines.FEATURE_REQUEST,
        None,
        {"title": "A", "description": "B", "requester": "an", "product_group": "team_leader"},
        actor="an",
    )
    settle(r)
    assert product_task(r, "Task_triage")["candidate_groups"] == ["team_leader"]


def test_a_request_without_title_or_description_is_refused_naming_both(r: Runner) -> None:
    with pytest.raises(FormInvalid) as caught:
        routines.file_feature_request(r, "an", " ", "")
    assert set(caught.value.errors) == {"title", "description"}
    with pytest.raises(FormInvalid) as caught:
        routines.file_feature_request(r, "an", "x" * 201, "ok")
    assert set(caught.value.errors) == {"title"}
    with pytest.raises(FormInvalid) as caught:
        routines.file_feature_request(r, "an", "ok", "ok", "KH9999")
    assert set(caught.value.errors) == {"customer"}


# --- the engine twins: straight through, and with a save/restore after every step -----------------


def test_checkin_twin_one_task_per_rep_then_the_day_closes(mode: str) -> None:
    h = Harness(str(PROCESSES / "checkin.bpmn"), "checkin", mode)
    h.start(trigger=("timer", "Start_checkin"))
    h.run_jobs({"crm.staff_of_role": lambda params: {"staff": list(REPS)}})
    tasks = [t for t in h.snapshot().user_tasks if t.element_id == "Task_checkin"]
    assert sorted(t.assignee for t in tasks) == sorted(REPS)
    h.complete(tasks[0].task_id, ANSWERS)
    assert h.fire_due(timedelta(hours=15, minutes=1)) == ["Timer_checkin_close"]
    assert h.snapshot().user_tasks == [] and h.workflow.is_completed()


def test_checkin_twin_everyone_answers(mode: str) -> None:
    h = Harness(str(PROCESSES / "checkin.bpmn"), "checkin", mode)
    h.start(trigger=("timer", "Start_checkin"))
    h.run_jobs({"crm.staff_of_role": lambda params: {"staff": list(REPS)}})
    for task in [t for t in h.snapshot().user_tasks if t.element_id == "Task_checkin"]:
        h.complete(task.task_id, ANSWERS)
    assert h.workflow.is_completed() and h.snapshot().timers == []


def test_feature_request_twin_through_every_state(mode: str) -> None:
    h = Harness(str(PROCESSES / "feature_request.bpmn"), "feature_request", mode)
    h.start({"title": "QR", "description": "Điểm danh QR", "requester": "an"})
    states = [h.snapshot().data["request_state"]]
    h.complete("Task_triage", {"decision": "accept"})
    states.append(h.snapshot().data["request_state"])
    h.complete("Task_start_work", {})
    states.append(h.snapshot().data["request_state"])
    h.complete("Task_finish", {"product_reply": "v3.2"})
    states.append(h.snapshot().data["request_state"])
    assert states == ["received", "accepted", "in_progress", "done"] and h.workflow.is_completed()
