"""Every timer of the shipped diagrams (processes/*.bpmn), clock-driven across an evening, a weekend and Tết 2027.

``TIMERS`` names, for each timer event of the shipped diagrams, the tests that prove when it
falls due and what its firing touches (a customer message, a staff task, the customer's
state), and which clock it counts: ``business`` timers land in working time (the default
calendar: Mon–Fri 08:00–17:30, Sat 08:00–12:00, Vietnam's holidays off), ``wall`` timers
keep their wall-clock moment even at night, on a Sunday or during Tết. A timer added to a
diagram without an entry here fails ``test_every_shipped_timer_has_a_clock_driven_test``.

Tết 2027 comes from the ``holidays`` package (the runner's own source of public holidays),
never from dates typed in here. The scenarios move the virtual clock with the helpers of
``tests/scenario.py`` and the process tests; the sending window is off (tests/conftest.py)
unless a test sets one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import holidays
import pytest
from lxml import etree
from test_process_onboarding import (
    CSKH,
    TEACHER,
    book_training,
    onboard,
    post_sale_runner,
    result_of,
    train_and_hand_over,
)
from test_process_sales import SURVEY

from runner.model import worktime
from runner.model.document import BPMN_NS, CAMUNDA_NSS
from runner.registry import Registry
from runner.service.runtime import Runner
from runner.windows import SendingWindow
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
    outbox,
    runner_at,
    stages,
    start,
    task,
    timers_scheduled,
)

KH = "KH0001"
PROCESSES = Path(__file__).resolve().parents[1] / "processes"
NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NSS[0]}
CAL = worktime.default_calendar(TZ)

# --- Tết 2027, from the holidays package -----------------------------------------------------------

TET = sorted(d for d, name in holidays.country_holidays("VN", years=2027).items() if "Lunar New Year" in name)
EVE_OF_TET = TET[0] - timedelta(days=1)  # the last working day before Tết
AFTER_TET = TET[-1] + timedelta(days=1)  # the first working day after it


def test_tet_2027_is_a_week_of_holidays_from_a_thursday_to_a_wednesday() -> None:
    assert len(TET) == 7 and [TET[0] + timedelta(days=n) for n in range(7)] == TET
    assert (EVE_OF_TET.weekday(), AFTER_TET.weekday()) == (2, 3)  # Wednesday, Thursday
    assert all(CAL.periods_on(day) == [] for day in TET)


def on(day: date, hour: int, minute: int = 0) -> datetime:
    """A moment of a day in business time."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return on(date(year, month, day), hour, minute)


def naive(moment: datetime) -> str:
    """A form's datetime value: business time without an offset."""
    return moment.astimezone(TZ).replace(tzinfo=None).isoformat()


def working(moment: datetime) -> bool:
    return worktime.is_working_time(CAL, moment)


def fired(r: Runner, element_id: str, customer_id: str = KH) -> list[datetime]:
    return [h["at"].astimezone(TZ) for h in history(r, customer_id, "timer.fired") if h["element_id"] == element_id]


def due(row: dict) -> datetime:
    return row["due_at"].astimezone(TZ)


def created(row: dict) -> datetime:
    return row["created_at"].astimezone(TZ)


# --- the table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proof:
    """How one shipped timer is proven: its clock, what its firing touches, the tests that show it."""

    clock: str  # "business" (lands in working time) or "wall" (keeps its wall-clock moment)
    touches: str
    tests: tuple[str, ...]  # "module::test function"


