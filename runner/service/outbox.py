"""Delivering outbox messages exactly once.

A handler's messages are rows written in the same transaction as its step. Delivery
claims a row (state ``sending``, with a lease) in one transaction, sends it, and marks
it ``sent`` in another. If a worker dies between the two, its row is settled as soon as
``runner.store.leases`` shows the sender gone (at once), or else when the lease runs out:

- an idempotent transport (the receiver drops repeats of an ``Idempotency-Key``) gets
  the message again under the same key, so the effect happens once;
- any other transport's message becomes ``unknown``: it is never sent again by itself,
  and an admin decides (``runner outbox resend ID`` or ``dismiss``).

A transport that cannot tell whether its message arrived (the connection broke after the
request went out) says so with ``DeliveryError(..., uncertain=True)``: the message
becomes ``unknown`` too. A message that fails for good (a 4xx, or out of tries) raises an
incident of kind ``outbox`` on its instance; retrying the incident sends it again.

A message with a sending window class (``send_window``, see ``runner.windows``) is due only
inside its window, on a day the business calendar works (no holiday, day off or weekday
without hours): it is written due at the next opening, and whenever it becomes due again
(a retry, a resend) the window applies again. If delivery runs while the window is shut
(the worker was down, the virtual clock jumped), the due messages of that class are moved on
to the opening before anything is claimed (``defer_shut``), so none goes out at night.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from runner import logs
from runner.errors import Conflict, DeliveryError, Invalid, NotFound
from runner.service.retries import compute_backoff
from runner.service.sendwindows import defer_shut
from runner.service.unit import Core, Unit
from runner.settings import Settings
from runner.store import leases
from runner.store.models import Incident, Instance, Job, OutboxMessage

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
MAX_TRIES = 8


@dataclass(frozen=True)
class Envelope:
    """What a transport gets: the message and its idempotency key."""

    id: int
    channel: str
    idempotency_key: str
    business_key: str | None
    payload: dict[str, Any]
    attempt: int = 1  # which claim of the row this is; settling checks it is still current


class Transport(Protocol):
    """Sends one message; raises DeliveryError."""

    idempotent: bool

    def send(self, envelope: Envelope) -> None: ...


class LogTransport:
    """Only records: the row's ``sent`` state and the log are the delivery (demo default)."""

    idempotent = True

    def send(self, envelope: Envelope) -> None:
        log.info(
            "outbox %s → %s: %s",
            envelope.idempotency_key,
            envelope.channel,
            json.dumps(envelope.payload, ensure_ascii=False),
        )


class WebhookTransport:
    """POSTs the payload as JSON with an Idempotency-Key header; 5xx retried, 4xx final."""

    idempotent = True

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url
        self.timeout = timeout

    def send(self, envelope: Envelope) -> None:
        if not self.url:
            raise DeliveryError("no webhook URL configured (RUNNER_WEBHOOK_URL)", transient=False)
        body = json.dumps(
            {"channel": envelope.channel, "business_key": envelope.business_key, "payload": envelope.payload},
            ensure_ascii=False,
        ).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": envelope.idempotency_key},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()  # the error carries the open response
            raise DeliveryError(f"HTTP {exc.code} from {self.url}", transient=exc.code >= 500) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"cannot reach {self.url}: {exc}", transient=True) from exc


TransportFactory = Callable[["Settings"], Transport]


TRANSPORTS: dict[str, TransportFactory] = {
    "log": lambda settings: LogTransport(),
    "webhook": lambda settings: WebhookTransport(settings.webhook_url),
}


def register_transport(channel: str, factory: TransportFactory) -> None:
    """Make a channel deliverable in every runner (an extension gives its own channels: ``runner.extension``)."""
    TRANSPORTS[channel] = factory


def _transport(core: Core, channel: str) -> Transport:
    """The runner's transport of a channel, built on first use (``Core.transports`` keeps it)."""
    if channel not in core.transports:
        factory = core.extensions.transport(channel) or TRANSPORTS.get(channel)
        if factory is None:
            raise DeliveryError(f"no transport for channel {channel!r}", transient=False)
        core.transports[channel] = factory(core.settings)
    return core.transports[channel]


