"""The API's JSON answers: instances, tasks, form fields and incidents as the OpenAPI document describes them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from runner.queries import tasklists as inbox
from web.extensions import get_runner

INCIDENT_KEYS = (
    "id",
    "kind",
    "element_id",
    "error",
    "tries",
    "state",
    "instance_id",
    "business_key",
    "process_key",
    "created_at",
    "resolved_at",
    "resolved_by",
)
FIELD_KEYS = ("id", "label", "type", "default", "required", "readonly", "min", "max", "minlength", "maxlength")


def iso(value: Any) -> Any:
    """A date or datetime as ISO 8601 text; anything else as it is."""
    return value.isoformat() if isinstance(value, (datetime, date)) else value


def version_numbers() -> dict[int, int]:
    """Version row id -> version number."""
    return inbox.version_numbers(get_runner())


def instance_summary(row: dict[str, Any], versions: dict[int, int]) -> dict[str, Any]:
    """An instance row as the document's ``InstanceSummary`` (``versions`` from ``version_numbers``)."""
    return {
        "id": row["id"],
        "process_key": row["process_key"],
        "version": versions.get(row["version_id"], 0),
        "business_key": row["business_key"],
        "state": row["status"],
        "stages": list(row["stages"] or []),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "ended_at": iso(row["ended_at"]),
    }


def incident(row: dict[str, Any]) -> dict[str, Any]:
    """An incident row (with its instance's keys) as the document's ``Incident``."""
    return {k: iso(row.get(k)) for k in INCIDENT_KEYS}


def instance(instance_id: str) -> dict[str, Any]:
    """One instance as the document's ``Instance``: its summary, active elements, data, history and incidents."""
    runner = get_runner()
    row = inbox.instance(runner, instance_id)
    incidents = [
        incident({**i, "business_key": row["business_key"], "process_key": row["process_key"]})
        for i in inbox.incidents(runner, state=None, instance_id=instance_id)
    ]
    return {
        **instance_summary(row, version_numbers()),
        "active_elements": inbox.active_elements(runner, instance_id),
        "waiting_messages": list((row["waits"] or {}).get("messages", [])),
        "data": row["data"] or {},
        "history": _history(instance_id),
        "incidents": incidents,
    }


def _history(instance_id: str) -> list[dict[str, Any]]:
    """The instance's history, oldest first."""
    return [
        {
            "id": h["id"],
            "at": iso(h["at"]),
            "event": h["event"],
            "element_id": h["element_id"],
            "actor": h["actor"],
            "details": h["details"] or {},
        }
        for h in inbox.history(get_runner(), instance_id=instance_id)
    ]


def task(row: dict[str, Any]) -> dict[str, Any]:
    """A task row (with its orphan flag) as the document's ``Task``."""
    return {
        "id": row["id"],
        "name": row["name"] or "",
        "element_id": row["element_id"],
        "instance_id": row["instance_id"],
        "business_key": row["business_key"],
        "process_key": row["process_key"],
        "stage": row["stage"],
        "state": row["state"],
        "assignee": row["assignee"],
        "candidate_groups": list(row["candidate_groups"] or []),
        "candidate_users": list(row["candidate_users"] or []),
        "due": iso(row["due_at"]),
        "follow_up": iso(row["follow_up_at"]),
        "created_at": iso(row["created_at"]),
        "form": [_field(f) for f in (row["form"] or {}).get("fields", [])],
        "orphan": bool(row.get("orphan")),
    }


def _field(field: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: field.get(k) for k in FIELD_KEYS},
        "options": list(field.get("options") or []),
        "properties": dict(field.get("properties") or {}),
    }