HERE = "test_shipped_timers"
SALES = "test_process_sales"
SALES_BT = "test_process_sales_business_time"
CARE = "test_process_care"
ROUTINES = "test_process_routines"
TIMERS: dict[tuple[str, str], Proof] = {
    ("sales", "Timer_60"): Proof(
        "business",
        "staff task: Task_verify taken from the owner and given to another sales rep (due 60 working minutes later)",
        (
            f"{SALES_BT}::test_the_60_minute_rule_counts_working_minutes",  # evening, Saturday, Sunday night, Tết
            "test_business_due_dates::test_the_shipped_verification_task_is_due_in_working_time",
        ),
    ),
    ("sales", "Timer_recall"): Proof(
        "business",
        "staff task: Task_recall for the owner (due 4 working hours later)",
        (
            f"{SALES}::test_call_back_is_booked_for_the_next_working_half_day",  # evening, weekend, New Year, Tết
            f"{HERE}::test_sales_call_back_fires_in_working_time",
        ),
    ),
    ("sales", "Timer_demo_reminder"): Proof(
        "wall",
        "customer message: Zalo demo_confirmation; staff task: Task_confirm for the owner, due 30 min before the demo",
        (
            f"{HERE}::test_demo_reminder_keeps_its_wall_clock_hour_before_the_demo",
            f"{HERE}::test_demo_reminder_before_opening_waits_for_the_sending_window",
        ),
    ),
    ("sales", "Timer_w_3d"): Proof(
        "business",
        "staff task: the next closing push Task_w_hot / Task_w_warm for the owner (due one working day later)",
        (
            f"{SALES}::test_closing_pushes_every_3_days_and_default_promotion_at_day_7",  # over a Sunday
            f"{HERE}::test_closing_window_across_tet",
            f"{HERE}::test_a_push_made_on_a_saturday_is_due_on_monday",
        ),
    ),
    ("sales", "Timer_w_daily"): Proof(
        "business",
        "staff task: Task_w_daily (contact the customer) for the owner every working day of the closing window, "
        "due 4 working hours later",
        (
            f"{SALES}::test_daily_contact_tasks_in_business_time_beside_the_3_day_pushes",  # over a Sunday
            f"{HERE}::test_no_daily_contact_falls_in_tet",
        ),
    ),
    ("sales", "Timer_w_negotiation"): Proof(
        "wall",
        "customer message: Zalo negotiation_reminder; staff task: Task_w_negotiation for the owner, "
        "due 30 min before the negotiation appointment",
        (
            f"{SALES}::test_negotiation_appointment_is_in_the_reps_calendar_and_reminded_an_hour_before",
            f"{HERE}::test_negotiation_reminder_before_opening_waits_for_the_sending_window",
        ),
    ),
    ("sales", "Timer_7d"): Proof(
        "wall",
        "staff task: Task_promo_approve for the team leader (due one working day later); once approved, "
        "a Zalo promotion to the customer",
        (
            f"{SALES}::test_closing_pushes_every_3_days_and_default_promotion_at_day_7",
            f"{HERE}::test_closing_window_across_tet",
        ),
    ),
    ("sales", "Timer_c_3d"): Proof(
        "business",
        "staff task: Task_care for the owner (due one working day later)",
        (
            f"{SALES}::test_closing_pushes_every_3_days_and_default_promotion_at_day_7",
            f"{HERE}::test_closing_window_across_tet",
        ),
    ),
    ("sales", "Timer_pay"): Proof(
        "business",
        "staff task: Task_payment for the accountants again (no due date)",
        (
            f"{SALES}::test_won_customer_pays_starts_onboarding_and_gets_the_30_day_upsell_call",  # over a Sunday
            f"{HERE}::test_payment_is_checked_again_one_working_day_later",
        ),
    ),
    ("sales", "Timer_30d"): Proof(
        "wall",
        "staff task: Task_upsell for the owner (due one working day later)",
        (
            f"{SALES}::test_won_customer_pays_starts_onboarding_and_gets_the_30_day_upsell_call",
            f"{HERE}::test_upsell_call_comes_thirty_wall_clock_days_after_the_payment",
        ),
    ),
    ("onboarding", "Boundary_receive_sla"): Proof(
        "business",
        "staff task: Task_receive_escalate for the team leader (due 2 working hours later)",
        (
            f"{SALES_BT}::test_a_customer_won_on_a_friday_evening_escalates_after_30_working_minutes",
            f"{HERE}::test_reception_sla_counts_working_minutes",
            f"{HERE}::test_a_staff_task_a_timer_makes_is_due_in_working_time",  # the call it watches
        ),
    ),
    ("onboarding", "Timer_day_before"): Proof(
        "wall",
        "customer message: Zalo session_reminder to the group; staff task: Task_confirm for the teacher, "
        "due 30 min before the session",
        (f"{HERE}::test_training_reminders_and_session_start_keep_their_wall_clock_moments",),
    ),
    ("onboarding", "Timer_session_start"): Proof(
        "wall",
        "staff task: Task_teacher_note for the teacher (due 4 working hours later)",
        (
            f"{HERE}::test_training_reminders_and_session_start_keep_their_wall_clock_moments",
            f"{HERE}::test_the_note_of_a_late_afternoon_session_is_due_the_next_working_morning",
            f"{HERE}::test_a_staff_task_a_timer_makes_is_due_in_working_time",  # the call after the note
        ),
    ),
    ("onboarding", "Boundary_training_deadline"): Proof(
        "wall",
        "staff task: Task_training_escalate for the team leader (due one working day later)",
        (f"{HERE}::test_training_deadline_is_two_wall_clock_weeks",),
    ),
    ("onboarding", "Boundary_renewal_due"): Proof(
        "business",
        "state: stage CHĂM SÓC TÁI KÝ and its tag; customer message: Zalo renewal_notice; "
        "staff task: Task_renewal_call for customer care (due 3 working days later)",
        (
            f"{CARE}::test_renewal_starts_three_months_before_the_contract_end",
            f"{HERE}::test_monthly_care_on_a_saturday_of_tet_then_renewal_after_tet",
        ),
    ),
    ("onboarding", "Timer_contract_end"): Proof(
        "wall",
        "state: the customer's account locked (status Khóa, stage KHÓA)",
        (
            f"{CARE}::test_not_renewed_customer_stops_with_a_reason_and_is_locked_at_the_end_date",
            f"{HERE}::test_renewal_talks_across_tet_until_a_contract_end_on_a_sunday",
        ),
    ),
    ("care_month", "Timer_care_due"): Proof(
        "wall",
        "customer message: Zalo care_monthly; staff task: a care call booked in a customer care member's "
        "calendar and Task_care_call for them, due 30 min after its start (booked during Tết: xfail)",
        (
            f"{CARE}::test_each_monthly_call_is_booked_in_the_care_calendar",
            f"{HERE}::test_monthly_care_on_a_saturday_of_tet_then_renewal_after_tet",
            f"{HERE}::test_a_staff_task_a_timer_makes_is_due_in_working_time",  # xfail: a call booked in Tết
        ),
    ),
    ("care_month", "Boundary_care_overdue"): Proof(
        "wall",
        "nothing by itself: the moment the month's call falls overdue (its booked start + 30 min, inside the care "
        "staff's hours) starts the escalation delay (Timer_care_escalate)",
        (
            f"{CARE}::test_care_never_stalls_over_twelve_months_of_calls_done_late_and_skipped",
            f"{HERE}::test_an_overdue_care_call_goes_to_the_team_leader_after_three_working_days_across_tet",
        ),
    ),
    ("care_month", "Timer_care_escalate"): Proof(
        "business",
        "staff task: Task_care_escalate for the team leader (due one working day later); closed with the call",
        (
            f"{CARE}::test_care_never_stalls_over_twelve_months_of_calls_done_late_and_skipped",
            f"{CARE}::test_the_escalation_delay_is_configured_when_onboarding_starts",
            f"{HERE}::test_an_overdue_care_call_goes_to_the_team_leader_after_three_working_days_across_tet",
        ),
    ),
    ("care_month", "Boundary_care_month_over"): Proof(
        "wall",
        "state: the month's call and its escalation closed, a note that the month was missed; the next month's "
        "care starts at the same moment (Timer_care_due, Task_care_call)",
        (
            f"{CARE}::test_care_never_stalls_over_twelve_months_of_calls_done_late_and_skipped",
            f"{HERE}::test_an_overdue_care_call_goes_to_the_team_leader_after_three_working_days_across_tet",
        ),
    ),
    ("renewal", "Timer_recall"): Proof(
        "wall",
        "staff task: Task_renewal_call for customer care again (due 3 working days later)",
        (f"{HERE}::test_renewal_talks_across_tet_until_a_contract_end_on_a_sunday",),
    ),
    ("checkin", "Start_checkin"): Proof(
        "business",
        "staff task: Task_checkin for every active sales rep at 08:30, due 09:30; none on a Sunday, a public "
        "holiday (Tết) or a company day off, and none replayed for the days before the deployment",
        (
            f"{ROUTINES}::test_check_ins_start_at_0830_on_working_days_and_skip_sundays_and_days_off",
            f"{ROUTINES}::test_a_public_holiday_has_no_check_in",
            f"{ROUTINES}::test_no_check_in_during_tet",
        ),
    ),
    ("checkin", "Timer_checkin_close"): Proof(
        "wall",
        "staff task: the day's unanswered Task_checkin cancelled at 23:30 (shown as missed on the team "
        "leader's page); the day's instance ends",
        (f"{ROUTINES}::test_the_day_closes_at_2330_and_an_unanswered_check_in_is_missed",),
    ),
    ("renewal", "Boundary_contract_end"): Proof(
        "wall",
        "staff task: Task_no_renew_reason for customer care (talks cut off; due one working day later)",
        (
            f"{CARE}::test_a_hesitating_customer_is_called_weekly_until_the_contract_runs_out",
            f"{HERE}::test_renewal_talks_across_tet_until_a_contract_end_on_a_sunday",
        ),
    ),
}


