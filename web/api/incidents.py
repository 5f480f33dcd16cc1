"""Incidents (admin): list and retry them (the virtual clock is ``web.api.clock``)."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user

from runner.errors import Invalid, NotFound
from runner.queries import tasklists as inbox
from web.api.blueprint import bp
from web.api.errors import BadRequest
from web.api.inputs import MAX_ID, page_limit, query
from web.api.shapes import incident
from web.auth import roles_required
from web.extensions import get_runner

INCIDENT_STATES = {"open": "open", "resolved": "resolved", "all": None}


@bp.get("/incidents")
@roles_required("admin")
def list_incidents():
    """One page of incidents, newest first: ``state`` open (default), resolved or all; ``next_cursor`` pages on."""
    state = query("state", tuple(INCIDENT_STATES)) or "open"
    try:
        page = inbox.incident_page(
            get_runner(), state=INCIDENT_STATES[state], limit=page_limit(), cursor=query("cursor")
        )
    except Invalid as exc:  # NOTE: limit or cursor, named in the message: a 400 like every query filter
        raise BadRequest(str(exc)) from exc
    return jsonify(incidents=[incident(i) for i in page.rows], next_cursor=page.next_cursor)


@bp.post("/incidents/<int:incident_id>/retry")
@roles_required("admin")
def retry_incident(incident_id: int):
    """Try an incident's job, timer or message again now: 404 unknown, 409 already resolved."""
    if incident_id > MAX_ID:
        raise NotFound(f"incident {incident_id} does not exist")
    runner = get_runner()
    runner.retry_incident(incident_id, actor=current_user.username)
    return jsonify(incident=incident(inbox.incident(runner, incident_id)))
