"""The OpenAPI 3 document of the REST API (served at /api/openapi.json).

Built in code so that it sits next to the views it describes (``web.api``); the tests
validate every response the API gives against it, and schemathesis fuzzes the API from it.

This module describes the generic operations only. An extension that adds operations under /api
describes them in a ``Part`` (``web.crm.api.OPENAPI``: the customer endpoint), built with the helpers
here (``operation``, ``path_parameter``, ``object_of``, ``ref``, ``nullable``); ``create_app`` serves
``document(*parts)``, the generic document with each part's paths, schemas and links added.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from web.openapi_links import Links, add_links

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def object_of(properties: dict[str, Any], required: tuple[str, ...] | None = None, **extra: Any) -> dict[str, Any]:
    """An object schema; every property is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        **extra,
    }


def _list_of(key: str, item: str) -> dict[str, Any]:
    return object_of({key: {"type": "array", "items": ref(item)}})


STRING = {"type": "string"}
TEXT = {"type": "string", "minLength": 1, "maxLength": 200}
FILTER = {"type": "string", "maxLength": 200}
WHEN = {"type": "string", "format": "date-time"}
ANY_OBJECT = {"type": "object", "additionalProperties": True}
STRINGS = {"type": "array", "items": STRING}
FLAG = {"type": "string", "enum": ["true", "false"]}

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
    "ProcessDefinitions": _list_of("process_definitions", "ProcessDefinition"),
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
    "Instances": _list_of("instances", "InstanceSummary"),
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
            "type": {"type": "string", "enum": ["string", "long", "boolean", "date", "enum"]},
            "default": nullable(STRING),
            "required": {"type": "boolean"},
            "readonly": {"type": "boolean"},
            "min": {"nullable": True, "description": "number, or ISO date for date fields"},
            "max": {"nullable": True, "description": "number, or ISO date for date fields"},
            "minlength": nullable({"type": "integer"}),
            "maxlength": nullable({"type": "integer"}),
            "options": {"type": "array", "items": object_of({"id": STRING, "name": STRING})},
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
    "Tasks": _list_of("tasks", "Task"),
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
    "Incidents": _list_of("incidents", "Incident"),
    "IncidentResult": object_of({"incident": ref("Incident")}),
    "Clock": object_of(
        {"now": WHEN, "previous": WHEN, "events": {"type": "integer", "description": "history events on the way"}}
    ),
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref(schema)}}}


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


def path_parameter(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or TEXT}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def operation(summary: str, ok: tuple[str, str, str], *errors: int, tag: str, **extra: Any) -> dict[str, Any]:
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
            "post": operation(
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
            "get": operation(
                "Deployed processes and decisions with their versions and instance counts",
                ("200", "ProcessDefinitions", "by key"),
                tag="processes",
            )
        },
        "/api/instances": {
            "get": operation(
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
            "post": operation(
                "Start the latest version of a process",
                ("201", "Instance", "the instance started"),
                400,
                404,
                422,
                tag="instances",
                requestBody=_body(
                    object_of(
                        {"process_key": TEXT, "business_key": nullable(TEXT), "data": DATA}, required=("process_key",)
                    )
                ),
            ),
        },
        "/api/instances/{instance_id}": {
            "get": operation(
                "One instance: version, state, active elements, data, history",
                ("200", "Instance", "the instance"),
                404,
                tag="instances",
                parameters=[path_parameter("instance_id")],
            )
        },
        "/api/tasks": {
            "get": operation(
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
            "post": operation(
                "Claim an open task",
                ("200", "Task", "the task, now the caller's"),
                404,
                409,
                tag="tasks",
                parameters=[path_parameter("task_id")],
            )
        },
        "/api/tasks/{task_id}/complete": {
            "post": operation(
                "Complete a task with form data",
                ("200", "TaskDone", "completed"),
                400,
                404,
                409,
                tag="tasks",
                parameters=[path_parameter("task_id")],
                requestBody=_body(object_of({"data": DATA}, required=()), required=False),
                responses_extra={"422": ("FormErrors", "per-field errors; nothing stored")},
            )
        },
        "/api/messages": {
            "post": operation(
                "Deliver a message to the customer's waiting instances, or start processes with it",
                ("200", "MessageResult", "the instances reached or started"),
                400,
                404,
                422,
                tag="instances",
                requestBody=_body(
                    object_of({"name": TEXT, "business_key": nullable(TEXT), "data": DATA}, required=("name",))
                ),
            )
        },
        "/api/incidents": {
            "get": operation(
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
            "post": operation(
                "Retry an incident's job, timer or message now (admin)",
                ("200", "IncidentResult", "resolved"),
                404,
                409,
                tag="admin",
                parameters=[path_parameter("incident_id", ID)],
            )
        },
        "/api/clock/advance": {
            "post": operation(
                "Move the virtual clock forward; everything due fires (admin, RUNNER_CLOCK=virtual)",
                ("200", "Clock", "the new time"),
                400,
                409,
                422,
                tag="admin",
                requestBody=_body(object_of({"seconds": {"type": "integer", "minimum": 1, "maximum": MAX_ADVANCE}})),
            )
        },
    }


MAX_ADVANCE = 366 * 24 * 3600  # NOTE: a year at most per call: cycles fire once per period on the way


@dataclass(frozen=True)
class Part:
    """An extension's share of the document: its paths (each operation with its operationId), schemas and links."""

    paths: dict[str, Any]
    schemas: dict[str, Any] = field(default_factory=dict)
    links: Links = field(default_factory=dict)


def document(*parts: Part) -> dict[str, Any]:
    """The OpenAPI 3.0 document of /api: the generic operations, plus each part's."""
    paths, schemas = _paths(), dict(SCHEMAS)
    for part in parts:
        for kind, mine, theirs in (("path", paths, part.paths), ("schema", schemas, part.schemas)):
            if set(mine) & set(theirs):
                raise ValueError(f"{kind}s {sorted(set(mine) & set(theirs))} are described twice")
            mine.update(copy.deepcopy(theirs))  # NOTE: links are added below, in place
    for item in paths.values():
        for op in item.values():
            for code, (schema, description) in op.pop("responses_extra", {}).items():
                op["responses"][code] = _json(schema, description)
    paths["/api/openapi.json"] = {
        "get": {
            "summary": "This document",
            "tags": ["meta"],
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.0", "content": {JSON: {"schema": ANY_OBJECT}}}},
        }
    }
    add_links(paths, *(part.links for part in parts))
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
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
