"""After the handover: monthly care (care_month.bpmn), renewal (renewal.bpmn), CÓ VẤN ĐỀ, DỪNG CHĂM SÓC, KHÓA.

The customer is trained and handed over with the helpers of ``test_process_onboarding``;
then the virtual clock runs through months and years of care. Every scenario asserts the
stages entered, the tasks each role got, the outbox and the history. Monthly care that never
stalls (calls done, late and skipped) runs straight and with a new runner after every step;
one month of ``care_month`` alone runs on the engine straight and with a save/restore after
every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select
from test_process_onboarding import (
    CSKH,
    KH,
    LEAD,
    PROCESSES,
    bookings,
    elements,
    notes,
    onboard,
    post_sale_runner,
    result_of,
    train_and_hand_over,
)

from runner.crm import bookings as calendar
from runner.crm import customers as crm
from runner.crm.models import Contract, Order, StopCareReason
from runner.errors import FormInvalid
from runner.model import worktime
from runner.model.timeparse import add_months
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner
from runner.store.models import Instance
from tests.harness import Harness
from tests.scenario import (
    TZ,
    advance,
    complete,
    created_tasks,
    customer,
    history,
    instance_of,
    messages,
    open_tasks,
    reopened,
    stages,
    task,
    timers_scheduled,
)

ACCOUNTANT = "ketoan"
BEFORE_CARE = ["TIẾP NHẬN", "ĐÀO TẠO", "BÀN GIAO", "CHĂM SÓC ĐỊNH KỲ"]


@pytest.fixture
def r(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The post-sale runner of test_process_onboarding on SQLite."""
    runner = post_sale_runner(sqlite_url, registry)
    yield runner
    runner.db.engine.dispose()


def handed_over(r: Runner, months: int = 12) -> datetime:
    """A customer trained and handed over; returns the care anchor (handover day, 09:00 business time)."""
    onboard(r, months=months)
    train_and_hand_over(r)
    return r.now().astimezone(TZ).replace(hour=9, minute=0, second=0, microsecond=0)


def contract_end(r: Runner) -> date:
    return date.fromisoformat(customer(r, KH)["contract_end"])


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TZ)


def renewal_start(r: Runner) -> datetime:
    """When renewal care starts: 3 months before the contract end, at the first working minute of that day or after.

    NOTE: the timer is marked business time, so the renewal notice never goes out at midnight.
    """
    return worktime.next_working_instant(worktime.default_calendar(TZ), midnight(add_months(contract_end(r), -3)))


def care_month(r: Runner, usage: str = "good", feedback: str = "good") -> datetime:
    """Wait for the next monthly care date and make the call; returns the date it was due."""
    due = timers_scheduled(r, KH, "Timer_care_due")[-1]
    advance(r, to=due)
    complete(
        r,
        KH,
        "Task_care_call",
        {"reached": True, "usage": usage, "feedback": feedback, "care_note": "Trung tâm dùng điểm danh, học phí"},
        by=CSKH,
    )
    return due


def state_size(r: Runner, instance_id: str) -> int:
    with r.db.read() as s:
        return len(s.get(Instance, instance_id).state)


def customer_stage(r: Runner) -> str:
    return customer(r, KH)["stages"]["Sau bán hàng"]


# --- periodic care ---------------------------------------------------------------------------------


def test_thirty_six_months_of_periodic_care_stay_small(r: Runner) -> None:
    anchor = handed_over(r, months=48)
    instance_id = instance_of(r, KH, "onboarding")["id"]
    sizes = {}
    for month in range(1, 37):
        assert care_month(r) == add_months(anchor, month), month
        if month in (6, 36):
            sizes[month] = state_size(r, instance_id)

    assert stages(r, KH) == BEFORE_CARE
    created = elements(created_tasks(r, KH))
    assert created.count("Task_care_call") == 36 and "Task_renewal_call" not in created
    assert [m for m in messages(r, KH) if m[1] == "care_monthly"] == [("zalo", "care_monthly")] * 36
    assert sum(n.startswith("Chăm sóc định kỳ tháng") for n in notes(r)) == 36
    assert notes(r)[-1].startswith("Chăm sóc định kỳ tháng 36: đã liên hệ được, sử dụng đều đặn, hài lòng.")
    # the renewal timer is armed with every month's call and never fires in these 36 months
    renewal_due = renewal_start(r)
    assert set(timers_scheduled(r, KH, "Boundary_renewal_due")) == {renewal_due}
    assert not [h for h in history(r, KH, "timer.fired") if h["element_id"] == "Boundary_renewal_due"]
    assert sizes[36] <= sizes[6] * 1.1, sizes  # years of looping keep the saved tree bounded
    assert instance_of(r, KH, "onboarding")["status"] == "running"
    assert customer_stage(r) == "CHĂM SÓC ĐỊNH KỲ"
    assert [t["element_id"] for t in open_tasks(r, KH)] == []


