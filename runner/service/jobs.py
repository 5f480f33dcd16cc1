"""Running service-task handlers: run a claimed job, call its handler, commit its result.

A job's handler runs inside the unit of work that completes the service task, so the
handler's domain writes, its outbox messages and the engine step commit together or not
at all. Workers lease due jobs in batches (``runner.service.claims``); each job then runs
in its own unit of work, which locks the job row and the instance with ``SKIP LOCKED`` on
PostgreSQL: a worker never waits on another, so workers never deadlock, and a crashed
worker's transaction simply rolls back; its lease runs out (or its lost heartbeat frees it).

The handler and the step run inside a SAVEPOINT. A failed try rolls back to it and is
recorded in the same transaction, while the job row is still claimed: no other worker
can run the job again between the failure and its bookkeeping.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runner import logs, metrics
from runner.clock import Clock
from runner.engine import timers
from runner.errors import (
    BudgetExceeded,
    Conflict,
    HandlerContextClosed,
    HandlerFailed,
    NotFound,
    Retry,
    caused_by,
)
from runner.registry import HandlerContext
from runner.service import claims
from runner.service.calls import CallThreads
from runner.service.retries import compute_backoff, max_tries
from runner.service.unit import Core, Unit
from runner.store.database import savepoint
from runner.store.models import Incident, Instance, Job, OutboxMessage

log = logging.getLogger(__name__)


class _SessionGuard:
    """The unit of work's session as a handler sees it: refused once the handler timed out."""

    def __init__(self, session: Session, ctx: HandlerContext):
        self._session = session
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        # NOTE: a timed-out handler thread lives on; it must not touch a session that
        # has moved on to other work (or start a new transaction that holds locks).
        if self._ctx.closed:
            raise HandlerContextClosed(f"handler for {self._ctx.topic} used its session after its timeout")
        return getattr(self._session, name)


def _guarded_calendar(read: Callable[[], Any], ctx: HandlerContext) -> Callable[[], Any]:
    """The unit's calendar reader (captured in this thread) as a handler calls it: it reads through the
    unit's session, so like ``_SessionGuard`` it is refused once the handler timed out."""

    def calendar() -> Any:
        if ctx.closed:
            raise HandlerContextClosed(f"handler for {ctx.topic} read the calendar after its timeout")
        return read()

    return calendar


def _json_safe(value: Any) -> None:
    """Raise TypeError/ValueError unless ``value`` is plain JSON (no NaN, no objects)."""
    json.dumps(value, allow_nan=False)


def call_with_timeout(
    fn, params: dict[str, Any], ctx: HandlerContext, timeout: float, threads: CallThreads | None = None
) -> Any:
    """Call a handler, turning an exception or a hang past ``timeout`` into HandlerFailed.

    It runs on one of ``threads`` (the runner's, kept between calls), or on a thread of its
    own without them, in a copy of the caller's context either way (see runner.service.calls).
    """
    threads = threads if threads is not None else CallThreads(idle=0)
    call = threads.call(functools.partial(fn, params, ctx), timeout, name=f"handler:{ctx.topic}")
    # NOTE: the context is valid only during the call: late sends and session use fail.
    ctx.closed = True
    if call is None:
        # A thread cannot be killed; the unit of work rolls back whatever it did.
        raise HandlerFailed(f"handler {ctx.topic!r} did not finish within {timeout:g} s")
    if call.error is not None:
        exc = call.error
        kind = "asked to retry" if isinstance(exc, Retry) else f"raised {type(exc).__name__}"
        raise HandlerFailed(f"handler {ctx.topic!r} {kind}: {exc}") from exc
    try:
        _json_safe(call.result)
    except (TypeError, ValueError) as exc:
        raise HandlerFailed(f"handler {ctx.topic!r} returned data that is not JSON-safe: {exc}") from exc
    return call.result


def run_claimed(core: Core, job_id: str) -> bool:
    """Run a job this worker has claimed, in its own unit of work; False if it did not run.

    Not run: its instance is busy (another worker has it), or the job is no longer pending
    or no longer leased to this worker. Its lease then stays until ``claims.release``.
    """
    try:
        with logs.bind(), core.unit(sync=False) as unit:
            s = unit.session
            # NOTE: one round trip locks the job and its instance (SKIP LOCKED: busy is skipped).
            held = claims.held_query(
                claims.JOBS, job_id, core.settings.worker_id, core.db.is_postgres, with_instance=True
            )
            row = s.execute(*held).first()
            if row is None:
                return False
            job, inst = row
            logs.annotate(instance_id=inst.id, business_key=inst.business_key, element=job.element_id)
            workflow = unit.restore(inst)
            try:
                with savepoint(s):
                    # NOTE: the lease is cleared in the same UPDATE that runs the job or schedules its next try.
                    job.locked_by, job.locked_until = None, None
                    _run(unit, job, inst, workflow)
            except Conflict:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure counts as a try
                job.locked_by, job.locked_until = None, None
                _record_failure(unit, job, inst, exc)
    except Conflict as exc:
        log.info("job %s met a concurrent change; it stays due: %s", job_id, exc)
        return False
    return True


