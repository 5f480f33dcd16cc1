"""processes/onboarding.bpmn up to the handover: TIẾP NHẬN, ĐÀO TẠO, BÀN GIAO (seed 000).

Each scenario runs the real diagrams (onboarding, care_month, renewal) with the real crm,
booking and zalo handlers on the virtual clock, and asserts the stages entered, the tasks
created for each role, the outbox and the history. The helpers at the top drive a customer
through the steps; ``test_process_care.py`` reuses them to reach periodic care.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from runner.crm import bookings as calendar
from runner.crm.models import Booking, Note
from runner.model.timeparse import add_months
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import (
    START,
    TZ,
    add_customer,
    advance,
    company,
    complete,
    created_tasks,
    customer,
    history,
    instance_of,
    messages,
    open_tasks,
    runner_at,
    settle,
    stages,
    task,
    timers_scheduled,
)

ROOT = Path(__file__).resolve().parents[1]  # the checkout
PROCESSES = ROOT / "processes"
POST_SALE = [PROCESSES / "onboarding.bpmn", PROCESSES / "care_month.bpmn", PROCESSES / "renewal.bpmn"]
KH = "KH0001"
CSKH, TEACHER, LEAD, SALES = "hoa", "minh", "tuan", "an"
FACTS = {
    "business_model": "Trung tâm ngoại ngữ",
    "dedicated_department": True,
    "staff_count": 12,
    "student_count": 350,
    "course_model": "Theo khóa 3 tháng",
}


# --- driving a customer through the post-sale process -------------------------------------------


def post_sale_runner(url: str, registry: Registry, **overrides: Any) -> Runner:
    """A runner at START with the company, the weekly availability of the teacher and CSKH, the post-sale diagrams.

    ``overrides``: settings of the runner (e.g. its ``sending_window``).
    """
    r = runner_at(url, registry, **overrides)
    company(r)
    with r.db.unit() as s:
        calendar.set_availability(s, TEACHER, [(day, "08:00", "17:30") for day in range(6)])
        calendar.set_availability(s, CSKH, [(day, "08:00", "17:00") for day in range(5)])  # care calls
    r.deploy(POST_SALE)
    return r


@pytest.fixture
def r(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The post-sale runner on SQLite."""
    runner = post_sale_runner(sqlite_url, registry)
    yield runner
    runner.db.engine.dispose()


