"""The schema's two Alembic branches: core alone, core + CRM, and databases built by the old single history.

The core branch (``runner/store/migrations``) makes the runner's tables, the user directory
among them; the crm branch (``runner/crm/migrations``) makes the CRM's and refers to the core's
users. ``tests/data/migrations_0005`` is the history as it was before the split (0001-0005, one
line): a database it built, with people in it, must upgrade to the two heads with nothing lost.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import BPMN, pg_schema

import handlers
import runner
import web
from runner.crm import customers as crm
from runner.crm.models import Staff
from runner.service import accounts
from runner.store import schema
from runner.store.models import Base, UTCDateTime

OLD_HISTORY = Path(__file__).parent / "data" / "migrations_0005"
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
FTS5_SHADOWS = ("", "_data", "_idx", "_content", "_docsize", "_config")  # the table itself, then its shadows
CRM_TABLES = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__.startswith("runner.crm")}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (a file, or a schema of its own on the PostgreSQL server)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'schema.db'}"
    else:
        with pg_schema(request.getfixturevalue("pg_base_url"), upgrade=False) as url:
            yield url


@contextlib.contextmanager
def connected(url: str) -> Iterator[sa.Connection]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    with connected(url) as conn:
        return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}


def stamps(url: str) -> set[str]:
    with connected(url) as conn:
        return set(conn.scalars(sa.text("select version_num from alembic_version")))


def fts5_tables(conn: sa.Connection) -> set[str]:
    """SQLite's FTS5 tables and the shadow tables FTS5 keeps for each: no model maps them (migration crm 0020)."""
    if conn.dialect.name != "sqlite":
        return set()
    found = conn.scalars(sa.text("select name from sqlite_master where type = 'table' and sql like '%USING fts5(%'"))
    return {f"{name}{shadow}" for name in found for shadow in FTS5_SHADOWS}


def differences(url: str, *, crm_too: bool) -> list:
    """What autogenerate would change to make the database match the models (of the core, or all)."""
    metadata = sa.MetaData()
    for table in Base.metadata.tables.values():
        if crm_too or table.name not in CRM_TABLES:
            table.to_metadata(metadata)
    with connected(url) as conn:
        unmapped = fts5_tables(conn)

        def mapped(name: str | None, kind: str, parent: dict) -> bool:
            return not (kind == "table" and name in unmapped)

        return compare_metadata(MigrationContext.configure(conn, opts={"include_name": mapped}), metadata)


def old_history(url: str) -> None:
    """Build the database as every ``make run`` before the split did: the old 0001-0005, one line."""
    config = Config()
    config.set_main_option("script_location", str(OLD_HISTORY))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def test_crm_tables_are_known() -> None:
    assert {"staff", "customers", "bookings", "booking_slots", "availability"} <= CRM_TABLES
    assert not CRM_TABLES & {"users", "accounts", "instances", "user_tasks"}


def test_the_core_branch_alone_makes_no_crm_table_and_matches_the_core_models(empty_url: str) -> None:
    schema.upgrade(empty_url, branches=("core",))
    made = tables(empty_url)
    assert {"users", "accounts", "api_tokens", "login_sessions", "instances", "user_tasks"} <= made
    assert not made & CRM_TABLES
    assert stamps(empty_url) == {"0018"}
    assert differences(empty_url, crm_too=False) == []


def test_the_store_alone_holds_every_core_table(tmp_path: Path) -> None:
    """Importing ``runner.store.models`` (what Alembic's env does) gives every table the core branch makes."""
    url = f"sqlite:///{tmp_path / 'core.db'}"
    schema.upgrade(url, branches=("core",))
    names = "from runner.store.models import Base; print(*sorted(Base.metadata.tables))"
    here = Path(__file__).resolve().parents[1]  # NOTE: this checkout's runner, whatever is installed
    out = subprocess.run([sys.executable, "-c", names], cwd=here, check=True, capture_output=True, text=True).stdout
    assert set(out.split()) == tables(url)