def shipped_timers() -> dict[tuple[str, str], str]:
    """(process id, element id) → its clock, for every timer event of processes/*.bpmn."""
    found: dict[tuple[str, str], str] = {}
    for path in sorted(PROCESSES.glob("*.bpmn")):
        for process in etree.parse(str(path)).getroot().findall("bpmn:process", NS):
            for definition in process.iter(f"{{{BPMN_NS}}}timerEventDefinition"):
                event = definition.getparent()
                calendar = event.find(
                    "bpmn:extensionElements/camunda:properties/camunda:property[@name='calendar']", NS
                )
                found[(process.get("id"), event.get("id"))] = "wall" if calendar is None else calendar.get("value")
    return found


def test_every_shipped_timer_has_a_clock_driven_test() -> None:
    shipped = shipped_timers()
    missing = sorted(f"{p}:{e}" for p, e in shipped.keys() - TIMERS.keys())
    assert not missing, f"timers without a clock-driven test in tests/test_shipped_timers.py TIMERS: {missing}"
    stale = sorted(f"{p}:{e}" for p, e in TIMERS.keys() - shipped.keys())
    assert not stale, f"TIMERS names timers no shipped diagram has: {stale}"
    wrong = {f"{p}:{e}": clock for (p, e), clock in shipped.items() if TIMERS[(p, e)].clock != clock}
    assert not wrong, f"the diagram's calendar differs from the table: {wrong}"


def test_every_test_the_table_names_exists() -> None:
    for (process_id, element_id), proof in TIMERS.items():
        assert proof.tests and proof.touches, (process_id, element_id)
        for name in proof.tests:
            module, function = name.split("::")
            assert callable(getattr(importlib.import_module(module), function, None)), f"{element_id}: no test {name}"


# --- runners whose clock starts at a chosen moment -----------------------------------------------------


