"""Schemathesis fuzzes the REST API from its own OpenAPI document, in-process (WSGI).

Every operation gets generated valid and invalid requests with an admin's bearer token, over
a database with a deployed process, a customer, instances and a task, so that list endpoints
answer with real rows. The checks: no 5xx, documented status codes and content types,
responses that match their schemas, and invalid input rejected with a 4xx.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from runner import crm, inbox, users
from runner.runtime import Runner
from tests.webapp import app, auth_clock, staff  # noqa: F401 - fixtures
from web.openapi import document

EXAMPLES = 15
LEAD = Path(__file__).parent / "bpmn" / "web" / "lead.bpmn"
# NOTE: valid-looking data may still be refused for what it means (a random file is not a
# diagram: 422), so 400 and 422 count as accepted answers to schema-valid requests too.
CONFIG = {
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "404", "409",
                                                                  "422"]}},
    "phases": {"stateful": {"enabled": False}},
}


@pytest.fixture
def api_schema(app: Flask, runner: Runner, staff):  # noqa: F811 - fixtures
    """The document loaded from the running app, with an admin's token on every request."""
    runner.deploy([LEAD])
    with runner.db.unit() as s:
        crm.add_customer(s, "KH1", "Trung tâm Sao Mai", phone="0912345678", owner="sales1", now=runner.now())
    instance_id = runner.start_instance("web_lead", "KH1", {"source": "Facebook"})
    [task] = inbox.tasks(runner, business_key="KH1")
    users.set_roles(runner, "admin1", ["admin", "sales"])  # so that the task endpoints go all the way
    token = users.issue_token(runner, "admin1", label="schemathesis")
    config = schemathesis.Config.from_dict({**CONFIG, "headers": {"Authorization": f"Bearer {token}"}})
    loaded = schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=config)
    return loaded, {"instance_id": instance_id, "task_id": task["id"], "business_key": "KH1"}


# NOTE: one test per operation, listed from the document itself (no database needed for that);
# schemathesis' lazy pytest fixture does not work with this pytest, so hypothesis drives each one.
OPERATIONS = [(path, method.upper()) for path, item in document()["paths"].items() for method in item]
# Operations without parameters or a body have no invalid input to generate.
NO_INPUT = {(path, method.upper()) for path, item in document()["paths"].items() for method, op in item.items()
            if not op.get("parameters") and not op.get("requestBody") and "{" not in path}


@pytest.mark.parametrize("path,method", OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_api_conforms_to_its_document(api_schema, path: str, method: str) -> None:
    loaded, known = api_schema
    operation = loaded[path][method]
    statuses: list[int] = []
    # generated values, invalid ones, and (for paths with an id) the ids of real rows
    runs = [(GenerationMode.POSITIVE, None)]
    if (path, method) not in NO_INPUT:
        runs.append((GenerationMode.NEGATIVE, None))
    real = {name: value for name, value in known.items() if "{" + name + "}" in path}
    if real:
        runs.append((GenerationMode.POSITIVE, real))
    for mode, path_parameters in runs:
        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def check(case) -> None:
            statuses.append(case.call_and_validate().status_code)

        check()
    # the token works: the calls reached the views, not only the sign-in check
    assert statuses and set(statuses) - {401}, statuses
    if real:
        assert set(statuses) & {200, 201, 409, 422}, f"the real ids were never found: {statuses}"