def test_each_monthly_call_is_booked_in_the_care_calendar(r: Runner) -> None:
    anchor = handed_over(r)
    advance(r, to=add_months(anchor, 1))

    booked = result_of(r, KH, "Task_book_care")
    call_at = datetime.fromisoformat(booked["session_starts"][0])
    due = add_months(anchor, 1)
    assert booked["teacher"] == CSKH and due + timedelta(hours=1) <= call_at < due + timedelta(days=5)
    call = task(r, KH, "Task_care_call")
    assert (call["assignee"], call["due_at"]) == (CSKH, call_at + timedelta(minutes=30))
    assert bookings(r, kind="care") == [(1, CSKH, "booked")]
    with r.db.read() as s:
        feed = calendar.feed(s, CSKH, tz=r.settings.tz).decode()
    assert "Trung tâm Anh ngữ KH0001" in feed


def test_a_late_monthly_call_does_not_shift_the_care_dates(r: Runner) -> None:
    anchor = handed_over(r)
    advance(r, to=add_months(anchor, 1) + timedelta(days=5))  # CSKH calls five days late
    complete(
        r,
        KH,
        "Task_care_call",
        {"reached": False, "usage": "good", "feedback": "good", "care_note": "Nhắn Zalo, khách trả lời sau"},
        by=CSKH,
    )
    assert timers_scheduled(r, KH, "Timer_care_due")[-1] == add_months(anchor, 2)
    assert notes(r)[-1] == (
        "Chăm sóc định kỳ tháng 1: chưa liên hệ được, sử dụng đều đặn, hài lòng. Nhắn Zalo, khách trả lời sau"
    )


# --- care never stalls: 12 months of calls done, late and skipped ---------------------------------

CAL = worktime.default_calendar(TZ)
ESCALATION_DELAY = "P3D"  # care_month's default: three working days after the call was due
MISSED = "bỏ lỡ, hết tháng mà cuộc gọi chưa được thực hiện."
CALL = {"reached": True, "usage": "good", "feedback": "good", "care_note": "Trung tâm dùng điểm danh, học phí"}
# month → what customer care does with that month's call
PLAN = {
    1: "done",
    2: "skipped",
    3: "late",
    4: "done",
    5: "skipped, leader acts",
    6: "late, leader acts",
    7: "skipped",
    8: "skipped",
    9: "done",
    10: "late",
    11: "done",
    12: "skipped",
}


class Drive:
    """The runner a scenario drives; in the restart twin every step ends with a new runner on the same database."""

    def __init__(self, runner: Runner, url: str, registry: Registry, restart: bool):
        self.r, self.url, self.registry, self.restart = runner, url, registry, restart
        self.restarts = 0

    def step(self) -> Runner:
        """After a step: a restart (state, specs and calendar read afresh from the database) in the twin."""
        if self.restart:
            self.r.db.engine.dispose()
            self.r = reopened(self.url, self.registry)
            self.restarts += 1
        return self.r


@pytest.fixture(params=["straight", "restart"])
def drive(request: pytest.FixtureRequest, sqlite_url: str, registry: Registry) -> Iterator[Drive]:
    """The post-sale runner, straight through or restarted after every step."""
    d = Drive(post_sale_runner(sqlite_url, registry), sqlite_url, registry, request.param == "restart")
    yield d
    d.r.db.engine.dispose()


def created_at(r: Runner, element_id: str) -> list[datetime]:
    """When each user task of an element was created, in order."""
    return [h["at"].astimezone(TZ) for h in history(r, KH, "task.created") if h["element_id"] == element_id]


