"""Domain tables and runner.crm: migration, seeding, field values, customer view, stages, search."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic import command
from conftest import BPMN

from runner.crm import customers as crm
from runner.crm.models import DEFAULT_LISTS, BadValue, Customer, Missing
from runner.queries import tasklists as inbox
from runner.service.runtime import Runner
from runner.store import schema as db

DOMAIN = BPMN / "domain"
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
DOMAIN_TABLES = {
    "staff",
    "customers",
    "customer_tags",
    "customer_notes",
    "orders",
    "contracts",
    "stop_care_reasons",
    "customer_sources",
    "customer_groups",
    "occupations",
    "schools",
    "extra_fields",
    "required_fields",
    "availability",
    "bookings",
    "booking_slots",
}


def company(runner: Runner) -> None:
    """Configured lists, three staff members and one customer."""
    with runner.db.unit() as s:
        crm.seed_lists(s)
        crm.add_staff(s, "lan", "Nguyễn Thị Lan", ["sales"], email="lan@example.vn")
        crm.add_staff(s, "minh", "Trần Văn Minh", ["teacher"])
        crm.add_staff(s, "ha", "Lê Thu Hà", ["customer_care", "team_leader"])
        crm.add_customer(
            s,
            "KH0001",
            "Trung tâm Anh ngữ Sao Mai",
            phone="0912 345 678",
            owner="lan",
            teacher="minh",
            source="Facebook",
            group="Tiếng Anh",
            tags=["Tiếp nhận"],
            now=NOW,
        )


# --- schema --------------------------------------------------------------------------------


def test_migration_creates_the_domain_tables_and_downgrades_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    db.upgrade(url)
    engine = sa.create_engine(url)
    assert set(sa.inspect(engine).get_table_names()) >= DOMAIN_TABLES
    command.downgrade(db.alembic_config(url), "crm@base")
    assert not DOMAIN_TABLES & set(sa.inspect(engine).get_table_names())
    assert {"instances", "users"} <= set(sa.inspect(engine).get_table_names())
    db.upgrade(url)
    assert set(sa.inspect(engine).get_table_names()) >= DOMAIN_TABLES
    engine.dispose()


def test_the_schema_matches_the_models(any_runner: Runner) -> None:
    """Alembic finds nothing to add: the crm branch's migrations and runner.crm.models say the same."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import runner.crm.models  # noqa: F401
    from runner.store.models import Base

    with any_runner.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if d[0] in ("add_table", "add_column", "remove_column", "add_index")] == []


# --- configured lists ------------------------------------------------------------------------


def test_seed_lists_adds_the_vietnamese_defaults_once(any_runner: Runner) -> None:
    with any_runner.db.unit() as s:
        crm.seed_lists(s)
        crm.seed_lists(s)
    with any_runner.db.read() as s:
        got = crm.lists(s)
    assert [r["title"] for r in got["stop_care_reasons"]] == [t for t, _ in DEFAULT_LISTS["stop_care_reasons"]]
    assert all(r["description"] for r in got["stop_care_reasons"])
    assert {"name": "Tiếng Anh", "parent": "Trung tâm ngoại ngữ"} in got["groups"]
    assert {"name": "Trường học", "parent": None} in got["groups"]
    assert [s["name"] for s in got["sources"]][:2] == ["Facebook", "Google"]
    assert got["extra_fields"] == [
        {"name": "branch_count", "label": "Số cơ sở", "data_type": "integer"},
        {"name": "website", "label": "Website", "data_type": "text"},
    ]
    assert got["required_fields"] == DEFAULT_LISTS["required_fields"]
    assert len(got["schools"]) == len(DEFAULT_LISTS["schools"]) and got["occupations"]


def test_configuring_fields_rejects_unknown_types_and_names(runner: Runner) -> None:
    with runner.db.unit() as s:
        with pytest.raises(BadValue, match="data type 'color'"):
            crm.add_extra_field(s, "favourite", "Màu", "color")
        with pytest.raises(BadValue, match="'phone'"):
            crm.add_extra_field(s, "phone", "Điện thoại 2", "text")
        with pytest.raises(BadValue, match="'nickname'"):
            crm.set_required_fields(s, ["name", "nickname"])


