"""Schemathesis fuzzes the REST API from its own OpenAPI document, in-process (WSGI), over a real database.

Three runs, all with an admin's bearer token over a world with deployed processes,
customers, open tasks, a waiting message and open incidents:

- per operation (stateless): generated valid and invalid requests, and the ids of real rows;
- stateful: sequences of calls that follow the document's links (``web.openapi_links``):
  start an instance, read it, list its tasks, claim and complete one, deliver the message
  it waits for, retry its incident, move the clock, read the customer...
- every phase of schemathesis' own engine (examples, coverage, fuzzing) over loopback HTTP.

The checks: no 5xx, documented status codes and content types, responses that match their
schemas, invalid input refused with a 4xx. Every operation in the document is run; that
every /api route is in the document, and that each chain of links reaches a 2xx, is shown
by test_api_document.py and test_api_links.py.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, engine
from schemathesis.engine import events
from werkzeug.serving import make_server

from runner.crm import customers as crm
from runner.crm import lead_keys
from runner.crm.models import ROLES
from runner.queries import tasklists as inbox
from runner.registry import HandlerContext, Registry
from runner.service import accounts as users
from runner.service.runtime import Runner
from tests.webapp import AuthClock, add_user
from web import create_app, openapi_document
from web.extensions import run_here

BPMN = Path(__file__).parent.parent / "bpmn"
DIAGRAMS = [
    BPMN / "web" / "lead.bpmn",
    BPMN / "runtime" / "messages.bpmn",
    BPMN / "runtime" / "timers.bpmn",
    BPMN / "jobs" / "two_tries.bpmn",
    Path(__file__).parent / "bpmn" / "call_back.bpmn",
]
EXAMPLES = 15  # per operation and generation mode (stateless)
SCENARIOS, STEPS = 100, 10  # stateful: call sequences, and calls at most in each
# NOTE: valid-looking data may still be refused for what it means (a random file is not a
# diagram: 422), so 400 and 422 count as accepted answers to schema-valid requests too.
ACCEPTED = ["2xx", "400", "401", "403", "404", "409", "422"]
# What refuses invalid input: schemathesis' list, plus the edge's 413 and 414 (web/edge.py).
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429"]
# The document itself has no input and no link; the stateless run covers it. So does it cover POST /api/leads:
# no link leads to it (a website form is no step of a staff client's sequence) and its answer feeds no other call.
# PATCH /api/customers/{business_key} needs the read's ETag as If-Match, a header no link can fill from a body
# (the version there is a number): the stateless run fuzzes it on both databases, and tests/test_customer_edit.py
# checks its answers, stale and missing If-Match included.
STATELESS_ONLY = {"GET /api/openapi.json", "POST /api/leads", "PATCH /api/customers/{business_key}"}


def _operations() -> list[tuple[str, str]]:
    return [(path, method.upper()) for path, item in openapi_document()["paths"].items() for method in item]


def _label(path: str, method: str) -> str:
    return f"{method.upper()} {path}"


# --- the world the calls meet ----------------------------------------------------------------------------------


@dataclass
class World:
    """The app, the fuzzing admin's token, and ids of real rows."""

    app: Flask
    runner: Runner
    token: str
    lead_key: str  # POST /api/leads takes a form's lead key, not the admin's token
    known: dict[str, Any]
    reset: Callable[[], None]  # back to the world as built


def _crm_down(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    raise RuntimeError("CRM is down")  # every try fails, so retried jobs raise incidents again


def make_world(runner: Runner, registry: Registry) -> World:
    registry.add("test.work", _crm_down)
    for role in ROLES:
        add_user(runner, f"{role}1", [role])
    # NOTE: every role, so that every operation goes all the way (tasks of any group, admin calls)
    add_user(runner, "fuzz1", ROLES)
    runner.deploy(DIAGRAMS)
    with runner.db.unit() as s:
        crm.seed_lists(s)  # NOTE: a lead key belongs to a configured source
        for key, name in (("KH1", "Trung tâm Sao Mai"), ("KH2", "Trường Hoa Sen")):
            crm.add_customer(s, key, name, phone="0912345678", owner="sales1", now=runner.now())
    lead = runner.start_instance("web_lead", "KH1", {"source": "Facebook"})
    runner.start_instance("follow_up", "KH2")
    for key in ("KH1", "KH2"):
        runner.start_instance("jobs_two_tries", key, {"customer": key})
    for key in ("KH1", "KH2", "KH1"):  # due first: the first task of a list, which links lead to
        runner.start_instance("fuzz_call_back", key)
    runner.advance_clock(timedelta(hours=1))  # the jobs run out of tries: two open incidents
    runner.start_instance("await_payment", "KH2")  # the newest: the first of a list waits for a message
    [task] = [t for t in inbox.tasks(runner, business_key="KH1") if t["element_id"] == "verify_lead"]
    [incident, *_] = inbox.incidents(runner, state="open")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "RUNNER": runner,
            "RUNNER_SETTINGS": runner.settings,
            "AUTH_CLOCK": AuthClock().now,
            "CLOCK_RUN_EXECUTOR": run_here,  # the run is done when the answer comes: its links read the result
        }
    )
    token = users.issue_token(runner, "fuzz1", label="schemathesis")
    # NOTE: the largest rate, so that the fuzzing's hundreds of posts a minute are not answered 429
    lead_key = lead_keys.create_key(runner, "Website", "schemathesis", per_minute=lead_keys.MAX_PER_MINUTE)[1]
    known = {"instance_id": lead, "task_id": task["id"], "business_key": "KH1", "incident_id": incident["id"]}
    return World(app, runner, token, lead_key, known, _snapshot(runner))