def open_elements(r: Runner) -> list[str]:
    return sorted(t["element_id"] for t in open_tasks(r, KH))


def month_starts(drive: Drive, anchor: datetime, month: int) -> tuple[dict, datetime]:
    """Move to the month's date: its call opens, whatever became of last month's; the call and its escalation time."""
    due = add_months(anchor, month)
    advance(drive.r, to=due)
    r = drive.step()
    if month > 1 and PLAN[month - 1].startswith("skipped"):
        assert notes(r)[-1] == f"Chăm sóc định kỳ tháng {month - 1}: {MISSED}"
    assert open_elements(r) == ["Task_care_call"], (month, open_elements(r))  # last month's call and escalation closed
    call = task(r, KH, "Task_care_call")
    assert (call["assignee"], call["created_at"].astimezone(TZ)) == (CSKH, due), month
    call_due = call["due_at"].astimezone(TZ)
    escalate_at = worktime.first_due("duration", ESCALATION_DELAY, call_due, CAL)[0].astimezone(TZ)
    assert due < call_due < escalate_at < add_months(anchor, month + 1), month
    return call, escalate_at


def overdue_until_escalated(drive: Drive, month: int, call: dict, escalate_at: datetime) -> None:
    """The call stays undone: overdue, then the team leader's task comes after the delay, beside the open call."""
    advance(drive.r, to=escalate_at - timedelta(minutes=1))
    assert open_elements(drive.step()) == ["Task_care_call"], month
    advance(drive.r, minutes=1)
    r = drive.step()
    escalation = task(r, KH, "Task_care_escalate")
    assert (escalation["candidate_groups"], escalation["assignee"]) == (["team_leader"], None)
    assert escalation["due_at"].astimezone(TZ) == worktime.first_due("duration", "P1D", escalate_at, CAL)[0]
    assert task(r, KH, "Task_care_call")["id"] == call["id"]


def call_made(drive: Drive, month: int) -> None:
    complete(drive.r, KH, "Task_care_call", CALL, by=CSKH)
    r = drive.step()
    assert open_elements(r) == []  # an escalation still open closes with the call
    assert notes(r)[-1].startswith(f"Chăm sóc định kỳ tháng {month}: đã liên hệ được"), month


def test_care_never_stalls_over_twelve_months_of_calls_done_late_and_skipped(drive: Drive) -> None:
    anchor = handed_over(drive.r, months=24)  # renewal care starts in month 21: twelve months of periodic care
    drive.step()
    escalated: list[datetime] = []
    sizes: dict[int, int] = {}
    for month, plan in PLAN.items():
        call, escalate_at = month_starts(drive, anchor, month)
        sizes[month] = state_size(drive.r, instance_of(drive.r, KH, "onboarding")["id"])
        if plan == "done":
            call_made(drive, month)
            continue
        overdue_until_escalated(drive, month, call, escalate_at)
        escalated.append(escalate_at)
        if "leader acts" in plan:
            action = "Nhắc CSKH gọi trong ngày"
            complete(drive.r, KH, "Task_care_escalate", {"escalation_action": action}, by=LEAD)
            assert (
                notes(drive.step())[-1]
                == f"Chăm sóc định kỳ tháng {month}: cuộc gọi quá hạn, Trưởng nhóm xử lý: {action}"
            )
        if plan.startswith("late"):
            advance(drive.r, days=1)
            call_made(drive, month)

    month_starts(drive, anchor, 13)  # and the thirteenth month comes after a skipped twelfth
    r = drive.r
    months = [*PLAN, 13]
    assert created_at(r, "Task_care_call") == [add_months(anchor, m) for m in months]  # every month has its care task
    assert created_at(r, "Task_care_escalate") == escalated  # each call not made in time, after the delay
    assert len(escalated) == sum(p != "done" for p in PLAN.values())
    assert sum(n.endswith(MISSED) for n in notes(r)) == sum(p.startswith("skipped") for p in PLAN.values())
    assert [m for m in messages(r, KH) if m[1] == "care_monthly"] == [("zalo", "care_monthly")] * len(months)
    assert customer_stage(r) == "CHĂM SÓC ĐỊNH KỲ" and stages(r, KH) == BEFORE_CARE
    assert instance_of(r, KH, "onboarding")["status"] == "running"
    # the saved tree does not grow with the months, skipped calls or not
    assert max(sizes[m] for m in range(7, 13)) <= max(sizes[m] for m in range(1, 7)) * 1.05, sizes
    assert (drive.restarts > 0) == drive.restart