def onboard(
    r: Runner,
    customer_id: str = KH,
    *,
    months: int = 12,
    facts: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    """A customer sales has just won: their record, then sales' start_onboarding message (with ``data`` added);
    returns the instance id."""
    start = r.now().astimezone(TZ).date()
    end = add_months(start, months)
    add_customer(
        r,
        customer_id,
        f"Trung tâm Anh ngữ {customer_id}",
        phone="0912345678",
        owner=SALES,
        email=f"{customer_id.lower()}@example.vn",
        zalo_user_id=f"zu-{customer_id}",
        package="Chuyên nghiệp",
        contract_start=start.isoformat(),
        contract_end=end.isoformat(),
        status="Hoạt động",
        **(FACTS if facts is None else facts),
    )
    [instance_id] = r.correlate(
        "start_onboarding",
        customer_id,
        {
            "package": "Chuyên nghiệp",
            "contract_start": start.isoformat(),
            "contract_end": end.isoformat(),
            "owner": SALES,
            **(data or {}),
        },
    )
    settle(r)
    return instance_id


def result_of(r: Runner, customer_id: str, element_id: str, index: int = -1) -> dict[str, Any]:
    """The handler result of a service task (its ``index``-th run)."""
    found = [
        h["details"]["result"] for h in history(r, customer_id, "handler.succeeded") if h["element_id"] == element_id
    ]
    return found[index]


def book_training(r: Runner, customer_id: str = KH, slots: list[str] | None = None) -> list[str]:
    """CSKH's booking call: the customer takes the proposed slots (or ``slots``); returns the booked starts."""
    chosen = slots or result_of(r, customer_id, "Task_find_slots")["proposed_slots"]
    complete(
        r,
        customer_id,
        "Task_booking_call",
        {"slot_1": chosen[0], "slot_2": chosen[1], "booking_call_note": "Khách chốt lịch"},
        by=CSKH,
    )
    complete(r, customer_id, "Task_zalo_group", {"zalo_group_id": f"zg-{customer_id}"}, by=CSKH)
    return result_of(r, customer_id, "Task_book")["session_starts"]


def give_session(r: Runner, at: str, score: int, customer_id: str = KH, *, rating: int = 5) -> None:
    """One training session: the teacher confirms, teaches and notes the score; CSKH calls afterwards."""
    start = datetime.fromisoformat(at)
    if r.now() < start - timedelta(days=1):
        advance(r, to=start - timedelta(days=1))
    complete(r, customer_id, "Task_confirm", {"confirmation": "confirmed", "confirm_note": "Đã nhắc"}, by=TEACHER)
    advance(r, to=start)
    complete(
        r,
        customer_id,
        "Task_teacher_note",
        {"content": "Tuyển sinh, xếp lớp, học phí", "understanding": score},
        by=TEACHER,
    )
    complete(
        r,
        customer_id,
        "Task_after_training_call",
        {"attended": True, "customer_understanding": score, "teacher_rating": rating, "teacher_feedback": "Nhiệt tình"},
        by=CSKH,
    )


def train_and_hand_over(r: Runner, customer_id: str = KH, scores: tuple[int, ...] = (7, 9)) -> None:
    """From Tiếp nhận to the start of periodic care."""
    starts = book_training(r, customer_id)
    for number, score in enumerate(scores, start=1):
        if number == 3:
            starts = result_of(r, customer_id, "Task_book_third")["session_starts"]
            give_session(r, starts[0], score, customer_id)
        else:
            give_session(r, starts[number - 1], score, customer_id)
    complete(r, customer_id, "Task_handover", {"handover_note": "Khách dùng tốt phần học phí"}, by=CSKH)


def bookings(r: Runner, customer_id: str = KH, kind: str = "training") -> list[tuple[int | None, str, str]]:
    """(session no, teacher, status) of the customer's bookings of a kind, by start."""
    with r.db.read() as s:
        rows = s.scalars(
            select(Booking).where(Booking.customer_id == customer_id, Booking.kind == kind).order_by(Booking.start_at)
        )
        return [(b.session_no, b.teacher, b.status) for b in rows]


def elements(tasks: list[tuple[str, tuple, Any]]) -> list[str]:
    return [element for element, _, _ in tasks]


def notes(r: Runner, customer_id: str = KH) -> list[str]:
    """The customer's discussion notes (Thảo luận), oldest first."""
    with r.db.read() as s:
        return list(s.scalars(select(Note.text).where(Note.customer_id == customer_id).order_by(Note.id)))


# --- scenarios ------------------------------------------------------------------------------------


def test_received_customer_gets_slots_proposed_and_the_booking_call_due_in_30_minutes(r: Runner) -> None:
    instance_id = onboard(r)

    assert instance_of(r, KH, "onboarding")["id"] == instance_id
    assert stages(r, KH) == ["TIẾP NHẬN"]
    call = task(r, KH, "Task_booking_call")
    assert call["candidate_groups"] == ["customer_care"]
    assert call["due_at"] == START + timedelta(minutes=30)
    proposed = result_of(r, KH, "Task_find_slots")
    assert proposed["teacher"] == TEACHER and len(proposed["proposed_slots"]) == 2
    assert messages(r, KH) == [("zalo", "mau_1")]
    [mau_1] = [m for m in inbox.outbox(r, business_key=KH)]
    assert "Trần Văn Minh" in mau_1["payload"]["text"]
    assert (mau_1["payload"]["to"], mau_1["payload"]["recipient_id"]) == ("user", f"zu-{KH}")
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_booking_call"]


def test_booking_sla_breached_escalates_to_the_customer_care_lead(r: Runner) -> None:
    onboard(r)
    advance(r, minutes=29)
    assert elements(created_tasks(r, KH)) == ["Task_booking_call"]

    advance(r, minutes=2)

    assert created_tasks(r, KH)[-1] == ("Task_receive_escalate", ("team_leader",), None)
    assert [h["element_id"] for h in history(r, KH, "timer.fired")] == ["Boundary_receive_sla"]
    assert stages(r, KH) == ["TIẾP NHẬN"]  # the escalation does not stop the steps
    book_training(r)
    assert stages(r, KH) == ["TIẾP NHẬN", "ĐÀO TẠO"]
    complete(r, KH, "Task_receive_escalate", {"receive_escalation_note": "Nhắc Hoa gọi ngay"}, by=LEAD)
    assert {t["element_id"] for t in open_tasks(r, KH)} == {"Task_confirm"}


def test_booked_without_delay_raises_no_escalation(r: Runner) -> None:
    onboard(r)
    book_training(r)
    advance(r, hours=1)
    assert "Task_receive_escalate" not in elements(created_tasks(r, KH))
    sla = [h for h in history(r, KH, "timer.scheduled") if h["element_id"] == "Boundary_receive_sla"]
    assert len(sla) == 1 and not [h for h in history(r, KH, "timer.fired") if h["element_id"] == "Boundary_receive_sla"]


def test_two_sessions_reaching_nine_of_ten_hand_over_to_periodic_care(r: Runner) -> None:
    onboard(r)
    starts = book_training(r)

    assert stages(r, KH) == ["TIẾP NHẬN", "ĐÀO TẠO"]
    assert (customer(r, KH)["teacher"], customer(r, KH)["zalo_group_id"]) == (TEACHER, f"zg-{KH}")
    assert bookings(r) == [(1, TEACHER, "booked"), (2, TEACHER, "booked")]
    group_messages = [m["payload"] for m in inbox.outbox(r, business_key=KH)][1:3]
    assert [(m["template"], m["to"], m["recipient_id"]) for m in group_messages] == [
        ("mau_2", "group", f"zg-{KH}"),
        ("mau_3", "group", f"zg-{KH}"),
    ]
    assert "Giáo viên phụ trách: Trần Văn Minh" in group_messages[0]["text"]
    assert messages(r, KH) == [("zalo", "mau_1"), ("zalo", "mau_2"), ("zalo", "mau_3"), ("zalo", "session_reminder")]
    give_session(r, starts[0], 7)
    assert "Task_book_third" not in [h["element_id"] for h in history(r, KH, "handler.succeeded")]
    give_session(r, starts[1], 9)

    assert stages(r, KH) == ["TIẾP NHẬN", "ĐÀO TẠO", "BÀN GIAO"]
    handover = task(r, KH, "Task_handover")
    assert handover["candidate_groups"] == ["customer_care"]
    complete(r, KH, "Task_handover", {"handover_note": "Khách dùng tốt phần học phí"}, by=CSKH)

    assert stages(r, KH) == ["TIẾP NHẬN", "ĐÀO TẠO", "BÀN GIAO", "CHĂM SÓC ĐỊNH KỲ"]
    assert created_tasks(r, KH) == [
        ("Task_booking_call", ("customer_care",), None),
        ("Task_zalo_group", ("customer_care",), None),
        ("Task_confirm", ("teacher",), TEACHER),
        ("Task_teacher_note", ("teacher",), TEACHER),
        ("Task_after_training_call", ("customer_care",), None),
        ("Task_confirm", ("teacher",), TEACHER),
        ("Task_teacher_note", ("teacher",), TEACHER),
        ("Task_after_training_call", ("customer_care",), None),
        ("Task_handover", ("customer_care",), None),
    ]
    assert messages(r, KH) == [
        ("zalo", "mau_1"),
        ("zalo", "mau_2"),
        ("zalo", "mau_3"),
        ("zalo", "session_reminder"),
        ("zalo", "session_reminder"),
    ]
    assert [n for n in notes(r) if n.startswith("Buổi đào tạo")] == [
        "Buổi đào tạo 1: Tuyển sinh, xếp lớp, học phí. Độ am hiểu: 7/10.",
        "Buổi đào tạo 2: Tuyển sinh, xếp lớp, học phí. Độ am hiểu: 9/10.",
    ]
    assert any(n.startswith("Bàn giao sang CSKH sau 2 buổi đào tạo, độ am hiểu 9/10.") for n in notes(r))
    handed_over = r.now().astimezone(TZ).replace(hour=9, minute=0, second=0, microsecond=0)
    assert timers_scheduled(r, KH, "Timer_care_due") == [add_months(handed_over, 1)]
    assert open_tasks(r, KH) == []
    assert customer(r, KH)["stages"] == {"Sau bán hàng": "CHĂM SÓC ĐỊNH KỲ"}


def test_each_session_is_confirmed_between_a_day_and_30_minutes_before(r: Runner) -> None:
    onboard(r)
    wednesday, friday = START + timedelta(days=2), START + timedelta(days=4, hours=5)  # 09:00, 14:00
    starts = book_training(r, slots=[wednesday.isoformat(), friday.isoformat()])
    assert [datetime.fromisoformat(s) for s in starts] == [wednesday, friday]  # the customer's own choice

    advance(r, to=wednesday - timedelta(days=1, minutes=1))
    assert [m[1] for m in messages(r, KH)] == ["mau_1", "mau_2", "mau_3"]
    assert "Task_confirm" not in {t["element_id"] for t in open_tasks(r, KH)}
    advance(r, minutes=1)

    confirm = task(r, KH, "Task_confirm")
    assert (confirm["assignee"], confirm["due_at"]) == (TEACHER, wednesday - timedelta(minutes=30))
    [reminder] = [m for m in inbox.outbox(r, business_key=KH) if m["payload"]["template"] == "session_reminder"]
    assert "buổi đào tạo số 1 lúc 09:00 Thứ Tư, 09/12/2026" in reminder["payload"]["text"]
    give_session(r, starts[0], 6)
    assert timers_scheduled(r, KH, "Timer_day_before") == [wednesday - timedelta(days=1), friday - timedelta(days=1)]
    assert timers_scheduled(r, KH, "Timer_session_start") == [wednesday]
    advance(r, to=friday - timedelta(days=1))
    assert task(r, KH, "Task_confirm")["due_at"] == friday - timedelta(minutes=30)


def test_a_score_below_nine_after_two_sessions_books_a_third_and_never_a_fourth(r: Runner) -> None:
    onboard(r)
    starts = book_training(r)
    give_session(r, starts[0], 5)
    give_session(r, starts[1], 7)

    third = result_of(r, KH, "Task_book_third")
    assert [b["session_no"] for b in third["bookings"]] == [3]
    deadline = START + timedelta(days=14)
    assert datetime.fromisoformat(third["session_starts"][0]) < deadline
    assert bookings(r) == [(1, TEACHER, "booked"), (2, TEACHER, "booked"), (3, TEACHER, "booked")]
    assert messages(r, KH)[-2:] == [("zalo", "mau_2"), ("zalo", "session_reminder")]
    give_session(r, third["session_starts"][0], 6)

    # the third session is the last, whatever its score: on to the handover
    assert stages(r, KH) == ["TIẾP NHẬN", "ĐÀO TẠO", "BÀN GIAO"]
    assert elements(created_tasks(r, KH)).count("Task_confirm") == 3
    assert elements(created_tasks(r, KH)).count("Task_teacher_note") == 3
    assert len(bookings(r)) == 3
    assert [h["element_id"] for h in history(r, KH, "handler.succeeded")].count("Task_book_third") == 1
    assert {t["element_id"] for t in open_tasks(r, KH)} == {"Task_handover"}


def test_a_score_of_nine_after_the_first_session_still_gets_the_second(r: Runner) -> None:
    onboard(r)
    starts = book_training(r)
    give_session(r, starts[0], 10)
    assert stages(r, KH) == ["TIẾP NHẬN", "ĐÀO TẠO"]
    give_session(r, starts[1], 9)
    assert stages(r, KH)[-1] == "BÀN GIAO" and len(bookings(r)) == 2


def test_a_customer_asking_to_move_a_session_is_rebooked_and_reminded_again(r: Runner) -> None:
    onboard(r)
    starts = book_training(r)
    complete(r, KH, "Task_confirm", {"confirmation": "reschedule", "confirm_note": "Khách bận"}, by=TEACHER)
    moved = (datetime.fromisoformat(starts[1]) + timedelta(days=2)).replace(hour=14, minute=0)

    complete(r, KH, "Task_reschedule", {"new_start": moved.isoformat()}, by=CSKH)

    assert result_of(r, KH, "Task_reschedule_save")["start"] == moved.isoformat()
    assert timers_scheduled(r, KH, "Timer_day_before")[-1] == (moved - timedelta(days=1)).astimezone(TZ)
    advance(r, to=moved - timedelta(days=1))
    assert task(r, KH, "Task_confirm")["due_at"] == moved - timedelta(minutes=30)
    assert [m[1] for m in messages(r, KH)].count("session_reminder") == 2
    with r.db.read() as s:
        starts_now = sorted(b.start_at for b in s.scalars(select(Booking).where(Booking.customer_id == KH)))
    assert moved in [st.astimezone(TZ) for st in starts_now]


def test_training_past_two_weeks_escalates_to_the_lead(r: Runner) -> None:
    onboard(r)
    book_training(r)
    advance(r, days=13, hours=23)
    assert "Task_training_escalate" not in elements(created_tasks(r, KH))

    advance(r, hours=2)

    assert created_tasks(r, KH)[-1] == ("Task_training_escalate", ("team_leader",), None)
    assert timers_scheduled(r, KH, "Boundary_training_deadline") == [(START + timedelta(days=14)).astimezone(TZ)]
    assert stages(r, KH) == ["TIẾP NHẬN", "ĐÀO TẠO"]
    complete(r, KH, "Task_training_escalate", {"training_escalation_note": "Đổi giáo viên"}, by=LEAD)
    assert "Task_confirm" in {t["element_id"] for t in open_tasks(r, KH)}  # training goes on


def test_a_missing_profile_is_asked_from_sales_and_holds_the_handover(r: Runner) -> None:
    onboard(r, facts={"business_model": "Trung tâm ngoại ngữ"})

    assert result_of(r, KH, "Task_profile_check")["missing_fields"] == [
        "dedicated_department",
        "staff_count",
        "student_count",
        "course_model",
    ]
    fill = task(r, KH, "Task_profile_fill")
    assert (fill["candidate_groups"], fill["assignee"]) == (["sales"], SALES)
    assert notes(r)[0] == (
        "CSKH yêu cầu Kinh doanh bổ sung hồ sơ: dedicated_department, staff_count, student_count, course_model"
    )
    starts = book_training(r)
    give_session(r, starts[0], 8)
    give_session(r, starts[1], 9)
    assert "Task_handover" not in {t["element_id"] for t in open_tasks(r, KH)}  # waits for the profile
    assert stages(r, KH) == ["TIẾP NHẬN", "ĐÀO TẠO"]

    complete(r, KH, "Task_profile_fill", {**FACTS, "business_model": "Trung tâm luyện thi"}, by=SALES)

    assert customer(r, KH)["business_model"] == "Trung tâm luyện thi"
    assert customer(r, KH)["staff_count"] == 12
    assert stages(r, KH) == ["TIẾP NHẬN", "ĐÀO TẠO", "BÀN GIAO"]
    assert task(r, KH, "Task_handover")


def test_a_teacher_note_outside_zero_to_ten_is_refused_naming_the_field(r: Runner) -> None:
    from runner.errors import FormInvalid

    onboard(r)
    starts = book_training(r)
    complete(r, KH, "Task_confirm", {"confirmation": "confirmed"}, by=TEACHER)
    advance(r, to=datetime.fromisoformat(starts[0]))
    note = task(r, KH, "Task_teacher_note")
    with pytest.raises(FormInvalid, match="Độ am hiểu"):
        r.complete_task(note["id"], {"content": "Học phí", "understanding": 11}, actor=TEACHER)
    assert task(r, KH, "Task_teacher_note")["id"] == note["id"]  # nothing lost


@pytest.mark.postgres
def test_handover_path_on_postgresql(pg_url: str, registry: Registry) -> None:
    runner = post_sale_runner(pg_url, registry)
    try:
        onboard(runner)
        train_and_hand_over(runner)
        assert stages(runner, KH) == ["TIẾP NHẬN", "ĐÀO TẠO", "BÀN GIAO", "CHĂM SÓC ĐỊNH KỲ"]
        assert len(bookings(runner)) == 2
    finally:
        runner.db.engine.dispose()
