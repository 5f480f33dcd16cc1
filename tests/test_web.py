"""The web app factory answers its health probe through the runner."""
from __future__ import annotations

from runner.settings import Settings
from web import create_app


def test_healthz_reports_the_runner_clock(sqlite_url: str) -> None:
    settings = Settings.from_env({}, database_url=sqlite_url, clock="virtual")
    client = create_app({"TESTING": True, "RUNNER_SETTINGS": settings}).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    assert response.get_json()["now"].startswith("20")