@pytest.fixture
def sales_at(sqlite_url: str, registry: Registry) -> Iterator[Callable[..., Runner]]:
    """A company whose lead KH0001 comes in at a moment; every shipped diagram deployed."""
    made: list[Runner] = []

    def make(moment: datetime, **overrides) -> Runner:
        r = runner_at(sqlite_url, registry, moment, **overrides)
        made.append(r)
        company(r)
        add_customer(r, KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn")
        r.deploy([PROCESSES])
        start(r, "sales", KH)
        return r

    yield make
    for r in made:
        r.db.engine.dispose()


@pytest.fixture
def won_at(sqlite_url: str, registry: Registry) -> Iterator[Callable[..., Runner]]:
    """A customer won at a moment: the post-sale diagrams start for them (``onboard``) with their clock there."""
    made: list[Runner] = []

    def make(moment: datetime, months: int = 12) -> Runner:
        r = post_sale_runner(sqlite_url, registry, start=moment)
        made.append(r)
        onboard(r, months=months)
        return r

    yield make
    for r in made:
        r.db.engine.dispose()


# --- sales -------------------------------------------------------------------------------------------


def demo_given(r: Runner, demo_at: datetime, *, promising: bool = False, negotiation: datetime | None = None) -> None:
    """From the lead's verification (now) to the demo at ``demo_at``, given in 45 minutes.

    The negotiation is booked for ``negotiation``, by default the next working moment a day after the demo.
    """
    complete(r, KH, "Task_verify", {"verdict": "good"}, by="an")
    complete(r, KH, "Task_call", {"call_result": "reached"}, by="an")
    complete(r, KH, "Task_survey", {**SURVEY, "demo_at": naive(demo_at)}, by="an")
    advance(r, to=demo_at - timedelta(minutes=60))
    complete(r, KH, "Task_confirm", {"demo_status": "confirmed"}, by="an")
    advance(r, to=demo_at + timedelta(minutes=45))
    negotiation = negotiation or worktime.next_working_instant(CAL, demo_at + timedelta(days=1))
    data = {"promising": promising, "negotiation_at": naive(negotiation), "sample_contract": False}
    complete(r, KH, "Task_demo", {**data, "demo_note": "Khách quan tâm phân hệ học phí."}, by="an")


def to_payment(r: Runner, demo_at: datetime) -> None:
    """A promising demo at ``demo_at``, won a quarter of an hour later: the accountants' payment check is open."""
    demo_given(r, demo_at, promising=True)
    advance(r, minutes=15)
    complete(r, KH, "Task_w_hot", {"negotiation_result": "won", "negotiation_note": "Chốt gói Chuyên nghiệp."}, by="an")
    contract = {"package": "Gói Chuyên nghiệp", "amount": 12_000_000, "contract_months": 12, "promotion_terms": ""}
    complete(r, KH, "Task_contract", contract, by="an")
    assert task(r, KH, "Task_payment")["candidate_groups"] == ["accountant"]


@pytest.mark.parametrize(
    ("called", "callback", "recall_due"),
    [
        (at(2026, 12, 7, 22, 30), at(2026, 12, 8, 8), at(2026, 12, 8, 12)),  # a Monday evening → Tuesday morning
        (at(2026, 12, 11, 15), at(2026, 12, 12, 8), at(2026, 12, 12, 12)),  # Friday afternoon → Saturday morning
        (on(EVE_OF_TET, 15), on(AFTER_TET, 8), on(AFTER_TET, 12)),  # the eve of Tết → after Tết
    ],
    ids=["evening", "weekend", "tet"],
)
def test_sales_call_back_fires_in_working_time(
    sales_at, called: datetime, callback: datetime, recall_due: datetime
) -> None:
    r = sales_at(called)
    complete(r, KH, "Task_verify", {"verdict": "good"}, by="an")
    complete(r, KH, "Task_call", {"call_result": "not_reached"}, by="an")
    assert timers_scheduled(r, KH, "Timer_recall") == [callback]
    advance(r, to=callback - timedelta(minutes=1))
    assert open_tasks(r, KH) == []
    advance(r, minutes=1)
    assert fired(r, "Timer_recall") == [callback]
    recall = task(r, KH, "Task_recall")
    assert (recall["assignee"], created(recall), due(recall)) == ("an", callback, recall_due)  # 4 working hours
    assert outbox(r, KH) == []  # the customer gets nothing: the owner calls


@pytest.mark.parametrize(
    ("lead", "demo_at"),
    [
        (at(2026, 12, 11, 20), at(2026, 12, 14, 8, 30)),  # booked on a Friday evening for Monday 08:30
        (on(EVE_OF_TET, 10), on(AFTER_TET, 8, 30)),  # booked on the eve of Tết for the first morning after it
    ],
    ids=["weekend", "tet"],
)
def test_demo_reminder_keeps_its_wall_clock_hour_before_the_demo(sales_at, lead: datetime, demo_at: datetime) -> None:
    r = sales_at(lead)
    complete(r, KH, "Task_verify", {"verdict": "good"}, by="an")
    complete(r, KH, "Task_call", {"call_result": "reached"}, by="an")
    complete(r, KH, "Task_survey", {**SURVEY, "demo_at": naive(demo_at)}, by="an")
    reminder = demo_at - timedelta(hours=1)  # 07:30: before working time, and not moved into it
    assert timers_scheduled(r, KH, "Timer_demo_reminder") == [reminder] and not working(reminder)
    advance(r, to=reminder - timedelta(minutes=1))
    assert [m["payload"]["template"] for m in outbox(r, KH)] == ["demo_account", "demo_account"]
    assert open_tasks(r, KH) == []

    advance(r, minutes=1)

    confirmation = outbox(r, KH)[-1]
    assert (confirmation["channel"], confirmation["payload"]["template"]) == ("zalo", "demo_confirmation")
    assert (confirmation["payload"]["to"], confirmation["payload"]["recipient_id"]) == ("user", SURVEY["zalo_user_id"])
    assert confirmation["created_at"].astimezone(TZ) == reminder
    confirm = task(r, KH, "Task_confirm")
    assert (confirm["assignee"], created(confirm), due(confirm)) == ("an", reminder, demo_at - timedelta(minutes=30))


def test_demo_reminder_before_opening_waits_for_the_sending_window(sales_at) -> None:
    demo_at = on(AFTER_TET, 8, 30)
    r = sales_at(on(EVE_OF_TET, 10), sending_window=SendingWindow.parse("08:00-20:00"))
    complete(r, KH, "Task_verify", {"verdict": "good"}, by="an")
    complete(r, KH, "Task_call", {"call_result": "reached"}, by="an")
    complete(r, KH, "Task_survey", {**SURVEY, "demo_at": naive(demo_at)}, by="an")
    advance(r, to=on(AFTER_TET, 7, 30))  # the reminder fires on time; the customer's Zalo waits for 08:00
    assert fired(r, "Timer_demo_reminder") == [on(AFTER_TET, 7, 30)]
    confirmation = outbox(r, KH)[-1]
    assert (confirmation["payload"]["template"], confirmation["state"]) == ("demo_confirmation", "pending")
    assert confirmation["due_at"].astimezone(TZ) == on(AFTER_TET, 8)
    assert due(task(r, KH, "Task_confirm")) == on(AFTER_TET, 8)  # the owner's call is due 30 min before the demo
    advance(r, to=on(AFTER_TET, 8))
    sent = outbox(r, KH)[-1]
    assert (sent["state"], sent["sent_at"].astimezone(TZ)) == ("sent", on(AFTER_TET, 8))


def closing_window_on_the_eve_of_tet(sales_at) -> Runner:
    """A demo on the eve of Tết at 10:00; the first push 15 minutes after it: not closed."""
    r = sales_at(on(EVE_OF_TET - timedelta(days=2), 9))
    demo_given(r, on(EVE_OF_TET, 10))
    advance(r, minutes=15)
    complete(r, KH, "Task_w_warm", {"negotiation_result": "continue", "negotiation_note": "Hỏi ý sếp."}, by="an")
    return r


def test_closing_window_across_tet(sales_at) -> None:
    r = closing_window_on_the_eve_of_tet(sales_at)
    closing_point = on(EVE_OF_TET, 10, 45) + timedelta(days=7)  # wall clock: the last day of Tết
    assert closing_point.date() == TET[-1]
    assert timers_scheduled(r, KH, "Timer_7d") == [closing_point]
    # The next push counts working days: Thursday, Friday and Saturday after Tết, at 11:00.
    assert timers_scheduled(r, KH, "Timer_w_3d") == [on(AFTER_TET + timedelta(days=2), 11)]
    advance(r, to=closing_point - timedelta(minutes=1))
    assert open_tasks(r, KH) == []

    advance(r, minutes=1)  # the 7-day closing point passes during Tết: the team leader is asked then

    assert fired(r, "Timer_7d") == [closing_point]
    approval = task(r, KH, "Task_promo_approve")
    assert (approval["candidate_groups"], approval["assignee"], created(approval)) == (
        ["team_leader"],
        None,
        closing_point,
    )
    assert due(approval) == on(AFTER_TET, 10, 45)  # one working day: not on Tết
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_promo_approve"]  # the push was called off
    advance(r, to=on(AFTER_TET, 9))
    promotion = "Tặng thêm 1 tháng sử dụng khi ký hợp đồng 12 tháng."
    complete(r, KH, "Task_promo_approve", {"promotion_approved": True, "promotion": promotion}, by="tuan")
    sent = outbox(r, KH)[-1]
    assert (sent["channel"], sent["payload"]["template"], sent["created_at"].astimezone(TZ)) == (
        "zalo",
        "promotion",
        on(AFTER_TET, 9),
    )
    assert promotion in sent["payload"]["text"]

    advance(r, to=on(AFTER_TET, 16))
    complete(r, KH, "Task_care", {"negotiation_result": "continue", "negotiation_note": "Chưa quyết."}, by="an")
    push = on(AFTER_TET + timedelta(days=4), 16)  # Friday, Saturday, (not Sunday) Monday at 16:00
    assert timers_scheduled(r, KH, "Timer_c_3d") == [push] and push.weekday() == 0
    advance(r, to=push - timedelta(minutes=1))
    assert open_tasks(r, KH) == []
    advance(r, minutes=1)
    care = task(r, KH, "Task_care")
    assert (care["assignee"], created(care), due(care)) == ("an", push, push + timedelta(days=1))
    assert fired(r, "Timer_w_3d") == []  # cancelled with the closing window


def test_no_daily_contact_falls_in_tet(sales_at) -> None:
    r = closing_window_on_the_eve_of_tet(sales_at)  # the window opened on the eve of Tết at 10:45
    # The next working day is after Tết; the 7-day closing point (the last day of Tết) comes first.
    assert timers_scheduled(r, KH, "Timer_w_daily") == [on(AFTER_TET, 10, 45)]
    advance(r, to=on(AFTER_TET, 12))
    assert fired(r, "Timer_w_daily") == [] and "Task_w_daily" not in [e for e, _, _ in created_tasks(r, KH)]


def test_negotiation_reminder_before_opening_waits_for_the_sending_window(sales_at) -> None:
    r = sales_at(at(2026, 12, 7, 9), sending_window=SendingWindow.parse("08:00-20:00"))
    negotiation = at(2026, 12, 10, 8)  # Thursday, the first working minute
    demo_given(r, at(2026, 12, 9, 10), negotiation=negotiation)
    assert timers_scheduled(r, KH, "Timer_w_negotiation") == [negotiation - timedelta(hours=1)]
    advance(r, to=negotiation - timedelta(hours=1))  # 07:00: fires on time, the customer's Zalo waits for 08:00
    assert fired(r, "Timer_w_negotiation") == [at(2026, 12, 10, 7)]
    reminder = outbox(r, KH)[-1]
    assert (reminder["payload"]["template"], reminder["state"]) == ("negotiation_reminder", "pending")
    assert reminder["due_at"].astimezone(TZ) == negotiation
    call = task(r, KH, "Task_w_negotiation")
    assert (call["assignee"], created(call), due(call)) == ("an", at(2026, 12, 10, 7), at(2026, 12, 10, 7, 30))
    advance(r, to=negotiation)
    assert outbox(r, KH)[-1]["state"] == "sent"


def test_a_push_made_on_a_saturday_is_due_on_monday(sales_at) -> None:
    r = sales_at(at(2026, 12, 7, 9))
    demo_given(r, at(2026, 12, 9, 10))
    advance(r, minutes=15)
    complete(r, KH, "Task_w_warm", {"negotiation_result": "continue", "negotiation_note": "Hỏi ý sếp."}, by="an")
    saturday = at(2026, 12, 12, 11)  # three working days after Wednesday 11:00
    assert timers_scheduled(r, KH, "Timer_w_3d") == [saturday]
    advance(r, to=saturday)
    push = task(r, KH, "Task_w_warm")
    assert (push["assignee"], created(push), due(push)) == ("an", saturday, at(2026, 12, 14, 11))  # not Sunday


@pytest.mark.parametrize(
    ("not_paid", "again"),
    [
        (at(2027, 1, 8, 19), at(2027, 1, 11, 8)),  # Friday evening → Monday 08:00 (not Saturday 19:00)
        (on(EVE_OF_TET, 16), on(AFTER_TET, 16)),  # the eve of Tết → the first working day after it
    ],
    ids=["evening-weekend", "tet"],
)
def test_payment_is_checked_again_one_working_day_later(sales_at, not_paid: datetime, again: datetime) -> None:
    day = not_paid.date() - timedelta(days=2)
    r = sales_at(on(day, 9))
    to_payment(r, on(day, 14))
    advance(r, to=not_paid)
    complete(r, KH, "Task_payment", {"paid": False}, by="ketoan")
    assert timers_scheduled(r, KH, "Timer_pay") == [again]
    advance(r, to=again - timedelta(minutes=1))
    assert open_tasks(r, KH) == []
    advance(r, minutes=1)
    check = task(r, KH, "Task_payment")
    assert (check["candidate_groups"], check["assignee"], created(check)) == (["accountant"], None, again)


def upsell_due_on_a_sunday_of_tet(sales_at) -> Runner:
    """A customer who paid 30 days before the Sunday of Tết, at 10:00."""
    paid = on(TET[3] - timedelta(days=30), 10)
    r = sales_at(on(paid.date() - timedelta(days=2), 9))
    to_payment(r, on(paid.date() - timedelta(days=2), 14))
    advance(r, to=paid)
    complete(r, KH, "Task_payment", {"paid": True}, by="ketoan")
    return r


def test_upsell_call_comes_thirty_wall_clock_days_after_the_payment(sales_at) -> None:
    r = upsell_due_on_a_sunday_of_tet(sales_at)
    upsell_at = on(TET[3], 10)
    assert upsell_at.weekday() == 6
    assert timers_scheduled(r, KH, "Timer_30d") == [upsell_at]  # a Sunday of Tết: the wall clock keeps it
    advance(r, to=upsell_at - timedelta(minutes=1))
    assert "Task_upsell" not in [t["element_id"] for t in open_tasks(r, KH)]
    advance(r, minutes=1)
    upsell = task(r, KH, "Task_upsell")
    assert (upsell["assignee"], created(upsell)) == ("an", upsell_at)
    assert due(upsell) == on(AFTER_TET, 10)  # one working day later: after Tết, not on its Monday


# --- onboarding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "sla", "escalation_due"),
    [
        (at(2026, 12, 12, 11, 50), at(2026, 12, 14, 8, 20), at(2026, 12, 14, 10, 20)),  # Saturday noon → Monday
        (at(2026, 12, 13, 23, 50), at(2026, 12, 14, 8, 30), at(2026, 12, 14, 10, 30)),  # Sunday night → Monday
        (on(EVE_OF_TET, 17, 15), on(AFTER_TET, 8, 15), on(AFTER_TET, 10, 15)),  # 15 minutes before Tết, 15 after
    ],
    ids=["saturday", "sunday-night", "tet"],
)
def test_reception_sla_counts_working_minutes(
    won_at, received: datetime, sla: datetime, escalation_due: datetime
) -> None:
    r = won_at(received)
    assert timers_scheduled(r, KH, "Boundary_receive_sla") == [sla]
    advance(r, to=sla - timedelta(minutes=1))
    assert "Task_receive_escalate" not in [e for e, _, _ in created_tasks(r, KH)]
    advance(r, minutes=1)
    assert fired(r, "Boundary_receive_sla") == [sla]
    escalation = task(r, KH, "Task_receive_escalate")
    assert (escalation["candidate_groups"], escalation["assignee"]) == (["team_leader"], None)
    assert (created(escalation), due(escalation)) == (sla, escalation_due)  # 2 working hours
    assert task(r, KH, "Task_booking_call")  # the escalation does not stop the booking call


