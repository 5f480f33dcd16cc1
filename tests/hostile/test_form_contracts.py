"""A value the form accepts is never refused by a handler after it: the shipped diagrams, run for real.

For every user task of ``processes/*.bpmn`` whose completion leads to a service task,
the task is reached on the virtual clock along a ROUTE (a row of named steps), then
completed once per boundary set its own form allows: required fields only, every
minimum, every maximum (the long range when the form states none), minlength and
maxlength, each enum value, an empty optional, a date in the past as the browser sends
it. After each completion the jobs that follow run; none may fail.

Reaching a task once and trying each set from a copy of that database keeps this fast:
the database at the end of each route prefix is kept as a SQLite file and copied with
SQLite's backup API for every branch. SQLite does not enforce the length of a VARCHAR nor
the range of an INTEGER, so the forms that store into columns also run on PostgreSQL,
once each at their upper bounds, along one route (copying PostgreSQL databases costs
seconds each).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import func, select

from runner.crm import bookings as calendar
from runner.crm.extension import easyedu
from runner.crm.settings import CrmSettings
from runner.model import files, forms
from runner.model.timeparse import add_months
from runner.queries import tasklists as inbox
from runner.registry import Registry, installed
from runner.service import scheduler
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from runner.store.models import HistoryEvent
from tests.scenario import STAFF, TZ, add_customer, advance, company, complete, open_tasks, runner_at, settle, task

ROOT = Path(__file__).resolve().parents[2]  # the checkout
PROCESSES = ROOT / "processes"
SALES_KH, POST_KH, BARE_KH = "KH0001", "KH0002", "KH0003"
TEACHER, CSKH = "minh", "hoa"
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
SURVEY = {
    "business_model": "Trung tâm ngoại ngữ",
    "dedicated_department": True,
    "staff_count": 12,
    "student_count": 350,
    "course_model": "Theo khóa 3 tháng",
    "zalo_user_id": "zl-saomai",
    "demo_at": "2026-12-09T10:00:00",
    "trial_link": "https://trial.easyedu.vn/saomai",
    "call_note": "Trung tâm 2 cơ sở.",
}
FACTS = {
    k: SURVEY[k] for k in ("business_model", "dedicated_department", "staff_count", "student_count", "course_model")
}


# --- which user tasks lead to a handler: a walk over each diagram -----------------------------------

WAITS = {"userTask", "receiveTask", "intermediateCatchEvent", "eventBasedGateway", "callActivity", "manualTask"}
HANDLERS = {"serviceTask", "sendTask", "businessRuleTask"}
CAMUNDA_TOPIC = "{http://camunda.org/schema/1.0/bpmn}topic"


def _local(node: etree._Element) -> str:
    return etree.QName(node).localname


def tasks_before_handlers() -> set[tuple[str, str]]:
    """(process id, user task id) of every user task from which a handler runs before the next wait."""
    found = set()
    for path in sorted(PROCESSES.glob("*.bpmn")):
        root = etree.parse(str(path)).getroot()
        for process in (p for p in root if isinstance(p.tag, str) and _local(p) == "process"):
            nodes = {n.get("id"): n for n in process.iter() if isinstance(n.tag, str) and n.get("id")}
            targets: dict[str, list[str]] = {}
            for flow in (n for n in nodes.values() if _local(n) == "sequenceFlow"):
                targets.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
            for user_task in (n for n in nodes.values() if _local(n) == "userTask"):
                if _reaches_handler(user_task.get("id"), nodes, targets):
                    found.add((process.get("id"), user_task.get("id")))
    return found


def _reaches_handler(start: str, nodes: dict[str, etree._Element], targets: dict[str, list[str]]) -> bool:
    todo, seen = list(targets.get(start, [])), set()
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = nodes[node_id]
        kind = _local(node)
        if kind in HANDLERS and node.get(CAMUNDA_TOPIC):
            return True
        if kind in WAITS:
            continue
        if kind == "subProcess":  # into its start event
            todo += [c.get("id") for c in node if isinstance(c.tag, str) and _local(c) == "startEvent"]
        elif kind == "endEvent" and _local(node.getparent()) == "subProcess":  # out of the subprocess
            todo += targets.get(node.getparent().get("id"), [])
        todo += targets.get(node_id, [])
    return False


# --- the boundary sets a form allows ------------------------------------------------------------------


def value_sets(form: forms.Form, now: datetime) -> list[dict[str, Any]]:
    """Set 0: required fields only, at their lower bounds; then all fields, upper and lower bounds in turn.

    Enum fields take each of their values once across the sets.
    """
    count = max([3] + [len(f.options) + 1 for f in form.fields if f.type == "enum"])
    sets = []
    for index in range(count):
        values = {f.id: _boundary(f, index, now) for f in form.fields if not f.readonly and (index > 0 or f.required)}
        sets.append(values)
    return sets


def _boundary(field: forms.Field, index: int, now: datetime) -> Any:
    low = index % 2 == 0
    if field.type == "enum":
        return field.options[index % len(field.options)].id
    if field.type == "boolean":
        return not low
    if field.type == "file":  # what the task page puts there once runner.uploads has stored the file
        kind = field.file_kinds[0 if low else -1]
        _, media_type, extension = files.KINDS[kind]
        size = 1 if low else field.max_bytes
        return {"file": "0" * 32, "name": f"hop-dong{extension}", "type": media_type, "size": size, "field": field.id}
    if field.type == "long":
        bound = field.min if low else field.max
        return int(bound) if bound is not None else (LONG_MIN if low else LONG_MAX)
    if field.type == "date":
        bound = field.min if low else field.max
        if bound is not None:
            return bound.isoformat()
        # as <input type=date> sends it, yesterday; or a full date-time two days ahead
        return (now - timedelta(days=1)).date().isoformat() if low else (now + timedelta(days=2)).isoformat()
    if field.type == "datetime":
        bound = field.min if low else field.max
        if bound == forms.NOW:  # the edge the runner's clock allows: the next whole minute after now
            return (now + timedelta(minutes=2)).replace(second=0, microsecond=0).astimezone(TZ).isoformat()
        if bound is not None:
            return bound.isoformat()
        # as staff type it, a day back; or ISO 8601 with the zone's offset, two days ahead
        return (
            (now - timedelta(days=1)).astimezone(TZ).strftime("%d/%m/%Y %H:%M")
            if low
            else ((now + timedelta(days=2)).astimezone(TZ).isoformat())
        )
    if low and not field.required and field.minlength is None:
        return ""  # an optional text left empty
    size = (field.minlength or 1) if low else (field.maxlength or 10_000)
    return "ệ" * size  # one character, several bytes: lengths are counted in characters


# --- the routes: how each task is reached ------------------------------------------------------------


def _onboard(r: Runner, customer_id: str, facts: dict[str, Any]) -> None:
    start = r.now().astimezone(TZ).date()
    end = add_months(start, 12)
    add_customer(
        r,
        customer_id,
        f"Trung tâm {customer_id}",
        phone="0912345678",
        owner="an",
        email=f"{customer_id.lower()}@example.vn",
        zalo_user_id=f"zu-{customer_id}",
        package="Chuyên nghiệp",
        contract_start=start.isoformat(),
        contract_end=end.isoformat(),
        status="Hoạt động",
        **facts,
    )
    r.correlate(
        "start_onboarding",
        customer_id,
        {
            "package": "Chuyên nghiệp",
            "contract_start": start.isoformat(),
            "contract_end": end.isoformat(),
            "owner": "an",
        },
    )
    settle(r)


def until(element: str, customer_id: str, limit: int = 400) -> Callable[[Runner], None]:
    """Move the clock from one due timer or job to the next until ``element`` is open."""

    def step(r: Runner) -> None:
        for _ in range(limit):
            if any(t["element_id"] == element for t in open_tasks(r, customer_id)):
                return
            due = scheduler.next_due(r, after=r.now())
            assert due is not None, f"nothing left to wait for before {element}"
            advance(r, to=due)
        raise AssertionError(f"{element} did not open")

    return step


def done(element: str, customer_id: str, values: dict[str, Any]) -> Callable[[Runner], None]:
    """Complete the customer's open ``element`` with ``values`` as whoever works on it."""

    def step(r: Runner) -> None:
        row = task(r, customer_id, element)
        complete(r, customer_id, element, values, by=_actor(row))

    return step