def test_only_the_store_and_the_crm_define_tables() -> None:
    """No module of the runner (outside its store), of the web app or of the handlers maps a table."""
    for package in (runner, web, handlers):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" not in module.name:  # NOTE: Alembic's env and versions run only under Alembic
                importlib.import_module(module.name)
    owners = {m.class_.__module__ for m in Base.registry.mappers}
    assert {o for o in owners if not o.startswith(("runner.store.", "runner.crm."))} == set()
    mapped = {m.local_table.name for m in Base.registry.mappers}
    assert set(Base.metadata.tables) == mapped  # NOTE: no bare Table() on the shared metadata


def test_both_branches_match_every_model_and_the_crm_joins_a_core_only_database_later(empty_url: str) -> None:
    schema.upgrade(empty_url, branches=("core",))
    schema.upgrade(empty_url)
    assert tables(empty_url) >= CRM_TABLES
    assert stamps(empty_url) == {"0020"}  # crm 0019 depends on core 0018: one row stands for both heads
    assert differences(empty_url, crm_too=True) == []
    with connected(empty_url) as conn:
        keys = sa.inspect(conn).get_foreign_keys("staff")
    assert [(k["constrained_columns"], k["referred_table"]) for k in keys] == [(["username"], "users")]
    command.downgrade(schema.alembic_config(empty_url), "crm@base")
    assert "users" in tables(empty_url) and not tables(empty_url) & CRM_TABLES
    assert differences(empty_url, crm_too=False) == []
    schema.upgrade(empty_url)
    assert differences(empty_url, crm_too=True) == []


def test_on_sqlite_only_the_fts5_index_of_customer_search_is_left_out_of_the_comparison(tmp_path: Path) -> None:
    """The tables no model maps are exactly the FTS5 table of crm 0020 and its shadows; a downgrade takes them."""
    url = f"sqlite:///{tmp_path / 'fts.db'}"
    schema.upgrade(url)
    modelled = set(Base.metadata.tables)
    search = {"customer_search", *(f"customer_search_{s}" for s in ("data", "idx", "docsize", "config"))}
    assert tables(url) - modelled == search  # NOTE: external content: no customer_search_content
    with connected(url) as conn:
        assert fts5_tables(conn) >= search
        conn.execute(sa.text("create table customer_search_notes (id integer primary key)"))
        conn.commit()
    assert [d[1].name for d in differences(url, crm_too=True)] == ["customer_search_notes"]  # nothing else hidden
    command.downgrade(schema.alembic_config(url), "0019")
    assert not tables(url) & search


def test_the_branches_and_their_heads() -> None:
    script = ScriptDirectory.from_config(schema.alembic_config("sqlite://"))
    assert set(script.get_heads()) == {"0018", "0020"}
    assert script.get_revision("core@head").revision == "0018"
    assert script.get_revision("crm@head").revision == "0020"
    core_only = ScriptDirectory.from_config(schema.alembic_config("sqlite://", branches=("core",)))
    assert core_only.get_heads() == ["0018"]
    with pytest.raises(LookupError, match="'billing'"):
        schema.alembic_config("sqlite://", branches=("billing",))


