"""Injection payloads through every text field a user can set, into every page that shows it.

Each payload (a data row of ``PAYLOADS``) goes through each source (a row of ``SOURCES``:
the web forms, the API, the admin pages). The answer is either a refusal (4xx) naming the
field, or the text is stored and every page that shows it is a 200 where it appears only
escaped: no raw ``<``/``"``/``'`` of the payload, no ``javascript:`` link, no evaluated
template (``{{7*7}}`` stays as written), no header made from it, and the JSON answers
carry it as a plain string.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from markupsafe import escape
from runtime_helpers import fixture

from runner.crm import customers as crm
from runner.queries import tasklists as inbox
from runner.registry import installed
from runner.service import accounts as users
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from tests.webapp import PASSWORD, WebClient, add_user
from web import create_app

HOSTILE_BPMN = Path(__file__).parent.parent / "bpmn" / "hostile"

# (row id, payload)
PAYLOADS = [
    ("script_tag", "<script>alert('x')</script>"),
    ("img_onerror", "<img src=x onerror=alert(1)>"),
    ("attribute_double_quote", '" autofocus onfocus="alert(1)'),
    ("attribute_single_quote", "' onmouseover='alert(1)"),
    ("closing_textarea", "</textarea><script>alert(1)</script>"),
    ("javascript_url", "javascript:alert(1)"),
    ("sql_or", "' OR 1=1 --"),
    ("sql_drop", "x'); DROP TABLE customers; --"),
    ("jinja_expression", "{{7*7}}"),
    ("jinja_statement", "{% for x in range(3) %}{{x}}{% endfor %}"),
    ("juel_expression", "${7*7}"),
    ("crlf_header", "a\r\nSet-Cookie: hacked=1"),
    ("nul", "a\x00b"),
    ("lone_surrogate", "x\ud800y"),
    ("rtl_override", "\u202eexe.gnp"),
    ("long_text", "Ð" * 600),
    ("emoji", "👩‍🏫🎓✨"),
    ("vietnamese_combining", "Tru\u031bo\u031b\u0300ng Tie\u0302\u0309u ho\u0323c Nguye\u0302\u0303n Du"),
]


@dataclass
class World:
    """One app over one runner for the module; sources add rows, never remove any."""

    runner: Runner
    browser: WebClient
    api: Any
    token: str
    counter: Iterator[int] = field(default_factory=itertools.count)

    def call(self, method: str, path: str, body: Any = None):
        return self.api.open(
            path,
            method=method,
            headers={"Authorization": f"Bearer {self.token}"},
            data=None if body is None else json.dumps(body),
            content_type="application/json",
        )

    def open_task(self, process_key: str, business_key: str, element_id: str) -> tuple[str, str]:
        instance_id = self.runner.start_instance(process_key, business_key)
        [task] = [
            t
            for t in inbox.tasks(self.runner, business_key=business_key)
            if t["instance_id"] == instance_id and t["element_id"] == element_id
        ]
        return instance_id, task["id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    url = f"sqlite:///{tmp_path_factory.mktemp('injection') / 'runner.db'}"
    db.upgrade(url)
    runner = Runner(Settings.from_env({}, database_url=url, clock="virtual"), registry=installed())
    runner.deploy([fixture("modeler_order.bpmn"), fixture("messages.bpmn"), HOSTILE_BPMN / "profile.bpmn"])
    add_user(runner, "boss", ["admin", "team_leader", "sales"], full_name="Sếp")
    with runner.db.unit() as s:
        for key in ("KH1", "KH2"):
            crm.add_customer(s, key, f"Trung tâm {key}", phone="0912345678", owner="boss", now=runner.now())
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "test-secret", "RUNNER": runner, "RUNNER_SETTINGS": runner.settings}
    )
    app.test_client_class = WebClient
    browser = app.test_client()
    assert browser.login("boss", PASSWORD).status_code == 302
    yield World(runner, browser, app.test_client(), users.issue_token(runner, "boss", label="t"))
    runner.db.engine.dispose()


# --- sources: each sends the payload and says which pages show it -------------------------------------


@dataclass(frozen=True)
class Sent:
    """What a source did: the answer, the field a refusal must name, and the pages that show the text."""

    response: Any
    field: str
    pages: list[str]  # the first one must show the text (HTML pages, or /api/ JSON) ...
    shown: bool = True  # ... unless the page only reflects a filter (trimmed, cut to its limit)


def _note(w: World, p: str) -> Sent:
    return Sent(
        w.browser.post("/customers/KH1/notes", data={"text": p}), "text", ["/customers/KH1", "/api/customers/KH1"]
    )


def _task_form(w: World, p: str) -> Sent:
    instance_id, task_id = w.open_task("order", "KH1", "Activity_review")
    response = w.browser.post(f"/inbox/tasks/{task_id}/complete", data={"amount": "5", "note": p})
    return Sent(
        response,
        "note",
        [
            f"/api/instances/{instance_id}",
            "/customers/KH1",
            f"/inbox/tasks/{task_id}",
            f"/instances/{instance_id}/diagram",
        ],
    )


def _customer_field(w: World, p: str) -> Sent:
    instance_id, task_id = w.open_task("edit_profile", "KH2", "survey")
    response = w.browser.post(f"/inbox/tasks/{task_id}/complete", data={"course_model": p, "trial_link": p})
    w.runner.run_due()
    assert inbox.incidents(w.runner, state="open", instance_id=instance_id) == []
    return Sent(
        response, "course_model", ["/customers/KH2", "/api/customers/KH2", "/customers/?q=KH2", "/boards/sales"]
    )


def _api_start_data(w: World, p: str) -> Sent:
    response = w.call("POST", "/api/instances", {"process_key": "order", "business_key": "KH1", "data": {"note": p}})
    instance_id = (response.get_json() or {}).get("id", "none")
    return Sent(response, "data.note", [f"/api/instances/{instance_id}", f"/instances/{instance_id}/diagram"])


def _api_business_key(w: World, p: str) -> Sent:
    response = w.call("POST", "/api/instances", {"process_key": "order", "business_key": p})
    return Sent(response, "business_key", ["/inbox/group", "/api/tasks", "/inbox/all", "/boards/sales"])


def _api_message_data(w: World, p: str) -> Sent:
    instance_id = w.runner.start_instance("await_payment", "KH1")
    response = w.call(
        "POST", "/api/messages", {"name": "payment_received", "business_key": "KH1", "data": {"payer": p}}
    )
    return Sent(response, "data.payer", [f"/api/instances/{instance_id}", "/customers/KH1"])


def _admin_full_name(w: World, p: str) -> Sent:
    username = f"user{next(w.counter)}"
    response = w.browser.post(
        "/admin/users", data={"username": username, "full_name": p, "roles": "sales", "password": PASSWORD}
    )
    return Sent(response, "full_name", [f"/admin/users/{username}", "/admin/users"])


def _admin_profile(w: World, p: str) -> Sent:
    username = f"user{next(w.counter)}"
    w.browser.post(
        "/admin/users", data={"username": username, "full_name": "Tên", "roles": "sales", "password": PASSWORD}
    )
    response = w.browser.post(f"/admin/users/{username}/profile", data={"full_name": p, "zalo_user_id": "zl-1"})
    return Sent(response, "full_name", [f"/admin/users/{username}", "/admin/users"])


def _search_query(w: World, p: str) -> Sent:
    path = f"/customers/?q={quote(p)}"
    return Sent(w.browser.get(path), "q", [path], shown=False)


def _inbox_filter(w: World, p: str) -> Sent:
    path = f"/inbox/all?customer={quote(p)}"
    return Sent(w.browser.get(path), "customer", [path], shown=False)


# (row id, how the payload is sent, JSON carries it: a lone surrogate cannot travel in a form or URL)
SOURCES: list[tuple[str, Callable[[World, str], Sent], bool]] = [
    ("note", _note, False),
    ("task_form", _task_form, False),
    ("customer_field", _customer_field, False),
    ("api_start_data", _api_start_data, True),
    ("api_business_key", _api_business_key, True),
    ("api_message_data", _api_message_data, True),
    ("admin_full_name", _admin_full_name, False),
    ("admin_profile", _admin_profile, False),
    ("search_query", _search_query, False),
    ("inbox_filter", _inbox_filter, False),
]
ROWS = [
    pytest.param(send, payload, id=f"{source}-{row}")
    for (source, send, json_body), (row, payload) in itertools.product(SOURCES, PAYLOADS)
    if json_body or "\ud800" not in payload
]
_JS_LINK = re.compile(r"""(?:href|src|action|formaction)\s*=\s*["']?\s*javascript:""", re.I)
_MARKUP = re.compile(r"""[<>"']""")


