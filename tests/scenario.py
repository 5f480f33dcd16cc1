"""Scenario helpers shared by the process tests: a company, customers, tasks, clock, outbox, history.

    r = runner_at(sqlite_url, registry, START)      # virtual clock starts at START (business time)
    company(r)                                      # configured lists + one staff member per role
    add_customer(r, "KH0001", "Trung tâm Anh ngữ Sao Mai", email="saomai@example.vn")
    start(r, "sales", "KH0001")                     # start and run the jobs that follow
    complete(r, "KH0001", "Task_verify", {"verdict": "good"}, by="an")
    advance(r, hours=1)                             # fire everything due on the way, in order
    assert stages(r, "KH0001") == ["Tiếp nhận", "Đã liên hệ"]

Everything goes through the runner's public API and read queries (``runner.queries.tasklists``,
``runner.crm.customers``); time only moves with the virtual clock, never by sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from runner.crm import customers as crm
from runner.crm.extension import easyedu
from runner.crm.settings import CrmSettings
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store.models import ClockRow

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2026, 12, 7, 9, 0, tzinfo=TZ)  # a Monday, 09:00 business time

# username, full name, roles, phone - one or more per role, as a small company has them.
STAFF: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("mai", "Lê Thị Mai", ("marketing",), "0901000001"),
    ("an", "Đỗ Thị An", ("sales",), "0901000002"),
    ("binh", "Phạm Văn Bình", ("sales",), "0901000003"),
    ("chi", "Vũ Thị Chi", ("sales",), "0901000004"),
    ("tuan", "Nguyễn Minh Tuấn", ("team_leader",), "0901000005"),
    ("ketoan", "Ngô Thị Kế", ("accountant",), "0901000006"),
    ("hoa", "Trần Thị Hoa", ("customer_care",), "0901000007"),
    ("minh", "Trần Văn Minh", ("teacher",), "0901000008"),
)


def start_clock(url: str, start: datetime = START) -> None:
    """Set the virtual clock of a migrated database to ``start`` (before a runner opens it)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.delete(ClockRow.__table__).where(ClockRow.__table__.c.name == "virtual"))
        conn.execute(ClockRow.__table__.insert().values(name="virtual", now=start.astimezone(UTC)))
    engine.dispose()


def runner_at(url: str, registry: Registry, start: datetime = START, **overrides) -> Runner:
    """A runner on a migrated database whose virtual clock starts at ``start``."""
    start_clock(url, start)
    return reopened(url, registry, **overrides)


def reopened(url: str, registry: Registry, **overrides) -> Runner:
    """A new runner on a database and its virtual clock as they are: a restart, with nothing kept in memory."""
    settings = Settings.from_env({}, database_url=url, clock="virtual", retry_base_seconds=10.0, **overrides)
    return Runner(settings, registry=registry, extensions=(easyedu(crm=CrmSettings()),))


def company(runner: Runner, staff: Iterable[tuple[str, str, Iterable[str], str]] = STAFF) -> None:
    """The configured lists of a new company and its staff."""
    with runner.db.unit() as s:
        crm.seed_lists(s)
        for username, full_name, roles, phone in staff:
            crm.add_staff(s, username, full_name, roles, phone=phone, email=f"{username}@easyedu.vn")


def add_customer(runner: Runner, customer_id: str, name: str, **fields: Any) -> None:
    """A customer record (the lead marketing hands over), created at the virtual clock's time."""
    with runner.db.unit() as s:
        crm.add_customer(s, customer_id, name, now=runner.now(), **fields)


def customer(runner: Runner, customer_id: str) -> dict[str, Any]:
    """The customer as staff see it: fields, tags, owner_name, stages, notes."""
    with runner.db.read() as s:
        return crm.customer_view(s, customer_id)


def roles(runner: Runner, username: str) -> list[str]:
    """The role ids (inbox groups) of a staff member."""
    with runner.db.read() as s:
        return list(crm.get_staff(s, username).roles)


# --- instances, tasks, time ------------------------------------------------------------------


def settle(runner: Runner) -> int:
    """Run due jobs and timers until nothing is due now; returns how many ran."""
    total = 0
    while (ran := runner.run_due()) > 0:
        total += ran
    return total