def at_most(element: str, customer_id: str, steering: dict[str, Any]) -> Callable[[Runner], None]:
    """Complete ``element`` with every field at its upper bound, and the choices that keep the route."""

    def step(r: Runner) -> None:
        row = task(r, customer_id, element)
        upper = value_sets(forms.form_from_dict(row["form"]), r.now())[1]
        complete(r, customer_id, element, {**upper, **steering}, by=_actor(row))

    return step


def _lead(r: Runner) -> None:
    r.start_instance("sales", SALES_KH)
    settle(r)
    advance(r, minutes=10)


def _renewal_early(r: Runner) -> None:
    r.correlate("start_renewal", POST_KH, {})
    advance(r, minutes=1)


def _slots(r: Runner) -> None:
    proposed = [
        h
        for h in inbox.history(r, business_key=POST_KH, events=["handler.succeeded"])
        if h["element_id"] == "Task_find_slots"
    ][-1]["details"]["result"]["proposed_slots"]
    complete(r, POST_KH, "Task_booking_call", {"slot_1": proposed[0], "slot_2": proposed[1]}, by=CSKH)


S, P = SALES_KH, POST_KH
STEPS: dict[str, Callable[[Runner], None]] = {
    "lead": _lead,
    "verify good": done("Task_verify", S, {"verdict": "good"}),
    "verify doubtful": done("Task_verify", S, {"verdict": "doubtful"}),
    "verify bad": done("Task_verify", S, {"verdict": "bad"}),
    "call reached": done("Task_call", S, {"call_result": "reached"}),
    "call not reached": done("Task_call", S, {"call_result": "not_reached"}),
    "until recall": until("Task_recall", S),
    "until escalated": until("Task_lead_escalated", S),  # nobody verifies: 60 working minutes, max_reassignments times
    "recall not reached": done("Task_recall", S, {"call_result": "not_reached"}),
    "survey": done("Task_survey", S, SURVEY),
    "until demo confirm": until("Task_confirm", S),
    "demo confirmed": done("Task_confirm", S, {"demo_status": "confirmed"}),
    "until demo": until("Task_demo", S),
    "demo promising": done(
        "Task_demo",
        S,
        {"promising": True, "negotiation_at": "2026-12-10T09:00:00", "sample_contract": True, "demo_note": "Tốt."},
    ),
    "demo lukewarm": done(
        "Task_demo",
        S,
        {
            "promising": False,
            "negotiation_at": "2026-12-10T09:00:00",
            "sample_contract": False,
            "demo_note": "Chưa rõ.",
        },
    ),
    "until promotion": until("Task_promo_approve", S),
    "until daily contact": until("Task_w_daily", S),
    "promotion approved": done("Task_promo_approve", S, {"promotion_approved": True, "promotion": "Tặng 1 tháng."}),
    "won": done("Task_w_hot", S, {"negotiation_result": "won", "negotiation_note": "Chốt."}),
    "contract": done("Task_contract", S, {"package": "Chuyên nghiệp", "amount": 12_000_000, "contract_months": 12}),
    "paid": done("Task_payment", S, {"paid": True}),
    "until upsell": until("Task_upsell", S),
    "onboard": lambda r: _onboard(r, P, FACTS),
    "onboard without facts": lambda r: _onboard(r, BARE_KH, {}),
    "booking call": _slots,
    "zalo group": done("Task_zalo_group", P, {"zalo_group_id": "zg-1"}),
    "until session confirm": until("Task_confirm", P),
    "session confirmed": done("Task_confirm", P, {"confirmation": "confirmed"}),
    "session moved": done("Task_confirm", P, {"confirmation": "reschedule"}),
    "until teacher note": until("Task_teacher_note", P),
    "teacher note 9": done("Task_teacher_note", P, {"content": "Học phí", "understanding": 9}),
    "call after 9": done(
        "Task_after_training_call",
        P,
        {"attended": True, "customer_understanding": 9, "teacher_rating": 5, "teacher_feedback": "Tốt"},
    ),
    "until receive escalation": until("Task_receive_escalate", P),
    "until training escalation": until("Task_training_escalate", P),
    "handover": done("Task_handover", P, {"handover_note": "Bàn giao"}),
    "until care call": until("Task_care_call", P),
    "until care escalation": until("Task_care_escalate", P),
    "care low": done("Task_care_call", P, {"reached": True, "usage": "low", "feedback": "good", "care_note": "Ít"}),
    "problem stop": done(
        "Task_problem", P, {"problem_kind": "low_usage", "problem_action": "Gọi", "problem_outcome": "stop"}
    ),
    "renewal early": _renewal_early,
    "renew": done("Task_renewal_call", P, {"renewal_decision": "renew", "renewal_amount": 9_000_000}),
    "survey at most": at_most("Task_survey", S, {}),
    "contract at most": at_most("Task_contract", S, {}),
    "profile at most": at_most("Task_profile_fill", BARE_KH, {}),
    "zalo group at most": at_most("Task_zalo_group", P, {}),
    "renew at most": at_most("Task_renewal_call", P, {"renewal_decision": "renew"}),
    "decline": done("Task_renewal_call", P, {"renewal_decision": "decline", "renewal_amount": 9_000_000}),
}

