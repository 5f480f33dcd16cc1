"""Operation ids and OpenAPI links of the REST API: which answer feeds which next call.

Kept apart from ``web.openapi`` (the paths and schemas) so that the two can change on their
own. A link says, for example, that the ``id`` in the 201 of ``startInstance`` is the
``instance_id`` of ``getInstance``; clients can follow them, and schemathesis' stateful
tests chain calls along them (tests/hostile/test_api_fuzz.py).

Only the generic operations are here. An extension brings its operations with their ids and its
links (``web.crm.api``: ``getCustomer``, and a link to it from every answer in ``INSTANCE_ANSWERS``).
"""

from __future__ import annotations

from typing import Any

# (path, method) -> operationId
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("/api/deployments", "post"): "deploy",
    ("/api/process-definitions", "get"): "listProcessDefinitions",
    ("/api/instances", "get"): "listInstances",
    ("/api/instances", "post"): "startInstance",
    ("/api/instances/{instance_id}", "get"): "getInstance",
    ("/api/tasks", "get"): "listTasks",
    ("/api/tasks/{task_id}/claim", "post"): "claimTask",
    ("/api/tasks/{task_id}/complete", "post"): "completeTask",
    ("/api/messages", "post"): "sendMessage",
    ("/api/incidents", "get"): "listIncidents",
    ("/api/incidents/{incident_id}/retry", "post"): "retryIncident",
    ("/api/clock/advance", "post"): "advanceClock",
    ("/api/clock/runs/{run_id}", "get"): "getClockRun",
    ("/api/openapi.json", "get"): "getDocument",
}


def _body(pointer: str) -> str:
    return f"$response.body#{pointer}"


def link_to(
    operation: str, description: str, *, body: dict[str, str] | None = None, **parameters: str
) -> dict[str, Any]:
    """A link to ``operation``: each parameter (and body field) is a JSON pointer into this answer."""
    link: dict[str, Any] = {"operationId": operation, "description": description}
    if parameters:
        link["parameters"] = {name: _body(pointer) for name, pointer in parameters.items()}
    if body:
        link["requestBody"] = {name: _body(pointer) for name, pointer in body.items()}
    return link


def _instance_links(prefix: str) -> dict[str, dict[str, Any]]:
    """Links from an instance (summary) found at ``prefix`` in an answer."""
    return {
        "GetInstance": link_to("getInstance", "the instance in full", instance_id=f"{prefix}/id"),
        "ListCustomerTasks": link_to("listTasks", "the customer's open tasks", business_key=f"{prefix}/business_key"),
    }


Links = dict[tuple[str, str], dict[str, dict[str, Any]]]  # (operationId, status) -> link name -> link

# (operationId, status) -> where an instance (summary) sits in that answer: an extension links from there
INSTANCE_ANSWERS: dict[tuple[str, str], str] = {
    ("startInstance", "201"): "",
    ("listInstances", "200"): "/instances/0",
    ("getInstance", "200"): "",
    ("completeTask", "200"): "/instance",
    ("sendMessage", "200"): "/instances/0",
}

LINKS: Links = {
    ("deploy", "201"): {
        "StartDeployed": link_to(
            "startInstance", "start the process deployed", body={"process_key": "/versions/0/process_key"}
        ),
        "ListProcessDefinitions": link_to("listProcessDefinitions", "the versions now deployed"),
    },
    ("listProcessDefinitions", "200"): {
        "StartProcess": link_to(
            "startInstance", "start a deployed process", body={"process_key": "/process_definitions/0/key"}
        ),
        "ListProcessInstances": link_to(
            "listInstances", "the process' instances", process_key="/process_definitions/0/key"
        ),
    },
    ("startInstance", "201"): {
        "SendAwaitedMessage": link_to(
            "sendMessage",
            "deliver the message the instance waits for",
            body={"name": "/waiting_messages/0", "business_key": "/business_key"},
        ),
    },
    ("getInstance", "200"): {
        "SendAwaitedMessage": link_to(
            "sendMessage",
            "deliver the message the instance waits for",
            body={"name": "/waiting_messages/0", "business_key": "/business_key"},
        ),
        "RetryIncident": link_to("retryIncident", "retry the instance's incident", incident_id="/incidents/0/id"),
    },
    ("listTasks", "200"): {
        "ClaimTask": link_to("claimTask", "claim the first task", task_id="/tasks/0/id"),
        "CompleteTask": link_to("completeTask", "complete the first task", task_id="/tasks/0/id"),
        "GetTaskInstance": link_to("getInstance", "the task's instance", instance_id="/tasks/0/instance_id"),
    },
    ("claimTask", "200"): {
        "CompleteTask": link_to("completeTask", "complete the task claimed", task_id="/id"),
        "GetTaskInstance": link_to("getInstance", "the task's instance", instance_id="/instance_id"),
    },
    ("completeTask", "200"): {
        "CompleteAgain": link_to("completeTask", "a second completion (409)", task_id="/task/id"),
    },
    ("listIncidents", "200"): {
        "RetryIncident": link_to("retryIncident", "retry the newest incident", incident_id="/incidents/0/id"),
        "GetIncidentInstance": link_to(
            "getInstance", "the incident's instance", instance_id="/incidents/0/instance_id"
        ),
    },
    ("retryIncident", "200"): {
        "GetIncidentInstance": link_to("getInstance", "the incident's instance", instance_id="/incident/instance_id"),
        "RetryAgain": link_to("retryIncident", "a second retry (409)", incident_id="/incident/id"),
        "AdvanceClock": link_to("advanceClock", "let the retried job run"),
    },
    ("advanceClock", "202"): {
        "GetClockRun": link_to("getClockRun", "follow the run", run_id="/id"),
    },
    ("getClockRun", "200"): {
        "ListIncidents": link_to("listIncidents", "incidents raised on the way"),
        "ListTasks": link_to("listTasks", "tasks that timers opened on the way"),
    },
}

for _answer, _prefix in INSTANCE_ANSWERS.items():
    LINKS[_answer] = {**_instance_links(_prefix), **LINKS.get(_answer, {})}


def add_links(paths: dict[str, Any], *more: Links) -> None:
    """Give each operation of ``paths`` its operationId (an extension's operations bring their own), and its
    answers their links: ``LINKS``, then each of ``more`` (an extension's, such as ``web.crm.api``'s)."""
    for path, item in paths.items():
        for method, operation in item.items():
            if (path, method) in OPERATION_IDS:  # a new operation without an id fails tests, not the document
                operation["operationId"] = OPERATION_IDS[(path, method)]
    by_id = {op["operationId"]: op for item in paths.values() for op in item.values()}
    for links in (LINKS, *more):
        for (operation_id, status), named in links.items():
            response = by_id[operation_id]["responses"][status]
            taken = set(named) & set(response.get("links", {}))
            if taken:
                raise ValueError(f"{operation_id} {status}: links {sorted(taken)} are defined twice")
            response["links"] = {**response.get("links", {}), **named}