def _snapshot(runner: Runner) -> Callable[[], None]:
    """A copy of the database as it is now; the function returned puts it back."""
    return _pg_snapshot(runner) if runner.db.engine.dialect.name == "postgresql" else _sqlite_snapshot(runner)


def _sqlite_snapshot(runner: Runner) -> Callable[[], None]:
    """A copy of the SQLite file as it is now; the function returned puts it back."""
    path = sa.make_url(runner.settings.database_url).database
    copy = f"{path}.world"
    runner.db.engine.dispose()
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)

    def reset() -> None:
        runner.db.engine.dispose()  # NOTE: no connection may hold the old file's pages
        with closing(sqlite3.connect(copy)) as source, closing(sqlite3.connect(path)) as target:
            source.backup(target)

    return reset


def _pg_snapshot(runner: Runner) -> Callable[[], None]:
    """A copy of every table and sequence of the PostgreSQL schema as it is now; the function returned puts it back.

    The copies live in the test's schema under a prefix, so they go when the fixture drops it.
    """
    engine = runner.db.engine
    with engine.begin() as conn:
        world = sa.MetaData()
        world.reflect(conn)
        tables = [table.name for table in world.sorted_tables]  # NOTE: the referenced tables first
        sequences = sa.inspect(conn).get_sequence_names()
        for table in tables:
            conn.exec_driver_sql(f'create table "world_{table}" as table "{table}"')
        positions = {seq: conn.exec_driver_sql(f'select last_value, is_called from "{seq}"').one() for seq in sequences}

    def reset() -> None:
        names = ", ".join(f'"{table}"' for table in tables)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"truncate {names} cascade")
            for table in tables:
                conn.exec_driver_sql(f'insert into "{table}" select * from "world_{table}"')
            for seq, (value, called) in positions.items():
                conn.execute(
                    sa.text("select setval(:seq, :value, :called)"),
                    {"seq": f'"{seq}"', "value": value, "called": called},
                )

    return reset


def _config(world: World, **extra: Any) -> schemathesis.Config:
    """The admin's token (and a form's lead key) on every request, and what counts as accepting and refusing."""
    return schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {world.token}", "X-Lead-Key": world.lead_key},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ACCEPTED},
                "negative_data_rejection": {"expected-statuses": REFUSED},
                # NOTE: 428 Precondition Required is the answer to a PATCH without its If-Match (RFC 6585)
                "missing_required_header": {"expected-statuses": ["400", "401", "403", "406", "415", "422", "428"]},
            },
            **extra,
        }
    )


def _schema(world: World, **phases: Any):
    """The document loaded from the running app (in-process)."""
    return schemathesis.openapi.from_wsgi("/api/openapi.json", world.app, config=_config(world, phases=phases))


@pytest.fixture
def world(runner: Runner, registry: Registry) -> World:
    """The world on SQLite."""
    return make_world(runner, registry)


@pytest.fixture
def any_world(any_runner: Runner, registry: Registry) -> World:
    """The world on SQLite and on PostgreSQL."""
    return make_world(any_runner, registry)


# --- stateless: each operation on its own ----------------------------------------------------------------------------


OPERATIONS = _operations()
# Operations without parameters or a body have no invalid input to generate.
NO_INPUT = {
    (path, method.upper())
    for path, item in openapi_document()["paths"].items()
    for method, op in item.items()
    if not op.get("parameters") and not op.get("requestBody") and "{" not in path
}


@pytest.mark.parametrize("path,method", OPERATIONS, ids=[_label(p, m) for p, m in OPERATIONS])
def test_each_operation_conforms_to_its_document(any_world: World, path: str, method: str) -> None:
    world = any_world
    operation = _schema(world, stateful={"enabled": False})[path][method]
    statuses: list[int] = []
    # generated values, invalid ones, and (for paths with an id) the ids of real rows
    runs: list[tuple[GenerationMode, dict[str, Any] | None]] = [(GenerationMode.POSITIVE, None)]
    if (path, method) not in NO_INPUT:
        runs.append((GenerationMode.NEGATIVE, None))
    real = {name: value for name, value in world.known.items() if "{" + name + "}" in path}
    if real:
        runs.append((GenerationMode.POSITIVE, real))
    for mode, path_parameters in runs:

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(case) -> None:
            statuses.append(case.call_and_validate().status_code)

        check()
    # the token works: the calls reached the views, not only the sign-in check
    assert statuses and set(statuses) - {401}, statuses
    if real:
        assert set(statuses) & {200, 201, 409, 422}, f"the real ids were never found: {statuses}"


