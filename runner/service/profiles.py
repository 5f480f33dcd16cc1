"""A person's profile beside their sign-in: full name, e-mail, and the facts extensions keep (a phone).

Edited by the admin pages and ``runner users edit``; every value is checked before anything is
stored, and the user's row and the extensions' facts change in one unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from runner.errors import BadValue, Missing
from runner.model import inputs
from runner.service.directory import FULL_NAME_LENGTH, check_email, user_view
from runner.store.models import Account, User

if TYPE_CHECKING:
    from runner.service.unit import Core

UNCHANGED: Any = object()  # NOTE: "leave as it is", distinct from None ("clear it")


def check_full_name(full_name: Any) -> str:
    """A full name: text without control characters, not blank."""
    inputs.check_text(full_name, "full_name", max_length=FULL_NAME_LENGTH, control=True)
    if not isinstance(full_name, str) or not full_name.strip():
        raise BadValue("full_name: a user needs a full name")
    return full_name.strip()


def update_user(
    runner: Core,
    username: str,
    *,
    full_name: Any = UNCHANGED,
    email: Any = UNCHANGED,
    facts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Change a user's full name, e-mail and extension facts (``facts``: {name: value}, None clears)."""
    name = check_full_name(full_name) if full_name is not UNCHANGED else UNCHANGED
    mail = check_email(email) if email is not UNCHANGED else UNCHANGED
    checked = runner.extensions.check_person(dict(facts or {}))  # NOTE: all checked before any write
    with runner.db.unit() as s:
        user = s.get(User, username)
        if user is None:
            raise Missing(f"user {username!r} does not exist")
        if name is not UNCHANGED:
            user.full_name = name
        if mail is not UNCHANGED:
            user.email = mail
        runner.extensions.write_person(s, username, checked)
        return {**user_view(user, s.get(Account, username)), **runner.extensions.read_person(s, username)}


def profile(runner: Core, username: str) -> dict[str, Any] | None:
    """A user (active or not) with the facts extensions keep about them, or None."""
    with runner.db.read() as s:
        user = s.get(User, username) if username else None
        if user is None:
            return None
        return {**user_view(user, s.get(Account, username)), **runner.extensions.read_person(s, username)}


def person_fields(runner: Core) -> tuple[str, ...]:
    """The names of the facts the runner's extensions keep about people (``phone``, ...)."""
    return tuple(f.name for f in runner.extensions.person_fields)


def people_gaps(runner: Core) -> list[dict[str, Any]]:
    """The people who lack what a deployed process's step needs of them (name, field, template, step)."""
    with runner.db.read() as s:
        return runner.extensions.people_gaps(s)


def full_names(runner: Core) -> dict[str, str]:
    """Every user's full name by username: pages show people by name, never by login."""
    with runner.db.read() as s:
        return {username: name for username, name in s.execute(select(User.username, User.full_name))}
