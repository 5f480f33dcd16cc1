"""Text the database or the pages cannot hold is refused where it comes in, naming the field.

Every row runs on SQLite and on PostgreSQL (where a NUL in any string used to be a 500).
A refused row stores nothing: the row counts of every table stay as they were, and the
customer's page still shows (a stored lone surrogate used to break it for every user).

The rows are data: add a hostile text to ``HOSTILE`` (refused everywhere) or ``ID_ONLY``
(refused in ids and keys), an operation to ``RUNNER_OPERATIONS``, a route to ``WEB_ROUTES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from runtime_helpers import fixture, row_counts
from sqlalchemy import func, select

from runner.crm import customers as crm
from runner.crm import views as customer_views
from runner.crm.models import Note, Staff
from runner.errors import Invalid
from runner.queries import tasklists as inbox
from runner.registry import installed
from runner.service import accounts as users
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from tests.webapp import PASSWORD, WebClient, add_user
from web import create_app

HOSTILE_BPMN = Path(__file__).parent.parent / "bpmn" / "hostile"

# (row id, text, what the refusal says): refused in every text field
HOSTILE = [
    ("nul", "KH\x001", "NUL"),
    ("lone_surrogate", "KH\ud8001", "lone surrogate"),
    ("lone_low_surrogate", "\udfffKH", "lone surrogate"),
]
# (row id, text, what the refusal says): refused in ids, business keys and names only
ID_ONLY = [
    ("escape", "KH\x1b[31m1", "control character"),
    ("newline", "KH\n1", "control character"),
    ("delete", "KH\x7f1", "control character"),
    ("too_long", "K" * 5000, "at most"),
]


@dataclass(frozen=True)
class Operation:
    """A public runner operation that takes caller text; ``field`` is what the refusal names."""

    name: str
    field: str
    call: Callable[[Runner, dict[str, str], str], Any]
    key: bool = True  # an id, key or name: control characters and over-long text are refused too


RUNNER_OPERATIONS = [
    Operation("start.process_key", "process_key", lambda r, c, v: r.start_instance(v, "KH1")),
    Operation("start.business_key", "business_key", lambda r, c, v: r.start_instance("order", v)),
    Operation("start.data", "start data.note", lambda r, c, v: r.start_instance("order", "KH1", {"note": v}), False),
    Operation("start.data_key", "start data key", lambda r, c, v: r.start_instance("order", "KH1", {v: 1})),
    Operation("correlate.message", "message_name", lambda r, c, v: r.correlate(v, "KH1")),
    Operation("correlate.business_key", "business_key", lambda r, c, v: r.correlate("payment_received", v)),
    Operation(
        "correlate.data",
        "message data.amount",
        lambda r, c, v: r.correlate("payment_received", "KH1", {"amount": v}),
        False,
    ),
    Operation("complete.task_id", "task_id", lambda r, c, v: r.complete_task(v, {})),
    Operation("complete.form_value", "note", lambda r, c, v: r.complete_task(c["task"], {"note": v}), False),
    Operation(
        "complete.passthrough", "comment", lambda r, c, v: r.complete_task(c["bare_task"], {"comment": v}), False
    ),
    Operation("claim.task_id", "task_id", lambda r, c, v: r.claim_task(v, "sales1", ["sales"])),
    Operation("claim.user", "user", lambda r, c, v: r.claim_task(c["task"], v, ["sales"])),
    Operation("reassign.user", "user", lambda r, c, v: r.reassign_task(c["task"], v, "sales1")),
    Operation("migrate.instance_id", "instance_id", lambda r, c, v: r.migrate_instance(v)),
    Operation("note.text", "text", lambda r, c, v: customer_views.add_note(r, "KH1", v, "sales1"), False),
    Operation("user.username", "username", lambda r, c, v: users.create_user(r, v, "Lan", ["sales"])),
    Operation("user.full_name", "full_name", lambda r, c, v: users.create_user(r, "lan", v, ["sales"])),
]

RUNNER_ROWS = [
    pytest.param(op, text, reason, id=f"{op.name}-{row}")
    for op in RUNNER_OPERATIONS
    for row, text, reason in HOSTILE + (ID_ONLY if op.key else [])
]


def _counts(runner: Runner) -> dict[str, int]:
    """Rows in the runner's tables, the notes and the staff."""
    with runner.db.read() as s:
        extra = {t.__tablename__: s.scalar(select(func.count()).select_from(t)) for t in (Note, Staff)}
    return {**row_counts(runner), **extra}


