"""The schemas of the generic API's answers (``components.schemas``), as ``web.api.shapes`` builds them."""

from __future__ import annotations

from typing import Any

from web.openapi.builders import ANY_OBJECT, STRING, STRINGS, WHEN, list_of, nullable, object_of, ref

NEXT_CURSOR = {**nullable(STRING), "description": "the cursor of the next page; null on the last page"}
LIMIT = "number; ISO date or date-time for date and datetime fields; or 'now' (the runner's clock)"
FILE_TYPE = (
    "'file': a file attached on the task page (a PDF or an image, checked by its first bytes; "
    "properties 'accept' (pdf, image, png, jpeg) and 'max_bytes'). Its value is the stored file's reference "
    "{file, name, type, size, field}; the JSON API cannot upload one"
)

SCHEMAS: dict[str, Any] = {
    "Error": object_of({"error": STRING, "detail": STRING}),
    "FormErrors": object_of(
        {
            "error": STRING,
            "detail": STRING,
            "errors": {"type": "object", "additionalProperties": STRING, "description": "field id -> message"},
        },
        required=("error", "detail"),
    ),
    "DeploymentErrors": object_of(
        {"error": STRING, "detail": STRING, "errors": {"type": "array", "items": ref("DeploymentProblem")}}
    ),
    "DeploymentProblem": object_of({"file": STRING, "element": STRING, "name": STRING, "message": STRING}),
    "Deployed": object_of(
        {
            "process_key": STRING,
            "version": {"type": "integer"},
            "file": STRING,
            "created": {"type": "boolean", "description": "false when the same content was already the latest version"},
            "warnings": {
                "type": "array",
                "items": ref("DeploymentProblem"),
                "description": "deployed anyway: user tasks nobody but an admin would see",
            },
            "people": {
                "type": "array",
                "items": ref("DeploymentProblem"),
                "description": "deployed anyway: staff members a step would fail on (a rep without the phone a "
                "message template prints), naming the step, the person, the field and the template",
            },
        }
    ),
    "Deployment": object_of({"versions": {"type": "array", "items": ref("Deployed")}}),
    "VersionInfo": object_of(
        {
            "version": {"type": "integer"},
            "name": STRING,
            "file": STRING,
            "deployed_at": WHEN,
            "deployed_by": STRING,
            "instances": object_of(
                {"running": {"type": "integer"}, "completed": {"type": "integer"}, "total": {"type": "integer"}}
            ),
        }
    ),
    "ProcessDefinition": object_of(
        {
            "key": STRING,
            "name": STRING,
            "kind": {"type": "string", "enum": ["bpmn", "dmn"]},
            "latest_version": {"type": "integer"},
            "versions": {"type": "array", "items": ref("VersionInfo")},
        }
    ),
    "ProcessDefinitions": list_of("process_definitions", "ProcessDefinition"),
    "InstanceSummary": object_of(
        {
            "id": STRING,
            "process_key": STRING,
            "version": {"type": "integer"},
            "business_key": nullable(STRING),
            "state": {"type": "string", "enum": ["running", "completed"]},
            "stages": STRINGS,
            "created_at": WHEN,
            "updated_at": WHEN,
            "ended_at": nullable(WHEN),
        }
    ),
    "Instances": object_of(
        {"instances": {"type": "array", "items": ref("InstanceSummary")}, "next_cursor": NEXT_CURSOR}
    ),
    "HistoryEvent": object_of(
        {
            "id": {"type": "integer"},
            "at": WHEN,
            "event": STRING,
            "element_id": nullable(STRING),
            "actor": nullable(STRING),
            "details": ANY_OBJECT,
        }
    ),
    "Instance": {
        "allOf": [
            ref("InstanceSummary"),
            object_of(
                {
                    "active_elements": {**STRINGS, "description": "element ids of open tasks, handler jobs and timers"},
                    "waiting_messages": STRINGS,
                    "data": ANY_OBJECT,
                    "history": {"type": "array", "items": ref("HistoryEvent")},
                    "incidents": {"type": "array", "items": ref("Incident")},
                }
            ),
        ]
    },
    "FormField": object_of(
        {
            "id": STRING,
            "label": STRING,
            "type": {
                "type": "string",
                "enum": ["string", "long", "boolean", "date", "datetime", "enum", "file"],
                "description": FILE_TYPE,
            },
            "default": nullable(STRING),
            "required": {"type": "boolean"},
            "readonly": {"type": "boolean"},
            "min": {"nullable": True, "description": LIMIT},
            "max": {"nullable": True, "description": LIMIT},
            "minlength": nullable({"type": "integer"}),
            "maxlength": nullable({"type": "integer"}),
            "options": {
                "type": "array",
                "items": object_of({"id": STRING, "name": STRING}),
                "description": "an enum field's choices; with the property options = list:NAME, the "
                "configured list NAME as it is now",
            },
            "properties": {"type": "object", "additionalProperties": STRING},
        }
    ),
    "Task": object_of(
        {
            "id": STRING,
            "name": STRING,
            "element_id": STRING,
            "instance_id": STRING,
            "business_key": nullable(STRING),
            "process_key": STRING,
            "stage": nullable(STRING),
            "state": {"type": "string", "enum": ["open", "completed", "cancelled"]},
            "assignee": nullable(STRING),
            "candidate_groups": STRINGS,
            "candidate_users": STRINGS,
            "due": nullable(WHEN),
            "follow_up": nullable(WHEN),
            "created_at": WHEN,
            "form": {"type": "array", "items": ref("FormField")},
            "orphan": {
                "type": "boolean",
                "description": "no active user may work on it (assignee unknown, or no "
                "candidate group or user anyone holds): only admins see it",
            },
        }
    ),
    "Tasks": object_of({"tasks": {"type": "array", "items": ref("Task")}, "next_cursor": NEXT_CURSOR}),
    "TaskDone": object_of({"task": ref("Task"), "instance": ref("InstanceSummary")}),
    "Reached": object_of(
        {"id": STRING, "process_key": STRING, "business_key": nullable(STRING), "started": {"type": "boolean"}}
    ),
    "MessageResult": object_of({"instances": {"type": "array", "items": ref("Reached")}}),
    "Incident": object_of(
        {
            "id": {"type": "integer"},
            "kind": STRING,
            "element_id": STRING,
            "error": STRING,
            "tries": {"type": "integer"},
            "state": {"type": "string", "enum": ["open", "resolved"]},
            "instance_id": nullable(STRING),
            "business_key": nullable(STRING),
            "process_key": nullable(STRING),
            "created_at": WHEN,
            "resolved_at": nullable(WHEN),
            "resolved_by": nullable(STRING),
        }
    ),
    "Incidents": object_of({"incidents": {"type": "array", "items": ref("Incident")}, "next_cursor": NEXT_CURSOR}),
    "IncidentResult": object_of({"incident": ref("Incident")}),
    "ClockRun": object_of(
        {
            "id": {"type": "integer"},
            "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "start": WHEN,
            "target": WHEN,
            "reached": WHEN,
            "fired": {"type": "integer", "description": "timers and jobs worked off so far"},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "requested_by": STRING,
            "error": nullable(STRING),
            "created_at": WHEN,
            "started_at": nullable(WHEN),
            "ended_at": nullable(WHEN),
        }
    ),
}
