"""The web app's edge: 405 with Allow, 414 for long addresses, security headers, Secure cookies, CSP nonces."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from runner.crm import customers as crm
from runner.service.runtime import Runner
from runner.settings import Settings
from tests.webapp import PASSWORD, WebClient, add_user
from web import create_app
from web.edge import MAX_URL_LENGTH

# (method, path, methods the Allow header must list, JSON answer?)
NOT_ALLOWED = [
    ("DELETE", "/api/instances", {"GET", "POST"}, True),
    ("PUT", "/api/tasks/x/claim", {"POST"}, True),
    ("GET", "/api/messages", {"POST"}, True),
    ("POST", "/customers/", {"GET"}, False),
    ("DELETE", "/login", {"GET", "POST"}, False),
    ("GET", "/logout", {"POST"}, False),
]


@pytest.mark.parametrize(("method", "path", "allowed", "json"), NOT_ALLOWED)
def test_a_405_names_the_allowed_methods(client, method: str, path: str, allowed: set[str], json: bool) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert response.is_json == json


# (path prefix, JSON answer?)
LONG_URLS = [
    ("/api/instances?business_key=", True),
    ("/api/instances/", True),
    ("/customers/?q=", False),
    ("/inbox/tasks/", False),
    ("/login?next=/", False),
]


@pytest.mark.parametrize(("prefix", "json"), LONG_URLS)
def test_an_address_over_the_limit_is_414(client, prefix: str, json: bool) -> None:
    response = client.get(prefix + "x" * MAX_URL_LENGTH)
    assert response.status_code == 414 and response.is_json == json
    if json:
        assert str(MAX_URL_LENGTH) in response.get_json()["detail"]
    at_limit = client.get(prefix + "x" * (MAX_URL_LENGTH - len(prefix) - 1))
    assert at_limit.status_code != 414


# (path, signed in?)
PAGES = [
    ("/login", False),
    ("/healthz", False),
    ("/api/openapi.json", False),
    ("/api/instances", False),
    ("/no/such/page", False),
    ("/static/app.css", False),
    ("/inbox/", True),
    ("/customers/", True),
    ("/customers/KH1", True),
    ("/boards/sales", True),
    ("/calendar/", True),
    ("/admin/", True),
    ("/admin/users", True),
    ("/admin/incidents", True),
    ("/admin/processes", True),
]


@pytest.fixture
def signed_in(client, staff, runner: Runner) -> WebClient:
    add_user(runner, "boss", ["admin", "team_leader", "sales", "customer_care", "teacher"])
    with runner.db.unit() as s:
        crm.add_customer(s, "KH1", "Trung tâm Sao Mai", phone="0912345678", owner="boss", now=runner.now())
    assert client.login("boss").status_code == 302
    return client


@pytest.mark.parametrize(("path", "login"), PAGES)
def test_every_answer_carries_the_security_headers(client, signed_in, path: str, login: bool) -> None:
    response = (signed_in if login else client).get(path)
    response.close()  # a static file's answer holds the file open
    assert response.status_code < 500, path
    csp = response.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"):
        assert directive in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize(("path", "login"), [p for p in PAGES if p[1]])
def test_pages_run_no_script_the_policy_would_block(signed_in, path: str, login: bool) -> None:
    response = signed_in.get(path)
    page = response.get_data(as_text=True)
    nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert "src=" in tag or f'nonce="{nonce}"' in tag, tag
    assert not re.search(r"\son[a-z]+\s*=", page), "inline event handlers are blocked by the CSP"
    assert "javascript:" not in page


def test_each_request_gets_its_own_nonce(signed_in) -> None:
    first, second = (signed_in.get("/calendar/").headers["Content-Security-Policy"] for _ in range(2))
    assert first != second


# (RUNNER_COOKIE_SECURE, Secure cookie?)
COOKIE_ROWS = [(None, False), ("false", False), ("true", True), ("1", True)]


@pytest.mark.parametrize(("value", "secure"), COOKIE_ROWS)
def test_the_session_cookie_is_secure_when_the_setting_says_so(
    runner: Runner, staff, value: str | None, secure: bool
) -> None:
    env = {} if value is None else {"RUNNER_COOKIE_SECURE": value}
    settings = Settings.from_env(env, database_url=runner.settings.database_url, clock="virtual")
    assert settings.cookie_secure is secure
    flask_app: Flask = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "RUNNER": runner,
            "RUNNER_SETTINGS": settings,
            "WTF_CSRF_ENABLED": False,
        }
    )
    response = flask_app.test_client().post(
        "/login", data={"username": "sales1", "password": PASSWORD}, base_url="https://crm.example"
    )
    cookie = next(v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith("session="))
    assert ("; Secure" in cookie) is secure
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
