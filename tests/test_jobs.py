"""Service-task handler jobs: retries with backoff, incidents, timeouts, bad results, outbox.

Time is the virtual clock; a hanging handler blocks on an event the test sets.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import BPMN, make_runner
from sqlalchemy import event
from sqlalchemy.orm import Session

from runner.errors import Conflict, HandlerContextClosed, NotFound
from runner.queries import tasklists as inbox
from runner.registry import HandlerContext, Registry
from runner.service import jobs
from runner.service.retries import MAX_BACKOFF_SECONDS, compute_backoff, max_tries
from runner.service.runtime import Runner
from runner.store.models import Instance, Job

JOBS = BPMN / "jobs"
WAIT = 30.0  # seconds a test waits for a handler thread before failing


# --- pure retry arithmetic ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "base", "seconds"),
    [
        (1, 10.0, 10),
        (2, 10.0, 20),
        (3, 10.0, 40),
        (4, 10.0, 80),
        (1, 2.5, 2.5),
        (3, 1.0, 4),
        (12, 10.0, 20480),
        (13, 10.0, MAX_BACKOFF_SECONDS),
        (60, 10.0, MAX_BACKOFF_SECONDS),
    ],
)
def test_compute_backoff_doubles_from_the_base_up_to_the_cap(attempt: int, base: float, seconds: float) -> None:
    assert compute_backoff(attempt, base) == timedelta(seconds=seconds)


def test_compute_backoff_takes_a_cap_and_rejects_attempt_zero() -> None:
    assert compute_backoff(5, 10.0, cap=60.0) == timedelta(seconds=60)
    with pytest.raises(ValueError, match="attempt must be 1 or more"):
        compute_backoff(0)


@pytest.mark.parametrize(
    ("properties", "tries"),
    [
        ({}, 3),
        ({"retries": "2"}, 2),
        ({"retries": " 5 "}, 5),
        ({"retries": "1"}, 1),
        ({"retries": "0"}, 1),
        ({"retries": "-4"}, 1),
        ({"retries": ""}, 3),
        ({"retries": "many"}, 3),
    ],
)
def test_max_tries_reads_the_retries_property(properties: dict[str, str], tries: int) -> None:
    assert max_tries(properties) == tries


# --- helpers ------------------------------------------------------------------------------


class Flaky:
    """A handler that fails for some customers, remembering each call's virtual time."""

    def __init__(self, *failing: str):
        self.failing = set(failing)
        self.calls: list[tuple[str, int, datetime]] = []

    def __call__(self, params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
        self.calls.append((ctx.business_key, ctx.attempt, ctx.now))
        if ctx.business_key in self.failing:
            raise RuntimeError("CRM is down")
        return {"crm_id": f"crm-{params['customer']}"}

    def times(self, business_key: str) -> list[datetime]:
        return [at for key, _, at in self.calls if key == business_key]


def deploy(runner: Runner, registry: Registry, fn, *files: str, topic: str = "test.work") -> None:
    registry.add(topic, fn)
    runner.deploy([JOBS / name for name in files])


def events(runner: Runner, instance_id: str) -> list[str]:
    return [
        h["event"]
        for h in inbox.history(runner, instance_id=instance_id)
        if h["event"].startswith(("handler.", "incident."))
    ]


def open_tasks(runner: Runner, instance_id: str) -> list[str]:
    return [t["element_id"] for t in inbox.tasks(runner) if t["instance_id"] == instance_id]


# --- retries and incidents ------------------------------------------------------------------


def test_failing_handler_is_retried_with_backoff_then_raises_an_incident(
    any_runner: Runner, registry: Registry
) -> None:
    runner, flaky = any_runner, Flaky("A")
    deploy(runner, registry, flaky, "service.bpmn")
    t0 = runner.now()
    a = runner.start_instance("jobs_service", "A", {"customer": "A"})
    b = runner.start_instance("jobs_service", "B", {"customer": "B"})

    assert runner.run_due() == 2
    [job] = inbox.instance(runner, a)["jobs"]
    assert (job["state"], job["attempts"], job["due_at"]) == ("pending", 1, t0 + timedelta(seconds=10))
    assert job["last_error"] == "handler 'test.work' raised RuntimeError: CRM is down"
    assert open_tasks(runner, b) == ["check"]
    runner.advance_clock(timedelta(seconds=10))
    assert inbox.instance(runner, a)["jobs"][0]["due_at"] == t0 + timedelta(seconds=10 + 20)
    runner.advance_clock(timedelta(hours=1))

    assert flaky.times("A") == [t0, t0 + timedelta(seconds=10), t0 + timedelta(seconds=30)]
    [incident] = inbox.incidents(runner)
    assert (incident["instance_id"], incident["kind"], incident["element_id"], incident["tries"]) == (
        a,
        "job",
        "work",
        3,
    )
    assert incident["error"] == "handler 'test.work' raised RuntimeError: CRM is down"
    assert inbox.instance(runner, a)["status"] == "running"
    assert open_tasks(runner, a) == []

    c = runner.start_instance("jobs_service", "C", {"customer": "C"})
    runner.run_due()
    assert open_tasks(runner, c) == ["check"]

    flaky.failing.clear()
    runner.retry_incident(incident["id"], actor="admin")
    assert runner.run_due() == 1
    assert open_tasks(runner, a) == ["check"]
    assert inbox.instance(runner, a)["data"]["crm_id"] == "crm-A"
    assert inbox.incidents(runner) == []
    assert inbox.incidents(runner, state="resolved")[0]["resolved_by"] == "admin"
    assert events(runner, a) == ["handler.called", "handler.failed"] * 3 + [
        "incident.raised",
        "incident.resolved",
        "handler.called",
        "handler.succeeded",
    ]
    assert events(runner, b) == ["handler.called", "handler.succeeded"]


@pytest.mark.parametrize(
    ("fixture", "process_key", "tries"), [("service.bpmn", "jobs_service", 3), ("two_tries.bpmn", "jobs_two_tries", 2)]
)
def test_the_retries_property_sets_the_total_tries(
    runner: Runner, registry: Registry, fixture: str, process_key: str, tries: int
) -> None:
    flaky = Flaky("A")
    deploy(runner, registry, flaky, fixture)
    a = runner.start_instance(process_key, "A", {"customer": "A"})
    runner.run_due()
    runner.advance_clock(timedelta(days=1))

    assert [attempt for _, attempt, _ in flaky.calls] == list(range(1, tries + 1))
    assert events(runner, a).count("handler.failed") == tries
    assert inbox.incidents(runner)[0]["tries"] == tries


def test_retry_incident_refuses_what_is_not_open(runner: Runner, registry: Registry) -> None:
    deploy(runner, registry, Flaky("A"), "two_tries.bpmn")
    runner.start_instance("jobs_two_tries", "A", {"customer": "A"})
    runner.run_due()
    runner.advance_clock(timedelta(minutes=1))
    [incident] = inbox.incidents(runner)
    runner.retry_incident(incident["id"])

    with pytest.raises(Conflict, match="already resolved"):
        runner.retry_incident(incident["id"])
    with pytest.raises(NotFound):
        runner.retry_incident(9999)


def test_a_failed_try_is_recorded_before_another_worker_can_claim_the_job(
    any_runner: Runner, registry: Registry
) -> None:
    """The job stays claimed from the failure to its bookkeeping: no immediate second run."""
    flaky = Flaky("A")
    deploy(any_runner, registry, flaky, "service.bpmn")
    any_runner.start_instance("jobs_service", "A", {"customer": "A"})
    other = make_runner(any_runner.db.engine.url.render_as_string(hide_password=False), registry)
    armed = [True]

    def second_worker_polls(session: Session, transaction) -> None:
        # Right after the first worker's transaction ends, a second worker looks for work.
        if transaction.parent is None and armed[0] and session.get_bind() is any_runner.db.engine:
            armed[0] = False
            jobs.run_next(other)

    event.listen(Session, "after_transaction_end", second_worker_polls)
    try:
        jobs.run_next(any_runner)
    finally:
        event.remove(Session, "after_transaction_end", second_worker_polls)
        other.db.engine.dispose()
    assert not armed[0]
    assert [attempt for _, attempt, _ in flaky.calls] == [1]


# --- timeouts, bad results, and what a failed step leaves behind ----------------------------


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """What a hanging handler waits for; set at teardown at the latest."""
    event = threading.Event()
    yield event
    event.set()


def test_a_handler_that_hangs_times_out_and_loses_nothing(
    runner: Runner, registry: Registry, release: threading.Event
) -> None:
    finished = threading.Event()
    late: list[str] = []

    def slow(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
        if ctx.attempt > 1:
            return {"slow_done": True}
        ctx.send("webhook", {"text": "sent before hanging"})
        release.wait()
        for late_use in (
            lambda: ctx.send("webhook", {"text": "late"}),
            lambda: ctx.session.execute(sa.text("select 1")),
            lambda: ctx.calendar() if ctx.calendar is not None else None,
        ):
            try:
                late_use()
            except HandlerContextClosed as exc:
                late.append(str(exc))
        finished.set()
        return {"slow_done": "too late"}

    deploy(runner, registry, slow, "hang.bpmn", topic="test.slow")
    instance_id = runner.start_instance("jobs_hang", "KH-1", {"customer": "KH-1"})
    before, tasks_before, row_before = _state(runner, instance_id)

    assert runner.run_due() == 1
    [job] = inbox.instance(runner, instance_id)["jobs"]
    assert (job["state"], job["attempts"]) == ("pending", 1)
    assert job["last_error"] == "handler 'test.slow' did not finish within 0.2 s"
    assert job["due_at"] == runner.now() + timedelta(seconds=10)
    assert _state(runner, instance_id) == (before, tasks_before, row_before)
    assert inbox.outbox(runner) == []

    release.set()
    assert finished.wait(WAIT)
    assert late == [
        "handler for test.slow used its context after its timeout",
        "handler for test.slow used its session after its timeout",
        "handler for test.slow read the calendar after its timeout",
    ]
    assert _state(runner, instance_id) == (before, tasks_before, row_before)

    runner.advance_clock(timedelta(seconds=10))
    assert inbox.instance(runner, instance_id)["data"]["slow_done"] is True
    [task] = inbox.tasks(runner)
    assert task["id"] == tasks_before[0]["id"]
    runner.complete_task(task["id"], {})
    assert inbox.instance(runner, instance_id)["status"] == "completed"
    assert inbox.outbox(runner) == []


def _state(runner: Runner, instance_id: str) -> tuple[dict[str, Any], list[dict], tuple[str, int]]:
    """What a failed try must not change: the instance, its open tasks and its stored tree."""
    view = inbox.instance(runner, instance_id)
    view.pop("jobs")
    with runner.db.read() as s:
        row = s.get(Instance, instance_id)
        stored = (row.state, row.row_version)
    return view, inbox.tasks(runner), stored


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ({"when": datetime(2026, 1, 1)}, "returned data that is not JSON-safe: Object of type datetime"),
        ({"ratio": math.nan}, "returned data that is not JSON-safe: Out of range float values"),
        ({"handle": object()}, "returned data that is not JSON-safe: Object of type object"),
        (["a", "list"], "work (Ghi CRM): handler returned list, expected an object"),
    ],
)
def test_a_handler_returning_unusable_data_fails_clearly(
    runner: Runner, registry: Registry, result: Any, error: str
) -> None:
    deploy(runner, registry, lambda params, ctx: result, "two_tries.bpmn")
    instance_id = runner.start_instance("jobs_two_tries", "KH-1", {"customer": "KH-1"})
    runner.run_due()
    runner.advance_clock(timedelta(minutes=1))

    [incident] = inbox.incidents(runner)
    assert error in incident["error"]
    assert "ratio" not in inbox.instance(runner, instance_id)["data"]