def _url(request: pytest.FixtureRequest, tmp: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'edge.db'}"
        db.upgrade(url)
        yield url
        return
    from conftest import pg_schema

    with pg_schema(request.getfixturevalue("pg_base_url")) as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """One runner per database for the whole module (a refusal stores nothing), with a customer and tasks."""
    for url in _url(request, tmp_path_factory.mktemp("edge")):
        settings = Settings.from_env({}, database_url=url, clock="virtual")
        runner = Runner(settings, registry=installed())
        runner.deploy([fixture("modeler_order.bpmn"), fixture("messages.bpmn"), fixture("parallel_tasks.bpmn")])
        add_user(runner, "sales1", ["sales", "team_leader", "admin"])
        with runner.db.unit() as s:
            crm.add_customer(s, "KH1", "Trung tâm Sao Mai", phone="0912345678", owner="sales1", now=runner.now())
        instance = runner.start_instance("order", "KH1")
        bare = runner.start_instance("setup", "KH1")
        tasks = {t["element_id"]: t["id"] for t in inbox.tasks(runner, business_key="KH1")}
        yield {
            "runner": runner,
            "task": tasks["Activity_review"],
            "bare_task": tasks["accounts"],
            "instance": instance,
            "bare_instance": bare,
        }
        runner.db.engine.dispose()


@pytest.mark.parametrize(("op", "text", "reason"), RUNNER_ROWS)
def test_the_runner_refuses_unstorable_text_naming_the_field(
    world: dict[str, Any], op: Operation, text: str, reason: str
) -> None:
    runner = world["runner"]
    before = _counts(runner)
    with pytest.raises(Invalid) as caught:
        op.call(runner, world, text)
    assert op.field in str(caught.value) and reason in str(caught.value), str(caught.value)
    assert _counts(runner) == before


# --- the web edge: 400 naming the parameter, before any query ----------------------------------------


@pytest.fixture(scope="module")
def web(world: dict[str, Any]) -> dict[str, Any]:
    """The app over the module's runner: an API token and a signed-in browser session."""
    runner = world["runner"]
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "test-secret", "RUNNER": runner, "RUNNER_SETTINGS": runner.settings}
    )
    app.test_client_class = WebClient
    browser = app.test_client()
    assert browser.login("sales1", PASSWORD).status_code == 302
    return {"api": app.test_client(), "browser": browser, "token": users.issue_token(runner, "sales1", label="t")}


