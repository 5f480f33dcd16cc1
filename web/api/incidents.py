"""Incidents (admin): list and retry them (the virtual clock is ``web.api.clock``)."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user

from runner.errors import NotFound
from runner.queries import tasklists as inbox
from web.api.blueprint import bp
from web.api.inputs import MAX_ID, query
from web.api.shapes import incident
from web.auth import roles_required
from web.extensions import get_runner

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
