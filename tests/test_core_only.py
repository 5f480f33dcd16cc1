"""The generic runner alone: no extension, no handlers, only the core's tables.

A runner built with ``Runner(settings, Registry(), extensions=())`` on a database
migrated with the core's Alembic branch only (no CRM table) deploys and runs the BPMN
fixtures of ``tests/`` that need no EasyEdu topic (user tasks, gateways, messages, timers, subprocesses, call
activities, DMN), on SQLite and on PostgreSQL. And importing the core loads neither the
CRM, nor the handlers, nor the web app.
"""

from __future__ import annotations

import contextlib
import pkgutil
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import BPMN, make_runner, pg_schema

from runner import cli, extension
from runner.crm.models import ROLES
from runner.errors import BadValue, Forbidden, Invalid
from runner.queries import diagram_state
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service import accounts as users
from runner.service.policy import Person
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema
from runner.store.models import OutboxMessage

KEY = "K-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def core(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runner]:
    """A core-only runner (no extension, an empty handler registry) on core tables only."""
    with _database(request, tmp_path) as url:
        runner = make_runner(url, Registry(), extensions=())
        tables = set(sa.inspect(runner.db.engine).get_table_names())
        assert {"instances", "users"} <= tables and not tables & {"customers", "staff", "bookings"}
        yield runner
        runner.db.engine.dispose()


def _database(request: pytest.FixtureRequest, tmp_path: Path):
    """The core's Alembic branch only: no table of the CRM."""
    if request.param == "postgresql":
        return pg_schema(request.getfixturevalue("pg_base_url"), branches=("core",))
    url = f"sqlite:///{tmp_path / 'core.db'}"
    schema.upgrade(url, branches=("core",))
    return contextlib.nullcontext(url)


# --- the scenarios: fixtures, a start, steps, and what the instance ends with ----------------------

Step = Callable[[Runner], Any]


def complete(element_id: str, data: dict[str, Any] | None = None) -> Step:
    """Complete the one open task at ``element_id`` of the key's instances."""

    def step(runner: Runner) -> None:
        [task] = [t for t in inbox.tasks(runner, business_key=KEY) if t["element_id"] == element_id]
        runner.complete_task(task["id"], data or {}, "tester")

    return step


def correlate(name: str, data: dict[str, Any] | None = None) -> Step:
    return lambda runner: runner.correlate(name, KEY, data or {}, "tester")


def advance(**span: float) -> Step:
    return lambda runner: runner.advance_clock(timedelta(**span))


@dataclass(frozen=True)
class Scenario:
    """A fixture run to its end: ``files`` deployed, ``process`` started with ``data``, ``steps`` done."""

    files: tuple[str, ...]
    process: str | None  # None: a step starts it (a message start event)
    data: dict[str, Any] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    passed: tuple[str, ...] = ()  # elements on the path the instance's diagram shows as taken
    expect: dict[str, Any] = field(default_factory=dict)  # variables of the ended instance


