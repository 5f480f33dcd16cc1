"""The failed-login slow-down through the sign-in page: per account and per address, the same
for usernames that do not exist, with an end and an unlock (CLI and admin page).

Time is the ``auth_clock`` fixture, moved by the tests.
"""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.security import check_password_hash

from runner.cli import main
from runner.service import accounts as users
from runner.service import throttle
from runner.service.runtime import Runner
from tests.webapp import PASSWORD, WebClient, add_user

WRONG = "sai-mat-khau"
REFUSED = "Tên đăng nhập hoặc mật khẩu không đúng."


def _try(client: WebClient, username: str, password: str = WRONG, address: str = "127.0.0.1"):
    return client.post(
        "/login", data={"username": username, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def _answer(response) -> tuple[int, str]:
    """What a visitor learns from a sign-in answer: the status and the flashed message."""
    page = response.get_data(as_text=True)
    start = page.index('class="flash')
    return response.status_code, page[start : page.index("</", start)]


# --- unknown usernames look exactly like known ones -------------------------------------------

CANNOT_SIGN_IN = [
    # (who, how they are set up) -- each must answer and cost what a wrong password costs
    ("ghost", None),
    ("inactive", lambda runner: users.set_active(runner, "inactive", False)),
    ("x" * 5000, None),  # longer than any username can be
    ("nul\x00byte", None),  # PostgreSQL cannot even compare it
]


IDS = ["unknown", "inactive", "5000 chars", "NUL"]


# NOTE: a NUL byte never reaches the sign-in page (web/edge.py answers 400), only authenticate
@pytest.mark.parametrize("username,setup", CANNOT_SIGN_IN[:3], ids=IDS[:3])
def test_who_cannot_sign_in_gets_the_answer_and_cost_of_a_wrong_password(
    client: WebClient, staff, runner: Runner, username: str, setup
) -> None:
    add_user(runner, "inactive", ["sales"])
    if setup:
        setup(runner)
    known = [_answer(_try(client, "sales1")) for _ in range(6)]
    unknown = [_answer(_try(client, username)) for _ in range(6)]
    assert unknown == known  # 401 four... five times, then 429 "wait 30 s", in the same words
    assert known[0] == (401, known[0][1]) and REFUSED in known[0][1] and known[-1][0] == 429


@pytest.mark.parametrize("username,setup", CANNOT_SIGN_IN, ids=IDS)
def test_who_cannot_sign_in_pays_one_password_hash_like_everyone(any_runner: Runner, username: str, setup) -> None:
    runner = any_runner
    add_user(runner, "sales1", ["sales"])
    add_user(runner, "inactive", ["sales"])
    if setup:
        setup(runner)
    calls: list[str] = []

    def check(stored: str, password: str) -> bool:
        calls.append(stored.split(":")[0])
        return check_password_hash(stored, password)

    for name in ("sales1", username):
        with pytest.raises(users.BadLogin):
            users.authenticate(runner, name, WRONG, check=check)
    assert len(calls) == 2 and calls[0] == calls[1]  # one check each, with the same kind of hash


# --- per address -----------------------------------------------------------------------------------


def test_one_address_guessing_many_usernames_is_slowed_down(
    client: WebClient, staff, runner: Runner, monkeypatch
) -> None:
    monkeypatch.setenv("RUNNER_DATABASE_URL", runner.settings.database_url)
    for i in range(throttle.ADDRESS.free + 1):
        assert _try(client, f"ghost{i}").status_code == 401
    assert _try(client, "sales1", PASSWORD).status_code == 429  # even a right password from there waits
    assert _try(client, "sales1", PASSWORD, address="10.1.2.3").status_code == 302  # others are not
    assert main(["users", "unlock", "sales1", "--address", "127.0.0.1"]) == 0
    assert _try(client, "marketing1", PASSWORD).status_code == 302


def test_a_right_password_gives_back_only_its_own_attempt_to_the_address(
    client: WebClient, staff, runner: Runner
) -> None:
    for i in range(throttle.ADDRESS.free):
        _try(client, f"ghost{i}")
    assert _try(client, "sales1", PASSWORD).status_code == 302
    assert _try(client, "ghost-last").status_code == 401  # the 21st failure, still free ...
    assert _try(client, "marketing1", PASSWORD).status_code == 429  # ... and the wait starts after it


# --- the slow-down ends, and an admin can end it at once ----------------------------------------------


def _slow_down(client: WebClient, username: str) -> None:
    for _ in range(throttle.ACCOUNT.free + 1):
        _try(client, username)
    assert _try(client, username, PASSWORD).status_code == 429


def test_guesses_during_the_wait_do_not_push_its_end_back(client: WebClient, staff, auth_clock) -> None:
    _slow_down(client, "admin1")  # five failures: 30 s
    for _ in range(2):
        auth_clock.advance(10)
        assert _try(client, "admin1", address="10.6.6.6").status_code == 429  # counted, not checked
    auth_clock.advance(10)
    assert _try(client, "admin1", PASSWORD, address="10.0.0.1").status_code == 302


def _failures(runner: Runner, username: str) -> int:
    return next(u["failed_logins"] for u in users.list_users(runner) if u["username"] == username)


def test_an_address_that_must_wait_no_longer_counts_on_the_account(
    client: WebClient, staff, runner: Runner, auth_clock
) -> None:
    for i in range(throttle.ADDRESS.free + 1):
        _try(client, f"ghost{i}", address="10.6.6.6")
    before = _failures(runner, "admin1")
    for _ in range(10):
        auth_clock.advance(1)
        assert _try(client, "admin1", address="10.6.6.6").status_code == 429
    assert _failures(runner, "admin1") == before == 0
    assert _try(client, "admin1", PASSWORD, address="10.0.0.1").status_code == 302


def test_runner_users_unlock_lets_the_user_in_at_once(
    client: WebClient, staff, runner: Runner, capsys, monkeypatch
) -> None:
    _slow_down(client, "admin1")
    monkeypatch.setenv("RUNNER_DATABASE_URL", runner.settings.database_url)
    assert main(["users", "unlock", "admin1"]) == 0
    assert "admin1 unlocked" in capsys.readouterr().out
    assert _try(client, "admin1", PASSWORD).status_code == 302
    assert main(["users", "unlock", "nobody"]) == 1


def test_the_admin_user_page_shows_the_wait_and_unlocks(app: Flask, client: WebClient, staff) -> None:
    _slow_down(client, "sales1")
    admin = app.test_client()
    admin.login("admin1")
    page = admin.get("/admin/users/sales1").get_data(as_text=True)
    assert 'data-testid="failed-logins">6' in page and "phải chờ đến" in page
    response = admin.post("/admin/users/sales1/unlock")
    assert response.status_code == 302
    assert "có thể đăng nhập lại ngay" in admin.get("/admin/users/sales1").get_data(as_text=True)
    assert _try(client, "sales1", PASSWORD).status_code == 302
