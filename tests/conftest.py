"""Shared fixtures: a runner on a fresh SQLite file or a fresh PostgreSQL schema, the web app
over it (``app``, ``client``, ``staff``, ``auth_clock``; helpers in tests/webapp.py) and the
engine harness's ``mode``.

PostgreSQL is the one at 127.0.0.1:5432 (trust auth, database ``test``). Locally a
missing server is a visible skip; with ``CI=true`` it is a failure.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from runner.crm.extension import easyedu
from runner.crm.models import ROLES
from runner.crm.settings import CrmSettings
from runner.extension import Extension
from runner.registry import Registry, installed
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from tests.harness import MODES
from tests.webapp import AuthClock, WebClient, add_user
from web import create_app
from web.extensions import run_here

BPMN = Path(__file__).parent / "bpmn"
# NOTE: the virtual clock starts at the real time of day, so the customers' quiet hours would
# make a test pass or fail by the hour it runs: off for every test and the processes tests
# start, unless a test sets a window itself (tests/test_quiet_hours.py).
os.environ["RUNNER_SENDING_WINDOW"] = "off"
PG_URL = os.environ.get("RUNNER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return f"PostgreSQL at {PG_URL} is not reachable: {type(exc).__name__}: {exc}"


@pytest.fixture(scope="session", autouse=True)
def instance_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """RUNNER_INSTANCE_PATH for the whole run: commands such as ``runner db upgrade`` keep their
    key file (and the demo its passwords) there, never in the checkout's ``var/``."""
    folder = tmp_path_factory.mktemp("instance")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNNER_INSTANCE_PATH", str(folder))
        yield folder


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """The PostgreSQL URL, or a skip (a failure when CI=true)."""
    problem = _pg_available()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires PostgreSQL: {problem}")
        pytest.skip(problem)
    return PG_URL


@contextlib.contextmanager
def pg_schema(base_url: str, *, branches: Iterable[str] | None = None, upgrade: bool = True) -> Iterator[str]:
    """A fresh schema on the PostgreSQL server (its URL), dropped afterwards.

    Migrated with ``branches`` (None: every installed one, ``("core",)``: the runner's tables
    only), or left empty with ``upgrade=False``.
    """
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    url = sa.make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    if upgrade:
        db.upgrade(rendered, branches)
    try:
        yield rendered
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A fresh, migrated schema on the PostgreSQL server, dropped afterwards."""
    with pg_schema(pg_base_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite file."""
    url = f"sqlite:///{tmp_path / 'runner.db'}"
    db.upgrade(url)
    return url


@pytest.fixture
def registry() -> Registry:
    """The handlers of the installed entry-point group, in a registry of the test's own to extend."""
    return installed()


def with_crm(crm: CrmSettings | None = None) -> tuple[Extension, ...]:
    """The EasyEdu CRM extension (its Zalo/SMTP settings ``crm``, by default none: the log transport)."""
    return (easyedu(crm=crm if crm is not None else CrmSettings()),)


def make_runner(
    url: str, registry: Registry, *, extensions: tuple[Extension, ...] | None = None, **overrides
) -> Runner:
    """A runner on the virtual clock at a fixed start time, with the CRM extension unless told otherwise."""
    settings = Settings.from_env({}, database_url=url, clock="virtual", retry_base_seconds=10.0, **overrides)
    return Runner(settings, registry=registry, extensions=with_crm() if extensions is None else extensions)


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """A runner on a fresh SQLite database and the virtual clock."""
    r = make_runner(sqlite_url, registry)
    yield r
    r.db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_runner(request, registry: Registry) -> Iterator[Runner]:
    """The same test on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    r = make_runner(url, registry)
    yield r
    r.db.engine.dispose()


# --- the engine harness (tests/harness.py) ----------------------------------------------------


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Run a scenario straight through, then again with a save/restore after every step."""
    return request.param


# --- the web app (helpers in tests/webapp.py) -------------------------------------------------


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
            # NOTE: clock runs move the clock before the answer, so tests read the result at once;
            # tests of the background itself set their own executor (test_web_admin, test_api).
            "CLOCK_RUN_EXECUTOR": run_here,
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