@pytest.mark.parametrize(
    ("received", "first"),
    [
        (at(2026, 12, 11, 10), at(2026, 12, 14, 9)),  # a Monday session: reminded on the Sunday before
        (on(EVE_OF_TET, 10), on(AFTER_TET, 9)),  # the first session after Tết: reminded on Tết's last day
    ],
    ids=["sunday", "tet"],
)
def test_training_reminders_and_session_start_keep_their_wall_clock_moments(
    won_at, received: datetime, first: datetime
) -> None:
    r = won_at(received)
    second = first + timedelta(days=1)
    book_training(r, slots=[naive(first), naive(second)])
    day_before = first - timedelta(days=1)
    assert not working(day_before)  # a Sunday, or a day of Tết: the wall clock keeps it anyway
    assert timers_scheduled(r, KH, "Timer_day_before") == [day_before]
    advance(r, to=day_before - timedelta(minutes=1))
    assert "session_reminder" not in [m["payload"]["template"] for m in outbox(r, KH)]
    assert "Task_confirm" not in [t["element_id"] for t in open_tasks(r, KH)]

    advance(r, minutes=1)

    reminder = outbox(r, KH)[-1]
    assert (reminder["channel"], reminder["payload"]["template"], reminder["payload"]["to"]) == (
        "zalo",
        "session_reminder",
        "group",
    )
    assert (reminder["payload"]["recipient_id"], reminder["created_at"].astimezone(TZ)) == (f"zg-{KH}", day_before)
    confirm = task(r, KH, "Task_confirm")
    assert (confirm["assignee"], created(confirm), due(confirm)) == (TEACHER, day_before, first - timedelta(minutes=30))
    complete(r, KH, "Task_confirm", {"confirmation": "confirmed"}, by=TEACHER)
    assert timers_scheduled(r, KH, "Timer_session_start") == [first]
    advance(r, to=first - timedelta(minutes=1))
    assert "Task_teacher_note" not in [t["element_id"] for t in open_tasks(r, KH)]
    advance(r, minutes=1)
    note = task(r, KH, "Task_teacher_note")
    assert (note["assignee"], created(note), due(note)) == (TEACHER, first, first + timedelta(hours=4))