def claim_query(core: Core, now: datetime) -> Select:
    """The earliest due message no one is sending: reads ``ix_outbox_claim`` in order (see models)."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.state == "pending", OutboxMessage.due_at <= now)
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
        .limit(1)
    )
    return query.with_for_update(skip_locked=True) if core.db.is_postgres else query


def _claim(core: Core, hold: leases.Hold) -> Envelope | None:
    now = core.now()
    with core.db.unit() as s:
        row = s.scalars(claim_query(core, now)).first()
        if row is None:
            return None
        # NOTE: the lock is taken before ``sending`` commits, so no one ever sees a
        # ``sending`` row without its sender's lock (and takes it for orphaned).
        if not hold.take(row.id):
            log.warning("outbox %s: its lock is held elsewhere; left for the next pass", row.idempotency_key)
            return None
        row.state, row.locked_until, row.attempts = "sending", now + LEASE, row.attempts + 1
        return Envelope(row.id, row.channel, row.idempotency_key, row.business_key, dict(row.payload), row.attempts)


def _settle(core: Core, envelope: Envelope, error: DeliveryError | None) -> None:
    now = core.now()
    with core.unit(sync=False) as unit:
        s = unit.session
        row = s.get_one(OutboxMessage, envelope.id, with_for_update=core.db.is_postgres)
        if row.state != "sending" or row.attempts != envelope.attempt:
            # NOTE: our lease ran out and the row moved on (another claim, or ``unknown``).
            # Only news that it arrived is worth writing over that; a failure is not ours to record.
            log.warning(
                "outbox %s: claim %s settled late (row is %s, claim %s)",
                envelope.idempotency_key,
                envelope.attempt,
                row.state,
                row.attempts,
            )
            if error is None and row.state in ("pending", "sending", "unknown"):
                row.state, row.sent_at, row.locked_until = "sent", now, None
            return
        row.locked_until = None
        if error is None:
            row.state, row.sent_at, row.last_error = "sent", now, None
            return
        row.last_error = str(error)
        if error.uncertain:
            row.state = "unknown"
            log.warning("outbox %s may or may not have arrived: %s", row.idempotency_key, error)
        elif error.transient and row.attempts < MAX_TRIES:
            backoff = compute_backoff(row.attempts, core.settings.retry_base_seconds)
            row.state, row.due_at = "pending", unit.windows.due(row.send_window, now + backoff)
        else:
            row.state = "failed"
            log.error("outbox %s failed for good: %s", row.idempotency_key, error)
            _raise_incident(unit, row)


def _raise_incident(unit: Unit, row: OutboxMessage) -> None:
    """An open incident for a message that failed for good, on the instance that sent it."""
    s = unit.session
    # NOTE: a handler's messages carry "<instance>/<job>/<suffix>" keys: the job names the element.
    parts = row.idempotency_key.split("/")
    job = s.get(Job, parts[1]) if len(parts) >= 3 else None
    inst = s.get(Instance, row.instance_id) if row.instance_id else None
    element = job.element_id if job is not None else ""
    error = f"{row.channel} message {row.id} failed: {row.last_error}"
    s.add(
        Incident(
            instance_id=inst.id if inst else None,
            kind="outbox",
            ref=str(row.id),
            element_id=element,
            error=error,
            tries=row.attempts,
            state="open",
            created_at=unit.now(),
        )
    )
    unit.record(
        inst,
        "incident.raised",
        element=element or None,
        details={"outbox": row.id, "channel": row.channel, "error": row.last_error},
    )


def _close_incidents(s: Session, row: OutboxMessage, now: datetime, actor: str | None = None) -> None:
    """An admin's decision on a message also settles its open incidents."""
    for incident in s.scalars(
        select(Incident).where(Incident.kind == "outbox", Incident.ref == str(row.id), Incident.state == "open")
    ):
        incident.state, incident.resolved_at, incident.resolved_by = "resolved", now, actor


