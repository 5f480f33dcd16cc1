"""Browser tests: the app on a real HTTP server, driven by Debian's chromium through Playwright.

    def test_flow(live_server, page, sign_in, shot):
        sign_in("sales1")              # users <role>1 come from the ``staff`` fixture
        page.goto(live_server.url + "/inbox/group")
        shot(page, "after-login")      # tests/artifacts/<test name>-after-login.png

``live_server.app`` is the Flask app and ``live_server.runner`` the runner behind it (the
``runner`` fixture: SQLite, virtual clock), so a test prepares data directly and then
clicks. Chromium is /usr/bin/chromium (``make test`` installs it); when it is missing the
tests skip locally and fail with CI=true. Screenshots of failing tests are kept too.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from runner.service.runtime import Runner
from tests.webapp import PASSWORD, AuthClock
from web import create_app

CHROMIUM = Path(os.environ.get("RUNNER_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@dataclass
class LiveServer:
    """A running server: its base URL, app and runner."""

    url: str
    app: Flask
    runner: Runner


@pytest.fixture
def live_server(runner: Runner) -> Iterator[LiveServer]:
    """The web app on 127.0.0.1 at a free port, served by werkzeug in a thread."""
    app = create_app(
        {
            "SECRET_KEY": "browser-test",
            "RUNNER": runner,
            "RUNNER_SETTINGS": runner.settings,
            "AUTH_CLOCK": AuthClock().now,
        }
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise here
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, runner)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="session")
def browser():
    """Headless chromium for the whole session."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: run `make install` (installs Debian's chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context and page (Vietnamese, desktop size); a screenshot if the test fails."""
    context = browser.new_context(locale="vi-VN", viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    # NOTE: chromium reports what the Content-Security-Policy blocked on the console; any of
    # it means a page lost a script, a style or a handler.
    blocked: list[str] = []
    tab.on(
        "console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None
    )
    yield tab
    assert not blocked, f"the Content-Security-Policy blocked: {blocked}"
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / f"{_slug(request.node.name)}-FAILED.png"), full_page=True)
    context.close()


@pytest.fixture
def sign_in(page, live_server: LiveServer) -> Callable:
    """``sign_in("sales1")`` fills the real sign-in form (password ``tests.webapp.PASSWORD``)."""

    def fill(username: str, password: str = PASSWORD) -> None:
        page.goto(f"{live_server.url}/login")
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("form.login button[type=submit]")
        page.wait_for_load_state()

    return fill


@pytest.fixture
def shot(request) -> Callable:
    """``shot(page, name)`` saves a full-page screenshot under tests/artifacts/ and returns its path."""

    def take(tab, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{_slug(request.node.name)}-{_slug(name)}.png"
        tab.screenshot(path=str(path), full_page=True)
        return path

    return take


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so ``page`` knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