def training_deadline_in_tet(won_at) -> Runner:
    """A customer received on a Saturday two weeks before Tết's Saturday, at 10:00, whose training is late."""
    r = won_at(on(TET[2] - timedelta(days=14), 10))
    book_training(r)
    return r


@pytest.mark.parametrize("when", ["friday-evening", "tet"])
def test_training_deadline_is_two_wall_clock_weeks(won_at, when: str) -> None:
    if when == "tet":
        r, deadline, escalation_due = training_deadline_in_tet(won_at), on(TET[2], 10), on(AFTER_TET, 10)
    else:
        r, deadline, escalation_due = won_at(at(2026, 12, 11, 19)), at(2026, 12, 25, 19), at(2026, 12, 28, 8)
        book_training(r)
    assert timers_scheduled(r, KH, "Boundary_training_deadline") == [deadline] and not working(deadline)
    advance(r, to=deadline - timedelta(minutes=1))
    assert "Task_training_escalate" not in [e for e, _, _ in created_tasks(r, KH)]
    advance(r, minutes=1)
    escalation = task(r, KH, "Task_training_escalate")
    assert (escalation["candidate_groups"], escalation["assignee"]) == (["team_leader"], None)
    assert (created(escalation), due(escalation)) == (deadline, escalation_due)  # one working day later
    assert stages(r, KH) == ["TIẾP NHẬN", "ĐÀO TẠO"]  # training goes on