def test_a_message_that_is_not_json_fails_the_try(runner: Runner, registry: Registry) -> None:
    def send_object(params: dict[str, Any], ctx: HandlerContext) -> None:
        ctx.send("webhook", {"at": datetime(2026, 1, 1)})

    deploy(runner, registry, send_object, "service.bpmn")
    instance_id = runner.start_instance("jobs_service", "KH-1", {"customer": "KH-1"})
    runner.run_due()

    [job] = inbox.instance(runner, instance_id)["jobs"]
    assert job["last_error"].startswith(
        f"handler 'test.work' sent a 'webhook' message ({instance_id}/{job['id']}/0) that is not JSON-safe"
    )
    assert inbox.outbox(runner) == []


def test_messages_and_domain_writes_are_stored_only_when_the_step_commits(
    any_runner: Runner, registry: Registry
) -> None:
    runner = any_runner
    with runner.db.engine.begin() as conn:
        conn.execute(sa.text("create table notes (customer varchar(20), attempt integer)"))

    def send_then_maybe_fail(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
        ctx.session.execute(sa.text("insert into notes values (:c, :a)"), {"c": params["customer"], "a": ctx.attempt})
        ctx.send("log", {"customer": params["customer"], "attempt": ctx.attempt})
        if ctx.attempt == 1:
            raise RuntimeError("CRM timed out after the note was written")
        return {}

    deploy(runner, registry, send_then_maybe_fail, "service.bpmn")
    instance_id = runner.start_instance("jobs_service", "KH-1", {"customer": "KH-1"})
    runner.run_due()
    assert inbox.outbox(runner) == []
    assert _notes(runner) == []

    runner.advance_clock(timedelta(seconds=10))
    [message] = inbox.outbox(runner)
    assert message["idempotency_key"] == f"{instance_id}/{_job_id(runner, instance_id)}/0"
    assert (message["payload"], message["state"]) == ({"customer": "KH-1", "attempt": 2}, "sent")
    assert _notes(runner) == [("KH-1", 2)]


def _job_id(runner: Runner, instance_id: str) -> str:
    with runner.db.read() as s:
        return s.scalars(sa.select(Job.id).where(Job.instance_id == instance_id)).one()


def _notes(runner: Runner) -> list[tuple[str, int]]:
    with runner.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("select customer, attempt from notes"))]


