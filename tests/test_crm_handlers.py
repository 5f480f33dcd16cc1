"""crm.* handlers, run by the runner as service-task jobs (and a few called directly on a real session)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from conftest import BPMN
from sqlalchemy import select

from handlers import crm as crm_handlers
from runner.crm import customers as crm
from runner.crm import sales
from runner.crm.models import Contract, Customer, Note, Order, Staff
from runner.errors import BadValue, Missing
from runner.queries import tasklists as inbox
from runner.registry import HandlerContext
from runner.service.runtime import Runner

DOMAIN = BPMN / "domain"
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def company(runner: Runner) -> None:
    """Lists, three sales reps, a teacher, an accountant and two customers."""
    with runner.db.unit() as s:
        crm.seed_lists(s)
        for username, name in (("binh", "Phạm Văn Bình"), ("an", "Đỗ Thị An"), ("chi", "Vũ Thị Chi")):
            crm.add_staff(s, username, name, ["sales"])
        crm.add_staff(s, "dung", "Hoàng Văn Dũng", ["sales"], active=False)
        crm.add_staff(s, "minh", "Trần Văn Minh", ["teacher"])
        crm.add_staff(s, "ketoan", "Ngô Thị Kế", ["accountant"])
        crm.add_customer(s, "KH0001", "Trung tâm Anh ngữ Sao Mai", phone="0912345678", now=NOW)
        crm.add_customer(s, "KH0002", "Trung tâm Toán Tư Duy", phone="0987654321", now=NOW)


def customer(runner: Runner, customer_id: str = "KH0001") -> dict[str, Any]:
    with runner.db.read() as s:
        return crm.customer_view(s, customer_id)


def only_task(runner: Runner, business_key: str) -> dict[str, Any]:
    [task] = inbox.tasks(runner, business_key=business_key)
    return task


@contextmanager
def context(runner: Runner, customer_id: str | None = "KH0001", topic: str = "crm.test") -> Iterator[HandlerContext]:
    """What the job runner gives a handler: the unit of work's session, the clock, the customer."""
    with runner.db.unit() as s:
        yield HandlerContext(
            instance_id="i-1",
            business_key=customer_id,
            idempotency_key="i-1/j-1",
            element_id="step",
            topic=topic,
            attempt=1,
            now=runner.now(),
            session=s,
            tz=runner.settings.tz,
        )


# --- through the runner -----------------------------------------------------------------------


def test_lead_to_contract_steps_write_the_customer_record(any_runner: Runner) -> None:
    company(any_runner)
    any_runner.deploy(DOMAIN / "crm_steps.bpmn")
    any_runner.start_instance("domain_crm", "KH0001", {"package": "Gói Chuyên nghiệp", "amount": 12_000_000})
    any_runner.run_due()

    task = only_task(any_runner, "KH0001")
    assert task["element_id"] == "survey"
    data = inbox.instance(any_runner, task["instance_id"])["data"]
    assert (data["owner"], data["owner_name"]) == ("an", "Đỗ Thị An")  # never assigned, first by username
    assert data["tags"] == ["TIẾP NHẬN", "ĐÃ LIÊN HỆ"]
    any_runner.complete_task(
        task["id"],
        {
            "business_model": "Trung tâm ngoại ngữ",
            "dedicated_department": True,
            "staff_count": 15,
            "student_count": 420,
            "course_model": "Theo khóa",
        },
    )
    any_runner.run_due()
    task = only_task(any_runner, "KH0001")
    data = inbox.instance(any_runner, task["instance_id"])["data"]
    assert (task["element_id"], data["profile_complete"], data["missing_fields"]) == ("check_payment", True, [])
    with any_runner.db.read() as s:
        [order] = s.scalars(select(Order)).all()
        assert (order.id, order.package, order.amount, order.status) == (
            data["order_id"],
            "Gói Chuyên nghiệp",
            12_000_000,
            "pending",
        )
    any_runner.complete_task(task["id"], {})
    any_runner.run_due()

    today = any_runner.now().astimezone(any_runner.settings.tz).date()
    end = sales.add_months(today, 12)
    data = inbox.instance(any_runner, only_task(any_runner, "KH0001")["instance_id"])["data"]
    assert (data["paid"], data["contract_start"], data["contract_end"]) == (True, today.isoformat(), end.isoformat())
    view = customer(any_runner)
    assert (view["owner"], view["status"], view["tags"]) == ("an", "Hoạt động", ["ĐÃ LIÊN HỆ"])
    assert (view["staff_count"], view["dedicated_department"], view["student_count"]) == (15, True, 420)
    assert (view["package"], view["contract_start"], view["contract_end"]) == (
        "Gói Chuyên nghiệp",
        today.isoformat(),
        end.isoformat(),
    )
    assert view["contract"] == {
        "id": data["contract_id"],
        "package": "Gói Chuyên nghiệp",
        "start": today.isoformat(),
        "end": end.isoformat(),
        "months": 12,
    }
    assert [n["text"] for n in view["notes"]] == [f"Đã chốt gói Gói Chuyên nghiệp, hợp đồng đến {end.isoformat()}"]
    with any_runner.db.read() as s:
        order = s.get(Order, data["order_id"])
        assert (order.status, order.confirmed_by, order.paid_at) == ("paid", "ketoan", any_runner.now())
        assert s.scalar(select(Note.instance_id)) == only_task(any_runner, "KH0001")["instance_id"]