def start(runner: Runner, process_key: str, customer_id: str, data: Mapping[str, Any] | None = None) -> str:
    """Start a process for a customer and run what follows; returns the instance id."""
    instance_id = runner.start_instance(process_key, customer_id, data)
    settle(runner)
    return instance_id


def open_tasks(runner: Runner, customer_id: str, process_key: str | None = None) -> list[dict[str, Any]]:
    """The customer's open user tasks."""
    return inbox.tasks(runner, business_key=customer_id, process_key=process_key)


def task(runner: Runner, customer_id: str, element_id: str) -> dict[str, Any]:
    """The one open user task of a customer for an element."""
    found = [t for t in open_tasks(runner, customer_id) if t["element_id"] == element_id]
    assert len(found) == 1, (element_id, [t["element_id"] for t in open_tasks(runner, customer_id)])
    return found[0]


def complete(
    runner: Runner, customer_id: str, element_id: str, data: Mapping[str, Any] | None = None, by: str | None = None
) -> dict[str, Any]:
    """Complete a customer's open task as staff member ``by`` (who must see it in their inbox); run on."""
    row = task(runner, customer_id, element_id)
    if by is not None:
        mine = inbox.tasks(runner, user=by, groups=roles(runner, by), business_key=customer_id)
        assert row["id"] in {t["id"] for t in mine}, f"{by} cannot work on {element_id}"
    runner.complete_task(row["id"], dict(data or {}), actor=by)
    settle(runner)
    return row


def advance(runner: Runner, delta: timedelta | None = None, *, to: datetime | None = None, **span: float) -> datetime:
    """Move the virtual clock by ``delta``/``span`` (days=, hours=, minutes=) or to a moment; fire what is due."""
    if to is not None:
        delta = to - runner.now()
    elif delta is None:
        delta = timedelta(**span)
    runner.advance_clock(delta)
    settle(runner)
    return runner.now()


def local_now(runner: Runner) -> datetime:
    """The virtual clock in business time."""
    return runner.now().astimezone(TZ)


# --- what happened -------------------------------------------------------------------------------


def history(runner: Runner, customer_id: str, *names: str) -> list[dict[str, Any]]:
    """The customer's history events (optionally only these names), in order."""
    return inbox.history(runner, business_key=customer_id, events=list(names) or None)


def stages(runner: Runner, customer_id: str, process_key: str | None = None) -> list[str]:
    """The pipeline stages the customer entered, in order (from ``stage.entered`` history)."""
    return [
        h["details"]["stage"]
        for h in history(runner, customer_id, "stage.entered")
        if process_key is None or h["process_key"] == process_key
    ]


def created_tasks(runner: Runner, customer_id: str, process_key: str | None = None) -> list[tuple[str, tuple, Any]]:
    """(element id, candidate groups, assignee) of every user task created for the customer, in order."""
    return [
        (h["element_id"], tuple(h["details"]["candidate_groups"]), h["details"]["assignee"])
        for h in history(runner, customer_id, "task.created")
        if process_key is None or h["process_key"] == process_key
    ]


def outbox(runner: Runner, customer_id: str, instance_id: str | None = None) -> list[dict[str, Any]]:
    """The customer's outbox messages (optionally of one instance), oldest first."""
    return [
        m
        for m in inbox.outbox(runner, business_key=customer_id)
        if instance_id is None or m["instance_id"] == instance_id
    ]


def messages(runner: Runner, customer_id: str, instance_id: str | None = None) -> list[tuple[str, str]]:
    """(channel, template) of every outbox message for the customer (or one instance), in order."""
    return [(m["channel"], m["payload"].get("template", "")) for m in outbox(runner, customer_id, instance_id)]


def timers_scheduled(runner: Runner, customer_id: str, element_id: str) -> list[datetime]:
    """The due times (business time) a timer element was scheduled at, in order."""
    return [
        datetime.fromisoformat(h["details"]["due"]).astimezone(TZ)
        for h in history(runner, customer_id, "timer.scheduled")
        if h["element_id"] == element_id
    ]


def instance_of(runner: Runner, customer_id: str, process_key: str) -> dict[str, Any]:
    """The customer's one instance of a process (with data and stages)."""
    [found] = inbox.instances(runner, business_key=customer_id, process_key=process_key)
    return found