@pytest.mark.parametrize(("send", "payload"), ROWS)
def test_a_payload_is_refused_naming_the_field_or_shown_escaped(world: World, send, payload: str) -> None:
    sent = send(world, payload)
    status = sent.response.status_code
    assert status < 500, sent.response.get_data(as_text=True)[:500]
    if 400 <= status < 500 and status != 401:
        assert sent.field in sent.response.get_data(as_text=True), sent.response.get_data(as_text=True)[-800:]
        return
    assert status in (200, 201, 302), status
    _no_header_from(sent.response)
    for index, path in enumerate(sent.pages):
        page = world.call("GET", path) if path.startswith("/api/") else world.browser.get(path)
        assert page.status_code == 200, (path, page.status_code)
        _no_header_from(page)
        if page.is_json:
            assert index > 0 or not sent.shown or _carries(page.get_json(), payload), path
        else:
            _shown_escaped(page.get_data(as_text=True), payload, must_show=index == 0 and sent.shown, path=path)


def _shown_escaped(page: str, payload: str, *, must_show: bool, path: str) -> None:
    if _MARKUP.search(payload):
        assert payload not in page, f"{path} shows the payload unescaped"
    assert not _JS_LINK.search(page), f"{path} links to javascript:"
    if must_show:
        assert str(escape(payload)) in page, f"{path} does not show the (escaped) text"


def _carries(value: Any, payload: str) -> bool:
    if isinstance(value, str):
        return value == payload or payload in value
    if isinstance(value, dict):
        return any(_carries(v, payload) for v in value.values())
    if isinstance(value, list):
        return any(_carries(v, payload) for v in value)
    return False


def _no_header_from(response: Any) -> None:
    assert not any("hacked" in value for _, value in response.headers.items())
