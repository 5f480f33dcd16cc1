"""Leads posted by website and landing-page forms (``POST /api/leads``), made once per client key.

    use = lead_keys.use_key(runner, secret)
    outcome = capture.submit(runner, use, {"name": "...", "phone": "0912 345 678"}, client_key="f81d4fae")
    outcome.status, outcome.reference, outcome.replayed      # 201, '3f2a…', False

A post makes a lead with ``runner.crm.intake.create_lead`` (one unit of work: the customer, its
round-robin owner and its sales instance), with the key's source; the form cannot choose the source
or the owner. A form needs a name and a phone number or an e-mail address; the seed's other required
fields (the survey's facts) are asked later by sales, so they are optional here.

**Duplicates.** When the phone or e-mail belongs to a customer already, nothing new is made: the
post is written as a note (kind ``web_form``) on that customer's timeline, so their owner sees that
they wrote again, and the form gets the same answer as for a new lead. Website visitors are
anonymous, so the answer must not tell them who is a customer, let alone their code or name.

**Idempotency.** A client key (the ``Idempotency-Key`` header) is claimed in ``lead_posts`` (unique per
lead key) before the lead is made, in a unit of its own: of two concurrent posts with one client key,
one makes the lead and the other finds the claim. The same key again with the same body answers the
first post's reference (``replayed``); with another body it is refused (``KeyReused``, 422); while the
first is still being made, ``InProgress`` (409, retry). A post that fails gives its claim back, so
the client may post again. A claim left by a process that died is taken over after ``STALE``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from runner.crm import customers as crm
from runner.crm import intake
from runner.crm.lead_keys import KeyUse
from runner.crm.models import LeadPost
from runner.errors import Conflict, FormInvalid, Invalid

if TYPE_CHECKING:
    from runner.service.runtime import Runner

CHOSEN_BY_KEY = ("source", "owner")  # the key's source; the round-robin's owner
STALE = timedelta(minutes=5)  # a claim still unfinished after this belongs to a process that died
CLIENT_KEY_MAX = 200
NOTE_KIND = "web_form"


class KeyReused(Invalid):
    """Raised when a client key comes again with a different body."""


class InProgress(Conflict):
    """Raised when the first post of a client key is still being made."""


@dataclass(frozen=True)
class Outcome:
    """What a post answers: its status (201 new, 200 a replay), the post's reference, whether it was a replay."""

    status: int
    reference: str
    replayed: bool


def form_values(runner: Runner, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The lead fields of a posted form (others, such as a submit button, are left out); ``FormInvalid`` by field."""
    with runner.db.read() as s:
        offered = set(intake.lead_fields(s)) - set(CHOSEN_BY_KEY)
    errors = {f: f"field {f!r}: set by the form's key, not by the form" for f in CHOSEN_BY_KEY if f in raw}
    values = {k: v for k, v in raw.items() if k in offered and v not in (None, "")}
    if "phone" not in values and "email" not in values:
        errors["phone"] = "field 'phone': a phone number or an e-mail address is required"
    if errors:
        raise FormInvalid(errors)
    return values


def check_client_key(value: str | None) -> str | None:
    """The client key as given (None: the post is not idempotent); ``FormInvalid`` when it cannot be one."""
    if value is None or value == "":
        return None
    if len(value) > CLIENT_KEY_MAX or not value.isascii() or not value.isprintable():
        raise FormInvalid({"idempotency_key": f"field 'idempotency_key': 1 to {CLIENT_KEY_MAX} printable ASCII"})
    return value


def body_hash(values: Mapping[str, Any]) -> str:
    """A hash of the lead fields (in any order), to tell the same post from another one."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def submit(runner: Runner, key: KeyUse, values: Mapping[str, Any], client_key: str | None = None) -> Outcome:
    """Make the lead of a posted form once per client key (see the module's notes); 201, or 200 on a replay."""
    digest = body_hash(values)
    reference, replay = _claim(runner, key.id, client_key or f"once:{uuid.uuid4().hex}", digest)
    if replay is not None:
        return replay
    try:
        lead = intake.create_lead(runner, {**values, "source": key.source}, required=False)
    except intake.DuplicateCustomer as known:
        _finish(runner, reference, "known", known.customer_id, _note(key, values))
    except BaseException:
        _release(runner, reference)
        raise
    else:
        _finish(runner, reference, "created", lead.customer_id)
    return Outcome(201, reference, False)


def _claim(runner: Runner, key_id: int, client_key: str, digest: str) -> tuple[str, Outcome | None]:
    """(the post's reference, None) when this post is to make the lead; else the first post's answer."""
    mine = uuid.uuid4().hex
    now = runner.now()
    with runner.db.unit() as s:
        insert = (postgresql if s.get_bind().dialect.name == "postgresql" else sqlite).insert
        # NOTE: on PostgreSQL a concurrent claim of the same key waits here for the other to commit
        s.execute(
            insert(LeadPost)
            .values(id=mine, key_id=key_id, client_key=client_key, body_hash=digest, created_at=now)
            .on_conflict_do_nothing()
        )
        row = s.execute(
            select(LeadPost.id, LeadPost.body_hash, LeadPost.outcome, LeadPost.created_at).where(
                LeadPost.key_id == key_id, LeadPost.client_key == client_key
            )
        ).one()
        if row.id == mine:
            return mine, None
        if row.body_hash != digest:
            raise KeyReused("field 'idempotency_key': used already for a different form; send a new key")
        if row.outcome is not None:
            return row.id, Outcome(200, row.id, True)
        if row.created_at > now - STALE or not _take_over(s, row.id, row.created_at, now):
            raise InProgress("the first post with this idempotency key is still being made; retry")
        return row.id, None


def _take_over(s: Any, reference: str, then: Any, now: Any) -> bool:
    """Take an abandoned claim (compare-and-set on its time, so one taker wins)."""
    done = s.execute(
        update(LeadPost)
        .where(LeadPost.id == reference, LeadPost.created_at == then, LeadPost.outcome.is_(None))
        .values(created_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)


def _finish(runner: Runner, reference: str, outcome: str, customer_id: str, note: str | None = None) -> None:
    with runner.db.unit() as s:
        if note is not None:
            crm.add_note(s, customer_id, note, now=runner.now(), kind=NOTE_KIND)
        s.execute(
            update(LeadPost)
            .where(LeadPost.id == reference)
            .values(outcome=outcome, customer_id=customer_id)
            .execution_options(synchronize_session=False)
        )


def _release(runner: Runner, reference: str) -> None:
    """Give a failed post's claim back: nothing was made, so the client may post again."""
    with runner.db.unit() as s:
        s.execute(delete(LeadPost).where(LeadPost.id == reference, LeadPost.outcome.is_(None)))


def _note(key: KeyUse, values: Mapping[str, Any]) -> str:
    """The note a known customer's timeline gets when they fill in a form again."""
    sent = "; ".join(f"{k}: {v}" for k, v in values.items())
    return f"Khách hàng gửi lại biểu mẫu web (nguồn {key.source}, khóa {key.label}): {sent}"
