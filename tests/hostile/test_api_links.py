"""Each chain of the document's links, walked by hand over the fuzzing world, reaches what it says.

The stateful fuzzing (test_api_fuzz.py) follows links at random; these walks follow the
main chains on purpose, one step per data row, so that every linked operation is shown to
answer 2xx (or the 409 a second try must get) with values read from the answer before it.
Every answer is also checked against the document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis

from runner.registry import Registry
from runner.service.runtime import Runner
from tests.hostile.test_api_fuzz import World, make_world
from web import openapi_document

NEW_DIAGRAM = Path(__file__).parent.parent / "bpmn" / "web" / "followup.bpmn"  # not in the world yet
# A step: (name of its answer, where it comes from, body to add, status). Where it comes
# from is a direct call "METHOD /path", or (an earlier answer, the name of a link of it).
Step = tuple[str, str | tuple[str, str], dict[str, Any] | None, int]
WALKS: dict[str, list[Step]] = {
    "a task claimed and completed": [
        ("started", "POST /api/instances", {"process_key": "fuzz_call_back", "business_key": "KH1"}, 201),
        ("instance", ("started", "GetInstance"), None, 200),
        ("tasks", ("started", "ListCustomerTasks"), None, 200),
        ("claimed", ("tasks", "ClaimTask"), None, 200),
        ("done", ("claimed", "CompleteTask"), {"data": {"note": "gọi lại sau"}}, 200),
        ("again", ("done", "CompleteAgain"), {}, 409),
        ("after", ("done", "GetInstance"), None, 200),
        ("customer", ("instance", "GetCustomer"), None, 200),
        ("theirs", ("customer", "ListCustomerInstances"), None, 200),
        ("newest", ("customer", "GetCustomerInstance"), None, 200),
    ],
    "the message an instance waits for": [
        ("instances", "GET /api/instances", None, 200),
        ("instance", ("instances", "GetInstance"), None, 200),
        ("reached", ("instance", "SendAwaitedMessage"), {"data": {"amount": 500}}, 200),
        ("after", ("reached", "GetInstance"), None, 200),
    ],
    "an incident retried": [
        ("incidents", "GET /api/incidents", None, 200),
        ("retried", ("incidents", "RetryIncident"), None, 200),
        ("again", ("retried", "RetryAgain"), None, 409),
        ("clock", ("retried", "AdvanceClock"), {"seconds": 3600}, 202),
        ("run", ("clock", "GetClockRun"), None, 200),
        ("raised", ("run", "ListIncidents"), None, 200),
        ("instance", ("raised", "GetIncidentInstance"), None, 200),
    ],
    "a deployed process started": [
        ("deployed", "POST /api/deployments", {"file": NEW_DIAGRAM}, 201),
        ("definitions", ("deployed", "ListProcessDefinitions"), None, 200),
        ("theirs", ("definitions", "ListProcessInstances"), None, 200),
        ("started", ("deployed", "StartDeployed"), {"business_key": "KH1"}, 201),
        ("tasks", ("started", "ListCustomerTasks"), None, 200),
    ],
}


def _operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (path, method, operation)."""
    return {
        op["operationId"]: (path, method, op)
        for path, item in openapi_document()["paths"].items()
        for method, op in item.items()
    }


def _read(answer: Any, expression: str) -> Any:
    """What a ``$response.body#/pointer`` expression reads in an answer."""
    for segment in expression.partition("#")[2].strip("/").split("/"):
        answer = answer[int(segment)] if isinstance(answer, list) else answer[segment]
    return answer


def _linked(answer: tuple[str, int, Any], name: str) -> tuple[str, str, dict[str, Any]]:
    """The call a link of an answer leads to: method, address and body."""
    operation_id, status, body = answer
    link = _operations()[operation_id][2]["responses"][str(status)]["links"][name]
    path, method, _ = _operations()[link["operationId"]]
    query = []
    for parameter, expression in link.get("parameters", {}).items():
        value = quote(str(_read(body, expression)), safe="")
        if "{" + parameter + "}" in path:
            path = path.replace("{" + parameter + "}", value)
        else:
            query.append(f"{parameter}={value}")
    url = path + ("?" + "&".join(query) if query else "")
    return method, url, {field: _read(body, e) for field, e in link.get("requestBody", {}).items()}


def _template(method: str, url: str) -> tuple[str, str]:
    """The operationId and document path that an address matches."""
    for operation_id, (path, verb, _) in _operations().items():
        parts, wanted = path.split("/"), url.split("?")[0].split("/")
        if (
            verb == method
            and len(parts) == len(wanted)
            and all(p == w or p.startswith("{") for p, w in zip(parts, wanted, strict=True))
        ):
            return operation_id, path
    raise AssertionError(f"{method} {url} is not in the document")


@pytest.fixture
def world(runner: Runner, registry: Registry) -> World:
    """The fuzzing world of test_api_fuzz on SQLite."""
    return make_world(runner, registry)


@pytest.mark.parametrize("walk", list(WALKS))
def test_each_chain_of_links_reaches_what_it_says(world: World, walk: str) -> None:
    client = world.app.test_client()
    loaded = schemathesis.openapi.from_wsgi("/api/openapi.json", world.app)
    answers: dict[str, tuple[str, int, Any]] = {}
    for name, source, extra, status in WALKS[walk]:
        if isinstance(source, str):
            method, url = source.split(" ")
            method, body = method.lower(), {}
        else:
            method, url, body = _linked(answers[source[0]], source[1])
        body = {**body, **(extra or {})}
        kwargs: dict[str, Any] = {"json": body} if method == "post" else {}
        if "file" in body:
            kwargs = {"data": {"file": (body["file"].open("rb"), body["file"].name)}}
        response = client.open(url, method=method.upper(), headers={"Authorization": f"Bearer {world.token}"}, **kwargs)
        assert response.status_code == status, (name, method, url, response.get_json())
        operation_id, path = _template(method, url)
        loaded[path][method.upper()].validate_response(response)
        answers[name] = (operation_id, status, response.get_json())