def test_the_escalation_delay_is_configured_when_onboarding_starts(r: Runner) -> None:
    onboard(r, months=24, data={"care_escalation_delay": "PT4H"})
    train_and_hand_over(r)
    anchor = r.now().astimezone(TZ).replace(hour=9, minute=0, second=0, microsecond=0)
    advance(r, to=add_months(anchor, 1))
    call_due = task(r, KH, "Task_care_call")["due_at"].astimezone(TZ)
    escalate_at = worktime.first_due("duration", "PT4H", call_due, CAL)[0].astimezone(TZ)  # four working hours

    advance(r, to=escalate_at)

    assert created_at(r, "Task_care_escalate") == [escalate_at]
    assert timers_scheduled(r, KH, "Timer_care_escalate") == [escalate_at]


# --- one month of care on the engine alone, straight and with a save/restore after every step --------

MONTH_DUE = datetime(2026, 3, 3, 9, 0, tzinfo=TZ)  # a Tuesday
CALL_AT = datetime(2026, 3, 4, 9, 0, tzinfo=TZ)  # booked the next day: due at 09:30
ENGINE_HANDLERS = {
    "booking.book_sessions": lambda params: {
        "teacher": CSKH,
        "teacher_name": "Trần Thị Hoa",
        "session_starts": [CALL_AT.isoformat()],
        "bookings": [{"id": 7}],
    },
    "zalo.send": lambda params: {},
    "crm.add_note": lambda params: {},
}


def care_month_alone(mode: str) -> Harness:
    """care_month started by hand (no month end, no delay given) up to its open call."""
    h = Harness(str(PROCESSES / "care_month.bpmn"), "care_month", mode).start(
        {"month_no": 3, "care_due_at": MONTH_DUE.isoformat()}
    )
    h.fire_due(MONTH_DUE)
    h.run_jobs(ENGINE_HANDLERS)
    assert [t.element_id for t in h.ready()] == ["Task_care_call"]
    assert h.task_data("Task_care_call")["care_month_end"] == add_months(MONTH_DUE, 1).isoformat()  # the defaults
    assert h.task_data("Task_care_call")["care_escalation_delay"] == "P3D"
    escalate_at = datetime(2026, 3, 7, 9, 30, tzinfo=TZ)  # Thursday, Friday, Saturday after Wednesday 09:30
    assert h.fire_due(escalate_at) == ["Boundary_care_overdue", "Timer_care_escalate"]
    assert sorted(t.element_id for t in h.ready()) == ["Task_care_call", "Task_care_escalate"]
    return h


def test_a_late_call_closes_the_team_leaders_escalation(mode: str) -> None:
    h = care_month_alone(mode)
    h.complete("Task_care_call", CALL)
    h.run_jobs(ENGINE_HANDLERS)

    assert h.completed and h.data["care_result"] == "ok"
    assert "Task_care_escalate" in h.cancelled and "End_care_called" in h.history
    assert h.timers() == []


def test_a_call_not_made_by_the_month_end_is_missed(mode: str) -> None:
    h = care_month_alone(mode)
    h.complete("Task_care_escalate", {"escalation_action": "Giao cho người khác"})
    h.run_jobs(ENGINE_HANDLERS)
    assert [t.element_id for t in h.ready()] == ["Task_care_call"]

    assert h.fire_due(add_months(MONTH_DUE, 1)) == ["Boundary_care_month_over"]
    h.run_jobs(ENGINE_HANDLERS)

    assert h.completed and h.data["care_result"] == "missed"
    assert "Task_care_call" in h.cancelled and h.history[-2:] == ["Task_care_missed_note", "End_care_missed"]
    assert (h.restores > 0) == (mode == "save_restore")


# --- renewal -----------------------------------------------------------------------------------------


def until_renewal(r: Runner) -> datetime:
    """A 12-month customer cared for monthly until the renewal timer fires; returns when it fired."""
    handed_over(r, months=12)
    renewal_due = renewal_start(r)
    while timers_scheduled(r, KH, "Timer_care_due")[-1] < renewal_due:
        care_month(r)
    advance(r, to=renewal_due)
    return renewal_due