SCENARIOS = {
    "user tasks": Scenario(
        ("engine/user_tasks.bpmn",),
        "user_tasks",
        {"owner": "dung", "team": "care", "due_day": "2026-03-20T10:00:00"},
        tuple(complete(e) for e in ("groups", "lane_only", "lane_group", "users", "owner_task")),
        passed=("groups", "owner_task"),
    ),
    "exclusive gateway": Scenario(
        ("engine/gateways.bpmn",), "exclusive", {"staff": 30, "region": "south"}, passed=("route", "mid")
    ),
    "inclusive gateway": Scenario(
        ("engine/inclusive.bpmn",),
        "inclusive",
        {"wants": ["email", "call"]},
        (complete("call"), complete("email"), complete("after")),
        passed=("email", "call", "merge", "after"),
    ),
    "parallel gateway": Scenario(
        ("runtime/parallel_tasks.bpmn",), "setup", {}, (complete("training"), complete("accounts")), passed=("join",)
    ),
    "message catch": Scenario(
        ("runtime/messages.bpmn",),
        "await_payment",
        {},
        (correlate("payment_received", {"amount": 5}), complete("activate")),
        passed=("wait_paid", "activate"),
        expect={"amount": 5},
    ),
    "message start": Scenario(
        ("runtime/messages.bpmn",), None, {}, (correlate("lead_created"), complete("contact")), passed=("contact",)
    ),
    "timer": Scenario(
        ("runtime/timers.bpmn",),
        "follow_up",
        {},
        (complete("prepare"), advance(hours=23), advance(hours=1), complete("call_back")),
        passed=("wait_day", "call_back"),
    ),
    "subprocess with a boundary timer": Scenario(
        ("runtime/embedded.bpmn",), "rollout", {}, (advance(days=7), complete("escalate")), passed=("too_slow",)
    ),
    "call activity": Scenario(
        ("engine/subprocesses.bpmn",),
        "caller",
        {"customer": "Lan", "price_list": "std"},
        (complete("price_it", {"price": 100}),),
        passed=("price_it",),  # the called process's task
        expect={"quoted_price": 100, "doubled": 200},
    ),
    "business rule (DMN)": Scenario(
        ("runtime/discount_rule.bpmn", "runtime/tier_discount.dmn"),
        "discount",
        {"tier": "gold"},
        (complete("offer"),),
        passed=("decide", "offer"),
        expect={"discount": 20},
    ),
    "event gateway loop": Scenario(
        ("bounding/event_gateway.bpmn",),
        "bound_event",
        {"replies": 0, "timeouts": 0, "rounds": 0, "limit": 2},
        (correlate("ping"), advance(hours=1)),
        passed=("choose", "got_reply"),
        expect={"replies": 1, "timeouts": 1, "rounds": 2},
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_core_alone_runs_the_fixture(core: Runner, name: str) -> None:
    scenario = SCENARIOS[name]
    deployed = core.deploy([BPMN / f for f in scenario.files])
    assert deployed  # warnings (e.g. tasks assigned to unknown users) do not stop it
    if scenario.process is not None:
        core.start_instance(scenario.process, KEY, scenario.data, "tester")
    for step in scenario.steps:
        step(core)
    [instance] = inbox.instances(core, business_key=KEY)
    assert instance["status"] == "completed", inbox.instance(core, instance["id"])
    passed = set(diagram_state.instance_diagram(core, instance["id"])["completed"])
    assert set(scenario.passed) <= passed
    assert scenario.expect.items() <= instance["data"].items()
    assert inbox.tasks(core, business_key=KEY) == [] and inbox.incidents(core) == []


def test_the_core_alone_lets_starters_start_and_sees_every_key(core: Runner) -> None:
    """Without an extension there is no scope: a starter may start for any key; tasks carry no label."""
    core.deploy([BPMN / "engine" / "user_tasks.bpmn"])
    data = {"owner": "dung", "team": "care", "due_day": "2026-03-20T10:00:00"}
    with pytest.raises(Forbidden, match="may not start process 'user_tasks'"):
        core.start_instance("user_tasks", KEY, data, person=Person.of("an", ["sales"]))
    core.start_instance("user_tasks", KEY, data, person=Person.of("root", ["admin"]))
    [task] = inbox.open_tasks(core)
    assert task["customer_name"] is None  # no extension labels business keys
    with core.db.read() as s:
        assert core.policy.visible(s, Person.of("an", []), {KEY, None}) == {KEY, None}
        assert core.policy.may_see(s, Person.of("an", []), "any key")


def test_the_core_alone_has_no_crm_channel(core: Runner) -> None:
    """The zalo channel is the CRM's: a core-only runner fails its messages for good, with the reason."""
    with core.db.unit() as s:
        s.add(
            OutboxMessage(idempotency_key="k/1", channel="zalo", payload={}, due_at=core.now(), created_at=core.now())
        )
    core.deliver_outbox()
    [message] = inbox.outbox(core)
    assert (message["state"], message["last_error"]) == ("failed", "no transport for channel 'zalo'")


# NOTE: not a group name: blank, spaces around it, a line break, a NUL, longer than user_tasks.lane.
MALFORMED = ["", "   ", " warehouse", "warehouse ", "ware\nhouse", "ware\x00house", "w" * 201, 7, None]


def test_the_core_alone_takes_any_well_formed_group(core: Runner) -> None:
    """Without an extension no list names the groups: any well-formed name is one, a malformed one is refused."""
    assert users.roles(core) == ()
    users.create_user(core, "kho1", "Thủ kho", ["warehouse", "Nhóm kho", "w" * 200], password="mat-khau-kho")
    users.set_roles(core, "kho1", ["shipping", "warehouse"])
    assert users.get_user(core, "kho1")["roles"] == ["shipping", "warehouse"]
    for bad in MALFORMED:
        with pytest.raises(Invalid, match="role"):
            users.create_user(core, "kho2", "Thủ kho 2", ["warehouse", bad], password="mat-khau-kho")
        with pytest.raises(Invalid, match="role"):
            users.set_roles(core, "kho1", [bad])
    with pytest.raises(BadValue, match="give at least one role"):
        users.set_roles(core, "kho1", [])
    assert users.get_user(core, "kho2") is None
    assert users.get_user(core, "kho1")["roles"] == ["shipping", "warehouse"]


def test_the_crm_names_the_groups(runner: Runner) -> None:
    """With the EasyEdu extension a user's roles are among its ``ROLES``, with the same message as before."""
    assert users.roles(runner) == ROLES
    users.create_user(runner, "lan", "Nguyễn Thị Lan", ["sales", "team_leader"], password="mat-khau-lan")
    among = "are not among marketing, sales, team_leader, accountant, customer_care, teacher, product, admin"
    with pytest.raises(BadValue, match=re.escape(f"user 'kho1': roles ['warehouse'] {among}")):
        users.create_user(runner, "kho1", "Thủ kho", ["sales", "warehouse"], password="mat-khau-kho")
    with pytest.raises(BadValue, match=re.escape(f"user 'lan': roles ['warehouse'] {among}")):
        users.set_roles(runner, "lan", ["warehouse"])
    assert users.get_user(runner, "kho1") is None and users.get_user(runner, "lan")["roles"] == ["sales", "team_leader"]


def test_the_crm_comes_in_through_the_entry_point_group() -> None:
    """``runner`` finds the CRM as an installed extension; without it there is no ``runner demo``."""
    installed = extension.discover(Settings.from_env({}))
    assert [e.name for e in installed] == ["easyedu"]
    assert set(installed[0].transports) == {"zalo", "email"} and installed[0].roles == ROLES
    commands = lambda parser: set(parser._subparsers._group_actions[0].choices)  # noqa: E731
    assert "demo" in commands(cli.build_parser(installed)) - commands(cli.build_parser())


# --- importing the core loads no CRM, handlers or web ------------------------------------------------

FORBIDDEN = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
roots = ("handlers", "web", "runner.crm")
print(" ".join(sorted(n for n in sys.modules if n in roots or n.startswith(tuple(r + "." for r in roots)))))
"""


def core_modules() -> list[str]:
    """Every module of the runner package but the CRM's (and the migration scripts, which alembic runs)."""
    import runner

    found = pkgutil.walk_packages(runner.__path__, "runner.")
    return sorted(m.name for m in found if not m.name.startswith(("runner.crm", "runner.store.migrations")))


def _loaded(*modules: str) -> list[str]:
    """The CRM, handler and web modules a fresh interpreter holds after importing ``modules``."""
    done = subprocess.run(
        [sys.executable, "-c", FORBIDDEN, *modules], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.split()


def test_importing_the_core_loads_no_crm_handlers_or_web() -> None:
    modules = core_modules()
    assert len(modules) > 30 and "runner.service.policy" in modules and "runner.service.outbox" in modules
    assert "runner.service.runtime" in modules and "runner.service.jobs" in modules
    assert _loaded(*modules) == []