DEMO = ("lead", "verify good", "call reached", "survey", "until demo confirm")
CLOSING = (*DEMO, "demo confirmed", "until demo")
SESSION_1 = ("onboard", "booking call", "zalo group", "until session confirm")
TRAINED = (
    *SESSION_1,
    "session confirmed",
    "until teacher note",
    "teacher note 9",
    "call after 9",
    "until session confirm",
    "session confirmed",
    "until teacher note",
    "teacher note 9",
    "call after 9",
)
CARE = (*TRAINED, "handover", "until care call")

# (process id, user task, route to it, the customer)
ROUTES: list[tuple[str, str, tuple[str, ...], str]] = [
    ("sales", "Task_verify", ("lead",), S),
    ("sales", "Task_tl_verify", ("lead", "verify doubtful"), S),
    ("sales", "Task_mkt_returned", ("lead", "verify bad"), S),
    ("sales", "Task_lead_escalated", ("lead", "until escalated"), S),
    ("sales", "Task_call", ("lead", "verify good"), S),
    ("sales", "Task_survey", ("lead", "verify good", "call reached"), S),
    ("sales", "Task_recall", ("lead", "verify good", "call not reached", "until recall"), S),
    (
        "sales",
        "Task_tl_review",
        (
            "lead",
            "verify good",
            "call not reached",
            "until recall",
            "recall not reached",
            "until recall",
            "recall not reached",
        ),
        S,
    ),
    ("sales", "Task_confirm", DEMO, S),
    ("sales", "Task_demo", CLOSING, S),
    ("sales", "Task_w_hot", (*CLOSING, "demo promising"), S),
    ("sales", "Task_w_warm", (*CLOSING, "demo lukewarm"), S),
    ("sales", "Task_w_daily", (*CLOSING, "demo lukewarm", "until daily contact"), S),
    ("sales", "Task_promo_approve", (*CLOSING, "demo lukewarm", "until promotion"), S),
    ("sales", "Task_care", (*CLOSING, "demo lukewarm", "until promotion", "promotion approved"), S),
    ("sales", "Task_contract", (*CLOSING, "demo promising", "won"), S),
    ("sales", "Task_payment", (*CLOSING, "demo promising", "won", "contract"), S),
    ("sales", "Task_upsell", (*CLOSING, "demo promising", "won", "contract", "paid", "until upsell"), S),
    ("onboarding", "Task_profile_fill", ("onboard without facts",), BARE_KH),
    ("onboarding", "Task_booking_call", ("onboard",), P),
    ("onboarding", "Task_receive_escalate", ("onboard", "until receive escalation"), P),
    ("onboarding", "Task_zalo_group", ("onboard", "booking call"), P),
    ("onboarding", "Task_confirm", SESSION_1, P),
    ("onboarding", "Task_reschedule", (*SESSION_1, "session moved"), P),
    ("onboarding", "Task_teacher_note", (*SESSION_1, "session confirmed", "until teacher note"), P),
    (
        "onboarding",
        "Task_after_training_call",
        (*SESSION_1, "session confirmed", "until teacher note", "teacher note 9"),
        P,
    ),
    ("onboarding", "Task_training_escalate", ("onboard", "booking call", "zalo group", "until training escalation"), P),
    ("onboarding", "Task_handover", TRAINED, P),
    ("care_month", "Task_care_call", CARE, P),
    ("care_month", "Task_care_escalate", (*CARE, "until care escalation"), P),
    ("onboarding", "Task_problem", (*CARE, "care low"), P),
    ("onboarding", "Task_stop_reason", (*CARE, "care low", "problem stop"), P),
    ("renewal", "Task_renewal_call", (*CARE, "renewal early"), P),
    ("renewal", "Task_confirm_payment", (*CARE, "renewal early", "renew"), P),
    ("renewal", "Task_no_renew_reason", (*CARE, "renewal early", "decline"), P),
]


