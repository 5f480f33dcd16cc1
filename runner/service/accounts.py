"""The user directory and its sign-in data: people, password hashes, failed-login slow-down, API tokens, locale.

A user is a ``runner.store.models.User`` row (username, full name, roles, active, e-mail) plus an
``Account`` row (password hash, locale) and any number of ``ApiToken`` rows. Extensions keep
their own facts about a person in their own tables, referring to ``users.username``. Failed
sign-ins are counted per account and per address by ``runner.service.throttle``; browser sessions
live in ``runner.service.logins``.
Only hashes are stored: passwords with werkzeug's salted PBKDF2/scrypt, tokens with SHA-256
(a token is 256 random bits, so a fast hash is enough and lookups stay indexed).

    users.create_user(runner, "lan", "Nguyễn Thị Lan", ["sales"], password="...")
    user = users.authenticate(runner, "lan", "...", now=..., address="10.0.0.7")  # BadLogin / LoginThrottled
    token = users.issue_token(runner, "lan", label="zalo bot")  # shown once
    users.verify_token(runner, token)                           # the user dict, or None
"""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from runner.errors import BadValue, Invalid, Missing, RunnerError
from runner.model import inputs
from runner.service import logins, throttle
from runner.store.models import Account, ApiToken, User

if TYPE_CHECKING:
    from runner.service.runtime import Runner

# NOTE: the groups users may be given: the lanes of the EasyEdu processes plus ``admin``.
# A list the product should hand to the runner (with its extension), not a constant of the core.
ROLES = ("marketing", "sales", "team_leader", "accountant", "customer_care", "teacher", "admin")
LOCALES = ("vi", "en")
MIN_PASSWORD = 8
USERNAME_LENGTH = 100  # NOTE: the lengths of the users table's columns
FULL_NAME_LENGTH = 200
TOKEN_PREFIX = "rt_"
USER_KEYS = ("username", "full_name", "roles", "active", "email", "locale", "has_password")
lockout_delay = throttle.lockout_delay


class BadLogin(Invalid):
    """Raised when a username/password pair is wrong (deliberately not saying which)."""


