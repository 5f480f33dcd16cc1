"""Fixtures and helpers for web tests: an app over the test runner, users per role, a CSRF-aware client.

    from tests.webapp import app, client, staff, auth_clock  # noqa: F401 - fixtures

    def test_something(client, staff):
        client.login("sales1")                      # signs in through the real form
        page = client.get("/inbox/")
        client.post("/inbox/tasks/x/claim")         # the CSRF token is added for you
        client.post("/logout", csrf=False)          # ... unless you say so (expect 400)

One user per role exists as ``<role>1`` (``sales1``, ``team_leader1``, ``admin1``...), all
with ``PASSWORD``; ``add_user`` makes more. ``auth_clock`` is the failed-login clock.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from runner.crm.models import ROLES
from runner.service import accounts as users
from runner.service.runtime import Runner
from web import create_app

PASSWORD = "mat-khau-123"
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class AuthClock:
    """The time the sign-in slow-down sees; tests move it instead of sleeping."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)):
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


class WebClient(FlaskClient):
    """A test client that signs in through the form and adds the CSRF token to form posts."""

    def csrf_token(self) -> str:
        """A valid token for this client's session, read from a rendered page like a browser does."""
        page = self.get("/", follow_redirects=True).get_data(as_text=True)
        found = _CSRF_META.search(page)
        assert found, "the layout has no csrf-token meta tag"
        return found.group(1)

    def post(self, *args: Any, csrf: bool = True, **kwargs: Any):  # type: ignore[override]
        if csrf and "json" not in kwargs:
            data = dict(kwargs.pop("data", None) or {})
            data.setdefault("csrf_token", self.csrf_token())
            kwargs["data"] = data
        return super().post(*args, **kwargs)

    def login(self, username: str, password: str = PASSWORD):
        """Sign in through the real form; the response of the POST."""
        return self.post("/login", data={"username": username, "password": password})

    def logout(self):
        return self.post("/logout")


@functools.cache
def _hash(password: str) -> str:
    # NOTE: hashing is slow on purpose; the tests hash each password once.
    return generate_password_hash(password)


def add_user(
    runner: Runner, username: str, roles: Iterable[str], *, full_name: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    """A staff member with a sign-in account."""
    return users.create_user(
        runner, username, full_name or username.title(), list(roles), password_hash=_hash(password)
    )


@pytest.fixture
def auth_clock() -> AuthClock:
    """The failed-login clock of the ``app`` fixture."""
    return AuthClock()


@pytest.fixture
def app(runner: Runner, auth_clock: AuthClock) -> Flask:
    """The web app over the test ``runner`` (SQLite, virtual clock), CSRF on."""
    flask_app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "RUNNER": runner,
            "RUNNER_SETTINGS": runner.settings,
            "AUTH_CLOCK": auth_clock.now,
        }
    )
    flask_app.test_client_class = WebClient
    return flask_app


@pytest.fixture
def client(app: Flask) -> WebClient:
    """A test client of ``app``."""
    return app.test_client()  # type: ignore[return-value]


@pytest.fixture
def staff(runner: Runner) -> dict[str, dict[str, Any]]:
    """One user per role, named ``<role>1``, password ``PASSWORD``."""
    return {role: add_user(runner, f"{role}1", [role], full_name=f"Nhân viên {role}") for role in ROLES}