# Routes that store every text and number field of the forms at its upper bound, for PostgreSQL.
STORING = [
    (
        "lead",
        "verify good",
        "call reached",
        "survey at most",
        "until demo confirm",
        "demo confirmed",
        "until demo",
        "demo promising",
        "won",
        "contract at most",
        "paid",
    ),
    ("onboard without facts", "profile at most"),
    (
        "onboard",
        "booking call",
        "zalo group at most",
        *TRAINED[3:],
        "handover",
        "until care call",
        "renewal early",
        "renew at most",
    ),
]


# --- databases kept at the end of each route prefix ---------------------------------------------------


class SqliteCopies:
    """Databases as SQLite files, copied with SQLite's backup API (WAL included)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def create(self, name: str) -> str:
        """The URL of a new, migrated database."""
        url = f"sqlite:///{self.folder / name}.db"
        db.upgrade(url)
        return url

    def copy(self, source: str, name: str) -> str:
        """The URL of a copy of the database at ``source``."""
        target = self.folder / f"{name}.db"
        src, dst = sqlite3.connect(source.removeprefix("sqlite:///")), sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        return f"sqlite:///{target}"


class Snapshots:
    """One database per route prefix, built once per module and copied for each branch."""

    def __init__(self, copies: SqliteCopies, registry: Registry):
        self.copies, self.registry = copies, registry
        self.urls: dict[tuple[str, ...], str] = {}

    def runner(self, url: str) -> Runner:
        """A runner on a copy, its virtual clock where the copy left it."""
        settings = Settings.from_env({}, database_url=url, clock="virtual", retry_base_seconds=10.0)
        return Runner(settings, registry=self.registry, extensions=(easyedu(crm=CrmSettings()),))

    def copy(self, source: str, name: str) -> str:
        """A copy of the database at ``source``."""
        return self.copies.copy(source, name)

    def at(self, route: tuple[str, ...]) -> str:
        """The database at the end of ``route``, built from the longest prefix already kept."""
        if route in self.urls:
            return self.urls[route]
        if not route:
            return self._base()
        url = self.copy(self.at(route[:-1]), f"route{len(self.urls)}")
        r = self.runner(url)
        try:
            before = _last_event(r)
            STEPS[route[-1]](r)
            assert _failures(r, before) == [], f"route step {route[-1]!r} failed"
        finally:
            r.db.engine.dispose()
        self.urls[route] = url
        return url

    def _base(self) -> str:
        url = self.copies.create("base")
        r = runner_at(url, self.registry)
        try:
            the_company(r)
        finally:
            r.db.engine.dispose()
        self.urls[()] = url
        return url


def the_company(r: Runner) -> None:
    """Staff, the teacher's and customer care's working hours, the sales lead, the shipped diagrams."""
    company(r)
    with r.db.unit() as s:
        calendar.set_availability(s, TEACHER, [(day, "08:00", "17:30") for day in range(6)])
        calendar.set_availability(s, CSKH, [(day, "08:00", "17:00") for day in range(5)])
    add_customer(
        r, SALES_KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn", source="Facebook"
    )
    r.deploy([PROCESSES])


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Snapshots:
    """The route databases of this module."""
    return Snapshots(SqliteCopies(tmp_path_factory.mktemp("routes")), installed())


def _last_event(r: Runner) -> int:
    with r.db.read() as s:
        return s.scalar(select(func.max(HistoryEvent.id))) or 0


def _failures(r: Runner, after: int) -> list[str]:
    return [
        f"{h['element_id']}: {h['details'].get('error')}"
        for h in inbox.history_after(r, after, limit=10_000)
        if h["event"] in ("handler.failed", "incident.raised")
    ]


def _actor(task: dict[str, Any]) -> str:
    """The assignee, else the first staff member of a candidate group (``currentUser()`` must be someone)."""
    return task["assignee"] or next(user for user, _, roles, _ in STAFF if set(roles) & set(task["candidate_groups"]))


def test_the_routes_reach_every_user_task_that_leads_to_a_handler() -> None:
    routed = {(process, element) for process, element, _, _ in ROUTES}
    assert tasks_before_handlers() - routed == set()
    assert {name for _, _, route, _ in ROUTES for name in route} <= set(STEPS)


@pytest.mark.parametrize(
    ("process", "element", "route", "customer_id"), ROUTES, ids=[f"{p}:{e}" for p, e, _, _ in ROUTES]
)
def test_values_the_form_accepts_pass_the_handlers_that_follow(
    snapshots: Snapshots, process: str, element: str, route: tuple[str, ...], customer_id: str
) -> None:
    reached = snapshots.at(route)
    r = snapshots.runner(reached)
    try:
        row = task(r, customer_id, element)
        form = forms.form_from_dict(row["form"])
        sets = value_sets(form, r.now())
    finally:
        r.db.engine.dispose()
    for number, values in enumerate(sets):
        branch = snapshots.copy(reached, f"{process}_{element}_{number}".lower())
        r = snapshots.runner(branch)
        try:
            before = _last_event(r)
            r.complete_task(row["id"], values, actor=_actor(row))
            settle(r)
            assert _failures(r, before) == [], f"{element} with {values}"
        finally:
            r.db.engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("route", STORING, ids=["sales", "profile", "renewal"])
def test_upper_bounds_of_the_forms_fit_the_postgresql_columns(pg_url: str, route: tuple[str, ...]) -> None:
    r = runner_at(pg_url, installed())
    try:
        the_company(r)
        for name in route:
            before = _last_event(r)
            STEPS[name](r)
            assert _failures(r, before) == [], f"step {name!r}"
    finally:
        r.db.engine.dispose()
