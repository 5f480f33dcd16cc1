"""The staff web app (Flask): sign-in, task inbox, diagrams, admin, REST API, and the CRM's customer pages.

``create_app`` is the factory, wired as in Flask's tutorial: it imports each blueprint module and
registers its ``bp``. The shared objects (CSRF, login manager, Babel, ``get_runner``) live in
``web.extensions``; helpers in ``web.navigation``. Blueprints import those, never this package.

- generic pages at the top: ``auth``, ``i18n``, ``inbox``, ``diagrams``, ``admin``, ``api`` (described by ``openapi``),
  ``metrics`` (``/metrics`` for Prometheus, and every request's id and latency);
- the EasyEdu CRM's pages apart: ``web.crm`` (``customers``, ``task_panel``; templates in ``web/crm/templates``),
  reached from the generic pages only through the hooks of ``web.navigation``; its API operation in
  ``web.crm.api``, whose share of the OpenAPI document ``openapi_document`` adds to the generic one.

``admin``, ``api`` and ``web.crm.customers`` are packages: one module per feature, sharing the package's one
blueprint (``bp`` in its ``blueprint`` module), so endpoints stay ``admin.*``, ``api.*`` and ``customers.*``;
``openapi`` is split the same way (``builders``, ``schemas``, ``paths`` per resource family).

A module may define ``NAV``, a list of ``NavItem`` shown in the top bar to the roles named there.
Views reach the runner through ``get_runner()``, its public API and the query functions of
``runner.queries`` and ``runner.crm``; they never open a database session.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from runner import instance_folder as instance
from runner import logs
from runner.settings import Settings
from web import admin, api, attachments, auth, diagrams, edge, i18n, inbox, metrics, openapi, people
from web.crm import api as crm_api
from web.crm import customers, lead_imports, leads, roles, routines, task_panel
from web.extensions import csrf, get_runner
from web.navigation import customer_url, wants_json


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Application factory: nothing connects until a request needs it."""
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=None,  # None: the settings' key (RUNNER_SECRET_KEY or the instance's key file)
        RUNNER_SETTINGS=None,  # a runner.settings.Settings; None reads RUNNER_* from the environment
        RUNNER=None,  # an already built Runner (tests share one with their fixtures)
        AUTH_CLOCK=None,  # a callable returning an aware datetime, for the failed-login slow-down
        CLOCK_RUN_EXECUTOR=None,  # (runner, run_id) -> None: who works off a clock run; None: a thread here
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # NOTE: staff keep a task page open for hours; the session bounds it
    )
    if test_config:
        app.config.update(test_config)
    _use_secret_key(app)
    if app.config["RUNNER"] is not None:
        app.extensions["runner"] = app.config["RUNNER"]

    # NOTE: here, not in gunicorn's config: the factory runs in every web process, under any server.
    logs.configure(app.config["RUNNER_SETTINGS"])
    metrics.init_app(app)
    edge.init_app(app, app.config["RUNNER_SETTINGS"])
    i18n.init_app(app)
    people.init_app(app)
    auth.init_app(app)

    app.register_blueprint(i18n.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(inbox.bp)
    app.register_blueprint(customers.bp)
    app.register_blueprint(lead_imports.bp)
    app.register_blueprint(routines.bp)
    app.register_blueprint(diagrams.bp)
    app.register_blueprint(attachments.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(crm_api.bp)
    app.register_blueprint(leads.bp)
    app.register_blueprint(metrics.bp)
    csrf.exempt(api.bp)  # NOTE: the API takes bearer tokens only, never the session cookie
    csrf.exempt(crm_api.bp)
    csrf.exempt(leads.bp)  # NOTE: a form's lead key is its only credential; no session is read there
    app.extensions["openapi"] = openapi_document()
    app.extensions["nav"] = [*inbox.NAV, *customers.NAV, *lead_imports.NAV, *routines.NAV, *admin.NAV]
    app.extensions["customer_url"] = customers.page_url
    app.extensions["customer_context"] = task_panel.task_context
    app.extensions["role_labels"] = roles.ROLE_LABELS
    app.extensions["fact_labels"] = roles.FACT_LABELS
    app.jinja_env.globals["customer_url"] = customer_url
    _add_basics(app)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document served at /api/openapi.json: the generic API's operations and the CRM's."""
    return openapi.document(crm_api.OPENAPI, leads.OPENAPI)


def _use_secret_key(app: Flask) -> None:
    """Read the settings once and take their secret key; refuse to start without one."""
    settings = app.config["RUNNER_SETTINGS"] or Settings.from_env()
    app.config["RUNNER_SETTINGS"] = settings
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = settings.secret_key
    if not app.config["SECRET_KEY"]:
        # NOTE: no fallback key: a key anyone can read in the code lets anyone forge a session.
        raise instance.SecretKeyMissing(instance.secret_key_path(settings))


def _add_basics(app: Flask) -> None:
    @app.before_request
    def catch_up_with_the_clock() -> None:
        """On the virtual clock, start every request at the time another process may have moved it to."""
        # NOTE: N web processes share one clock row; without this one small read, a process
        # would show (and compute due dates from) its own last time until its next unit of work.
        if app.config["RUNNER_SETTINGS"].clock == "virtual" and request.endpoint != "static":
            get_runner().refresh_clock()

    @app.get("/healthz")
    def healthz():
        """Liveness plus the runner's clock, so a probe also proves the database answers."""
        return jsonify(status="ok", now=get_runner().now().isoformat())

    @app.get("/")
    def index():
        """The start page is the user's inbox (or the sign-in page)."""
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login"))
        return redirect(url_for("inbox.my_tasks"))

    @app.context_processor
    def navigation() -> dict[str, Any]:
        """The top-bar links the signed-in user may follow."""
        if not current_user.is_authenticated:
            return {"nav_items": []}
        items = [item for item in app.extensions["nav"] if item.roles is None or current_user.has_role(*item.roles)]
        return {"nav_items": items}

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        """JSON under /api, the layout's error page elsewhere; werkzeug's headers (``Allow`` on 405) kept."""
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if wants_json():
            return jsonify(error=exc.name, detail=exc.description), exc.code, headers
        return render_template("error.html", error=exc), exc.code, headers
