"""The generic API's paths, one function per resource family as in ``web.api`` (operationIds, links: ``document``)."""

from __future__ import annotations

from typing import Any

from web.openapi.builders import DATA, FLAG, ID, TEXT, body, nullable, object_of, operation, path_parameter, query

PAGING = [
    query(
        "limit",
        "rows per page (default 50)",
        {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
    ),
    query(
        "cursor",
        "the next_cursor of the page before (absent: the first page); opaque, good for this list only",
        {"type": "string", "maxLength": 200},
    ),
]
MAX_ADVANCE = 366 * 24 * 3600  # NOTE: a year at most per call: cycles fire once per period on the way


def paths() -> dict[str, Any]:
    """The generic operations by path, in the document's order."""
    return {**_deployments(), **_instances(), **_tasks(), **_messages(), **_admin()}


def _deployments() -> dict[str, Any]:
    """Deploying (admin) and the deployed definitions."""
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
    }


def _instances() -> dict[str, Any]:
    """Starting, listing and reading instances."""
    return {
        "/api/instances": {
            "get": operation(
                "Instances, newest first",
                ("200", "Instances", "one page of instances; next_cursor asks for the next"),
                400,
                tag="instances",
                parameters=[
                    query("process_key", "process key"),
                    query("business_key", "customer id"),
                    query("state", "running or completed", {"type": "string", "enum": ["running", "completed"]}),
                    *PAGING,
                ],
            ),
            "post": operation(
                "Start the latest version of a process",
                ("201", "Instance", "the instance started"),
                400,
                404,
                422,
                tag="instances",
                requestBody=body(
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
    }


def _tasks() -> dict[str, Any]:
    """Listing, claiming and completing tasks."""
    return {
        "/api/tasks": {
            "get": operation(
                "Open user tasks the caller may work on (candidate groups or assignee); every open task for "
                "admins and team leaders",
                ("200", "Tasks", "one page, due first; next_cursor asks for the next"),
                400,
                tag="tasks",
                parameters=[
                    query("candidate_group", "only tasks offered to this group"),
                    query("assignee", "only tasks assigned to this user"),
                    query("business_key", "only this customer's tasks"),
                    query("process_key", "only tasks of this process"),
                    query("unassigned", "true: only tasks nobody has claimed", FLAG),
                    query("orphan", "true: only tasks no active user may work on", FLAG),
                    *PAGING,
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
                requestBody=body(object_of({"data": DATA}, required=()), required=False),
                responses_extra={"422": ("FormErrors", "per-field errors; nothing stored")},
            )
        },
    }


def _messages() -> dict[str, Any]:
    """Delivering a message."""
    return {
        "/api/messages": {
            "post": operation(
                "Deliver a message to the customer's waiting instances, or start processes with it",
                ("200", "MessageResult", "the instances reached or started"),
                400,
                404,
                422,
                tag="instances",
                requestBody=body(
                    object_of({"name": TEXT, "business_key": nullable(TEXT), "data": DATA}, required=("name",))
                ),
            )
        },
    }


def _admin() -> dict[str, Any]:
    """Incidents and the virtual clock (admin)."""
    return {
        "/api/incidents": {
            "get": operation(
                "Incidents (admin)",
                ("200", "Incidents", "one page, newest first; next_cursor asks for the next"),
                400,
                tag="admin",
                parameters=[
                    query(
                        "state",
                        "open (default), resolved or all",
                        {"type": "string", "enum": ["open", "resolved", "all"]},
                    ),
                    *PAGING,
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
            "post": _with_location(
                operation(
                    "Queue a clock run moving the virtual clock forward; everything due on the way fires in the "
                    "background, in time order (admin, RUNNER_CLOCK=virtual). 409 while another run moves the clock, "
                    "or when the clock is no longer at expected_now; a repeated idempotency_key answers the first run",
                    ("202", "ClockRun", "queued: follow the run at Location"),
                    400,
                    409,
                    422,
                    tag="admin",
                    requestBody=body(
                        object_of(
                            {
                                "seconds": {"type": "integer", "minimum": 1, "maximum": MAX_ADVANCE},
                                "idempotency_key": nullable(
                                    {
                                        "type": "string",
                                        "minLength": 1,
                                        "maxLength": 200,
                                        "description": "the same key answers the run it made the first time",
                                    }
                                ),
                                "expected_now": nullable(
                                    {
                                        "type": "string",
                                        "format": "date-time",
                                        "description": "the clock time the caller saw; 409 if the clock moved since",
                                    }
                                ),
                            },
                            required=("seconds",),
                        )
                    ),
                )
            )
        },
        "/api/clock/runs/{run_id}": {
            "get": operation(
                "A clock run: its state, how far the clock got, how many timers and jobs fired (admin)",
                ("200", "ClockRun", "the run"),
                404,
                tag="admin",
                parameters=[path_parameter("run_id", ID)],
            )
        },
    }


def _with_location(op: dict[str, Any]) -> dict[str, Any]:
    """The 202 (and 409) of a clock run say where to follow the run."""
    header = {"Location": {"description": "the run's address", "schema": {"type": "string"}}}
    for code in ("202", "409"):
        op["responses"][code]["headers"] = header
    return op
