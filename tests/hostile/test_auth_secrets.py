"""The secret key, passwords and sessions: nothing in the code or in a cookie lets anyone in.

- No key in the code: the key is RUNNER_SECRET_KEY or the instance folder's key file that
  ``runner db upgrade`` creates once (mode 0600); the app refuses to start without one.
- A user never has an empty password (runner, CLI on a real terminal, admin pages).
- A session is a random token with a row on the server: a cookie replayed after sign-out,
  a new password or disabling the user signs no one in, and a cookie forged with the key
  (the old "username|hash of the password hash") is not a session.
"""

from __future__ import annotations

import hashlib
import os
import pty
import select
import signal
import stat
import sys
import time
from pathlib import Path

import pytest
from flask import Flask

from runner import instance_folder as instance
from runner.cli import main
from runner.crm.extension import easyedu
from runner.crm.models import BadValue
from runner.crm.settings import CrmSettings
from runner.service import accounts as users
from runner.service.runtime import Runner
from runner.settings import Settings
from tests.webapp import WebClient, add_user
from web import create_app

ROOT = Path(__file__).resolve().parents[2]
OLD_CONSTANT = "dev-only-secret-change-me"


# --- the secret key ----------------------------------------------------------------------------


def test_no_signing_key_is_written_in_the_code() -> None:
    sources = [p for folder in ("runner", "web", "handlers") for p in (ROOT / folder).rglob("*.py")]
    assert sources and not [p for p in sources if OLD_CONSTANT in p.read_text(encoding="utf-8")]