class LoginThrottled(RunnerError):
    """Raised when an account or address had too many failed logins in a row and must wait ``retry_after``."""

    def __init__(self, username: str, retry_after: timedelta):
        self.username, self.retry_after = username, retry_after
        super().__init__(
            f"account {username!r} is slowed down after failed logins; "
            f"try again in {math.ceil(retry_after.total_seconds())} s"
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _view(user: User, account: Account | None) -> dict[str, Any]:
    return {
        "username": user.username,
        "full_name": user.full_name,
        "roles": list(user.roles or []),
        "active": user.active,
        "email": user.email,
        "locale": account.locale if account else "vi",
        "has_password": bool(account and account.password_hash),
    }


def _check_password(password: str | None) -> None:
    # NOTE: also refuses None and "": a user never has an empty password.
    if not isinstance(password, str) or len(password) < MIN_PASSWORD or not password.strip():
        raise BadValue(f"password: at least {MIN_PASSWORD} characters")


def _account(s: Session, username: str) -> Account:
    account = s.get(Account, username)
    if account is None:
        active_user(s, username)  # Missing when there is no such active user
        account = Account(username=username, locale="vi")
        s.add(account)
    return account


# --- users ------------------------------------------------------------------------------------


def active_user(session: Session, username: str | None) -> User:
    """An active user in ``session``; ``Missing`` names who is missing."""
    row = session.get(User, username) if username else None
    if row is None or not row.active:
        raise Missing(f"user {username!r} does not exist or is not active")
    return row


def _check_roles(username: str, roles: Iterable[str]) -> list[str]:
    roles = list(dict.fromkeys(roles))
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise BadValue(f"user {username!r}: roles {unknown or roles!r} are not among {', '.join(ROLES)}")
    return roles


def add_user(
    session: Session,
    username: str,
    full_name: str,
    roles: Iterable[str],
    *,
    active: bool = True,
    email: str | None = None,
) -> User:
    """Add a person to the user directory in ``session`` (no sign-in account yet)."""
    roles = _check_roles(username, roles)
    if session.get(User, username) is not None:
        raise BadValue(f"user {username!r} already exists")
    row = User(username=username, full_name=full_name, roles=roles, active=active, email=email)
    session.add(row)
    session.flush()
    return row


def create_user(
    runner: Runner,
    username: str,
    full_name: str,
    roles: Iterable[str],
    *,
    password: str | None = None,
    email: str | None = None,
    locale: str = "vi",
    password_hash: str | None = None,
) -> dict[str, Any]:
    """Create a user with a sign-in account (or give an existing user without one an account).

    A password (or ``password_hash``, an already hashed one in werkzeug's format, as when
    accounts move from another system) is required: an account never has an empty one.
    """
    if locale not in LOCALES:
        raise BadValue(f"locale {locale!r}: one of {', '.join(LOCALES)}")
    inputs.check_key(username, "username", USERNAME_LENGTH)
    inputs.check_text(full_name, "full_name", max_length=FULL_NAME_LENGTH, control=True)
    inputs.check_key(email, "email", FULL_NAME_LENGTH)
    if not password_hash:
        _check_password(password)
    with runner.db.unit() as s:
        user = s.get(User, username)
        if user is None:
            user = add_user(s, username, full_name, roles, email=email)
        elif s.get(Account, username) is not None:
            raise BadValue(f"user {username!r} already exists")
        account = Account(
            username=username,
            locale=locale,
            password_set_at=_utcnow(),
            password_hash=password_hash or generate_password_hash(password),
        )  # type: ignore[arg-type]
        s.add(account)
        s.flush()
        return _view(user, account)


def set_password(runner: Runner, username: str, password: str, *, keep_session: str | None = None) -> None:
    """Replace a user's password, end their sessions (but ``keep_session``'s) and forget failed logins."""
    _check_password(password)
    with runner.db.unit() as s:
        account = _account(s, username)
        account.password_hash, account.password_set_at = generate_password_hash(password), _utcnow()
        logins.end_sessions(s, username, keep=keep_session)
        throttle.unlock(s, throttle.ACCOUNT, username)


def unlock(runner: Runner, username: str) -> bool:
    """Lift a user's failed-login slow-down at once (an admin's unlock); False when there was none."""
    with runner.db.unit() as s:
        if s.get(User, username) is None:
            raise Missing(f"user {username!r} does not exist")
        return throttle.unlock(s, throttle.ACCOUNT, username)


def unlock_address(runner: Runner, address: str) -> bool:
    """Lift the failed-login slow-down of one client address; False when there was none."""
    with runner.db.unit() as s:
        return throttle.unlock(s, throttle.ADDRESS, address)


def set_locale(runner: Runner, username: str, locale: str) -> None:
    """Remember the user's UI language."""
    if locale not in LOCALES:
        raise BadValue(f"locale {locale!r}: one of {', '.join(LOCALES)}")
    with runner.db.unit() as s:
        _account(s, username).locale = locale


def set_roles(runner: Runner, username: str, roles: Iterable[str]) -> None:
    """Replace a user's roles (role ids of ``ROLES``)."""
    roles = _check_roles(username, roles)
    with runner.db.unit() as s:
        user = s.get(User, username)
        if user is None:
            raise Missing(f"user {username!r} does not exist")
        user.roles = roles


def set_active(runner: Runner, username: str, active: bool) -> None:
    """Enable or disable a user; a disabled user cannot sign in and their tokens stop working."""
    with runner.db.unit() as s:
        user = s.get(User, username)
        if user is None:
            raise Missing(f"user {username!r} does not exist")
        user.active = active
        if not active:
            logins.end_sessions(s, username)


def feed_generation(runner: Runner, username: str) -> int:
    """Which calendar feed address of the user is live (0 until they ask for a new one)."""
    with runner.db.read() as s:
        account = s.get(Account, username)
        return account.feed_generation if account is not None else 0


def renew_feed(runner: Runner, username: str) -> int:
    """Retire the user's calendar feed address (a leaked link stops working); the new generation."""
    with runner.db.unit() as s:
        account = _account(s, username)
        account.feed_generation = (account.feed_generation or 0) + 1
        return account.feed_generation


def get_user(runner: Runner, username: str) -> dict[str, Any] | None:
    """An active user as a dict (``USER_KEYS``), or None."""
    with runner.db.read() as s:
        user = s.get(User, username) if username else None
        if user is None or not user.active:
            return None
        return _view(user, s.get(Account, username))


def list_users(runner: Runner, *, role: str | None = None) -> list[dict[str, Any]]:
    """All users with their sign-in facts, failed logins and number of live API tokens, by username."""
    with runner.db.read() as s:
        tokens = dict(
            s.execute(
                select(ApiToken.username, func.count()).where(ApiToken.revoked_at.is_(None)).group_by(ApiToken.username)
            ).all()
        )
        rows = s.execute(
            select(User, Account).outerjoin(Account, Account.username == User.username).order_by(User.username)
        ).all()
        out = []
        for user, account in rows:
            if role is None or role in (user.roles or []):
                failures, locked_until = throttle.state(s, throttle.ACCOUNT, user.username)
                out.append(
                    {
                        **_view(user, account),
                        "tokens": tokens.get(user.username, 0),
                        "failed_logins": failures,
                        "locked_until": locked_until,
                    }
                )
        return out


def roles() -> tuple[str, ...]:
    """The role ids (BPMN lanes and candidate groups)."""
    return ROLES


# --- sign-in -------------------------------------------------------------------------------------


def authenticate(
    runner: Runner,
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
    now = now or _utcnow()
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


def _sign_in_facts(runner: Runner, username: str) -> tuple[dict[str, Any] | None, str | None]:
    """The active user and their password hash, or (None, None) for anyone who cannot sign in."""
    if not username or len(username) > USERNAME_LENGTH or not username.isprintable():
        return None, None  # NOTE: cannot be a username (and a NUL byte would upset PostgreSQL)
    with runner.db.read() as s:
        user = s.get(User, username)
        account = s.get(Account, username) if user is not None else None
        if user is None or account is None or not user.active or not account.password_hash:
            return None, None
        return _view(user, account), account.password_hash


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(8))


# --- API tokens -----------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(runner: Runner, username: str, *, label: str = "", now: datetime | None = None) -> str:
    """A new API token for an active user; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with runner.db.unit() as s:
        active_user(s, username)
        s.add(
            ApiToken(
                username=username,
                token_hash=_token_hash(token),
                prefix=token[:10],
                label=label,
                created_at=now or _utcnow(),
            )
        )
    return token


def verify_token(runner: Runner, token: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The active user a live token belongs to (and note its use), or None."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    with runner.db.unit() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).first()
        if row is None or row.revoked_at is not None:
            return None
        user = s.get(User, row.username)
        if user is None or not user.active:
            return None
        row.last_used_at = now or _utcnow()
        return _view(user, s.get(Account, row.username))


def list_tokens(runner: Runner, username: str) -> list[dict[str, Any]]:
    """A user's tokens (never the tokens themselves): id, prefix, label, dates, newest first."""
    with runner.db.read() as s:
        rows = s.scalars(
            select(ApiToken)
            .where(ApiToken.username == username)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
        return [
            {
                "id": t.id,
                "prefix": t.prefix,
                "label": t.label,
                "created_at": t.created_at,
                "last_used_at": t.last_used_at,
                "revoked_at": t.revoked_at,
            }
            for t in rows
        ]


def revoke_token(runner: Runner, token_id: int, *, now: datetime | None = None) -> None:
    """Stop a token from working (kept for the record)."""
    with runner.db.unit() as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            raise Missing(f"API token {token_id} does not exist")
        if row.revoked_at is None:
            row.revoked_at = now or _utcnow()
