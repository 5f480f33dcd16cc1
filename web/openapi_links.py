"""Operation ids and OpenAPI links of the REST API: which answer feeds which next call.

Kept apart from ``web.openapi`` (the paths and schemas) so that the two can change on their
own. A link says, for example, that the ``id`` in the 201 of ``startInstance`` is the
``instance_id`` of ``getInstance``; clients can follow them, and schemathesis' stateful
tests chain calls along them (tests/hostile/test_api_fuzz.py).
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
    ("/api/customers/{business_key}", "get"): "getCustomer",
    ("/api/openapi.json", "get"): "getDocument",
}


def _body(pointer: str) -> str:
    return f"$response.body#{pointer}"


def _to(operation: str, description: str, *, body: dict[str, str] | None = None, **parameters: str) -> dict[str, Any]:
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
        "GetInstance": _to("getInstance", "the instance in full", instance_id=f"{prefix}/id"),
        "ListCustomerTasks": _to("listTasks", "the customer's open tasks", business_key=f"{prefix}/business_key"),
        "GetCustomer": _to("getCustomer", "the customer of the instance", business_key=f"{prefix}/business_key"),
    }


# (operationId, status) -> link name -> link
LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("deploy", "201"): {
        "StartDeployed": _to(
            "startInstance", "start the process deployed", body={"process_key": "/versions/0/process_key"}
        ),
        "ListProcessDefinitions": _to("listProcessDefinitions", "the versions now deployed"),
    },
    ("listProcessDefinitions", "200"): {
        "StartProcess": _to(
            "startInstance", "start a deployed process", body={"process_key": "/process_definitions/0/key"}
        ),
        "ListProcessInstances": _to(
            "listInstances", "the process' instances", process_key="/process_definitions/0/key"
        ),
    },
    ("startInstance", "201"): {
        **_instance_links(""),
        "SendAwaitedMessage": _to(
            "sendMessage",
            "deliver the message the instance waits for",
            body={"name": "/waiting_messages/0", "business_key": "/business_key"},
        ),
    },
    ("listInstances", "200"): _instance_links("/instances/0"),
    ("getInstance", "200"): {
        **_instance_links(""),
        "SendAwaitedMessage": _to(
            "sendMessage",
            "deliver the message the instance waits for",
            body={"name": "/waiting_messages/0", "business_key": "/business_key"},
        ),
        "RetryIncident": _to("retryIncident", "retry the instance's incident", incident_id="/incidents/0/id"),
    },
    ("listTasks", "200"): {
        "ClaimTask": _to("claimTask", "claim the first task", task_id="/tasks/0/id"),
        "CompleteTask": _to("completeTask", "complete the first task", task_id="/tasks/0/id"),
        "GetTaskInstance": _to("getInstance", "the task's instance", instance_id="/tasks/0/instance_id"),
    },
    ("claimTask", "200"): {
        "CompleteTask": _to("completeTask", "complete the task claimed", task_id="/id"),
        "GetTaskInstance": _to("getInstance", "the task's instance", instance_id="/instance_id"),
    },
    ("completeTask", "200"): {
        **_instance_links("/instance"),
        "CompleteAgain": _to("completeTask", "a second completion (409)", task_id="/task/id"),
    },
    ("sendMessage", "200"): _instance_links("/instances/0"),
    ("listIncidents", "200"): {
        "RetryIncident": _to("retryIncident", "retry the newest incident", incident_id="/incidents/0/id"),
        "GetIncidentInstance": _to("getInstance", "the incident's instance", instance_id="/incidents/0/instance_id"),
    },
    ("retryIncident", "200"): {
        "GetIncidentInstance": _to("getInstance", "the incident's instance", instance_id="/incident/instance_id"),
        "RetryAgain": _to("retryIncident", "a second retry (409)", incident_id="/incident/id"),
        "AdvanceClock": _to("advanceClock", "let the retried job run"),
    },
    ("advanceClock", "200"): {
        "ListIncidents": _to("listIncidents", "incidents raised on the way"),
        "ListTasks": _to("listTasks", "tasks that timers opened on the way"),
    },
    ("getCustomer", "200"): {
        "GetCustomerInstance": _to("getInstance", "the customer's newest instance", instance_id="/instances/0/id"),
        "ListCustomerTasks": _to("listTasks", "the customer's open tasks", business_key="/customer/id"),
        "ListCustomerInstances": _to("listInstances", "the customer's instances", business_key="/customer/id"),
    },
}


def add_links(paths: dict[str, Any]) -> None:
    """Give each operation of ``paths`` its operationId, and its answers their links."""
    for path, item in paths.items():
        for method, operation in item.items():
            if (path, method) in OPERATION_IDS:  # a new operation without an id fails tests, not the document
                operation["operationId"] = OPERATION_IDS[(path, method)]
    by_id = {op["operationId"]: op for item in paths.values() for op in item.values()}
    for (operation_id, status), links in LINKS.items():
        by_id[operation_id]["responses"][status]["links"] = links