# --- an instance held by someone else -------------------------------------------------------


def test_a_job_whose_instance_is_busy_stays_due_without_spinning(pg_url: str, registry: Registry) -> None:
    runner, flaky = make_runner(pg_url, registry), Flaky()
    try:
        deploy(runner, registry, flaky, "service.bpmn")
        instance_id = runner.start_instance("jobs_service", "KH-1", {"customer": "KH-1"})
        with runner.db.engine.connect() as holder, holder.begin():
            holder.execute(sa.select(Instance.id).where(Instance.id == instance_id).with_for_update())
            assert runner.run_due() == 0
            runner.advance_clock(timedelta(minutes=5))
            assert flaky.calls == []
            assert inbox.instance(runner, instance_id)["jobs"][0]["state"] == "pending"
        assert runner.run_due() == 1
        assert open_tasks(runner, instance_id) == ["check"]
    finally:
        runner.db.engine.dispose()


# --- timers fail like jobs: an incident, nothing half-done ----------------------------------


def test_a_timer_whose_step_fails_becomes_an_incident_and_changes_nothing(runner: Runner) -> None:
    runner.deploy([JOBS / "timer_fails.bpmn"])
    instance_id = runner.start_instance("jobs_timer_fails", "KH-1", {})
    before, _, stored = _state(runner, instance_id)
    before.pop("timers")

    runner.advance_clock(timedelta(days=2))
    [incident] = inbox.incidents(runner)
    assert (incident["kind"], incident["instance_id"], incident["tries"]) == ("timer", instance_id, 1)
    assert "renewal" in incident["error"]
    after, _, stored_after = _state(runner, instance_id)
    assert after.pop("timers") == []
    assert (after, stored_after) == (before, stored)
    assert inbox.history(runner, instance_id=instance_id, events=["timer.fired"]) == []

    runner.retry_incident(incident["id"])
    assert runner.run_due() == 1
    [again] = inbox.incidents(runner)
    assert again["id"] != incident["id"]
    assert [
        h["event"] for h in inbox.history(runner, instance_id=instance_id) if h["event"].startswith("incident.")
    ] == ["incident.raised", "incident.resolved", "incident.raised"]
