"""The OpenAPI document covers the API, and its links lead where they say.

Every route under /api is an operation of the document and the other way round; every
operation has an id; every link reads a property that its answer declares and fills a
parameter or body field that its target takes. The fuzzing (test_api_fuzz.py) relies on all three.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from runner.crm.models import ROLES
from runner.queries import tasklists as inbox
from runner.service import accounts as users
from runner.service.runtime import Runner
from tests.webapp import add_user
from web import openapi_document

BPMN = Path(__file__).parent.parent / "bpmn"


def _label(path: str, method: str) -> str:
    return f"{method.upper()} {path}"


def _routes(app: Flask) -> set[str]:
    """Every operation the app serves under /api, as ``METHOD /path/{name}``."""
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            out |= {_label(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return out


def test_the_document_lists_every_api_route_and_nothing_else(app: Flask) -> None:
    documented = {_label(path, method) for path, item in openapi_document()["paths"].items() for method in item}
    assert _routes(app) == documented


def test_every_operation_has_an_id_and_every_link_a_known_target() -> None:
    operations = [op for item in openapi_document()["paths"].values() for op in item.values()]
    ids = [op.get("operationId") for op in operations]
    assert None not in ids and len(set(ids)) == len(ids), ids
    targets = {
        link["operationId"]
        for op in operations
        for answer in op["responses"].values()
        for link in answer.get("links", {}).values()
    }
    assert targets <= set(ids)


def _expand(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its ``$ref`` followed and its ``allOf`` merged."""
    if "$ref" in schema:
        return _expand(openapi_document()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]])
    if "allOf" in schema:
        return {"properties": {k: v for part in schema["allOf"] for k, v in _expand(part)["properties"].items()}}
    return schema


def _reaches(schema: dict[str, Any] | None, pointer: str) -> bool:
    """Whether a JSON pointer into an answer reaches a property that its schema declares."""
    for segment in pointer.strip("/").split("/"):
        if schema is None:
            return False
        schema = _expand(schema)
        schema = schema.get("items") if segment.isdigit() else schema.get("properties", {}).get(segment)
    return schema is not None


def _links() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(source operationId, status, link name, link) for every link in the document."""
    return [
        (op["operationId"], status, name, link)
        for item in openapi_document()["paths"].values()
        for op in item.values()
        for status, answer in op["responses"].items()
        for name, link in answer.get("links", {}).items()
    ]


@pytest.mark.parametrize("source,status,name,link", _links(), ids=[f"{s}-{n}" for s, _, n, _ in _links()])
def test_each_link_reads_what_its_answer_has_and_fills_what_its_target_takes(
    source: str, status: str, name: str, link: dict[str, Any]
) -> None:
    operations = {op["operationId"]: op for item in openapi_document()["paths"].values() for op in item.values()}
    answer = operations[source]["responses"][status]["content"]["application/json"]["schema"]
    target = operations[link["operationId"]]
    body = _expand(target.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}))
    assert set(link.get("parameters", {})) <= {p["name"] for p in target.get("parameters", [])}
    assert set(link.get("requestBody", {})) <= set(body.get("properties", {}))
    for expression in [*link.get("parameters", {}).values(), *link.get("requestBody", {}).values()]:
        kind, _, pointer = expression.partition("#")
        assert kind == "$response.body" and _reaches(answer, pointer), expression


def test_every_operation_documents_what_the_edge_refuses_before_it() -> None:
    """web/edge.py answers 414 to an over-long address and 413 to an over-large body (found by fuzzing)."""
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == []:
                continue  # the document itself: nothing to refuse
            expected = {"414", "413"} if "requestBody" in operation else {"414"}
            assert expected <= set(operation["responses"]), f"{method.upper()} {path}"


# Each operation with a ``data`` object, called with ``"data": null``: the API takes it as no data.
NULL_DATA = [
    ("/api/instances", {"process_key": "fuzz_call_back", "business_key": "KH1"}, 201),
    ("/api/messages", {"name": "lead_created", "business_key": "KH9"}, 200),
    ("/api/tasks/{task_id}/complete", {}, 200),
]


@pytest.mark.parametrize("path,body,status", NULL_DATA, ids=[p for p, _, _ in NULL_DATA])
def test_null_data_is_no_data_and_the_document_says_so(
    app: Flask, runner: Runner, path: str, body: dict[str, Any], status: int
) -> None:
    """Fuzzing sent ``"data": null``, which the API accepts and the document refused."""
    add_user(runner, "admin1", ROLES)
    runner.deploy([Path(__file__).parent / "bpmn" / "call_back.bpmn", BPMN / "runtime" / "messages.bpmn"])
    runner.start_instance("fuzz_call_back", "KH2")
    [task] = inbox.tasks(runner)
    token = users.issue_token(runner, "admin1", label="test")
    response = app.test_client().post(
        path.replace("{task_id}", task["id"]), json={**body, "data": None}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == status, response.get_json()
    operation = openapi_document()["paths"][path]["post"]
    data = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]["data"]
    assert data.get("nullable") is True