def run_next(core: Core, skip: set[str] | None = None, wall: Clock = claims.WALL) -> str | None:
    """Claim and run the earliest due job not in ``skip`` (one at a time); returns its id, or None.

    A job that did not run (its instance busy) stays due and is added to ``skip``, so that
    one pass does not spin on it.
    """
    skip = set() if skip is None else skip
    with claims.holding(core):
        claimed = claims.claim(core, claims.JOBS, 1, skip, wall)
        if not claimed:
            return None
        job_id = claimed[0].id
        if not run_claimed(core, job_id):
            skip.add(job_id)
            claims.release(core, claims.JOBS, [job_id])
    return job_id


def _run(unit: Unit, job: Job, inst: Instance, workflow) -> None:
    s, engine = unit.session, unit.engine
    fn = unit.core.registry.get(job.topic)
    if fn is None:
        raise HandlerFailed(f"no handler registered for topic {job.topic!r}")
    ctx = HandlerContext(
        instance_id=inst.id,
        business_key=inst.business_key,
        idempotency_key=f"{inst.id}/{job.id}",
        element_id=job.element_id,
        topic=job.topic,
        attempt=job.attempts + 1,
        now=unit.now(),
        properties=dict(job.properties or {}),
        tz=unit.core.settings.tz,
        extensions=unit.core.extensions,
    )
    ctx.session = _SessionGuard(s, ctx)
    ctx.calendar = _guarded_calendar(timers.calendar_reader(unit.core.settings.tz), ctx)
    with metrics.handler_call(job.topic):
        result = call_with_timeout(fn, dict(job.params or {}), ctx, job.timeout, unit.core.calls)
    _check_outbox(ctx)
    mapped = engine.map_result(workflow, job.id, result)
    engine.finish_external(workflow, job.id, mapped)
    for channel, payload, key in ctx.outbox:
        window = ctx.windows.get(key)
        s.add(
            OutboxMessage(
                idempotency_key=key,
                channel=channel,
                instance_id=inst.id,
                business_key=inst.business_key,
                payload=payload,
                state="pending",
                # NOTE: a message outside its sending window is due when the window opens.
                due_at=unit.windows.due(window, unit.now()),
                created_at=unit.now(),
                send_window=window,
            )
        )
    job.attempts += 1
    job.state, job.ended_at, job.last_error = "done", unit.now(), None
    details = {"topic": job.topic, "attempt": job.attempts, "params": job.params}
    unit.record(inst, "handler.called", element=job.element_id, details=details)
    unit.record(
        inst,
        "handler.succeeded",
        element=job.element_id,
        details={"topic": job.topic, "result": result, "outbox": len(ctx.outbox)},
    )
    unit.commit(inst, workflow, completed_task=job.id)


def _check_outbox(ctx: HandlerContext) -> None:
    """Outbox payloads must be plain JSON, like results; said here rather than at flush."""
    for channel, payload, key in ctx.outbox:
        try:
            _json_safe(payload)
        except (TypeError, ValueError) as exc:
            raise HandlerFailed(
                f"handler {ctx.topic!r} sent a {channel!r} message ({key}) that is not JSON-safe: {exc}"
            ) from exc


def _record_failure(unit: Unit, job: Job, inst: Instance, exc: Exception) -> None:
    """Count a failed try: schedule the next one with backoff, or raise an incident."""
    message = str(exc) or type(exc).__name__
    log.warning("job %s (%s) failed: %s", job.id, job.element_id, message)
    job.attempts += 1
    job.last_error = message
    details = {"topic": job.topic, "attempt": job.attempts, "error": message}
    unit.record(
        inst,
        "handler.called",
        element=job.element_id,
        details={"topic": job.topic, "attempt": job.attempts, "params": job.params},
    )
    unit.record(inst, "handler.failed", element=job.element_id, details=details)
    # NOTE: a script over its budget goes over it again on every try: no retries for it.
    core = unit.core
    hopeless = core.registry.get(job.topic) is None or caused_by(exc, BudgetExceeded) is not None
    if job.attempts >= job.max_attempts or hopeless:
        job.state = "incident"
        unit.session.add(
            Incident(
                instance_id=inst.id,
                kind="job",
                ref=job.id,
                element_id=job.element_id,
                error=message,
                tries=job.attempts,
                state="open",
                created_at=unit.now(),
            )
        )
        unit.record(inst, "incident.raised", element=job.element_id, details=details)
    else:
        base = float((job.properties or {}).get("retry_backoff") or core.settings.retry_base_seconds)
        job.due_at = unit.now() + compute_backoff(job.attempts, base)


def retry_incident(unit: Unit, incident: Incident) -> None:
    """Give a job incident a fresh set of tries, due now."""
    job = unit.session.get(Job, incident.ref, with_for_update=unit.core.db.is_postgres)
    if job is None:
        raise NotFound(f"job {incident.ref} of incident {incident.id} does not exist")
    if job.state != "incident":
        raise Conflict(f"job {job.id} of incident {incident.id} is {job.state}, not waiting for a retry")
    job.state = "pending"
    job.due_at = unit.now()
    job.max_attempts = job.attempts + max_tries(job.properties or {})


def next_due(s: Session, after: datetime | None = None) -> datetime | None:
    """When the earliest pending job is due (strictly after ``after`` if given), or None."""
    query = select(Job.due_at).where(Job.state == "pending")
    if after is not None:
        query = query.where(Job.due_at > after)
    return s.scalars(query.order_by(Job.due_at).limit(1)).first()
