"""The staff web app (Flask). The inbox, customer pages and admin come with the web issue."""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify

from runner.settings import Settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Application factory: nothing connects until a request needs it."""
    app = Flask(__name__)
    app.config.from_mapping(RUNNER_SETTINGS=None)
    if test_config:
        app.config.update(test_config)

    def runner():
        from runner.runtime import Runner

        if "runner" not in app.extensions:
            app.extensions["runner"] = Runner(app.config["RUNNER_SETTINGS"] or Settings.from_env())
        return app.extensions["runner"]

    @app.get("/healthz")
    def healthz():
        """Liveness plus the runner's clock, so a probe also proves the database answers."""
        return jsonify(status="ok", now=runner().now().isoformat())

    return app
