"""The OpenAPI 3 document of the REST API (served at /api/openapi.json).

Built in code so that it sits next to the views it describes (``web.api``); the tests
validate every response the API gives against it, and schemathesis fuzzes the API from it.
"""

from __future__ import annotations

from typing import Any

from web.openapi_links import add_links

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _object(properties: dict[str, Any], required: tuple[str, ...] | None = None, **extra: Any) -> dict[str, Any]:
    """An object schema; every property is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        **extra,
    }


def _list_of(key: str, item: str) -> dict[str, Any]:
    return _object({key: {"type": "array", "items": _ref(item)}})


STRING = {"type": "string"}
TEXT = {"type": "string", "minLength": 1, "maxLength": 200}
FILTER = {"type": "string", "maxLength": 200}
WHEN = {"type": "string", "format": "date-time"}
ANY_OBJECT = {"type": "object", "additionalProperties": True}
STRINGS = {"type": "array", "items": STRING}
FLAG = {"type": "string", "enum": ["true", "false"]}

SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": STRING, "detail": STRING}),
    "FormErrors": _object(
        {
            "error": STRING,
            "detail": STRING,
            "errors": {"type": "object", "additionalProperties": STRING, "description": "field id -> message"},
        },
        required=("error", "detail"),
    ),
    "DeploymentErrors": _object(
        {"error": STRING, "detail": STRING, "errors": {"type": "array", "items": _ref("DeploymentProblem")}}
    ),
    "DeploymentProblem": _object({"file": STRING, "element": STRING, "name": STRING, "message": STRING}),
    "Deployed": _object(
        {
            "process_key": STRING,
            "version": {"type": "integer"},
            "file": STRING,
            "created": {"type": "boolean", "description": "false when the same content was already the latest version"},
            "warnings": {
                "type": "array",
                "items": _ref("DeploymentProblem"),
                "description": "deployed anyway: user tasks nobody but an admin would see",
            },
        }
    ),
    "Deployment": _object({"versions": {"type": "array", "items": _ref("Deployed")}}),
    "VersionInfo": _object(
        {
            "version": {"type": "integer"},
            "name": STRING,
            "file": STRING,
            "deployed_at": WHEN,
            "deployed_by": STRING,
            "instances": _object(
                {"running": {"type": "integer"}, "completed": {"type": "integer"}, "total": {"type": "integer"}}
            ),
        }
    ),
    "ProcessDefinition": _object(
        {
            "key": STRING,
            "name": STRING,
            "kind": {"type": "string", "enum": ["bpmn", "dmn"]},
            "latest_version": {"type": "integer"},
            "versions": {"type": "array", "items": _ref("VersionInfo")},
        }
    ),
    "ProcessDefinitions": _list_of("process_definitions", "ProcessDefinition"),
    "InstanceSummary": _object(
        {
            "id": STRING,
            "process_key": STRING,
            "version": {"type": "integer"},
            "business_key": _nullable(STRING),
            "state": {"type": "string", "enum": ["running", "completed"]},
            "stages": STRINGS,
            "created_at": WHEN,
            "updated_at": WHEN,
            "ended_at": _nullable(WHEN),
        }
    ),
    "Instances": _list_of("instances", "InstanceSummary"),
    "HistoryEvent": _object(
        {
            "id": {"type": "integer"},
            "at": WHEN,
            "event": STRING,
            "element_id": _nullable(STRING),
            "actor": _nullable(STRING),
            "details": ANY_OBJECT,
        }
    ),
    "Instance": {
        "allOf": [
            _ref("InstanceSummary"),
            _object(
                {
                    "active_elements": {**STRINGS, "description": "element ids of open tasks, handler jobs and timers"},
                    "waiting_messages": STRINGS,
                    "data": ANY_OBJECT,
                    "history": {"type": "array", "items": _ref("HistoryEvent")},
                    "incidents": {"type": "array", "items": _ref("Incident")},
                }
            ),
        ]
    },
    "FormField": _object(
        {
            "id": STRING,
            "label": STRING,
            "type": {"type": "string", "enum": ["string", "long", "boolean", "date", "enum"]},
            "default": _nullable(STRING),
            "required": {"type": "boolean"},
            "readonly": {"type": "boolean"},
            "min": {"nullable": True, "description": "number, or ISO date for date fields"},
            "max": {"nullable": True, "description": "number, or ISO date for date fields"},
            "minlength": _nullable({"type": "integer"}),
            "maxlength": _nullable({"type": "integer"}),
            "options": {"type": "array", "items": _object({"id": STRING, "name": STRING})},
            "properties": {"type": "object", "additionalProperties": STRING},
        }
    ),
    "Task": _object(
        {
            "id": STRING,
            "name": STRING,
            "element_id": STRING,
            "instance_id": STRING,
            "business_key": _nullable(STRING),
            "process_key": STRING,
            "stage": _nullable(STRING),
            "state": {"type": "string", "enum": ["open", "completed", "cancelled"]},
            "assignee": _nullable(STRING),
            "candidate_groups": STRINGS,
            "candidate_users": STRINGS,
            "due": _nullable(WHEN),
            "follow_up": _nullable(WHEN),
            "created_at": WHEN,
            "form": {"type": "array", "items": _ref("FormField")},
            "orphan": {
                "type": "boolean",
                "description": "no active user may work on it (assignee unknown, or no "
                "candidate group or user anyone holds): only admins see it",
            },
        }
    ),
    "Tasks": _list_of("tasks", "Task"),
    "TaskDone": _object({"task": _ref("Task"), "instance": _ref("InstanceSummary")}),
    "Reached": _object(
        {"id": STRING, "process_key": STRING, "business_key": _nullable(STRING), "started": {"type": "boolean"}}
    ),
    "MessageResult": _object({"instances": {"type": "array", "items": _ref("Reached")}}),
    "Incident": _object(
        {
            "id": {"type": "integer"},
            "kind": STRING,
            "element_id": STRING,
            "error": STRING,
            "tries": {"type": "integer"},
            "state": {"type": "string", "enum": ["open", "resolved"]},
            "instance_id": _nullable(STRING),
            "business_key": _nullable(STRING),
            "process_key": _nullable(STRING),
            "created_at": WHEN,
            "resolved_at": _nullable(WHEN),
            "resolved_by": _nullable(STRING),
        }
    ),
    "Incidents": _list_of("incidents", "Incident"),
    "IncidentResult": _object({"incident": _ref("Incident")}),
    "Clock": _object(
        {"now": WHEN, "previous": WHEN, "events": {"type": "integer", "description": "history events on the way"}}
    ),
    "TimelineItem": _object(
        {
            "at": WHEN,
            "kind": {"type": "string", "enum": ["note", "message", "task", "timer", "incident", "stage", "instance"]},
            "title": STRING,
            "text": _nullable(STRING),
            "actor": _nullable(STRING),
            "actor_name": _nullable(STRING),
            "state": _nullable(STRING),
            "process_key": _nullable(STRING),
            "instance_id": _nullable(STRING),
            "element_id": _nullable(STRING),
            "fields": {
                "type": "array",
                "items": _object({"label": STRING, "value": {"nullable": True}}),
                "description": "what a person entered (completed tasks), or message facts",
            },
        }
    ),
    "Customer": _object(
        {
            "customer": {
                "type": "object",
                "additionalProperties": True,
                "required": ["id", "name"],
                "properties": {"id": STRING, "name": STRING, "tags": STRINGS},
            },
            "stages": {"type": "object", "additionalProperties": STRING, "description": "pipeline -> stage"},
            "timeline": {"type": "array", "items": _ref("TimelineItem")},
            "instances": {"type": "array", "items": _ref("InstanceSummary")},
        }
    ),
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "malformed request",
        401: "no or bad bearer token",
        403: "the user's roles do not allow it",
        404: "not found",
        409: "conflict with the current state",
        422: "the request was understood but rejected",
        413: "the body is larger than RUNNER_MAX_CONTENT_LENGTH",
        414: "the address is too long",
    }
    # NOTE: the web edge (web/edge.py) answers 414 to any request and 413 to any body before a view runs
    out = {str(code): _json("Error", texts[code]) for code in (401, 403, 414, *codes)}
    out["default"] = _json("Error", "any other error")
    return out


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description if schema else description + " (empty: no filter)",
        "schema": schema or FILTER,
    }


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or TEXT}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _op(summary: str, ok: tuple[str, str, str], *errors: int, tag: str, **extra: Any) -> dict[str, Any]:
    code, schema, description = ok
    errors += (413,) if "requestBody" in extra else ()
    return {
        "summary": summary,
        "tags": [tag],
        "responses": {code: _json(schema, description), **_errors(*errors)},
        **extra,
    }


ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
DATA = {"type": "object", "additionalProperties": True, "nullable": True, "description": "null: no data"}


def _paths() -> dict[str, Any]:
    return {
        "/api/deployments": {
            "post": _op(
                "Deploy .bpmn/.dmn files (admin)",
                ("201", "Deployment", "the versions created"),
                400,
                tag="admin",
                requestBody={
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                                },
                            },
                            "encoding": {"file": {"contentType": "application/octet-stream"}},
                        }
                    },
                },
                responses_extra={
                    "200": ("Deployment", "nothing new: every file was already the latest version"),
                    "422": ("DeploymentErrors", "validation problems, per element; nothing stored"),
                },
            )
        },
        "/api/process-definitions": {
            "get": _op(
                "Deployed processes and decisions with their versions and instance counts",
                ("200", "ProcessDefinitions", "by key"),
                tag="processes",
            )
        },
        "/api/instances": {
            "get": _op(
                "Instances, newest first",
                ("200", "Instances", "the instances"),
                400,
                tag="instances",
                parameters=[
                    _query("process_key", "process key"),
                    _query("business_key", "customer id"),
                    _query("state", "running or completed", {"type": "string", "enum": ["running", "completed"]}),
                ],
            ),
            "post": _op(
                "Start the latest version of a process",
                ("201", "Instance", "the instance started"),
                400,
                404,
                422,
                tag="instances",
                requestBody=_body(
                    _object(
                        {"process_key": TEXT, "business_key": _nullable(TEXT), "data": DATA}, required=("process_key",)
                    )
                ),
            ),
        },
        "/api/instances/{instance_id}": {
            "get": _op(
                "One instance: version, state, active elements, data, history",
                ("200", "Instance", "the instance"),
                404,
                tag="instances",
                parameters=[_path("instance_id")],
            )
        },
        "/api/tasks": {
            "get": _op(
                "Open user tasks the caller may work on (candidate groups or assignee); every open task for "
                "admins and team leaders",
                ("200", "Tasks", "due first"),
                400,
                tag="tasks",
                parameters=[
                    _query("candidate_group", "only tasks offered to this group"),
                    _query("assignee", "only tasks assigned to this user"),
                    _query("business_key", "only this customer's tasks"),
                    _query("process_key", "only tasks of this process"),
                    _query("unassigned", "true: only tasks nobody has claimed", FLAG),
                    _query("orphan", "true: only tasks no active user may work on", FLAG),
                ],
            )
        },
        "/api/tasks/{task_id}/claim": {
            "post": _op(
                "Claim an open task",
                ("200", "Task", "the task, now the caller's"),
                404,
                409,
                tag="tasks",
                parameters=[_path("task_id")],
            )
        },
        "/api/tasks/{task_id}/complete": {
            "post": _op(
                "Complete a task with form data",
                ("200", "TaskDone", "completed"),
                400,
                404,
                409,
                tag="tasks",
                parameters=[_path("task_id")],
                requestBody=_body(_object({"data": DATA}, required=()), required=False),
                responses_extra={"422": ("FormErrors", "per-field errors; nothing stored")},
            )
        },
        "/api/messages": {
            "post": _op(
                "Deliver a message to the customer's waiting instances, or start processes with it",
                ("200", "MessageResult", "the instances reached or started"),
                400,
                404,
                422,
                tag="instances",
                requestBody=_body(
                    _object({"name": TEXT, "business_key": _nullable(TEXT), "data": DATA}, required=("name",))
                ),
            )
        },
        "/api/incidents": {
            "get": _op(
                "Incidents (admin)",
                ("200", "Incidents", "newest first"),
                400,
                tag="admin",
                parameters=[
                    _query(
                        "state",
                        "open (default), resolved or all",
                        {"type": "string", "enum": ["open", "resolved", "all"]},
                    )
                ],
            )
        },
        "/api/incidents/{incident_id}/retry": {
            "post": _op(
                "Retry an incident's job, timer or message now (admin)",
                ("200", "IncidentResult", "resolved"),
                404,
                409,
                tag="admin",
                parameters=[_path("incident_id", ID)],
            )
        },
        "/api/clock/advance": {
            "post": _op(
                "Move the virtual clock forward; everything due fires (admin, RUNNER_CLOCK=virtual)",
                ("200", "Clock", "the new time"),
                400,
                409,
                422,
                tag="admin",
                requestBody=_body(_object({"seconds": {"type": "integer", "minimum": 1, "maximum": MAX_ADVANCE}})),
            )
        },
        "/api/customers/{business_key}": {
            "get": _op(
                "A customer: profile, current stages, timeline, instances",
                ("200", "Customer", "the customer"),
                404,
                tag="customers",
                parameters=[_path("business_key")],
            )
        },
    }


MAX_ADVANCE = 366 * 24 * 3600  # NOTE: a year at most per call: cycles fire once per period on the way


def document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of /api."""
    paths = _paths()
    for item in paths.values():
        for operation in item.values():
            for code, (schema, description) in operation.pop("responses_extra", {}).items():
                operation["responses"][code] = _json(schema, description)
    paths["/api/openapi.json"] = {
        "get": {
            "summary": "This document",
            "tags": ["meta"],
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.0", "content": {JSON: {"schema": ANY_OBJECT}}}},
        }
    }
    add_links(paths)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "EasyEdu BPMN runner API",
            "version": "1",
            "description": "Deploy processes, start instances, work tasks, send messages. Every call but "
            "this document needs `Authorization: Bearer <token>` (`runner users token NAME`). "
            'Errors are JSON `{"error", "detail"}`.',
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