def test_renewal_starts_three_months_before_the_contract_end(r: Runner) -> None:
    handed_over(r, months=12)
    end = contract_end(r)
    renewal_due = renewal_start(r)
    assert renewal_due.hour == 8 and worktime.is_working_time(worktime.default_calendar(TZ), renewal_due)
    for _ in range(8):
        care_month(r)
    advance(r, to=renewal_due - timedelta(minutes=1))
    assert "Task_renewal_call" not in elements(created_tasks(r, KH))

    advance(r, minutes=1)

    assert stages(r, KH) == [*BEFORE_CARE, "CHĂM SÓC TÁI KÝ"]
    assert [h["element_id"] for h in history(r, KH, "timer.fired")][-1] == "Boundary_renewal_due"
    call = task(r, KH, "Task_renewal_call")
    assert (call["candidate_groups"], call["due_at"]) == (["customer_care"], renewal_due + timedelta(days=3))
    assert messages(r, KH)[-1] == ("zalo", "renewal_notice")
    notice = inbox.outbox(r, business_key=KH)[-1]["payload"]["text"]
    assert end.strftime("%d/%m/%Y") in notice
    assert "CHĂM SÓC TÁI KÝ" in customer(r, KH)["tags"]
    # the ninth month's care was waiting for its date: renewal care replaces it
    assert elements(created_tasks(r, KH)).count("Task_care_call") == 8
    advance(r, days=2)
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_renewal_call"]
    assert customer_stage(r) == "CHĂM SÓC TÁI KÝ"


def test_renewed_customer_gets_a_new_contract_and_care_goes_on(r: Runner) -> None:
    until_renewal(r)
    old_end = contract_end(r)

    complete(
        r,
        KH,
        "Task_renewal_call",
        {
            "renewal_decision": "renew",
            "renewal_package": "Doanh nghiệp",
            "renewal_months": 12,
            "renewal_amount": 15_000_000,
            "renewal_note": "Khách lấy thêm 1 cơ sở",
        },
        by=CSKH,
    )
    assert task(r, KH, "Task_confirm_payment")["candidate_groups"] == ["accountant"]
    complete(r, KH, "Task_confirm_payment", {"payment_ref": "FT2709001"}, by=ACCOUNTANT)

    # a contract's end date is the first day it no longer covers (the lock falls at its 00:00), so the
    # renewal starts on it: no day between the two contracts goes unserved
    new_end = add_months(old_end, 12)
    view = customer(r, KH)
    assert (view["contract_end"], view["package"]) == (new_end.isoformat(), "Doanh nghiệp")
    assert "CHĂM SÓC TÁI KÝ" not in view["tags"]
    with r.db.read() as s:
        contract = s.scalars(select(Contract).where(Contract.customer_id == KH).order_by(Contract.id)).all()[-1]
        order = s.scalars(select(Order).where(Order.customer_id == KH)).one()
    assert (contract.start_date, contract.end_date, contract.months) == (old_end, new_end, 12)
    assert (order.amount, order.status, order.confirmed_by) == (15_000_000, "paid", ACCOUNTANT)
    assert stages(r, KH) == [*BEFORE_CARE, "CHĂM SÓC TÁI KÝ", "CHĂM SÓC ĐỊNH KỲ"]
    assert instance_of(r, KH, "onboarding")["data"]["contract_end"] == new_end.isoformat()
    assert notes(r)[-1] == (
        f"Tái ký 12 tháng, gói Doanh nghiệp, hợp đồng mới đến {new_end.isoformat()}. Khách lấy thêm 1 cơ sở"
    )
    # monthly care resumes, and the next renewal is 3 months before the new end date
    care_month(r)
    assert timers_scheduled(r, KH, "Boundary_renewal_due")[-1] == renewal_start(r)  # 3 months before the new end, 08:00
    assert customer_stage(r) == "CHĂM SÓC ĐỊNH KỲ"
    assert [e for e, _, _ in created_tasks(r, KH)][-3:] == [
        "Task_renewal_call",
        "Task_confirm_payment",
        "Task_care_call",
    ]


