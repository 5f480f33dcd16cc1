"""The user directory: people, the groups (roles) they work in, whether they may sign in, their account.

A user is a ``runner.store.models.User`` row (username, full name, roles, active, e-mail) plus an
``Account`` row (password hash, locale, calendar feed generation). Extensions keep their own
facts about a person in their own tables, referring to ``users.username``. Only password
hashes are stored (werkzeug's salted PBKDF2/scrypt). Callers use it through
``runner.service.accounts``, which adds sign-in and API tokens.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from runner.errors import BadValue, Missing
from runner.model import inputs
from runner.service import logins, throttle
from runner.store.models import Account, ApiToken, User

if TYPE_CHECKING:
    from runner.service.unit import Core

LOCALES = ("vi", "en")
MIN_PASSWORD = 8
USERNAME_LENGTH = 100  # NOTE: the lengths of the users table's columns
FULL_NAME_LENGTH = 200
ROLE_LENGTH = inputs.KEY_LENGTH  # a group name is a candidate group or lane: user_tasks.lane is String(200)
USER_KEYS = ("username", "full_name", "roles", "active", "email", "locale", "has_password")


# One @, a dot in the domain, no spaces: what a mail server accepts, not the whole of RFC 5322.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def check_email(email: Any) -> str | None:
    """An e-mail address as stored (trimmed), None when blank; ``BadValue`` names the field."""
    if email is None or (isinstance(email, str) and not email.strip()):
        return None
    inputs.check_text(email, "email", max_length=FULL_NAME_LENGTH, control=True)
    text = str(email).strip()
    if not _EMAIL.fullmatch(text):
        raise BadValue(f"email: {text!r} is not an e-mail address")
    return text


def _utcnow() -> datetime:
    return datetime.now(UTC)


def user_view(user: User, account: Account | None) -> dict[str, Any]:
    """A user as the plain dict the callers get (``USER_KEYS``)."""
    return {
        "username": user.username,
        "full_name": user.full_name,
        "roles": list(user.roles or []),
        "active": user.active,
        "email": user.email,
        "locale": account.locale if account else "vi",
        "has_password": bool(account and account.password_hash),
    }


def _check_password(password: str | None) -> str:
    # NOTE: also refuses None and "": a user never has an empty password.
    if not isinstance(password, str) or len(password) < MIN_PASSWORD or not password.strip():
        raise BadValue(f"password: at least {MIN_PASSWORD} characters")
    return password


def _account(s: Session, username: str) -> Account:
    account = s.get(Account, username)
    if account is None:
        active_user(s, username)  # Missing when there is no such active user
        account = Account(username=username, locale="vi")
        s.add(account)
    return account


def active_user(session: Session, username: str | None) -> User:
    """An active user in ``session``; ``Missing`` names who is missing."""
    row = session.get(User, username) if username else None
    if row is None or not row.active:
        raise Missing(f"user {username!r} does not exist or is not active")
    return row


def check_role(role: Any) -> str:
    """A well-formed group name: text without control characters, not blank, no surrounding spaces."""
    inputs.check_key(role, "role", ROLE_LENGTH)
    if not isinstance(role, str) or not role.strip() or role != role.strip():
        raise BadValue(f"role {role!r}: a group name without surrounding spaces")
    return role


def _check_roles(username: str, roles: Iterable[str], known: Collection[str]) -> list[str]:
    roles = list(dict.fromkeys(roles))
    if not known:  # NOTE: no extension names the groups: any well-formed name is one
        if not roles:
            raise BadValue(f"user {username!r}: give at least one role")
        for role in roles:
            check_role(role)
        return roles
    unknown = [r for r in roles if r not in known]
    if unknown or not roles:
        raise BadValue(f"user {username!r}: roles {unknown or roles!r} are not among {', '.join(known)}")
    return roles


def add_user(
    session: Session,
    username: str,
    full_name: str,
    roles: Iterable[str],
    *,
    active: bool = True,
    email: str | None = None,
    known: Collection[str] = (),
) -> User:
    """Add a person to the user directory in ``session`` (no sign-in account yet).

    Their roles must be among ``known`` (the runner's ``roles``); with none known, well-formed names.
    """
    roles = _check_roles(username, roles, known)
    if session.get(User, username) is not None:
        raise BadValue(f"user {username!r} already exists")
    row = User(username=username, full_name=full_name, roles=roles, active=active, email=email)
    session.add(row)
    session.flush()
    return row


def create_user(
    runner: Core,
    username: str,
    full_name: str,
    roles: Iterable[str],
    *,
    password: str | None = None,
    email: str | None = None,
    locale: str = "vi",
    password_hash: str | None = None,
    facts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Create a user with a sign-in account (or give an existing user without one an account).

    A password (or ``password_hash``, an already hashed one in werkzeug's format, as when
    accounts move from another system) is required: an account never has an empty one.
    ``facts`` are what extensions keep about people (a phone), checked first and stored with the user.
    """
    if locale not in LOCALES:
        raise BadValue(f"locale {locale!r}: one of {', '.join(LOCALES)}")
    inputs.check_key(username, "username", USERNAME_LENGTH)
    inputs.check_text(full_name, "full_name", max_length=FULL_NAME_LENGTH, control=True)
    email = check_email(email)
    checked = runner.extensions.check_person(dict(facts or {}))
    if not password_hash:  # NOTE: hashed before the unit of work: slow on purpose, locks are not
        password_hash = generate_password_hash(_check_password(password))
    with runner.db.unit() as s:
        user = s.get(User, username)
        if user is None:
            user = add_user(s, username, full_name, roles, email=email, known=runner.extensions.roles)
        elif s.get(Account, username) is not None:
            raise BadValue(f"user {username!r} already exists")
        account = Account(
            username=username,
            locale=locale,
            password_set_at=_utcnow(),
            password_hash=password_hash,
        )
        s.add(account)
        s.flush()
        runner.extensions.write_person(s, username, checked)
        return user_view(user, account)


def set_password(runner: Core, username: str, password: str, *, keep_session: str | None = None) -> None:
    """Replace a user's password, end their sessions (but ``keep_session``'s) and forget failed logins."""
    _check_password(password)
    with runner.db.unit() as s:
        account = _account(s, username)
        account.password_hash, account.password_set_at = generate_password_hash(password), _utcnow()
        logins.end_sessions(s, username, keep=keep_session)
        throttle.unlock(s, throttle.ACCOUNT, username)


def set_locale(runner: Core, username: str, locale: str) -> None:
    """Remember the user's UI language."""
    if locale not in LOCALES:
        raise BadValue(f"locale {locale!r}: one of {', '.join(LOCALES)}")
    with runner.db.unit() as s:
        _account(s, username).locale = locale


def set_roles(runner: Core, username: str, roles: Iterable[str]) -> None:
    """Replace a user's roles (among ``roles(runner)``, or any well-formed names when it is empty)."""
    roles = _check_roles(username, roles, runner.extensions.roles)
    with runner.db.unit() as s:
        user = s.get(User, username)
        if user is None:
            raise Missing(f"user {username!r} does not exist")
        user.roles = roles


def set_active(runner: Core, username: str, active: bool) -> None:
    """Enable or disable a user; a disabled user cannot sign in and their tokens stop working."""
    with runner.db.unit() as s:
        user = s.get(User, username)
        if user is None:
            raise Missing(f"user {username!r} does not exist")
        user.active = active
        if not active:
            logins.end_sessions(s, username)


def feed_generation(runner: Core, username: str) -> int:
    """Which calendar feed address of the user is live (0 until they ask for a new one)."""
    with runner.db.read() as s:
        account = s.get(Account, username)
        return account.feed_generation if account is not None else 0


def renew_feed(runner: Core, username: str) -> int:
    """Retire the user's calendar feed address (a leaked link stops working); the new generation."""
    with runner.db.unit() as s:
        account = _account(s, username)
        account.feed_generation = (account.feed_generation or 0) + 1
        return account.feed_generation


def get_user(runner: Core, username: str) -> dict[str, Any] | None:
    """An active user as a dict (``USER_KEYS``), or None."""
    with runner.db.read() as s:
        user = s.get(User, username) if username else None
        if user is None or not user.active:
            return None
        return user_view(user, s.get(Account, username))


def list_users(runner: Core, *, role: str | None = None) -> list[dict[str, Any]]:
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
                        **user_view(user, account),
                        "tokens": tokens.get(user.username, 0),
                        "failed_logins": failures,
                        "locked_until": locked_until,
                    }
                )
        return out


def roles(runner: Core) -> tuple[str, ...]:
    """The groups (BPMN lanes and candidate groups) the runner's extensions name; empty: any well-formed name."""
    return runner.extensions.roles