def test_the_60_minute_rule_hands_the_lead_round_robin_to_another_rep(any_runner: Runner) -> None:
    company(any_runner)
    any_runner.deploy(DOMAIN / "reassign.bpmn")
    any_runner.start_instance("domain_reassign", "KH0001")
    any_runner.run_due()
    any_runner.advance_clock(timedelta(minutes=10))
    any_runner.start_instance("domain_reassign", "KH0002")
    any_runner.run_due()

    def owners() -> tuple[str, str]:
        return customer(any_runner, "KH0001")["owner"], customer(any_runner, "KH0002")["owner"]

    assert owners() == ("an", "binh")
    assert only_task(any_runner, "KH0001")["assignee"] == "an"
    any_runner.advance_clock(timedelta(minutes=50))  # KH0001 not contacted for 60 minutes
    assert owners() == ("chi", "binh")  # chi was never assigned; dung is not active
    any_runner.advance_clock(timedelta(minutes=10))  # KH0002 likewise
    assert owners() == ("chi", "an")  # an waited longest; binh (current) is skipped
    assert only_task(any_runner, "KH0002")["assignee"] == "an"
    any_runner.advance_clock(timedelta(minutes=50))
    assert owners() == ("binh", "an")  # binh waited longest, chi is current
    any_runner.complete_task(only_task(any_runner, "KH0001")["id"], {}, actor="binh")
    any_runner.advance_clock(timedelta(hours=3))
    assert owners()[0] == "binh"  # contacted: no more reassignment
    with any_runner.db.read() as s:
        assert s.get(Staff, "dung").last_assigned_at is None


def test_a_profile_value_of_the_wrong_type_is_an_incident_naming_the_field(runner: Runner) -> None:
    company(runner)
    runner.deploy(DOMAIN / "profile.bpmn")
    runner.start_instance("domain_profile", "KH0001", {"staff_count": "nhiều lắm", "dedicated_department": True})
    runner.run_due()

    [incident] = inbox.incidents(runner)
    assert incident["element_id"] == "profile"
    assert "field 'staff_count': expected a whole number, got 'nhiều lắm'" in incident["error"]
    assert customer(runner)["dedicated_department"] is None  # nothing of the failed step was kept
    ok = runner.start_instance("domain_profile", "KH0002", {"staff_count": "7", "dedicated_department": "có"})
    runner.run_due()
    data = inbox.instance(runner, ok)["data"]
    assert (data["profile_complete"], data["missing_fields"]) == (
        False,
        ["business_model", "student_count", "course_model"],
    )
    assert (customer(runner, "KH0002")["staff_count"], customer(runner, "KH0002")["dedicated_department"]) == (7, True)


# --- called directly on a real session ------------------------------------------------------------


def test_tags_are_added_once_and_removed(runner: Runner) -> None:
    company(runner)
    with context(runner) as ctx:
        assert crm_handlers.add_tags({"tags": "Cấp demo, REMARKETING"}, ctx) == {"tags": ["CẤP DEMO", "REMARKETING"]}
        assert crm_handlers.add_tags({"tags": ["cấp demo", "Tiềm năng"]}, ctx) == {
            "tags": ["CẤP DEMO", "REMARKETING", "TIỀM NĂNG"]
        }
        assert crm_handlers.remove_tags({"tags": "remarketing, KHÔNG CÓ"}, ctx) == {"tags": ["CẤP DEMO", "TIỀM NĂNG"]}
    assert customer(runner)["tags"] == ["CẤP DEMO", "TIỀM NĂNG"]
    assert customer(runner, "KH0002")["tags"] == []


@pytest.mark.parametrize(
    ("fn", "params", "error", "message"),
    [
        (crm_handlers.add_note, {"text": "  "}, BadValue, "^text:"),
        (crm_handlers.set_status, {}, BadValue, "^status:"),
        (crm_handlers.update_profile, {"student_count": "300 em"}, BadValue, "field 'student_count'"),
        (crm_handlers.update_profile, {"owner": "an"}, BadValue, "field 'owner' is not a customer field"),
        (crm_handlers.update_profile, {"name": 5}, BadValue, "field 'name': expected text"),
        (crm_handlers.assign_owner, {"role": "chef"}, Missing, "no active staff member with role 'chef'"),
        (crm_handlers.assign_teacher, {"teacher": "an"}, Missing, "'an' does not have the role 'teacher'"),
        (crm_handlers.assign_teacher, {"teacher": "dung"}, Missing, "'dung' does not exist or is not active"),
        (crm_handlers.create_order, {"package": "Gói A", "amount": 0}, BadValue, "^amount:"),
        (crm_handlers.create_order, {"package": "Gói A", "amount": "mười triệu"}, BadValue, "field 'amount'"),
        (crm_handlers.confirm_payment, {"order_id": 999, "confirmed_by": "ketoan"}, Missing, "^order_id:"),
        (crm_handlers.create_contract, {"package": "Gói A", "start": "30/11/2026"}, BadValue, "field 'start'"),
        (crm_handlers.create_contract, {"package": "Gói A", "months": 0}, BadValue, "^months:"),
    ],
)
def test_bad_params_raise_errors_naming_the_param(runner: Runner, fn, params: dict, error: type, message: str) -> None:
    company(runner)
    with context(runner) as ctx, pytest.raises(error, match=message):
        fn(params, ctx)