def test_not_renewed_customer_stops_with_a_reason_and_is_locked_at_the_end_date(r: Runner) -> None:
    until_renewal(r)
    end = contract_end(r)

    complete(
        r,
        KH,
        "Task_renewal_call",
        {"renewal_decision": "decline", "renewal_amount": 15_000_000, "renewal_note": "Chuyển đơn vị khác"},
        by=CSKH,
    )
    complete(
        r,
        KH,
        "Task_no_renew_reason",
        {"stop_reason": "Không tái ký hợp đồng", "stop_note": "Ngân sách năm sau"},
        by=CSKH,
    )

    assert stages(r, KH) == [*BEFORE_CARE, "CHĂM SÓC TÁI KÝ", "DỪNG CHĂM SÓC"]
    assert customer(r, KH)["status"] == "Dừng chăm sóc"
    assert notes(r)[-1] == "Dừng chăm sóc. Lý do: Không tái ký hợp đồng. Ngân sách năm sau"
    assert timers_scheduled(r, KH, "Timer_contract_end") == [midnight(end)]
    advance(r, to=midnight(end) - timedelta(minutes=1))
    assert customer(r, KH)["status"] == "Dừng chăm sóc"

    advance(r, minutes=1)

    assert stages(r, KH)[-1] == "KHÓA"
    assert customer(r, KH)["status"] == "Khóa"
    assert instance_of(r, KH, "onboarding")["status"] == "completed"
    assert customer_stage(r) == "KHÓA"
    assert open_tasks(r, KH) == []


def test_a_stop_reason_configured_while_renewal_runs_is_offered_and_noted_with_no_redeploy(r: Runner) -> None:
    until_renewal(r)
    complete(r, KH, "Task_renewal_call", {"renewal_decision": "decline", "renewal_amount": 15_000_000}, by=CSKH)
    with r.db.unit() as s:  # the admin edits seed 003's list while the task is open
        s.add(StopCareReason(title="Sáp nhập trung tâm", description="Trung tâm sáp nhập vào đơn vị khác."))
    versions = len(inbox.process_versions(r))

    reason = task(r, KH, "Task_no_renew_reason")["form"]["fields"][0]
    assert reason["options"][-1] == {"id": "Sáp nhập trung tâm", "name": "Sáp nhập trung tâm"}
    complete(r, KH, "Task_no_renew_reason", {"stop_reason": "Sáp nhập trung tâm"}, by=CSKH)

    assert notes(r)[-1] == "Dừng chăm sóc. Lý do: Sáp nhập trung tâm"
    assert customer(r, KH)["status"] == "Dừng chăm sóc"
    assert len(inbox.process_versions(r)) == versions


def test_a_hesitating_customer_is_called_weekly_until_the_contract_runs_out(r: Runner) -> None:
    until_renewal(r)
    end = contract_end(r)
    # the price quoted is asked at every call: a renewal agreed later needs it for its order
    complete(r, KH, "Task_renewal_call", {"renewal_decision": "considering", "renewal_amount": 15_000_000}, by=CSKH)
    assert open_tasks(r, KH) == []
    advance(r, days=7)
    assert task(r, KH, "Task_renewal_call")  # called again a week later

    advance(r, to=midnight(end))  # nobody decided before the end date

    assert [h["element_id"] for h in history(r, KH, "timer.fired")][-1] == "Boundary_contract_end"
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_no_renew_reason"]
    complete(r, KH, "Task_no_renew_reason", {"stop_reason": "Không liên hệ được"}, by=CSKH)
    # the end date has passed already: locked at once
    assert stages(r, KH)[-2:] == ["DỪNG CHĂM SÓC", "KHÓA"]
    assert customer(r, KH)["status"] == "Khóa"
    assert elements(created_tasks(r, KH)).count("Task_renewal_call") == 2


def test_sales_can_start_renewal_care_early_by_message(r: Runner) -> None:
    handed_over(r, months=12)
    care_month(r)

    [instance_id] = r.correlate("start_renewal", KH, {})
    advance(r, minutes=1)

    assert instance_id == instance_of(r, KH, "onboarding")["id"]
    assert stages(r, KH)[-1] == "CHĂM SÓC TÁI KÝ"
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_renewal_call"]
    assert messages(r, KH)[-1] == ("zalo", "renewal_notice")