def test_a_database_of_the_old_single_history_upgrades_with_nothing_lost(empty_url: str) -> None:
    old_history(empty_url)
    assert stamps(empty_url) == {"0005"}
    with connected(empty_url) as conn, conn.begin():
        people = sa.table(
            "staff",
            *(sa.column(c) for c in ("username", "full_name", "active", "email", "phone", "zalo_user_id")),
            sa.column("roles", sa.JSON),
            sa.column("last_assigned_at", UTCDateTime),
        )
        conn.execute(
            people.insert(),
            [
                {
                    "username": "lan",
                    "full_name": "Nguyễn Thị Lan",
                    "roles": ["sales", "team_leader"],
                    "active": True,
                    "email": "lan@easyedu.vn",
                    "phone": "0912345678",
                    "zalo_user_id": "z-lan",
                    "last_assigned_at": NOW,
                },
                {
                    "username": "minh",
                    "full_name": "Trần Văn Minh",
                    "roles": ["teacher"],
                    "active": False,
                    "email": None,
                    "phone": None,
                    "zalo_user_id": None,
                    "last_assigned_at": None,
                },
            ],
        )
        conn.execute(
            sa.text(
                "insert into accounts (username, password_hash, locale, feed_generation)"
                " values ('lan', 'pbkdf2:x', 'en', 3)"
            )
        )
        when = {"at": NOW.replace(tzinfo=None)}
        conn.execute(
            sa.text(
                "insert into api_tokens (username, token_hash, prefix, label, created_at)"
                " values ('minh', 'ab12', 'rt_ab', 'bot', :at)"
            ),
            when,
        )
        conn.execute(
            sa.text(
                "insert into login_sessions (token_hash, username, created_at, last_seen_at)"
                " values ('cd34', 'lan', :at, :at)"
            ),
            when,
        )
        conn.execute(
            sa.text(
                "insert into customers (id, name, owner, teacher, extra, created_at)"
                " values ('KH0001', 'Trung tâm Sao Mai', 'lan', 'minh', '{}', :at)"
            ),
            when,
        )

    schema.upgrade(empty_url)

    assert stamps(empty_url) == {"0020"}
    assert differences(empty_url, crm_too=True) == []
    engine = sa.create_engine(empty_url)
    try:
        with engine.connect() as conn:
            users = {r.username: r for r in conn.execute(sa.select(Base.metadata.tables["users"]))}
            staff = {r.username: r for r in conn.execute(sa.select(Base.metadata.tables["staff"]))}
            assert conn.execute(sa.text("select username, locale, feed_generation from accounts")).all() == [
                ("lan", "en", 3)
            ]
            assert conn.scalar(sa.text("select username from api_tokens")) == "minh"
            assert conn.scalar(sa.text("select username from login_sessions")) == "lan"
            assert conn.execute(sa.text("select owner, teacher from customers")).all() == [("lan", "minh")]
        assert {u: (r.full_name, r.roles, r.active, r.email) for u, r in users.items()} == {
            "lan": ("Nguyễn Thị Lan", ["sales", "team_leader"], True, "lan@easyedu.vn"),
            "minh": ("Trần Văn Minh", ["teacher"], False, None),
        }
        assert {u: (r.phone, r.zalo_user_id, r.last_assigned_at) for u, r in staff.items()} == {
            "lan": ("0912345678", "z-lan", NOW),
            "minh": (None, None, None),
        }
    finally:
        engine.dispose()


def test_a_user_the_core_adds_is_a_staff_member_to_the_crm(runner) -> None:
    """``runner users add`` and the admin pages add users to the core; the CRM gives them work as before."""
    accounts.create_user(runner, "lan", "Nguyễn Thị Lan", ["sales"], password="mat-khau-123")
    with runner.db.unit() as s:
        staff = crm.get_staff(s, "lan", role="sales")
        assert (staff.full_name, staff.roles, staff.active) == ("Nguyễn Thị Lan", ["sales"], True)
        crm.add_customer(s, "KH0001", "Trung tâm Sao Mai", owner="lan", now=NOW)
    accounts.set_active(runner, "lan", False)
    with runner.db.unit() as s, pytest.raises(crm.Missing, match="'lan' does not exist or is not active"):
        crm.get_staff(s, "lan")


def test_a_user_the_core_adds_takes_round_robin_turns(runner) -> None:
    """A user without a staff row yet is in the pool the CRM assigns new customers from."""
    accounts.create_user(runner, "lan", "Nguyễn Thị Lan", ["sales"], password="mat-khau-123")
    with runner.db.unit() as s:
        crm.seed_lists(s)
        crm.add_customer(s, "KH0001", "Trung tâm Sao Mai", phone="0912345678", now=NOW)
        assert s.get(Staff, "lan") is None
    runner.deploy(BPMN / "domain" / "reassign.bpmn")
    runner.start_instance("domain_reassign", "KH0001")
    runner.run_due()
    with runner.db.read() as s:
        assert crm.customer_view(s, "KH0001")["owner"] == "lan"
        assert s.get(Staff, "lan").last_assigned_at == runner.now()


def test_runner_db_upgrade_can_leave_the_crm_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runner.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("RUNNER_DATABASE_URL", url)
    assert main(["db", "upgrade", "--branch", "core"]) == 0
    assert "users" in tables(url) and not tables(url) & CRM_TABLES
    assert main(["db", "upgrade"]) == 0
    assert tables(url) >= CRM_TABLES
