"""The staff web app (Flask): sign-in, task inbox, customer pages, diagrams, admin, REST API.

Each feature is one module ``web/<name>.py`` with a blueprint ``bp``; ``create_app``
registers those that exist (see ``BLUEPRINTS``). A module may also define ``NAV``, a list of
``NavItem`` shown in the top bar to the roles named there. Views reach the runner through
``get_runner()`` and its public API only.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask, current_app, jsonify, redirect, request, url_for
from werkzeug.exceptions import HTTPException

from runner.settings import Settings

if TYPE_CHECKING:
    from runner.service.runtime import Runner

# Registered in this order when the module exists; "api" is exempt from CSRF (bearer tokens).
BLUEPRINTS = ("auth", "inbox", "customers", "diagrams", "admin", "api")
_RUNNER_LOCK = threading.Lock()
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 control characters


@dataclass(frozen=True)
class NavItem:
    """A link in the top bar: endpoint, label (a lazy gettext string) and who sees it (None = everyone)."""

    endpoint: str
    label: Any
    roles: tuple[str, ...] | None = None


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Application factory: nothing connects until a request needs it."""
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=None,  # None: the settings' key (RUNNER_SECRET_KEY or the instance's key file)
        RUNNER_SETTINGS=None,  # a runner.settings.Settings; None reads RUNNER_* from the environment
        RUNNER=None,  # an already built Runner (tests share one with their fixtures)
        AUTH_CLOCK=None,  # a callable returning an aware datetime, for the failed-login slow-down
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # NOTE: staff keep a task page open for hours; the session bounds it
    )
    if test_config:
        app.config.update(test_config)
    _use_secret_key(app)
    if app.config["RUNNER"] is not None:
        app.extensions["runner"] = app.config["RUNNER"]

    from web import auth, edge, i18n

    edge.init_app(app, app.config["RUNNER_SETTINGS"] or Settings.from_env())
    i18n.init_app(app)
    auth.init_app(app)
    app.extensions["nav"] = []
    for name in BLUEPRINTS:
        if importlib.util.find_spec(f"web.{name}") is None:
            continue
        module = importlib.import_module(f"web.{name}")
        app.register_blueprint(module.bp)
        app.extensions["nav"].extend(getattr(module, "NAV", ()))
        if name == "api":
            auth.csrf.exempt(module.bp)
    app.jinja_env.globals["has_endpoint"] = lambda name: name in app.view_functions
    _add_basics(app)
    return app


def _use_secret_key(app: Flask) -> None:
    """Read the settings once and take their secret key; refuse to start without one."""
    from runner import instance_folder as instance

    settings = app.config["RUNNER_SETTINGS"] or Settings.from_env()
    app.config["RUNNER_SETTINGS"] = settings
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = settings.secret_key
    if not app.config["SECRET_KEY"]:
        # NOTE: no fallback key: a key anyone can read in the code lets anyone forge a session.
        raise instance.SecretKeyMissing(instance.secret_key_path(settings))


def get_runner() -> Runner:
    """The app's runner, built on first use from ``RUNNER_SETTINGS`` (or the environment)."""
    app = current_app
    runner = app.extensions.get("runner")
    if runner is None:
        with _RUNNER_LOCK:
            runner = app.extensions.get("runner")
            if runner is None:
                from runner.service.runtime import Runner

                runner = Runner(app.config["RUNNER_SETTINGS"] or Settings.from_env())
                app.extensions["runner"] = runner
    return runner


def safe_path(target: str | None, default: str = "/") -> str:
    """A local path to redirect to, or ``default``: never another site (``//x``, ``/\\x``, ``http:``).

    Control characters are dropped first: browsers drop tabs and newlines inside a URL, so
    ``/<TAB>/evil.example`` would reach them as ``//evil.example``, and CR/LF cannot go in a header.
    """
    path = _CONTROL.sub("", target or "")
    # NOTE: browsers read a backslash as a slash, which urlsplit does not know.
    if not path.startswith("/") or "\\" in path:
        return default
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or path.startswith("//"):
        return default
    return path


def wants_json() -> bool:
    """True under /api (errors there are JSON ``{"error", "detail"}``, never HTML)."""
    return request.path == "/api" or request.path.startswith("/api/")


def _add_basics(app: Flask) -> None:
    from flask import render_template

    @app.get("/healthz")
    def healthz():
        """Liveness plus the runner's clock, so a probe also proves the database answers."""
        return jsonify(status="ok", now=get_runner().now().isoformat())

    @app.get("/")
    def index():
        """The start page is the user's inbox (or the sign-in page)."""
        from flask_login import current_user

        if not current_user.is_authenticated:
            return redirect(url_for("auth.login"))
        if "inbox.my_tasks" in app.view_functions:
            return redirect(url_for("inbox.my_tasks"))
        return render_template("base.html")

    @app.context_processor
    def navigation() -> dict[str, Any]:
        """The top-bar links the signed-in user may follow."""
        from flask_login import current_user

        if not current_user.is_authenticated:
            return {"nav_items": []}
        items = [
            item
            for item in app.extensions["nav"]
            if item.endpoint in app.view_functions and (item.roles is None or current_user.has_role(*item.roles))
        ]
        return {"nav_items": items}

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        """JSON under /api, the layout's error page elsewhere; werkzeug's headers (``Allow`` on 405) kept."""
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if wants_json():
            return jsonify(error=exc.name, detail=exc.description), exc.code, headers
        return render_template("error.html", error=exc), exc.code, headers