# --- stateful: sequences that follow the links -----------------------------------------------------------------------


# The share of the document's links that the stateful run must follow at least once.
# NOTE: which links a run picks is the state machine's choice, so the tests below do not
# name them; test_api_document.py walks each chain of links by hand to a 2xx instead.
FOLLOWED_AT_LEAST = 1 / 3


@dataclass
class Call:
    """One call of a stateful run: the operation, the link followed (None for none), the status."""

    operation: str
    link: tuple[str, str] | None
    status: int


def _run_statefully(world: World) -> list[Call]:
    """Run the state machine over ``world``; every call made, in order."""
    # NOTE: only the document's own links; inferred ones would test schemathesis' guesses.
    schema = _schema(world, stateful={"inference": {"algorithms": []}, "max-steps": STEPS})
    ids = {
        _label(path, method): op["operationId"]
        for path, item in openapi_document()["paths"].items()
        for method, op in item.items()
    }
    machine = schema.as_state_machine()
    calls: list[Call] = []
    failures: list[Exception] = []

    class Recorded(machine):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            world.reset()  # each scenario meets the same world, so replays draw alike

        def step(self, input):  # noqa: A002 - schemathesis' name
            try:
                output = super().step(input)
            except Exception as exc:  # a check failed, or the app raised: kept in case a replay hides it
                failures.append(exc)
                raise
            link = None
            if input.transition is not None and input.is_applied:
                source = self.recorder.cases[input.transition.parent_id].value.operation.label
                link = (ids[source], input.transition.id.split("] ", 1)[1].split(" -> ", 1)[0])
            calls.append(Call(input.case.operation.label, link, output.response.status_code))
            return output

    try:
        Recorded.run(
            settings=hypothesis.settings(
                max_examples=SCENARIOS,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[hypothesis.Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
        )
    except hypothesis.errors.Flaky:
        # NOTE: the database outlives each scenario, so a prefix Hypothesis replays may draw
        # differently the second time. Like schemathesis' own engine, that ends the run without
        # being a failure; a failure seen before it still is one.
        if failures:
            raise failures[0] from None
    return calls


def test_call_sequences_that_follow_the_links_conform(any_world: World) -> None:
    calls = _run_statefully(any_world)  # fails on a 5xx or an answer that breaks the document
    everything = {_label(p, m) for p, m in OPERATIONS} - STATELESS_ONLY
    assert everything - {c.operation for c in calls if c.status != 401} == set(), f"never called in {len(calls)}"
    links = {
        (op["operationId"], name)
        for item in openapi_document()["paths"].values()
        for op in item.values()
        for answer in op["responses"].values()
        for name in answer.get("links", {})
    }
    followed = {c.link for c in calls if c.link is not None}
    assert len(followed) >= FOLLOWED_AT_LEAST * len(links), sorted(links - followed)


# --- every phase of schemathesis' own engine, over HTTP ------------------------------------------------------------


@contextmanager
def _served(app: Flask) -> Iterator[str]:
    """The app on a real HTTP server on 127.0.0.1 until the block ends; yields its base URL."""
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, name="api-fuzz", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(60)


def _engine_problems(schema: Any) -> tuple[list[str], Counter[str]]:
    """Run every enabled phase of schemathesis' engine: the problems found, and the cases run per phase."""
    problems: list[str] = []
    cases: Counter[str] = Counter()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases[event.phase.value] += len(event.recorder.cases)
            problems += [
                f"{event.recorder.label}: {check.name}: {check.failure_info.failure.title}\n"
                f"  {check.failure_info.code_sample[:300]}"
                for checks in event.recorder.checks.values()
                for check in checks
                if check.failure_info is not None
            ]
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: {event.value!r}"[:400])
        elif isinstance(event, events.FatalError):
            problems.append(repr(event.exception)[:400])
    return sorted(set(problems)), cases


# NOTE: Hypothesis warns when it shows a large generated value; that is a report, not a problem.
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_every_phase_of_schemathesis_finds_nothing(world: World) -> None:
    """Examples, coverage (boundaries, missing and wrong parts, undeclared methods) and fuzzing."""
    with _served(world.app) as base:
        config = _config(
            world, generation={"max-examples": EXAMPLES, "deterministic": True}, phases={"stateful": {"enabled": False}}
        )  # the state machine above does that part
        problems, cases = _engine_problems(schemathesis.openapi.from_url(f"{base}/api/openapi.json", config=config))
    assert problems == [], "\n".join(problems)
    assert cases["coverage"] and cases["fuzzing"], cases
