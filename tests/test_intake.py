"""Leads come in (runner.crm.intake): one checked customer and its sales instance, or nothing, on both databases.

Phones in any spelling are one number (stored as E.164), e-mails one address whatever their case;
a lead whose phone or e-mail a customer has already is refused naming that customer; every bad
field is named at once; and a start that fails leaves no customer behind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runner.crm import customers as crm
from runner.crm import intake
from runner.crm.intake import DuplicateCustomer, create_lead
from runner.crm.models import BadValue, Customer, CustomerCode
from runner.errors import Conflict, Forbidden, FormInvalid, NotFound, StepFailed
from runner.registry import Registry
from runner.service import policy
from runner.service.runtime import Runner
from tests.scenario import START, add_customer, company, customer, open_tasks, runner_at, settle

ROOT = Path(__file__).resolve().parents[1]
SALES = ROOT / "processes" / "sales.bpmn"
BROKEN = Path(__file__).parent / "bpmn" / "intake" / "broken_start.bpmn"
FACTS = {
    "business_model": "Trung tâm ngoại ngữ",
    "dedicated_department": "có",
    "staff_count": "12",
    "student_count": 350,
    "course_model": "Theo khóa 3 tháng",
}
MARKETING = policy.Person.of("mai", ["marketing"])


def lead(**fields: Any) -> dict[str, Any]:
    """A complete lead (every required field of seed 003), with ``fields`` on top."""
    return {"name": "Trung tâm Anh ngữ Sao Mai", "phone": "0912 345 678", "source": "Facebook", **FACTS, **fields}


def _runner(url: str, registry: Registry) -> Runner:
    runner = runner_at(url, registry, START)
    company(runner)
    runner.deploy([SALES, BROKEN])
    return runner


@pytest.fixture(params=["sqlite", "postgresql"])
def r(request: pytest.FixtureRequest, registry: Registry) -> Iterator[Runner]:
    """The company of tests/scenario.py with the sales diagram, on SQLite and on PostgreSQL."""
    runner = _runner(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"), registry)
    yield runner
    runner.db.engine.dispose()


def customer_ids(runner: Runner) -> list[str]:
    with runner.db.read() as s:
        return list(s.scalars(sa.select(Customer.id).order_by(Customer.id)))


# --- one value at a time ----------


@pytest.mark.parametrize(
    "typed",
    ["+84 912 345 678", "0912345678", "0912.345.678", "84912345678", " 0912-345-678 ", "(+84) 912345678"],
)
def test_every_spelling_of_a_vietnamese_mobile_number_is_one_number(typed: str) -> None:
    assert intake.normalize_phone(typed) == "+84912345678"


@pytest.mark.parametrize(
    "typed,expected",
    [("028 3812 3456", "+842838123456"), ("+1 202 555 0123", "+12025550123")],
)
def test_landlines_and_foreign_numbers_keep_their_own_number(typed: str, expected: str) -> None:
    assert intake.normalize_phone(typed) == expected


@pytest.mark.parametrize("typed", ["123", "abc", "0912", "0281234567", "+84 912 345 678 999 12"])
def test_what_is_no_phone_number_is_refused_naming_the_field(typed: str) -> None:
    with pytest.raises(BadValue, match="field 'phone'"):
        intake.normalize_phone(typed)


@pytest.mark.parametrize(
    "typed,expected", [("Lan@Example.VN", "lan@example.vn"), (" sao.mai+demo@edu.vn ", "sao.mai+demo@edu.vn")]
)
def test_an_email_is_kept_in_lower_case(typed: str, expected: str) -> None:
    assert intake.normalize_email(typed) == expected


@pytest.mark.parametrize("typed", ["lan", "lan@", "@edu.vn", "lan@edu", "lan @edu.vn", "lan@edu..vn", "lan@-edu.vn"])
def test_what_is_no_email_address_is_refused_naming_the_field(typed: str) -> None:
    with pytest.raises(BadValue, match="field 'email'"):
        intake.normalize_email(typed)


# --- creating a lead ----------


def test_a_lead_is_a_numbered_customer_with_a_round_robin_owner_and_a_sales_instance(r: Runner) -> None:
    created = create_lead(r, lead(email="Lien.He@SaoMai.edu.vn"), person=MARKETING)
    assert (created.customer_id, created.owner, created.owner_name) == ("KH0001", "an", "Đỗ Thị An")
    view = customer(r, "KH0001")
    assert (view["phone"], view["email"], view["source"]) == ("+84912345678", "lien.he@saomai.edu.vn", "Facebook")
    assert (view["dedicated_department"], view["staff_count"], view["owner"]) == (True, 12, "an")
    with r.db.read() as s:
        assert s.get(Customer, "KH0001").search_phone == "0912345678"  # what search compares (folding.phone_digits)
    settle(r)  # the diagram's own assignment keeps the owner intake chose
    assert [(t["element_id"], t["assignee"]) for t in open_tasks(r, "KH0001")] == [("Task_verify", "an")]
    second = create_lead(r, lead(name="Trung tâm Toán Đức Trí", phone="0987654321"), person=MARKETING)
    assert (second.customer_id, second.owner) == ("KH0002", "binh")  # the next rep's turn


def test_an_owner_chosen_with_the_lead_keeps_it(r: Runner) -> None:
    created = create_lead(r, lead(owner="chi"), actor="mai")
    settle(r)
    assert created.owner == "chi"
    assert [t["assignee"] for t in open_tasks(r, created.customer_id)] == ["chi"]


def test_an_owner_who_is_no_active_sales_rep_is_a_field_error(r: Runner) -> None:
    with pytest.raises(FormInvalid) as caught:
        create_lead(r, lead(owner="hoa"), actor="mai")  # customer care, not sales
    assert list(caught.value.errors) == ["owner"]
    assert customer_ids(r) == []


def test_codes_count_on_past_the_codes_already_there(r: Runner) -> None:
    add_customer(r, "KH0007", "Trung tâm có sẵn", phone="0901234567")
    add_customer(r, "KH0009", "Một trung tâm khác")
    first = create_lead(r, lead(), actor="mai").customer_id
    add_customer(r, "KH0011", "Mã gõ tay")  # a code typed by hand meanwhile is skipped
    second = create_lead(r, lead(phone="0987654321", name="B"), actor="mai").customer_id
    third = create_lead(r, lead(phone="0987654322", name="C"), actor="mai").customer_id
    assert (first, second, third) == ("KH0010", "KH0012", "KH0013")


def test_past_kh9999_codes_grow_a_digit(r: Runner) -> None:
    add_customer(r, "KH9999", "Khách hàng thứ 9999")
    assert create_lead(r, lead(), actor="mai").customer_id == "KH10000"


# --- duplicates ----------


def test_a_phone_number_already_there_in_another_spelling_names_the_customer(r: Runner) -> None:
    add_customer(r, "KH0001", "Trung tâm Anh ngữ Sao Mai", phone="0912.345.678")
    with pytest.raises(DuplicateCustomer) as caught:
        create_lead(r, lead(name="Sao Mai (nhập lại)", phone="+84 912 345 678"), person=MARKETING)
    assert isinstance(caught.value, Conflict)
    assert (caught.value.field, caught.value.customer_id, caught.value.name) == (
        "phone",
        "KH0001",
        "Trung tâm Anh ngữ Sao Mai",
    )
    assert "KH0001 (Trung tâm Anh ngữ Sao Mai)" in str(caught.value)
    assert customer_ids(r) == ["KH0001"]


def test_an_email_already_there_in_other_letters_names_the_customer(r: Runner) -> None:
    create_lead(r, lead(email="lienhe@saomai.edu.vn"), actor="mai")
    with pytest.raises(DuplicateCustomer) as caught:
        create_lead(r, lead(phone="0987654321", email="LienHe@SaoMai.EDU.vn"), actor="mai")
    assert (caught.value.field, caught.value.customer_id) == ("email", "KH0001")
    assert customer_ids(r) == ["KH0001"]


def test_check_lead_answers_as_create_would_and_stores_nothing(r: Runner) -> None:
    assert intake.check_lead(r, lead(owner="chi"))["phone"] == "+84912345678"
    create_lead(r, lead(), actor="mai")
    with pytest.raises(DuplicateCustomer):
        intake.check_lead(r, lead(phone="84912345678"))
    assert customer_ids(r) == ["KH0001"]


# --- field errors ----------


def test_every_missing_required_field_and_every_bad_value_is_named_at_once(r: Runner) -> None:
    values = {"name": "  ", "phone": "12", "email": "lan@", "staff_count": "mười", "source": "Tivi"}
    with pytest.raises(FormInvalid) as caught:
        create_lead(r, values, actor="mai")
    errors = caught.value.errors
    assert set(errors) == {
        "name",
        "phone",
        "email",
        "staff_count",
        "source",
        "business_model",
        "dedicated_department",
        "student_count",
        "course_model",
    }
    assert errors["name"] == "field 'name': required"
    assert "not a valid phone number" in errors["phone"] and "configured list" in errors["source"]
    assert customer_ids(r) == []


def test_without_the_required_check_a_name_is_still_needed(r: Runner) -> None:
    assert create_lead(r, {"name": "Chỉ có tên"}, actor="mai", required=False).customer_id == "KH0001"
    with pytest.raises(FormInvalid) as caught:
        create_lead(r, {"phone": "0987654321"}, actor="mai", required=False)
    assert list(caught.value.errors) == ["name"]


def test_a_name_is_needed_even_when_no_field_is_configured_as_required(r: Runner) -> None:
    with r.db.unit() as s:
        crm.set_required_fields(s, [])
    with pytest.raises(FormInvalid) as caught:
        create_lead(r, {"phone": "0987654321"}, actor="mai")
    assert list(caught.value.errors) == ["name"]
    assert customer_ids(r) == []


def test_an_unknown_field_is_named(r: Runner) -> None:
    with pytest.raises(FormInvalid) as caught:
        create_lead(r, lead(fax="123"), actor="mai")
    assert list(caught.value.errors) == ["fax"]


# --- one unit of work ----------


@pytest.mark.parametrize(
    "process_key,error",
    [("broken_start", StepFailed), ("not_deployed", NotFound)],
)
def test_a_start_that_fails_leaves_no_customer_behind(r: Runner, process_key: str, error: type) -> None:
    with pytest.raises(error):
        create_lead(r, lead(), actor="mai", process_key=process_key)
    assert customer_ids(r) == []
    with r.db.read() as s:
        assert s.scalar(sa.select(CustomerCode.last_number)) in (None, 0)  # the code was not used up either
        assert s.scalar(sa.text("select count(*) from staff where last_assigned_at is not null")) == 0
    assert create_lead(r, lead(), actor="mai").customer_id == "KH0001"


def test_who_may_not_start_the_sales_procedure_creates_no_lead(r: Runner) -> None:
    with pytest.raises(Forbidden):
        create_lead(r, lead(), person=policy.Person.of("ketoan", ["accountant"]))
    assert customer_ids(r) == []


# --- two at a time on PostgreSQL ----------


def test_two_concurrent_leads_with_one_phone_number_make_one_customer(pg_url: str, registry: Registry) -> None:
    runner = _runner(pg_url, registry)
    holder = sa.create_engine(pg_url)
    results: list[Any] = []
    try:
        create_lead(runner, lead(name="Khác", phone="0987000000"), actor="mai")  # the counter row exists
        with holder.connect() as conn, conn.begin():
            # NOTE: hold the counter row, so that both intakes are under way before either may pass
            conn.execute(sa.text("select * from customer_codes for update"))
            threads = [
                threading.Thread(target=_create, args=(runner, lead(phone=phone, name=f"Lead {phone}"), results))
                for phone in ("0912345678", "+84 912.345.678")
            ]
            for thread in threads:
                thread.start()
            _wait_for_waiters(holder, 2)
        for thread in threads:
            thread.join(30)
        assert sorted(type(result).__name__ for result in results) == ["DuplicateCustomer", "Lead"]
        with runner.db.read() as s:
            assert s.scalar(sa.select(sa.func.count()).where(Customer.search_phone == "0912345678")) == 1
    finally:
        holder.dispose()
        runner.db.engine.dispose()


def _create(runner: Runner, values: dict[str, Any], results: list[Any]) -> None:
    try:
        results.append(create_lead(runner, values, actor="mai"))
    except Exception as exc:  # noqa: BLE001 - the test compares what each thread met
        results.append(exc)


def _wait_for_waiters(engine: sa.Engine, count: int) -> None:
    """Until ``count`` backends wait for the counter row's lock (polled on the server, no sleep in Python).

    NOTE: asked on a connection of its own: a transaction keeps its first view of pg_stat_activity.
    """
    waiting = sa.text(
        "select count(*) from pg_stat_activity where datname = current_database()"
        " and wait_event_type = 'Lock' and query like 'UPDATE customer_codes%'"
    )
    with engine.connect() as conn:
        for _ in range(3000):
            if conn.execute(waiting).scalar_one() >= count:
                return
            conn.execute(sa.text("select pg_sleep(0.01)"))
            conn.commit()
    raise AssertionError(f"{count} intakes never waited for the counter row")
