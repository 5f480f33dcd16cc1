"""Running service-task handlers: claim a due job, call its handler, commit its result.

A job's handler runs inside the unit of work that completes the service task, so the
handler's domain writes, its outbox messages and the engine step commit together or not
at all. On PostgreSQL the job row is claimed with ``FOR UPDATE SKIP LOCKED`` and the
instance with ``SKIP LOCKED`` too: a worker never waits on another, so workers never
deadlock, and a crashed worker's transaction simply rolls back and frees its job.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from handlers import HandlerContext, Retry
from runner.errors import Conflict, HandlerFailed, NotFound, RunnerError
from runner.models import Incident, Instance, Job, OutboxMessage
from runner.retries import compute_backoff, max_tries

if TYPE_CHECKING:
    from runner.runtime import Runner

log = logging.getLogger(__name__)


def call_with_timeout(fn, params: dict[str, Any], ctx: HandlerContext, timeout: float) -> Any:
    """Call a handler, turning an exception or a hang past ``timeout`` into HandlerFailed."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn(params, ctx)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"handler:{ctx.topic}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        # NOTE: a thread cannot be killed; the context is closed so late sends fail,
        # and the unit of work rolls back whatever the handler did.
        ctx.closed = True
        raise HandlerFailed(f"handler {ctx.topic!r} did not finish within {timeout:g} s")
    if "error" in box:
        exc = box["error"]
        kind = "asked to retry" if isinstance(exc, Retry) else f"raised {type(exc).__name__}"
        raise HandlerFailed(f"handler {ctx.topic!r} {kind}: {exc}") from exc
    try:
        json.dumps(box.get("result"))
    except (TypeError, ValueError) as exc:
        raise HandlerFailed(f"handler {ctx.topic!r} returned data that is not JSON-safe: {exc}") from exc
    return box.get("result")


def _due_query(runner: "Runner"):
    query = select(Job).where(Job.state == "pending", Job.due_at <= runner.now()).order_by(Job.due_at).limit(1)
    return query.with_for_update(skip_locked=True) if runner.db.is_postgres else query


class _Failed(Exception):
    """Carries a failed job out of its (rolled back) unit of work."""


def run_next(runner: "Runner") -> str | None:
    """Run the earliest due job; returns its id, or None when nothing is due."""
    job_id = None
    try:
        with runner.db.unit() as s:
            job = s.scalars(_due_query(runner)).first()
            if job is None:
                return None
            job_id = job.id
            try:
                _run(runner, s, job)
            except Conflict:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure counts as a try
                raise _Failed(job_id, exc) from exc
    except Conflict:
        log.info("job %s met a concurrent change; it stays due", job_id)
    except _Failed as failed:
        _record_failure(runner, *failed.args)
    return job_id


def _run(runner: "Runner", s, job: Job) -> None:
    loaded = runner.load_for_worker(s, job.instance_id)
    if loaded is None:
        raise Conflict(f"instance {job.instance_id} is busy")
    inst, workflow = loaded
    fn = runner.registry.get(job.topic)
    if fn is None:
        raise HandlerFailed(f"no handler registered for topic {job.topic!r}")
    ctx = HandlerContext(instance_id=inst.id, business_key=inst.business_key,
                         idempotency_key=f"{inst.id}/{job.id}", element_id=job.element_id, topic=job.topic,
                         attempt=job.attempts + 1, now=runner.now(), session=s,
                         properties=dict(job.properties or {}))
    result = call_with_timeout(fn, dict(job.params or {}), ctx, job.timeout)
    mapped = runner.engine.map_result(workflow, job.id, result)
    runner.engine.finish_external(workflow, job.id, mapped)
    for channel, payload, key in ctx.outbox:
        s.add(OutboxMessage(idempotency_key=key, channel=channel, instance_id=inst.id,
                            business_key=inst.business_key, payload=payload, state="pending",
                            due_at=runner.now(), created_at=runner.now()))
    job.attempts += 1
    job.state, job.ended_at = "done", runner.now()
    details = {"topic": job.topic, "attempt": job.attempts, "params": job.params}
    runner._history(s, inst, "handler.called", element=job.element_id, details=details)
    runner._history(s, inst, "handler.succeeded", element=job.element_id,
                    details={"topic": job.topic, "result": result, "outbox": len(ctx.outbox)})
    runner._commit_step(s, inst, workflow)


def _record_failure(runner: "Runner", job_id: str, exc: Exception) -> None:
    """Count a failed try: schedule the next one with backoff, or raise an incident."""
    message = str(exc)
    log.warning("job %s failed: %s", job_id, message)
    with runner.db.unit() as s:
        job = s.get(Job, job_id)
        inst = s.get(Instance, job.instance_id)
        job.attempts += 1
        job.last_error = message
        details = {"topic": job.topic, "attempt": job.attempts, "error": message}
        runner._history(s, inst, "handler.called", element=job.element_id, details={"topic": job.topic,
                                                                                    "attempt": job.attempts})
        runner._history(s, inst, "handler.failed", element=job.element_id, details=details)
        hopeless = runner.registry.get(job.topic) is None
        if job.attempts >= job.max_attempts or hopeless:
            job.state = "incident"
            s.add(Incident(instance_id=inst.id, kind="job", ref=job.id, element_id=job.element_id,
                           error=message, tries=job.attempts, state="open", created_at=runner.now()))
            runner._history(s, inst, "incident.raised", element=job.element_id, details=details)
        else:
            base = float((job.properties or {}).get("retry_backoff") or runner.settings.retry_base_seconds)
            job.due_at = runner.now() + compute_backoff(job.attempts, base)


def retry_incident(runner: "Runner", s, incident: Incident) -> None:
    """Give a job incident a fresh set of tries, due now."""
    job = s.get(Job, incident.ref)
    if job is None:
        raise NotFound(f"job {incident.ref} of incident {incident.id} does not exist")
    job.state = "pending"
    job.due_at = runner.now()
    job.max_attempts = job.attempts + max_tries(job.properties or {})


def next_due(runner: "Runner", s) -> Any:
    """When the earliest pending job is due (or None)."""
    return s.scalars(select(Job.due_at).where(Job.state == "pending").order_by(Job.due_at).limit(1)).first()