def test_the_app_refuses_to_start_without_a_key(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings.from_env({}, database_url=sqlite_url, instance_path=str(tmp_path / "instance"))
    assert settings.secret_key == ""
    with pytest.raises(instance.SecretKeyMissing, match=r"runner db upgrade.*RUNNER_SECRET_KEY"):
        create_app({"RUNNER_SETTINGS": settings})


def test_db_upgrade_creates_the_key_once_readable_by_its_owner_only(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = tmp_path / "instance"
    monkeypatch.setenv("RUNNER_DATABASE_URL", f"sqlite:///{tmp_path / 'runner.db'}")
    monkeypatch.setenv("RUNNER_INSTANCE_PATH", str(folder))
    monkeypatch.delenv("RUNNER_SECRET_KEY", raising=False)
    assert main(["db", "upgrade"]) == 0
    key_file = folder / instance.KEY_FILE
    key = key_file.read_text().strip()
    assert len(key) == 64 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "secret key created" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert key_file.read_text().strip() == key  # never replaced
    assert Settings.from_env().secret_key == key
    flask_app = create_app()
    assert flask_app.config["SECRET_KEY"] == key and flask_app.config["RUNNER_SETTINGS"].secret_key == key
    monkeypatch.setenv("RUNNER_SECRET_KEY", "from-the-environment")
    assert Settings.from_env().secret_key == "from-the-environment"  # the environment wins
    assert "secret_key" not in repr(Settings.from_env())  # and it is never printed


def test_two_installations_get_different_keys(tmp_path: Path) -> None:
    first, second = (Settings.from_env({}, instance_path=str(tmp_path / name)) for name in ("a", "b"))
    instance.create_secret_key(first), instance.create_secret_key(second)
    assert instance.read_secret_key(first) != instance.read_secret_key(second)
    assert instance.create_secret_key(first) is None


# --- passwords are never empty ------------------------------------------------------------------


@pytest.mark.parametrize("password", [None, "", "        ", "short"])
def test_a_user_never_gets_an_empty_password(runner: Runner, password) -> None:
    with pytest.raises(BadValue, match="password"):
        users.create_user(runner, "lan", "Lan", ["sales"], password=password)
    assert users.get_user(runner, "lan") is None
    add_user(runner, "minh", ["teacher"])
    with pytest.raises(BadValue, match="password"):
        users.set_password(runner, "minh", password)  # type: ignore[arg-type]


def test_the_admin_page_refuses_a_user_without_a_password(client: WebClient, staff, runner: Runner) -> None:
    client.login("admin1")
    response = client.post("/admin/users", data={"username": "lan", "full_name": "Lan", "roles": ["sales"]})
    assert response.status_code == 422 and "ít nhất 8 ký tự" in response.get_data(as_text=True)
    assert users.get_user(runner, "lan") is None
    client.post("/admin/users/sales1/password", data={"password": " " * 12})
    assert client.application.test_client().login("sales1").status_code == 302  # the old one still works


def _cli_on_a_terminal(args: list[str], env: dict[str, str], answers: list[str]) -> tuple[int, str]:
    """Run ``runner ARGS`` on a real pseudo-terminal, typing one answer per password prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session of its own with the terminal as its controlling tty
        os.execve(sys.executable, [sys.executable, "-m", "runner.cli", *args], env)
    output, typed = b"", 0
    deadline = time.monotonic() + 60  # NOTE: a guard against a hang, not a measurement
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        prompts = output.count(b"password for") + output.count(b"again:")
        if typed < min(prompts, len(answers)) and output.rstrip().endswith(b":"):
            os.write(fd, answers[typed].encode() + b"\n")
            typed += 1
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


@pytest.mark.parametrize(
    "answers,code,said",
    [
        (["mat-khau-lan", "mat-khau-lan"], 0, "user lan added"),
        (["mat-khau-lan", "mat-khau-khac"], 1, "the passwords differ"),
        (["", ""], 1, "no password given"),
    ],
)
def test_users_add_asks_twice_on_a_terminal(sqlite_url: str, answers, code, said) -> None:
    env = {**os.environ, "RUNNER_DATABASE_URL": sqlite_url, "RUNNER_CLOCK": "virtual", "PYTHONPATH": str(ROOT)}
    env.pop("RUNNER_USER_PASSWORD", None)
    status, output = _cli_on_a_terminal(["users", "add", "lan", "--role", "sales"], env, list(answers))
    assert output.count("password for lan:") == 1 and said in output and "mat-khau" not in output
    assert status == code
    runner = Runner(Settings.from_env({}, database_url=sqlite_url, clock="virtual"))
    assert (users.get_user(runner, "lan") is not None) == (code == 0)
    runner.db.engine.dispose()


@pytest.mark.parametrize("stdin,added", [("mat-khau-lan\n", True), ("\n", False), ("", False)])
def test_users_add_reads_a_piped_password_and_refuses_none(
    sqlite_url: str, monkeypatch, capsys, stdin: str, added: bool
) -> None:
    import io

    monkeypatch.setenv("RUNNER_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RUNNER_CLOCK", "virtual")
    monkeypatch.delenv("RUNNER_USER_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    if added:
        assert main(["users", "add", "lan", "--role", "sales"]) == 0
    else:
        with pytest.raises(SystemExit, match="no password given"):
            main(["users", "add", "lan", "--role", "sales"])
    runner = Runner(Settings.from_env({}, database_url=sqlite_url, clock="virtual"))
    assert (users.get_user(runner, "lan") is not None) == added
    if added:
        assert users.authenticate(runner, "lan", "mat-khau-lan")["username"] == "lan"
    runner.db.engine.dispose()


# --- sessions: a cookie alone is not a sign-in ------------------------------------------------------


def _replay(app: Flask, cookie: str) -> int:
    """The status of /inbox/ for a fresh browser that sends a copied session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other.get("/inbox/").status_code


def _signed_in_cookie(client: WebClient, username: str) -> str:
    assert client.login(username).status_code == 302
    cookie = client.get_cookie("session")
    assert cookie is not None and client.get("/inbox/").status_code == 200
    return cookie.value


def test_a_cookie_replayed_after_sign_out_is_refused(app: Flask, client: WebClient, staff) -> None:
    cookie = _signed_in_cookie(client, "sales1")
    assert _replay(app, cookie) == 200  # a copy works while the session lives
    client.logout()
    assert _replay(app, cookie) == 302


@pytest.mark.parametrize(
    "end",
    [
        lambda runner: users.set_password(runner, "sales1", "mat-khau-moi-1"),
        lambda runner: users.set_active(runner, "sales1", False),
    ],
    ids=["new password", "user disabled"],
)
def test_a_cookie_replayed_after_the_account_changed_is_refused(
    app: Flask, client: WebClient, staff, runner: Runner, end
) -> None:
    cookie = _signed_in_cookie(client, "sales1")
    end(runner)
    assert _replay(app, cookie) == 302
    users.set_active(runner, "sales1", True)
    assert _replay(app, cookie) == 302  # ended for good


def test_an_admin_resetting_their_own_password_stays_signed_in(client: WebClient, staff) -> None:
    other = client.application.test_client()
    cookie = _signed_in_cookie(other, "admin1")
    client.login("admin1")
    client.post("/admin/users/admin1/password", data={"password": "mat-khau-moi-1"})
    assert client.get("/admin/").status_code == 200
    assert _replay(client.application, cookie) == 302


@pytest.mark.parametrize(
    "user_id",
    [
        lambda: "admin1|" + hashlib.sha256(b"").hexdigest()[:16],  # the old id of a password-less user
        lambda: "admin1",
        lambda: hashlib.sha256(b"admin1").hexdigest(),
    ],
    ids=["old derivation", "username", "a hash"],
)
def test_a_cookie_forged_with_the_key_is_not_a_session(app: Flask, staff, runner: Runner, user_id) -> None:
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    forged = serializer.dumps({"_user_id": user_id(), "_fresh": True})
    visitor = app.test_client()
    visitor.set_cookie("session", forged)
    assert visitor.get("/admin/").status_code == 302


def test_a_forged_cookie_gets_401_under_the_api(app: Flask, client: WebClient, staff) -> None:
    cookie = _signed_in_cookie(client, "admin1")
    visitor = app.test_client()
    visitor.set_cookie("session", cookie)
    assert visitor.get("/api/tasks").status_code == 401  # the API takes bearer tokens only


def test_printed_settings_show_no_secret() -> None:
    settings = Settings(secret_key="k-secret")
    assert "secret" not in repr(settings).replace("secret_key", "")
    crm = CrmSettings(smtp_password="p-secret", zalo_access_token="t-secret")
    assert "secret" not in repr(crm) + repr(easyedu(crm=crm))