@pytest.mark.parametrize("business_key", [None, "KH0404"])
def test_a_missing_customer_is_missing(runner: Runner, business_key: str | None) -> None:
    company(runner)
    with context(runner, business_key) as ctx, pytest.raises(Missing, match="customer"):
        crm_handlers.add_note({"text": "Gọi lại"}, ctx)


def test_exclude_current_with_one_rep_left_is_an_error(runner: Runner) -> None:
    company(runner)
    with runner.db.unit() as s:
        for username in ("an", "binh"):
            s.get(Staff, username).active = False
    with context(runner) as ctx:
        assert crm_handlers.assign_owner({}, ctx) == {"owner": "chi", "owner_name": "Vũ Thị Chi"}
        with pytest.raises(Missing, match="other than the current owner"):
            crm_handlers.assign_owner({"exclude_current": True}, ctx)


def test_payment_of_another_customers_order_is_refused_and_a_second_confirmation_keeps_the_first(
    runner: Runner,
) -> None:
    company(runner)
    with context(runner, "KH0002") as ctx:
        order_id = crm_handlers.create_order({"package": "Gói Cơ bản", "amount": "6000000"}, ctx)["order_id"]
    with context(runner) as ctx, pytest.raises(Missing, match=f"order {order_id} of customer KH0001"):
        crm_handlers.confirm_payment({"order_id": order_id, "confirmed_by": "ketoan"}, ctx)
    with context(runner, "KH0002") as ctx:
        confirmed = crm_handlers.confirm_payment({"order_id": str(order_id), "confirmed_by": "ketoan"}, ctx)
        assert confirmed == {"paid": True}
    runner.advance_clock(timedelta(days=1))
    with context(runner, "KH0002") as ctx:
        assert crm_handlers.confirm_payment({"order_id": order_id, "confirmed_by": "admin"}, ctx) == {"paid": True}
    with runner.db.read() as s:
        order = s.get(Order, order_id)
        first_confirmation = runner.now() - timedelta(days=1)
        assert (order.amount, order.confirmed_by, order.paid_at) == (6_000_000, "ketoan", first_confirmation)


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        ("2026-01-31", 1, "2026-02-28"),
        ("2028-01-31", 1, "2028-02-29"),
        ("2026-11-30", 12, "2027-11-30"),
        ("2026-12-15", 3, "2027-03-15"),
        ("2026-03-01", 36, "2029-03-01"),
    ],
)
def test_contract_end_is_the_same_day_months_later(runner: Runner, start: str, months: int, end: str) -> None:
    company(runner)
    with context(runner) as ctx:
        got = crm_handlers.create_contract({"package": "Gói A", "start": start, "months": months}, ctx)
    assert (got["contract_start"], got["contract_end"]) == (start, end)
    with runner.db.read() as s:
        row = s.get(Contract, got["contract_id"])
        assert (row.start_date, row.end_date) == (date.fromisoformat(start), date.fromisoformat(end))
        assert row.months == months
        assert s.get(Customer, "KH0001").contract_end == date.fromisoformat(end)


def test_update_profile_types_extra_fields_and_reports_what_is_missing(runner: Runner) -> None:
    company(runner)
    with runner.db.unit() as s:
        crm.set_required_fields(s, ["name", "staff_count", "branch_count"])
    with context(runner) as ctx:
        assert crm_handlers.update_profile({}, ctx) == {
            "profile_complete": False,
            "missing_fields": ["staff_count", "branch_count"],
        }
        with pytest.raises(BadValue, match="field 'branch_count'"):
            crm_handlers.update_profile({"branch_count": "ba"}, ctx)
        assert crm_handlers.update_profile(
            {"branch_count": "3", "staff_count": 9, "trial_link": "https://demo.vn/x", "zalo_group_id": "g-77"}, ctx
        ) == {"profile_complete": True, "missing_fields": []}
        # blank values (a form field left empty) keep what the record holds
        assert crm_handlers.update_profile({"trial_link": "", "staff_count": None, "branch_count": " "}, ctx)[
            "profile_complete"
        ]
    view = customer(runner)
    assert (view["extra"], view["trial_link"]) == ({"branch_count": 3}, "https://demo.vn/x")
    assert view["zalo_group_id"] == "g-77"
    assert view["staff_count"] == 9
