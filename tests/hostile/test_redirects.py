"""Open redirects: ``next`` (sign-in, language switch) only ever leads to a path on this site.

Each row is one hostile ``next`` value and the ``Location`` the app must answer with; add a
row to try another one. Browsers drop tabs and newlines inside a URL and read ``\\`` as
``/``, which is how ``/<TAB>/evil.example`` used to become ``//evil.example``.
"""

from __future__ import annotations

import pytest

from tests.webapp import PASSWORD, WebClient
from web.navigation import safe_path

HOME = "/"
EDGE = None  # refused before any view with 400 (web/edge.py: a NUL byte is no text)
HOSTILE_NEXT = [
    # (next value as the app receives it, the Location it must answer with)
    ("/\t/evil.example/path", HOME),  # the reported one: ?next=/%09/evil.example/path
    ("/\r\n/evil.example/", HOME),  # CR/LF: used to be a 500 (header injection)
    ("/\n/evil.example/", HOME),
    ("/inbox/\r\nSet-Cookie: a=b", "/inbox/Set-Cookie:%20a=b"),  # no header is ever split
    ("/\x00/evil.example/", EDGE),
    ("/\x0b/evil.example/", HOME),
    ("/\x7f/evil.example/", HOME),
    ("/\x85/evil.example/", HOME),  # a C1 control (NEL)
    ("//evil.example/x", HOME),
    ("///evil.example/x", HOME),  # browsers skip any number of slashes
    ("/\\evil.example/x", HOME),
    ("\\\\evil.example/x", HOME),
    ("/\\/evil.example/x", HOME),
    ("\\/evil.example/x", HOME),
    ("https://evil.example/", HOME),
    ("http:/evil.example/", HOME),
    ("https:evil.example", HOME),
    ("javascript:alert(1)", HOME),
    ("JaVaScRiPt:alert(1)", HOME),
    ("data:text/html,<script>alert(1)</script>", HOME),
    (" //evil.example/", HOME),  # a leading space, which browsers strip
    ("%2F%2Fevil.example/", HOME),  # still encoded: not a path at all
    ("/%2F%2Fevil.example/", "/%2F%2Fevil.example/"),  # a path on this site: browsers keep %2F
    ("/%09/evil.example/", "/%09/evil.example/"),  # idem, %09 stays in the path
    ("\uff0f\uff0fevil.example/", HOME),  # fullwidth solidus
    ("/\uff0f\uff0fevil.example/", "/%EF%BC%8F%EF%BC%8Fevil.example/"),  # a path here, percent-encoded
    ("/\u2215\u2215evil.example/", "/%E2%88%95%E2%88%95evil.example/"),  # division slash
    ("evil.example", HOME),
    ("", HOME),
    ("/inbox/?due=overdue", "/inbox/?due=overdue"),  # what next is for
    ("/customers/KH0001#notes", "/customers/KH0001#notes"),
]


def _assert_stays_here(response, location: str | None) -> None:
    if location is EDGE:
        assert response.status_code == 400 and "Location" not in response.headers
    else:
        assert response.status_code == 302 and response.headers["Location"] == location


@pytest.mark.parametrize("target,location", HOSTILE_NEXT)
def test_a_signed_in_visit_to_login_redirects_only_here(
    client: WebClient, staff, target: str, location: str | None
) -> None:
    client.login("sales1")
    _assert_stays_here(client.get("/login", query_string={"next": target}), location)


@pytest.mark.parametrize("target,location", HOSTILE_NEXT[:8])
def test_signing_in_redirects_only_here(client: WebClient, staff, target: str, location: str | None) -> None:
    response = client.post("/login", data={"username": "sales1", "password": PASSWORD, "next": target})
    _assert_stays_here(response, location)


@pytest.mark.parametrize("target,location", HOSTILE_NEXT[:8])
def test_the_language_switch_redirects_only_here(client: WebClient, staff, target: str, location: str | None) -> None:
    _assert_stays_here(client.post("/lang/en", data={"next": target}), location)


@pytest.mark.parametrize("target,location", HOSTILE_NEXT)
def test_safe_path_keeps_only_local_paths(target: str, location: str | None) -> None:
    kept = safe_path(target, HOME)
    assert "\r" not in kept and "\n" not in kept and "\t" not in kept
    if location in (HOME, EDGE):
        assert kept == HOME
    else:
        assert kept.startswith("/") and not kept.startswith("//")