# --- field values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_type", "raw", "value"),
    [
        ("text", "  Trung tâm  ", "Trung tâm"),
        ("text", "", None),
        ("text", None, None),
        ("integer", 12, 12),
        ("integer", " 40 ", 40),
        ("number", "2.5", 2.5),
        ("number", 3, 3),
        ("boolean", True, True),
        ("boolean", "có", True),
        ("boolean", "Không", False),
        ("boolean", "false", False),
        ("date", "2026-11-25", date(2026, 11, 25)),
        ("date", date(2027, 1, 1), date(2027, 1, 1)),
        # 20:00 UTC is already the next day in Asia/Ho_Chi_Minh
        ("date", "2026-11-25T20:00:00+00:00", date(2026, 11, 26)),
    ],
)
def test_coerce_types_values(data_type: str, raw, value) -> None:
    assert crm.coerce("f", data_type, raw, ZoneInfo("Asia/Ho_Chi_Minh")) == value


@pytest.mark.parametrize(
    ("data_type", "raw"),
    [
        ("text", 42),
        ("integer", "nhiều"),
        ("integer", True),
        ("integer", 2.5),
        ("number", "abc"),
        ("boolean", "maybe"),
        ("boolean", 1),
        ("date", "25/11/2026"),
        ("date", 20261125),
    ],
)
def test_coerce_names_the_field_of_a_wrong_value(data_type: str, raw) -> None:
    with pytest.raises(BadValue, match=r"^field 'staff_count': expected"):
        crm.coerce("staff_count", data_type, raw)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"staff_count": "mười"}, "field 'staff_count'"),
        ({"staff_count": -3}, "field 'staff_count': must not be negative"),
        ({"email": "không-có-a-còng"}, "field 'email'"),
        ({"phone": "gọi tôi"}, "field 'phone'"),
        ({"source": "Tờ rơi"}, "field 'source': 'Tờ rơi' is not in the configured list"),
        ({"nickname": "Mai"}, "field 'nickname' is not a customer field"),
        ({"branch_count": "hai"}, "field 'branch_count'"),
    ],
)
def test_add_customer_refuses_bad_values_and_stores_nothing(runner: Runner, fields: dict, message: str) -> None:
    company(runner)
    with pytest.raises(BadValue, match=message), runner.db.unit() as s:
        crm.add_customer(s, "KH0002", "Trung tâm Toán Tư Duy", now=NOW, **fields)
    with runner.db.read() as s:
        assert s.get(Customer, "KH0002") is None


def test_add_staff_and_customer_check_roles_ids_and_people(runner: Runner) -> None:
    company(runner)
    with runner.db.unit() as s:
        with pytest.raises(BadValue, match="'chef'"):
            crm.add_staff(s, "an", "An", ["chef"])
        with pytest.raises(BadValue, match="already exists"):
            crm.add_staff(s, "lan", "Lan", ["sales"])
        with pytest.raises(BadValue, match="field 'name': customer KH0003 must have a name"):
            crm.add_customer(s, "KH0003", "  ", now=NOW)
        with pytest.raises(BadValue, match="customer id 'KH 3'"):
            crm.add_customer(s, "KH 3", "X", now=NOW)
        with pytest.raises(Missing, match="'nobody'"):
            crm.add_customer(s, "KH0003", "X", owner="nobody", now=NOW)


def test_missing_fields_follow_the_configured_required_fields(runner: Runner) -> None:
    company(runner)
    with runner.db.unit() as s:
        customer = s.get(Customer, "KH0001")
        assert crm.missing_fields(s, customer) == list(crm.PROFILE_FACTS)
        crm.update_fields(
            s,
            customer,
            {
                "business_model": "Trung tâm ngoại ngữ",
                "dedicated_department": False,
                "staff_count": "12",
                "student_count": 300,
                "course_model": "Theo khóa",
                "branch_count": "3",
            },
        )
        assert crm.missing_fields(s, customer) == []
        assert (customer.staff_count, customer.dedicated_department, customer.extra) == (12, False, {"branch_count": 3})
        crm.set_required_fields(s, ["name", "website"])
        assert crm.missing_fields(s, customer) == ["website"]


# --- the customer view, stages and search -----------------------------------------------------------


