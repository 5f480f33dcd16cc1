"""Incidents and the virtual clock (admin): list and retry incidents, move the clock forward."""

from __future__ import annotations

from datetime import timedelta

from flask import jsonify
from flask_login import current_user

from runner.errors import Conflict, Invalid, NotFound
from runner.queries import tasklists as inbox
from web.api.blueprint import bp
from web.api.inputs import MAX_ID, body, query
from web.api.shapes import incident, iso
from web.auth import roles_required
from web.extensions import get_runner
from web.openapi import MAX_ADVANCE

INCIDENT_STATES = {"open": "open", "resolved": "resolved", "all": None}


@bp.get("/incidents")
@roles_required("admin")
def list_incidents():
    """Incidents, newest first: ``state`` open (default), resolved or all."""
    state = query("state", tuple(INCIDENT_STATES)) or "open"
    return jsonify(
        incidents=[incident(i) for i in inbox.incidents_with_instances(get_runner(), state=INCIDENT_STATES[state])]
    )


@bp.post("/incidents/<int:incident_id>/retry")
@roles_required("admin")
def retry_incident(incident_id: int):
    """Try an incident's job, timer or message again now: 404 unknown, 409 already resolved."""
    if incident_id > MAX_ID:
        raise NotFound(f"incident {incident_id} does not exist")
    runner = get_runner()
    runner.retry_incident(incident_id, actor=current_user.username)
    [row] = [i for i in inbox.incidents_with_instances(runner, state=None) if i["id"] == incident_id]
    return jsonify(incident=incident(row))


@bp.post("/clock/advance")
@roles_required("admin")
def advance_clock():
    """Move the virtual clock ``{"seconds": N}`` forward; everything due on the way fires."""
    seconds = body().get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_ADVANCE:
        raise Invalid(f"'seconds': a whole number from 1 to {MAX_ADVANCE}")
    runner = get_runner()
    if runner.settings.clock != "virtual":
        raise Conflict("the clock can only be moved with RUNNER_CLOCK=virtual")
    previous, before = runner.now(), inbox.last_history_id(runner)
    now = runner.advance_clock(timedelta(seconds=seconds))
    events = len(inbox.history_after(runner, before, limit=100_000))
    return jsonify(now=iso(now), previous=iso(previous), events=events)
