"""Helpers for web tests: a CSRF-aware client, users per role, the sign-in clock.

The fixtures ``app``, ``client``, ``staff`` and ``auth_clock`` come from tests/conftest.py:

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

from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from runner.service import accounts as users
from runner.service.runtime import Runner

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