# --- monthly care, renewal, the contract's end ---------------------------------------------------------


def care_then_renewal_around_tet(won_at) -> Runner:
    """A 4-month contract from the first Tuesday of 2027: handed over two days later, its renewal due in Tết."""
    r = won_at(at(2027, 1, 5, 9), months=4)
    train_and_hand_over(r)
    return r


def test_monthly_care_on_a_saturday_of_tet_then_renewal_after_tet(won_at) -> None:
    r = care_then_renewal_around_tet(won_at)
    care_due = on(TET[2], 9)  # a month after the handover (6 January, 09:00): Tết's Saturday, kept
    assert timers_scheduled(r, KH, "Timer_care_due") == [care_due]
    # renewal care 3 months before the end (5 May): 5 February is in Tết, so the first working minute after it
    assert customer(r, KH)["contract_end"] == "2027-05-05"
    assert timers_scheduled(r, KH, "Boundary_renewal_due") == [on(AFTER_TET, 8)]
    advance(r, to=care_due - timedelta(minutes=1))
    assert "care_monthly" not in [m["payload"]["template"] for m in outbox(r, KH)]

    advance(r, minutes=1)

    assert fired(r, "Timer_care_due") == [care_due]
    message = outbox(r, KH)[-1]
    assert (message["channel"], message["payload"]["template"], message["created_at"].astimezone(TZ)) == (
        "zalo",
        "care_monthly",
        care_due,
    )
    call_at = datetime.fromisoformat(result_of(r, KH, "Task_book_care")["session_starts"][0])
    call = task(r, KH, "Task_care_call")
    assert (call["assignee"], created(call), due(call)) == (CSKH, care_due, call_at + timedelta(minutes=30))
    advance(r, to=on(AFTER_TET, 7, 59))
    assert "CHĂM SÓC TÁI KÝ" not in stages(r, KH)

    advance(r, minutes=1)

    assert fired(r, "Boundary_renewal_due") == [on(AFTER_TET, 8)]
    assert stages(r, KH)[-1] == "CHĂM SÓC TÁI KÝ" and "CHĂM SÓC TÁI KÝ" in customer(r, KH)["tags"]
    notice = outbox(r, KH)[-1]
    assert (notice["channel"], notice["payload"]["template"], notice["created_at"].astimezone(TZ)) == (
        "zalo",
        "renewal_notice",
        on(AFTER_TET, 8),
    )
    renewal = task(r, KH, "Task_renewal_call")
    assert (renewal["candidate_groups"], created(renewal)) == (["customer_care"], on(AFTER_TET, 8))
    assert due(renewal) == on(AFTER_TET + timedelta(days=4), 8)  # 3 working days: Friday, Saturday, Monday
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_renewal_call"]  # the month's call gave way


def test_an_overdue_care_call_goes_to_the_team_leader_after_three_working_days_across_tet(won_at) -> None:
    r = won_at(at(2027, 1, 5, 9), months=12)
    train_and_hand_over(r)
    advance(r, to=on(TET[2], 9))  # the first month's care, on Tết's Saturday: the call is booked after Tết
    call = task(r, KH, "Task_care_call")
    overdue = on(AFTER_TET, 8, 30)
    next_month = at(2027, 3, 6, 9)  # the second month's date, a Saturday: the wall clock keeps it
    assert due(call) == overdue and next_month.weekday() == 5
    assert timers_scheduled(r, KH, "Boundary_care_overdue") == [overdue]
    assert timers_scheduled(r, KH, "Boundary_care_month_over") == [next_month]
    advance(r, to=overdue)
    escalate_at = on(AFTER_TET + timedelta(days=4), 8, 30)  # three working days: Friday, Saturday, (Sunday) Monday
    assert fired(r, "Boundary_care_overdue") == [overdue]
    assert timers_scheduled(r, KH, "Timer_care_escalate") == [escalate_at]
    advance(r, to=escalate_at - timedelta(minutes=1))
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_care_call"]

    advance(r, minutes=1)

    escalation = task(r, KH, "Task_care_escalate")
    assert (escalation["candidate_groups"], created(escalation)) == (["team_leader"], escalate_at)
    assert due(escalation) == escalate_at + timedelta(days=1)  # one working day: Tuesday
    advance(r, to=next_month - timedelta(minutes=1))
    assert sorted(t["element_id"] for t in open_tasks(r, KH)) == ["Task_care_call", "Task_care_escalate"]

    advance(r, minutes=1)  # nobody called in the month: it is missed, and the second month starts on its day

    assert fired(r, "Boundary_care_month_over") == [next_month]
    assert fired(r, "Timer_care_due") == [on(TET[2], 9), next_month]
    second = task(r, KH, "Task_care_call")
    assert second["id"] != call["id"] and created(second) == next_month
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_care_call"]


def renewal_talks_until_tet(won_at, decision: str) -> Runner:
    """A 2-month contract ending on Tết's Sunday: renewal care from the handover; an answer in late January."""
    r = won_at(on(TET[3], 9) - timedelta(days=62), months=2)
    train_and_hand_over(r)
    assert customer(r, KH)["contract_end"] == TET[3].isoformat()
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_renewal_call"]  # 3 months before: already
    advance(r, to=at(2027, 1, 28, 15))
    call = {"renewal_decision": decision, "renewal_amount": 15_000_000, "renewal_note": "Khách cần thêm thời gian"}
    complete(r, KH, "Task_renewal_call", call, by=CSKH)
    return r