def test_customer_view_has_the_columns_and_the_derived_keys(any_runner: Runner) -> None:
    company(any_runner)
    with any_runner.db.read() as s:
        view = crm.customer_view(s, "KH0001")
        assert crm.staff_view(s, "lan")["email"] == "lan@example.vn"
        assert crm.staff_view(s, None) is None
    assert tuple(view) == crm.CUSTOMER_VIEW_KEYS
    assert set(crm.CUSTOMER_COLUMNS) >= {"name", "phone", "zalo_group_id", "owner", "teacher", "contract_end"}
    assert (view["owner_name"], view["teacher_name"]) == ("Nguyễn Thị Lan", "Trần Văn Minh")
    assert view["tags"] == ["TIẾP NHẬN"]
    assert (view["group"], view["source"], view["created_at"]) == ("Tiếng Anh", "Facebook", NOW.isoformat())
    assert (view["stages"], view["notes"], view["contract"], view["extra"]) == ({}, [], None, {})
    with any_runner.db.read() as s, pytest.raises(Missing, match="'KH9999'"):
        crm.customer_view(s, "KH9999")


def test_current_stage_per_pipeline_comes_from_the_running_instances(any_runner: Runner) -> None:
    company(any_runner)
    any_runner.deploy([DOMAIN / "stages_sales.bpmn", DOMAIN / "stages_onboarding.bpmn"])
    sales = any_runner.start_instance("sales", "KH0001")

    def stages() -> dict[str, str]:
        with any_runner.db.read() as s:
            return crm.customer_view(s, "KH0001")["stages"]

    assert stages() == {"Trong bán hàng": "Tiếp nhận"}
    [task] = inbox.tasks(any_runner, business_key="KH0001")
    any_runner.complete_task(task["id"], {})
    assert stages() == {"Trong bán hàng": "Đã liên hệ"}
    onboarding = any_runner.start_instance("onboarding", "KH0001")
    assert stages() == {"Trong bán hàng": "Đã liên hệ", "Sau bán hàng": "ĐÀO TẠO"}
    with any_runner.db.read() as s:
        board = crm.board(s, "Sau bán hàng")
    assert list(board) == list(crm.STAGES["Sau bán hàng"])
    assert board["ĐÀO TẠO"] == [{"id": "KH0001", "name": "Trung tâm Anh ngữ Sao Mai", "owner": "lan", "status": None}]
    for instance_id in (sales, onboarding):
        for _ in range(2):
            open_tasks = [t for t in inbox.tasks(any_runner) if t["instance_id"] == instance_id]
            for t in open_tasks:
                any_runner.complete_task(t["id"], {})
    # ended instances keep showing where they ended: Đã liên hệ, KHÓA
    assert stages() == {"Trong bán hàng": "Đã liên hệ", "Sau bán hàng": "KHÓA"}
    with any_runner.db.read() as s, pytest.raises(Missing, match="pipeline 'Trước'"):
        crm.board(s, "Trước")


def test_search_ignores_accents_and_finds_phones_and_tags(runner: Runner) -> None:
    company(runner)
    with runner.db.unit() as s:
        crm.add_customer(s, "KH0002", "Trung tâm Toán Đức Trí", phone="0987.654.321", now=NOW)
        crm.add_customer(s, "KH0003", "Nguyễn Văn Hùng", now=NOW, tags=["Tiếp nhận", "tiềm năng"])
    with runner.db.read() as s:
        assert [c["id"] for c in crm.search(s, "duc tri")] == ["KH0002"]
        assert [c["id"] for c in crm.search(s, "NGUYEN")] == ["KH0003"]
        assert [c["id"] for c in crm.search(s, "654321")] == ["KH0002"]
        assert [c["id"] for c in crm.search(s, "trung tâm")] == ["KH0001", "KH0002"]
        assert [c["id"] for c in crm.search(s, tag="tiếp nhận")] == ["KH0001", "KH0003"]
        assert [c["id"] for c in crm.search(s, "", tag="TIỀM NĂNG")] == ["KH0003"]
        assert [c["id"] for c in crm.search(s, "", limit=1)] == ["KH0001"]
        assert crm.search(s, "không ai") == []


@pytest.mark.parametrize(
    ("raw", "tags"),
    [
        ("Tiếp nhận, đã liên hệ", ["TIẾP NHẬN", "ĐÃ LIÊN HỆ"]),
        (["  cấp   demo ", "CẤP DEMO"], ["CẤP DEMO"]),
        ("REMARKETING", ["REMARKETING"]),
    ],
)
def test_split_tags_normalizes(raw, tags: list[str]) -> None:
    assert crm.split_tags(raw) == tags


@pytest.mark.parametrize("raw", ["", " , ", None, 5, ["A", 3]])
def test_split_tags_refuses_nothing_or_non_text(raw) -> None:
    with pytest.raises(BadValue, match="^tags:"):
        crm.split_tags(raw)
