"""Instances and messages: start, list and read instances; deliver a message by name and business key."""

from __future__ import annotations

from flask import jsonify

from runner.errors import Invalid
from runner.queries import tasklists as inbox
from web import permissions
from web.api.blueprint import bp
from web.api.errors import BadRequest
from web.api.inputs import body, json_object, page_limit, query, text
from web.api.shapes import instance, instance_summary, version_numbers
from web.auth import roles_required
from web.extensions import get_runner

STATES = ("running", "completed")


@bp.post("/instances")
@roles_required()
def create_instance():
    """Start the latest version of a process for a customer: 201 with the instance."""
    sent = body()
    instance_id = get_runner().start_instance(
        text(sent, "process_key", required=True),
        text(sent, "business_key"),
        json_object(sent, "data"),
        person=permissions.person(),
    )
    return jsonify(instance(instance_id)), 201


@bp.get("/instances")
@roles_required()
def list_instances():
    """One page of instances, newest first, by process key, business key and state; ``next_cursor`` pages on."""
    try:
        page = inbox.instance_page(
            get_runner(),
            person=permissions.person(),
            process_key=query("process_key"),
            business_key=query("business_key"),
            status=query("state", STATES),
            limit=page_limit(),
            cursor=query("cursor"),
        )
    except Invalid as exc:  # NOTE: limit or cursor, named in the message: a 400 like every query filter
        raise BadRequest(str(exc)) from exc
    versions = version_numbers()
    return jsonify(instances=[instance_summary(r, versions) for r in page.rows], next_cursor=page.next_cursor)


@bp.get("/instances/<instance_id>")
@roles_required()
def get_instance(instance_id: str):
    """One instance: process key, version, state, active element ids, data and history."""
    permissions.require_instance(instance_id)
    return jsonify(instance(instance_id))


@bp.post("/messages")
@roles_required()
def send_message():
    """Deliver a message by name and business key: 200 with the instances reached or started, 404 if none."""
    sent = body()
    name = text(sent, "name", required=True)
    runner = get_runner()
    ids = runner.correlate(name, text(sent, "business_key"), json_object(sent, "data"), person=permissions.person())
    started = _was_started(ids[0], name)
    out = []
    for instance_id in ids:
        row = inbox.instance(runner, instance_id)
        out.append(
            {
                "id": instance_id,
                "process_key": row["process_key"],
                "business_key": row["business_key"],
                "started": started,
            }
        )
    return jsonify(instances=out)


def _was_started(instance_id: str, message: str) -> bool:
    """True when the message started the instance (``correlate`` either reaches or starts, never both)."""
    steps = inbox.history(get_runner(), instance_id=instance_id, events=["instance.started", "message.correlated"])
    last = steps[-1] if steps else None
    return bool(
        last and last["event"] == "instance.started" and (last["details"] or {}).get("trigger") == ["message", message]
    )