@pytest.mark.parametrize("decision", ["considering", "decline"])
def test_renewal_talks_across_tet_until_a_contract_end_on_a_sunday(won_at, decision: str) -> None:
    r = renewal_talks_until_tet(won_at, decision)
    end = on(TET[3], 0)  # the contract's end date at midnight: a Sunday of Tết, kept
    if decision == "considering":
        recall = on(TET[0], 15)  # a week later on the wall clock: the first day of Tết
        assert timers_scheduled(r, KH, "Timer_recall") == [recall]
        assert timers_scheduled(r, KH, "Boundary_contract_end") == [end]
        advance(r, to=recall - timedelta(minutes=1))
        assert open_tasks(r, KH) == []
        advance(r, minutes=1)
        call = task(r, KH, "Task_renewal_call")
        assert (call["candidate_groups"], created(call)) == (["customer_care"], recall)
        assert due(call) == on(AFTER_TET + timedelta(days=4), 8)  # Thu, Fri, Sat 15:00 (time off) → Monday
        advance(r, to=end - timedelta(minutes=1))
        assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_renewal_call"]
        advance(r, minutes=1)  # nobody decided before the end: the talks are cut off
        assert fired(r, "Boundary_contract_end") == [end]
        reason = task(r, KH, "Task_no_renew_reason")
        assert (reason["candidate_groups"], created(reason), due(reason)) == (["customer_care"], end, on(AFTER_TET, 8))
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_no_renew_reason"]
    complete(r, KH, "Task_no_renew_reason", {"stop_reason": "Không tái ký hợp đồng"}, by=CSKH)
    assert timers_scheduled(r, KH, "Timer_contract_end") == [end]
    if r.now() < end:
        advance(r, to=end - timedelta(minutes=1))
        assert customer(r, KH)["status"] == "Dừng chăm sóc"
        advance(r, minutes=1)
    assert fired(r, "Timer_contract_end") == [end]
    assert (customer(r, KH)["status"], stages(r, KH)[-1]) == ("Khóa", "KHÓA")


# --- staff tasks that a timer's firing makes, due outside working time (bugs, reported) -----------------


def late_afternoon_session(won_at) -> Runner:
    """A first training session at 16:00-17:30 (inside the teacher's hours), confirmed: the clock at its start."""
    r = won_at(at(2026, 12, 7, 9))
    first = at(2026, 12, 9, 16)
    book_training(r, slots=[naive(first), naive(first + timedelta(days=1))])
    advance(r, to=first - timedelta(days=1))
    complete(r, KH, "Task_confirm", {"confirmation": "confirmed"}, by=TEACHER)
    advance(r, to=first)
    return r


def test_the_note_of_a_late_afternoon_session_is_due_the_next_working_morning(won_at) -> None:
    r = late_afternoon_session(won_at)
    assert fired(r, "Timer_session_start") == [at(2026, 12, 9, 16)]
    note = task(r, KH, "Task_teacher_note")
    # 4 working hours: 16:00-17:30, then 08:00-10:30 the next day (not 20:00 that evening)
    assert (note["assignee"], created(note), due(note)) == (TEACHER, at(2026, 12, 9, 16), at(2026, 12, 10, 10, 30))


def after_training_call_after_a_next_morning_note(won_at) -> dict:
    r = late_afternoon_session(won_at)
    advance(r, to=at(2026, 12, 10, 10))  # the teacher writes the note in time, the next morning
    complete(r, KH, "Task_teacher_note", {"content": "Tuyển sinh, học phí", "understanding": 7}, by=TEACHER)
    return task(r, KH, "Task_after_training_call")


def care_call_booked_in_tet(won_at) -> dict:
    r = care_then_renewal_around_tet(won_at)
    advance(r, to=on(TET[2], 9))
    return task(r, KH, "Task_care_call")


def booking_call_received_at_saturday_noon(won_at) -> dict:
    return task(won_at(at(2026, 12, 12, 11, 50)), KH, "Task_booking_call")


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(after_training_call_after_a_next_morning_note, id="after-training-call-after-a-late-note"),
        pytest.param(care_call_booked_in_tet, id="care-call-after-tet"),
        pytest.param(booking_call_received_at_saturday_noon, id="booking-call-saturday-noon"),
    ],
)
def test_a_staff_task_a_timer_makes_is_due_in_working_time(won_at, case: Callable[..., dict]) -> None:
    row = case(won_at)
    assert working(due(row)), f"{row['element_id']} for {row['assignee'] or row['candidate_groups']} due {due(row)}"


def test_the_reception_calls_are_due_in_working_time_before_the_sla_escalates(won_at) -> None:
    """Received Saturday 11:50: 12:20 is time off, so the call is due at Monday's first working minute, before
    Boundary_receive_sla's 30 working minutes (10 on Saturday, 20 on Monday) run out at 08:20."""
    row = booking_call_received_at_saturday_noon(won_at)
    assert (created(row), due(row)) == (at(2026, 12, 12, 11, 50), at(2026, 12, 14, 8, 0))


def test_the_call_after_training_is_due_at_the_end_of_the_working_day_and_never_born_overdue(won_at) -> None:
    row = after_training_call_after_a_next_morning_note(won_at)
    # the 16:00 session's 19:00 is time off; the note came the next morning at 10:00: an hour from then
    assert (created(row), due(row)) == (at(2026, 12, 10, 10), at(2026, 12, 10, 11))


def test_the_monthly_care_call_due_in_tet_is_booked_on_the_first_working_day_after_it(won_at) -> None:
    """Timer_care_due fires on Tết's Saturday; the booking skips the holidays (without using up its 5-day
    window) and finds the first working day's first free slot of the care staff."""
    row = care_call_booked_in_tet(won_at)
    # booked Thursday 11 February at 08:00 (the call is due 30 minutes after its start); before, Monday 8 Feb
    assert (created(row), due(row)) == (on(TET[2], 9), on(AFTER_TET, 8, 30))