# (route id, field the refusal names, how to send ``v``: (client, method, path, keyword arguments))
WEB_ROUTES: list[tuple[str, str, Callable[[dict[str, Any], str], tuple[str, str, str, dict[str, Any]]]]] = [
    ("api.instance_path", "instance_id", lambda w, v: ("api", "GET", f"/api/instances/{quote(v)}", {})),
    ("api.instances_query", "business_key", lambda w, v: ("api", "GET", f"/api/instances?business_key={quote(v)}", {})),
    ("api.tasks_query", "candidate_group", lambda w, v: ("api", "GET", f"/api/tasks?candidate_group={quote(v)}", {})),
    ("api.customer_path", "business_key", lambda w, v: ("api", "GET", f"/api/customers/{quote(v)}", {})),
    ("api.claim_path", "task_id", lambda w, v: ("api", "POST", f"/api/tasks/{quote(v)}/claim", {})),
    ("web.search_query", "q", lambda w, v: ("browser", "GET", f"/customers/?q={quote(v)}", {})),
    ("web.inbox_filter", "customer", lambda w, v: ("browser", "GET", f"/inbox/?customer={quote(v)}", {})),
    ("web.task_path", "task_id", lambda w, v: ("browser", "GET", f"/inbox/tasks/{quote(v)}", {})),
    ("web.customer_path", "customer_id", lambda w, v: ("browser", "GET", f"/customers/{quote(v)}", {})),
    ("web.board_owner", "owner", lambda w, v: ("browser", "GET", f"/boards/sales?owner={quote(v)}", {})),
    ("web.note_form", "text", lambda w, v: ("browser", "POST", "/customers/KH1/notes", {"data": {"text": v}})),
    (
        "web.reassign_form",
        "to",
        lambda w, v: ("browser", "POST", f"/inbox/tasks/{w['task']}/reassign", {"data": {"to": v}}),
    ),
    (
        "web.admin_user_form",
        "full_name",
        lambda w, v: (
            "browser",
            "POST",
            "/admin/users",
            {"data": {"username": "lan", "full_name": v, "roles": "sales", "password": PASSWORD}},
        ),
    ),
]
# Lone surrogates cannot travel in a URL or a form (they are not UTF-8); JSON escapes carry them.
JSON_ROUTES: list[tuple[str, str, Callable[[dict[str, Any], str], tuple[str, dict[str, Any]]]]] = [
    (
        "api.start_business_key",
        "business_key",
        lambda w, v: ("/api/instances", {"process_key": "order", "business_key": v}),
    ),
    ("api.start_process_key", "process_key", lambda w, v: ("/api/instances", {"process_key": v})),
    ("api.start_data", "data.note", lambda w, v: ("/api/instances", {"process_key": "order", "data": {"note": v}})),
    ("api.message_name", "name", lambda w, v: ("/api/messages", {"name": v, "business_key": "KH1"})),
    (
        "api.message_data",
        "data.amount",
        lambda w, v: ("/api/messages", {"name": "payment_received", "business_key": "KH1", "data": {"amount": v}}),
    ),
    ("api.complete_data", "data.note", lambda w, v: (f"/api/tasks/{w['task']}/complete", {"data": {"note": v}})),
]
# (row id, text, what the refusal says, only in path parameters): a query or form value may
# hold control characters (the runner refuses them where they are ids), never a NUL.
URL_TEXTS = [
    ("nul", "KH\x001", "NUL", False),
    ("escape", "KH\x1b1", "control character", True),
    ("too_long", "K" * 300, "at most 200", True),
]
URL_ROWS = [
    pytest.param(field, build, text, reason, id=f"{route}-{row}")
    for route, field, build in WEB_ROUTES
    for row, text, reason, path_only in URL_TEXTS
    if route.endswith("_path") or not path_only
]


def _send(web: dict[str, Any], client: str, method: str, path: str, kwargs: dict[str, Any]):
    headers = {"Authorization": f"Bearer {web['token']}"} if client == "api" else {}
    return (
        web[client].open(path, method=method, headers=headers, **kwargs)
        if method == "GET" or client == "api"
        else web[client].post(path, **kwargs)
    )


@pytest.mark.parametrize(("field", "build", "text", "reason"), URL_ROWS)
def test_hostile_text_in_a_path_query_or_form_is_400_naming_it(
    world, web, field: str, build, text: str, reason: str
) -> None:
    before = _counts(world["runner"])
    response = _send(web, *build(world, text))
    assert response.status_code == 400, (response.status_code, response.get_data(as_text=True)[:300])
    body = response.get_data(as_text=True)
    assert f"{field}: " in body and reason in body, body[-800:]
    assert _counts(world["runner"]) == before


@pytest.mark.parametrize(("route", "field", "build"), JSON_ROUTES, ids=[r[0] for r in JSON_ROUTES])
@pytest.mark.parametrize(("row", "text", "reason"), HOSTILE, ids=[r[0] for r in HOSTILE])
def test_hostile_text_in_a_json_body_is_400_naming_the_field(
    world, web, route: str, field: str, build, row: str, text: str, reason: str
) -> None:
    path, body = build(world, text)
    before = _counts(world["runner"])
    response = web["api"].post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        csrf=False,
        headers={"Authorization": f"Bearer {web['token']}"},
    )
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["detail"] and reason in response.get_json()["detail"]
    assert _counts(world["runner"]) == before


