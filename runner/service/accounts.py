"""User accounts: the user directory, sign-in with its failed-login slow-down, and API tokens.

The one module callers use. The directory (people, roles, passwords, locale) lives in
``runner.service.directory`` and API tokens in ``runner.service.tokens``; their public names
are repeated here. Signing in is checked here: failed sign-ins are counted per account and
per address by ``runner.service.throttle``; browser sessions live in ``runner.service.logins``.

    users.create_user(runner, "lan", "Nguyễn Thị Lan", ["sales"], password="...")
    user = users.authenticate(runner, "lan", "...", now=..., address="10.0.0.7")  # BadLogin / LoginThrottled
    token = users.issue_token(runner, "lan", label="zalo bot")  # shown once
    users.verify_token(runner, token)                           # the user dict, or None
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from werkzeug.security import check_password_hash, generate_password_hash

from runner.errors import BadLogin, LoginThrottled, Missing
from runner.service import throttle
from runner.service.directory import (
    FULL_NAME_LENGTH,
    LOCALES,
    MIN_PASSWORD,
    ROLE_LENGTH,
    USER_KEYS,
    USERNAME_LENGTH,
    active_user,
    add_user,
    check_role,
    create_user,
    feed_generation,
    get_user,
    list_users,
    renew_feed,
    roles,
    set_active,
    set_locale,
    set_password,
    set_roles,
    user_view,
)
from runner.service.profiles import UNCHANGED, full_names, people_gaps, person_fields, profile, update_user
from runner.service.tokens import TOKEN_PREFIX, issue_token, list_tokens, revoke_token, verify_token
from runner.store.models import Account, User

if TYPE_CHECKING:
    from runner.service.unit import Core

__all__ = [
    "FULL_NAME_LENGTH",
    "LOCALES",
    "MIN_PASSWORD",
    "ROLE_LENGTH",
    "TOKEN_PREFIX",
    "UNCHANGED",
    "USERNAME_LENGTH",
    "USER_KEYS",
    "BadLogin",
    "LoginThrottled",
    "active_user",
    "add_user",
    "authenticate",
    "check_role",
    "create_user",
    "feed_generation",
    "full_names",
    "get_user",
    "issue_token",
    "list_tokens",
    "list_users",
    "lockout_delay",
    "people_gaps",
    "person_fields",
    "profile",
    "renew_feed",
    "revoke_token",
    "roles",
    "set_active",
    "set_locale",
    "set_password",
    "set_roles",
    "unlock",
    "unlock_address",
    "update_user",
    "user_view",
    "verify_token",
]

lockout_delay = throttle.lockout_delay


# --- sign-in ------------------------------------------------------------------------------------


def authenticate(
    runner: Core,
    username: str,
    password: str,
    *,
    now: datetime | None = None,
    address: str | None = None,
    check: Callable[[str, str], bool] = check_password_hash,
) -> dict[str, Any]:
    """The user for a correct username/password; BadLogin or LoginThrottled otherwise.

    The attempt is counted on the account and on the client ``address`` before the password
    is checked (``runner.service.throttle``), so parallel guesses cannot all pass the slow-down.
    Unknown, disabled and password-less usernames are counted and hashed the same way, so
    neither the answer nor its cost tells them apart. ``now`` and ``check`` are injectable.
    """
    now = now or datetime.now(UTC)
    with runner.db.unit() as s:
        wait = throttle.reserve(s, throttle.ADDRESS, address, now) if address else timedelta(0)
        # NOTE: an address that must wait does not touch the account, so that one address
        # guessing cannot keep the account's owner out
        wait = wait or throttle.reserve(s, throttle.ACCOUNT, username, now)
    if wait:  # NOTE: raised after the unit, so that this attempt stays counted
        raise LoginThrottled(username, wait)
    user, stored = _sign_in_facts(runner, username)
    # NOTE: the hashing runs outside any transaction: it is slow on purpose, locks are not
    if not check(stored or _dummy_hash(), password or "") or user is None:
        raise BadLogin("wrong username or password")
    with runner.db.unit() as s:
        if address:
            throttle.succeeded(s, throttle.ADDRESS, address)
        throttle.succeeded(s, throttle.ACCOUNT, username)
    return user


def _sign_in_facts(runner: Core, username: str) -> tuple[dict[str, Any] | None, str | None]:
    """The active user and their password hash, or (None, None) for anyone who cannot sign in."""
    if not username or len(username) > USERNAME_LENGTH or not username.isprintable():
        return None, None  # NOTE: cannot be a username (and a NUL byte would upset PostgreSQL)
    with runner.db.read() as s:
        user = s.get(User, username)
        account = s.get(Account, username) if user is not None else None
        if user is None or account is None or not user.active or not account.password_hash:
            return None, None
        return user_view(user, account), account.password_hash


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(8))


def unlock(runner: Core, username: str) -> bool:
    """Lift a user's failed-login slow-down at once (an admin's unlock); False when there was none."""
    with runner.db.unit() as s:
        if s.get(User, username) is None:
            raise Missing(f"user {username!r} does not exist")
        return throttle.unlock(s, throttle.ACCOUNT, username)


def unlock_address(runner: Core, address: str) -> bool:
    """Lift the failed-login slow-down of one client address; False when there was none."""
    with runner.db.unit() as s:
        return throttle.unlock(s, throttle.ADDRESS, address)
