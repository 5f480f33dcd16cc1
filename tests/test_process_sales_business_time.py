"""processes/sales.bpmn in business time: the 60-minute rule counts working minutes, stops cycling, escalates.

The virtual clock crosses an evening, a weekend, a company day off and Tết 2027; the
runner's calendar is its default one (Mon–Fri 08:00–17:30, Sat 08:00–12:00, Vietnam's
public holidays) unless a test edits it as an admin would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from test_process_onboarding import POST_SALE, onboard

from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import (
    TZ,
    add_customer,
    advance,
    company,
    complete,
    created_tasks,
    customer,
    history,
    open_tasks,
    runner_at,
    start,
    task,
    timers_scheduled,
)

PROCESSES = Path(__file__).resolve().parents[1] / "processes"
KH = "KH0001"


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in business time."""
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


@pytest.fixture
def lead_at(sqlite_url: str, registry: Registry) -> Iterator[Callable[..., Runner]]:
    """A company whose lead KH0001 comes in at a moment (the clock starts there)."""
    made: list[Runner] = []

    def make(moment: datetime, data: dict | None = None, edit: Callable[[Runner], None] | None = None) -> Runner:
        runner = runner_at(sqlite_url, registry, moment)
        made.append(runner)
        company(runner)
        add_customer(runner, KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", source="Facebook")
        runner.deploy([PROCESSES])
        if edit is not None:
            edit(runner)
        start(runner, "sales", KH, data)
        return runner

    yield make
    for runner in made:
        runner.db.engine.dispose()


def fired(r: Runner) -> list[datetime]:
    return [h["at"].astimezone(TZ) for h in history(r, KH, "timer.fired") if h["element_id"] == "Timer_60"]


def owners(r: Runner) -> list[str]:
    return [assignee for element, _, assignee in created_tasks(r, KH) if element == "Task_verify"]


@pytest.mark.parametrize(
    ("arrives", "reassigned"),
    [
        (at(2026, 12, 7, 17, 0), at(2026, 12, 8, 8, 30)),  # a Monday evening → Tuesday morning
        (at(2026, 12, 11, 17, 0), at(2026, 12, 12, 8, 30)),  # Friday 17:00 → Saturday 08:30
        (at(2026, 12, 12, 11, 30), at(2026, 12, 14, 8, 30)),  # Saturday → Monday: nothing on Sunday
        (at(2026, 12, 13, 23, 50), at(2026, 12, 14, 9, 0)),  # arrives at midnight on Sunday
        (at(2027, 2, 3, 17, 0), at(2027, 2, 11, 8, 30)),  # the eve of Tết → after Tết (4–10 Feb 2027)
    ],
)
def test_the_60_minute_rule_counts_working_minutes(lead_at, arrives: datetime, reassigned: datetime) -> None:
    r = lead_at(arrives)
    first = task(r, KH, "Task_verify")
    assert timers_scheduled(r, KH, "Timer_60") == [reassigned]
    advance(r, to=reassigned - timedelta(minutes=1))
    assert fired(r) == [] and task(r, KH, "Task_verify")["id"] == first["id"]  # not at night, Sunday, Tết
    advance(r, to=reassigned)
    assert fired(r) == [reassigned]
    assert owners(r) == ["an", "binh"] and customer(r, KH)["owner"] == "binh"


def test_a_company_day_off_an_admin_adds_is_skipped_at_once(lead_at) -> None:
    def day_off(r: Runner) -> None:
        r.business_calendar()  # the calendar is read (and cached) before the edit
        r.add_day_off(date(2026, 12, 8), "Nghỉ tổng kết năm", actor="admin")

    r = lead_at(at(2026, 12, 7, 17, 0), edit=day_off)
    assert timers_scheduled(r, KH, "Timer_60") == [at(2026, 12, 9, 8, 30)]


def test_changed_working_hours_are_read_by_the_next_timer(lead_at) -> None:
    r = lead_at(at(2026, 12, 11, 17, 0))
    assert timers_scheduled(r, KH, "Timer_60") == [at(2026, 12, 12, 8, 30)]
    hours = {d: "08:00-12:00, 13:30-17:30" for d in ("mon", "tue", "wed", "thu", "fri")}
    r.save_business_calendar(hours, "VN", actor="admin")  # Saturdays off from now on
    advance(r, to=at(2026, 12, 12, 8, 30))  # the timer already scheduled keeps its time
    assert fired(r) == [at(2026, 12, 12, 8, 30)]
    # binh's 60 minutes start on Saturday 08:30, which is now time off: Monday 09:00.
    assert timers_scheduled(r, KH, "Timer_60")[-1] == at(2026, 12, 14, 9, 0)


def test_after_three_reassignments_the_lead_goes_to_the_team_leader_and_marketing(lead_at) -> None:
    r = lead_at(at(2026, 12, 7, 9, 0))
    advance(r, to=at(2026, 12, 7, 12, 0))
    assert owners(r) == ["an", "binh", "chi", "an"]  # three reassignments, one per working hour
    advance(r, to=at(2026, 12, 7, 17, 30))  # the fourth 60 minutes end at 13:00: no fifth owner
    assert owners(r) == ["an", "binh", "chi", "an"]
    assert fired(r) == [at(2026, 12, 7, h) for h in (10, 11, 12, 13)]
    escalated = task(r, KH, "Task_lead_escalated")
    assert (escalated["candidate_groups"], escalated["assignee"]) == (["team_leader", "marketing"], None)
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_lead_escalated"]
    notes = [n["text"] for n in customer(r, KH)["notes"] if "Team Leader và Marketing" in n["text"]]
    assert len(notes) == 1  # the customer's discussion tells marketing and the team leader
    advance(r, days=3)
    assert len(fired(r)) == 4  # nothing cycles while they decide

    complete(r, KH, "Task_lead_escalated", {"escalation_decision": "retry"}, by="mai")
    assert owners(r)[-1] == "binh" and task(r, KH, "Task_verify")["assignee"] == "binh"
    advance(r, to=at(2026, 12, 11, 10, 0))  # decided Thursday 17:30: Friday 09:00 and 10:00
    assert owners(r)[-3:] == ["binh", "chi", "an"]  # the count starts again after the decision


def test_marketing_can_take_an_escalated_lead_back(lead_at) -> None:
    r = lead_at(at(2026, 12, 7, 9, 0), {"max_reassignments": 1})
    advance(r, to=at(2026, 12, 7, 11, 0))
    assert owners(r) == ["an", "binh"]  # one reassignment, then the second 60 minutes escalate
    complete(r, KH, "Task_lead_escalated", {"escalation_decision": "return"}, by="tuan")
    assert "SALE TRẢ LẠI" in customer(r, KH)["tags"]
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_mkt_returned"]


# --- onboarding: the 30-minute hand-over SLA --------------------------------------------------------


def test_a_customer_won_on_a_friday_evening_escalates_after_30_working_minutes(
    sqlite_url: str, registry: Registry
) -> None:
    r = runner_at(sqlite_url, registry, at(2026, 12, 11, 19, 0))  # Friday evening
    try:
        company(r)
        r.deploy(POST_SALE)
        onboard(r)
        assert timers_scheduled(r, KH, "Boundary_receive_sla") == [at(2026, 12, 12, 8, 30)]
        advance(r, to=at(2026, 12, 12, 8, 29))
        assert "Task_receive_escalate" not in [e for e, _, _ in created_tasks(r, KH)]  # not overnight
        advance(r, minutes=1)
        assert created_tasks(r, KH)[-1] == ("Task_receive_escalate", ("team_leader",), None)
    finally:
        r.db.engine.dispose()