def test_a_refused_lone_surrogate_leaves_the_customer_page_working(world, web) -> None:
    """The finding: task data "x\\ud800y" was stored, then the customer's page was a 500 for everyone."""
    with pytest.raises(Invalid, match="note.*lone surrogate"):
        world["runner"].complete_task(world["task"], {"note": "x\ud800y"}, actor="sales1")
    for path in ("/customers/KH1", f"/inbox/tasks/{world['task']}", "/customers/?q=KH1", "/boards/sales"):
        assert web["browser"].get(path).status_code == 200, path
    api = web["api"].get("/api/customers/KH1", headers={"Authorization": f"Bearer {web['token']}"})
    assert api.status_code == 200 and "\\ud800" not in api.get_data(as_text=True)


# --- numbers, nesting and size ---------------------------------------------------------------------------

# (row id, raw JSON of the "data" member, what the refusal says)
BODY_ROWS = [
    ("nan", "NaN", "NaN"),
    ("infinity", "Infinity", "Infinity"),
    ("minus_infinity", "-Infinity", "-Infinity"),
    ("overflowing_number", "1e999", "not a finite number"),
    ("nested_40", "[" * 40 + "]" * 40, "nests deeper than 32"),
    ("nested_100000", "[" * 100_000 + "]" * 100_000, "nests deeper than 32"),
]


@pytest.mark.parametrize(("row", "raw", "reason"), BODY_ROWS, ids=[r[0] for r in BODY_ROWS])
def test_non_finite_numbers_and_deep_nesting_in_a_body_are_400(world, web, row: str, raw: str, reason: str) -> None:
    before = _counts(world["runner"])
    body = f'{{"process_key": "order", "business_key": "KH1", "data": {{"x": {raw}}}}}'
    response = web["api"].post(
        "/api/instances",
        data=body,
        content_type="application/json",
        csrf=False,
        headers={"Authorization": f"Bearer {web['token']}"},
    )
    assert response.status_code == 400 and reason in response.get_json()["detail"], response.get_json()
    assert _counts(world["runner"]) == before


# (row id, data given to the runner, the field named)
DATA_ROWS = [
    ("nan", {"ratio": float("nan")}, "ratio"),
    ("infinity", {"ratio": float("inf")}, "ratio"),
    ("nested_list", {"deep": json.loads("[" * 40 + "]" * 40)}, "deep"),
    ("nested_object", {"deep": json.loads('{"a":' * 40 + "1" + "}" * 40)}, "deep.a.a"),
    ("control_in_key", {"a\x01b": 1}, "a\\x01b"),
]


@pytest.mark.parametrize(("row", "data", "field"), DATA_ROWS, ids=[r[0] for r in DATA_ROWS])
def test_the_runner_refuses_data_json_cannot_hold(world, row: str, data: dict[str, Any], field: str) -> None:
    runner = world["runner"]
    before = _counts(runner)
    for call in (
        lambda: runner.start_instance("order", "KH1", data),
        lambda: runner.correlate("payment_received", "KH1", data),
        lambda: runner.complete_task(world["bare_task"], data),
    ):
        with pytest.raises(Invalid) as caught:
            call()
        assert field in str(caught.value), str(caught.value)
    assert _counts(runner) == before


# (row id, the text the script turns into a float, refused?)
SCRIPT_ROWS = [
    ("nan", "nan", True),
    ("infinity", "inf", True),
    ("minus_infinity", "-inf", True),
    ("finite", "1.5", False),
]


@pytest.mark.parametrize(("row", "kind", "refused"), SCRIPT_ROWS, ids=[r[0] for r in SCRIPT_ROWS])
def test_a_script_that_leaves_nan_is_an_incident_naming_its_element(
    any_runner: Runner, row: str, kind: str, refused: bool
) -> None:
    any_runner.deploy([HOSTILE_BPMN / "nan_script.bpmn"])
    instance_id = any_runner.start_instance("nan_script", "KH1", {"kind": kind})
    any_runner.advance_clock(__import__("datetime").timedelta(hours=2))
    incidents = inbox.incidents(any_runner, state="open")
    data = inbox.instance(any_runner, instance_id)["data"]
    if not refused:
        assert incidents == [] and data["ratio"] == 1.5
        return
    [incident] = incidents
    assert incident["element_id"] == "compute_ratio"
    assert "Compute ratio" in incident["error"] and "ratio" in incident["error"]
    assert "not a finite number" in incident["error"]
    assert "ratio" not in data and inbox.tasks(any_runner, business_key="KH1") == []


