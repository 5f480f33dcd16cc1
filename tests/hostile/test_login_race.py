"""Parallel wrong passwords cannot outrun the failed-login slow-down (SQLite and PostgreSQL).

40 threads, released together by a barrier, each try a wrong password through
``users.authenticate`` on the real database. Every attempt is counted, and only the
attempts before the slow-down get a real password check: the check is counted through
the ``check`` hook, which calls the real ``check_password_hash``.

Each row is one kind of attack: one account from many places, or many made-up usernames
from one address (which only the address throttle stops).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from werkzeug.security import check_password_hash, generate_password_hash

from runner.service import accounts as users
from runner.service import throttle
from runner.service.runtime import Runner

ATTEMPTS = 40
NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ATTACKS = [
    # (name, username of attempt i, address of attempt i, the throttle that must stop them, its subject)
    ("one account", lambda i: "lan", lambda i: f"10.0.{i}.1", throttle.ACCOUNT, "lan"),
    ("made-up usernames from one address", lambda i: f"ghost{i}", lambda i: "10.9.9.9", throttle.ADDRESS, "10.9.9.9"),
]


class CountingCheck:
    """``check_password_hash``, counting its calls (threads call it at once)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, stored: str, password: str) -> bool:
        with self._lock:
            self.calls += 1
        return check_password_hash(stored, password)


def _attempt(runner: Runner, username: str, address: str, check: CountingCheck, barrier: threading.Barrier) -> str:
    barrier.wait()
    try:
        users.authenticate(runner, username, "wrong-password", now=NOW, address=address, check=check)
    except users.LoginThrottled:
        return "throttled"
    except users.BadLogin:
        return "refused"
    return "signed in"


@pytest.mark.parametrize("name,username,address,rule,subject", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_parallel_wrong_logins_get_no_more_checks_than_are_free(
    any_runner: Runner,
    name: str,
    username: Callable[[int], str],
    address: Callable[[int], str],
    rule: throttle.Rule,
    subject: str,
) -> None:
    # a cheap hash keeps the test fast; the dummy hash of unknown users is werkzeug's default
    users.create_user(
        any_runner, "lan", "Lan", ["sales"], password_hash=generate_password_hash("mat-khau-lan", "pbkdf2:sha256:1000")
    )
    check, barrier = CountingCheck(), threading.Barrier(ATTEMPTS)
    with ThreadPoolExecutor(ATTEMPTS) as pool:
        outcomes = list(
            pool.map(lambda i: _attempt(any_runner, username(i), address(i), check, barrier), range(ATTEMPTS))
        )
    free = rule.free + 1  # NOTE: the attempt after the free ones is checked, and its failure starts the wait
    assert outcomes.count("signed in") == 0
    assert check.calls == outcomes.count("refused") <= free
    assert outcomes.count("throttled") == ATTEMPTS - check.calls
    with any_runner.db.read() as s:
        failures, locked_until = throttle.state(s, rule, subject)
    assert failures == ATTEMPTS  # every attempt counted, none lost to a concurrent write
    assert locked_until is not None and locked_until > NOW