def retry_incident(unit: Unit, incident: Incident) -> None:
    """Send the message of an ``outbox`` incident again, due now (``Runner.retry_incident``)."""
    row = unit.session.get(OutboxMessage, int(incident.ref), with_for_update=unit.core.db.is_postgres)
    if row is None:
        raise NotFound(f"outbox message {incident.ref} of incident {incident.id} does not exist")
    if row.state not in ("failed", "unknown"):
        raise Conflict(f"outbox message {row.id} of incident {incident.id} is {row.state}, not waiting for a retry")
    row.state, row.due_at, row.locked_until = "pending", unit.windows.due(row.send_window, unit.now()), None


def recover(core: Core) -> int:
    """Settle messages whose sender died mid-delivery: its lock is free, or its lease ran out."""
    now = core.now()
    query = select(OutboxMessage).where(OutboxMessage.state == "sending").order_by(OutboxMessage.id)
    if core.db.is_postgres:
        # NOTE: two workers recovering at once must not both flip a row (one could be
        # sending it again already); the locked re-check of the state prevents that.
        query = query.with_for_update(skip_locked=True)
    count = 0
    with core.unit(sync=False) as unit:
        for row in unit.session.scalars(query).all():
            if (
                row.locked_until is not None
                and row.locked_until >= now
                and not core.sender_locks.gone(unit.session, row.id)
            ):
                continue
            _recover_row(unit, row)
            count += 1
    return count


def _recover_row(unit: Unit, row: OutboxMessage) -> None:
    try:
        idempotent = _transport(unit.core, row.channel).idempotent
    except DeliveryError:
        idempotent = False
    row.locked_until = None
    if row.attempts >= MAX_TRIES:
        # A message whose every sender died (it may crash the sender) is not tried forever.
        row.state = "failed" if idempotent else "unknown"
        row.last_error = f"the sender stopped during each of {row.attempts} deliveries"
        if row.state == "failed":
            _raise_incident(unit, row)
    elif idempotent:
        row.state, row.due_at = "pending", unit.windows.due(row.send_window, unit.now())
        row.last_error = "the sender stopped during delivery; sent again under the same key"
    else:
        row.state = "unknown"
        row.last_error = "the sender stopped during delivery; it may or may not have arrived"
    log.warning("outbox %s: %s", row.idempotency_key, row.last_error)


def _send(core: Core, envelope: Envelope) -> DeliveryError | None:
    """One delivery; a transport's own bug counts as a final failure, not a crash."""
    try:
        _transport(core, envelope.channel).send(envelope)
    except DeliveryError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - settled as failed with the error text
        log.exception("outbox %s: transport %r broke", envelope.idempotency_key, envelope.channel)
        return DeliveryError(f"transport {envelope.channel!r} raised {type(exc).__name__}: {exc}", transient=False)
    return None


def deliver_due(core: Core, limit: int = 1000) -> int:
    """Send due messages, one transaction to claim and one to settle each."""
    core.refresh_clock()  # another process may have moved the virtual clock on
    recover(core)
    defer_shut(core)
    sent = 0
    for _ in range(limit):
        with core.sender_locks.holding() as hold:
            envelope = _claim(core, hold)
            if envelope is None:
                break
            with logs.bind(business_key=envelope.business_key):  # the customer on every line of it
                error = _send(core, envelope)
                _settle(core, envelope, error)
        sent += error is None
    return sent


def resolve(core: Core, message_id: int, action: str) -> None:
    """An admin's decision on an ``unknown`` or ``failed`` message: resend or dismiss."""
    with core.db.unit() as s:
        row = s.get(OutboxMessage, message_id)
        if row is None:
            raise NotFound(f"outbox message {message_id} does not exist")
        if action not in ("resend", "dismiss"):
            raise Invalid(f"unknown action {action!r}; use resend or dismiss")
        if row.state not in ("unknown", "failed"):
            raise Conflict(
                f"outbox message {message_id} is {row.state}; only unknown or failed ones wait for a decision"
            )
        if action == "resend":
            windows = core.windows_in(core.calendars.source(s))
            row.state, row.due_at = "pending", windows.due(row.send_window, core.now())
        else:
            row.state = "dismissed"
        _close_incidents(s, row, core.now())