def test_a_body_over_the_size_limit_is_a_json_413_under_api(runner: Runner) -> None:
    settings = Settings.from_env({"RUNNER_MAX_CONTENT_LENGTH": "1000"}, database_url=runner.settings.database_url)
    assert settings.max_content_length == 1000
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "RUNNER": runner, "RUNNER_SETTINGS": settings})
    client = app.test_client()
    response = client.post(
        "/api/instances", data=json.dumps({"process_key": "x" * 2000}), content_type="application/json"
    )
    assert response.status_code == 413 and response.is_json and response.get_json()["error"]
    small = client.post("/api/instances", data=json.dumps({"process_key": "x"}), content_type="application/json")
    assert small.status_code == 401  # under the limit the request goes on (to the sign-in check)
    page = client.post("/login", data={"username": "u" * 2000})
    assert page.status_code == 413 and not page.is_json


# --- numbers no row can have: PostgreSQL's integer cannot even compare them ----------------------------

HUGE = "9" * 20
# (client, method, path): each is a 4xx, never a 500
HUGE_NUMBER_ROUTES = [
    ("browser", "POST", f"/admin/incidents/{HUGE}/retry"),
    ("browser", "POST", f"/admin/outbox/{HUGE}/resolve"),
    ("browser", "POST", f"/admin/users/sales1/tokens/{HUGE}/revoke"),
    ("browser", "GET", f"/admin/processes/order/versions/{HUGE}/migration"),
    ("browser", "GET", f"/admin/processes/order/versions/1/migration?to={HUGE}"),
    ("browser", "POST", f"/admin/processes/order/versions/{HUGE}/migration"),
    ("browser", "GET", f"/processes/order/versions/{HUGE}/diagram"),
    ("api", "POST", f"/api/incidents/{HUGE}/retry"),
]


@pytest.mark.parametrize(("client", "method", "path"), HUGE_NUMBER_ROUTES)
def test_a_number_no_row_can_have_is_a_4xx(web, client: str, method: str, path: str) -> None:
    kwargs = {"data": {"to": HUGE, "ids": "x", "action": "resend"}} if client == "browser" and method == "POST" else {}
    response = _send(web, client, method, path, kwargs)
    assert 400 <= response.status_code < 500, (path, response.status_code)


def test_the_admin_page_ignores_a_since_no_row_can_have(web) -> None:
    assert web["browser"].get(f"/admin/?since={HUGE}").status_code == 200


# (client, path, multipart field) of the uploads; (row id, file name, what the refusal says)
UPLOADS = [("browser", "/admin/deploy", "files"), ("api", "/api/deployments", "file")]
FILE_NAMES = [
    ("nul", "order\x00.bpmn", "NUL"),
    ("escape", "order\x1b.bpmn", "control character"),
    ("too_long", "o" * 600 + ".bpmn", "at most 500"),
]


@pytest.mark.parametrize(("client", "path", "field"), UPLOADS)
@pytest.mark.parametrize(("row", "name", "reason"), FILE_NAMES, ids=[r[0] for r in FILE_NAMES])
def test_an_uploaded_file_name_the_database_cannot_hold_is_400(
    world, web, client: str, path: str, field: str, row: str, name: str, reason: str
) -> None:
    import io

    before = _counts(world["runner"])
    data = {field: (io.BytesIO(fixture("versions_v1.bpmn").read_bytes()), name)}
    response = _send(web, client, "POST", path, {"data": data, "content_type": "multipart/form-data"})
    assert response.status_code == 400, response.get_data(as_text=True)[-500:]
    assert f"{field} (file name)" in response.get_data(as_text=True) and reason in response.get_data(as_text=True)
    assert _counts(world["runner"]) == before


def test_an_over_long_instance_id_to_migrate_is_refused_without_repeating_it(world, web) -> None:
    response = web["browser"].post(
        "/admin/processes/order/versions/1/migration",
        data={"to": "1", "ids": "i" * 5000},
        headers={"Accept": "application/json"},
    )
    [failure] = response.get_json()["failed"]
    assert failure["error"] == "instance_id: at most 36 characters, got 5000"