# --- CÓ VẤN ĐỀ, DỪNG CHĂM SÓC, KHÓA -------------------------------------------------------------


def test_a_problem_customer_is_stopped_with_a_reason_and_locked(r: Runner) -> None:
    handed_over(r)
    care_month(r)
    care_month(r, usage="low")

    assert stages(r, KH) == [*BEFORE_CARE, "CÓ VẤN ĐỀ"]
    assert customer(r, KH)["status"] == "Có vấn đề"
    problem = task(r, KH, "Task_problem")
    assert problem["candidate_groups"] == ["customer_care"]
    complete(
        r,
        KH,
        "Task_problem",
        {"problem_kind": "low_usage", "problem_action": "Gọi 3 lần, không dùng", "problem_outcome": "stop"},
        by=CSKH,
    )
    stop = task(r, KH, "Task_stop_reason")
    assert stop["candidate_groups"] == ["team_leader"]
    options = [o["id"] for o in stop["form"]["fields"][0]["options"]]
    with r.db.read() as s:
        assert options == [x["title"] for x in crm.lists(s)["stop_care_reasons"]]  # the configured list
    with pytest.raises(FormInvalid, match="Lý do dừng chăm sóc"):
        r.complete_task(stop["id"], {"stop_reason": "Hết tiền", "lock_now": True}, actor=LEAD)

    complete(
        r,
        KH,
        "Task_stop_reason",
        {"stop_reason": "Không còn nhu cầu", "stop_note": "Đóng cơ sở 2", "lock_now": True},
        by=LEAD,
    )

    assert stages(r, KH) == [*BEFORE_CARE, "CÓ VẤN ĐỀ", "DỪNG CHĂM SÓC", "KHÓA"]
    assert customer(r, KH)["status"] == "Khóa"
    assert instance_of(r, KH, "onboarding")["status"] == "completed"
    assert notes(r)[-2:] == [
        "Có vấn đề (ít sử dụng): Gọi 3 lần, không dùng",
        "Dừng chăm sóc. Lý do: Không còn nhu cầu. Đóng cơ sở 2",
    ]
    statuses = [
        h["details"]["result"]["status"]
        for h in history(r, KH, "handler.succeeded")
        if h["details"]["topic"] == "crm.set_status"
    ]
    assert statuses == ["Có vấn đề", "Dừng chăm sóc", "Khóa"]
    assert customer_stage(r) == "KHÓA"


def test_a_stopped_customer_without_immediate_lock_waits_for_the_end_date(r: Runner) -> None:
    handed_over(r)
    care_month(r, feedback="bad")
    complete(
        r,
        KH,
        "Task_problem",
        {"problem_kind": "bad_feedback", "problem_action": "Xin lỗi, hỗ trợ lại", "problem_outcome": "stop"},
        by=CSKH,
    )
    complete(r, KH, "Task_stop_reason", {"stop_reason": "Phản hồi xấu về sản phẩm", "lock_now": False}, by=LEAD)

    assert stages(r, KH)[-1] == "DỪNG CHĂM SÓC"
    assert customer_stage(r) == "DỪNG CHĂM SÓC"
    end = midnight(contract_end(r))
    assert timers_scheduled(r, KH, "Timer_contract_end") == [end]
    advance(r, to=end)
    assert stages(r, KH)[-1] == "KHÓA" and customer(r, KH)["status"] == "Khóa"


def test_a_problem_solved_goes_back_to_periodic_care(r: Runner) -> None:
    anchor = handed_over(r)
    care_month(r, feedback="bad")
    complete(
        r,
        KH,
        "Task_problem",
        {"problem_kind": "bad_feedback", "problem_action": "Hướng dẫn lại báo cáo", "problem_outcome": "resolved"},
        by=CSKH,
    )

    assert stages(r, KH) == [*BEFORE_CARE, "CÓ VẤN ĐỀ", "CHĂM SÓC ĐỊNH KỲ"]
    assert customer(r, KH)["status"] == "Hoạt động"
    assert care_month(r) == add_months(anchor, 2)
    assert customer_stage(r) == "CHĂM SÓC ĐỊNH KỲ"
    assert elements(created_tasks(r, KH))[-3:] == ["Task_care_call", "Task_problem", "Task_care_call"]
