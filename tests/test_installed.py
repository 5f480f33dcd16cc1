"""The package installed without the checkout: ``pip install .``, then the CLI, the worker and the web app.

The wheel is built from a copy of the sources that is deleted before anything runs, and
every command runs in another directory with ``python -S``: no ``.pth`` file, so the
editable install of the checkout is out of reach and only the installed copy (and the
dependencies' folder) can be imported. The data lands in the instance folder that
``RUNNER_INSTANCE_PATH`` names. It fails when the wheel lacks the migrations, the web
templates, static files or catalogs, or when a path still hangs on the checkout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
PACKAGES = ("runner", "handlers", "web", "bench")
SITE_PACKAGES = sysconfig.get_paths()["purelib"]  # the dependencies, as a fresh venv would have them

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the package as ``pip install --target`` puts it (no checkout behind it)."""
    base = tmp_path_factory.mktemp("installed")
    source, target = base / "source", base / "site"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, source / name)
    for name in PACKAGES:
        shutil.copytree(CHECKOUT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(source)
    return target


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """Another directory to run from, holding the processes to deploy (and their message templates)."""
    work = tmp_path / "work"
    shutil.copytree(CHECKOUT / "processes", work / "processes")
    return work


def _env(installed: Path, instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNNER_", "DEMO_")) and k != "DATABASE_URL"}
    env.update(
        PYTHONPATH=os.pathsep.join([str(installed), SITE_PACKAGES]),
        RUNNER_INSTANCE_PATH=str(instance),
        RUNNER_CLOCK="virtual",
        RUNNER_POLL_SECONDS="0.2",
    )
    return env


def _runner(installed: Path, *args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-S", str(installed / "bin" / "runner"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_installed_package_deploys_works_and_serves_from_another_directory(
    installed: Path, place: Path, tmp_path: Path
) -> None:
    instance = tmp_path / "instance"
    env = _env(installed, instance)
    where = subprocess.run(
        [sys.executable, "-S", "-c", "import runner, web; print(runner.__file__); print(web.__file__)"],
        cwd=place,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(path).is_relative_to(installed) for path in where), where

    assert "is up to date" in _runner(installed, "db", "upgrade", cwd=place, env=env)
    assert (instance / "runner.db").is_file() and (instance / "secret_key").is_file()  # the instance's data
    deployed = _runner(installed, "deploy", "processes", cwd=place, env=env)
    assert "sales: version 1 (new version" in deployed
    started = _runner(installed, "start", "sales", "--customer", "KH0001", cwd=place, env=env).strip()

    worker = subprocess.Popen(
        [sys.executable, "-S", str(installed / "bin" / "runner"), "worker"],
        cwd=place,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # A tick runs the instance's first service task (the customer does not exist, so it fails).
        deadline = time.monotonic() + 60
        while "handler." not in _runner(installed, "history", "--instance", started, cwd=place, env=env):
            assert time.monotonic() < deadline and worker.poll() is None, "the worker did not tick"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0 and f"started on sqlite:///{instance / 'runner.db'}" in output, output

    page = subprocess.run(
        [sys.executable, "-S", "-c", SERVE],
        cwd=place,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert page.returncode == 0, page.stdout + page.stderr
    first, second, *templates = page.stdout.splitlines()
    assert (first, second) == ("200 200", "200 Sign in"), page.stdout
    assert templates == CHECKOUT_TEMPLATES  # the CRM pages' own templates too
    assert sorted(p.name for p in place.iterdir()) == ["processes"]  # nothing written where it runs
    assert not (installed / "var").exists()  # nor where the code is


# The web app as gunicorn builds it: the sign-in page (a template), a static file, the
# English catalog (the sign-in button in English in a session that chose English), and
# every template its loaders (the app's and the blueprints') find.
SERVE = """
from web import create_app
app = create_app()
client = app.test_client()
print(client.get("/login").status_code, client.get("/static/app.css").status_code)
with client.session_transaction() as session:
    session["lang"] = "en"
page = client.get("/login")
print(page.status_code, "Sign in" if b"Sign in" in page.data else "no English")
for name in sorted(set(app.jinja_env.list_templates())):
    print(name)
"""
CHECKOUT_TEMPLATES = sorted(
    {str(p.relative_to(folder)) for folder in (CHECKOUT / "web").rglob("templates") for p in folder.rglob("*.html")}
)
