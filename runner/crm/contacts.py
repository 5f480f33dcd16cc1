"""How customers reach a staff member: phone and Zalo id, kept in ``staff`` beside the user's e-mail.

The runner edits them with the user (admin pages, ``runner users add|edit --phone --zalo``)
through the ``people`` hook of the CRM extension (``person_facts``); a phone is stored in
one format (E.164, region VN), so ``0912 345 678`` and ``+84 912 345 678`` are one number.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from runner.crm import gaps, phones
from runner.crm.models import Staff
from runner.crm.staff import staff_row
from runner.errors import BadValue, Missing
from runner.extension import PersonFacts, PersonField
from runner.model import inputs

ZALO_LENGTH = 100  # NOTE: staff.zalo_user_id is String(100)
FIELDS = (
    PersonField("phone", "--phone", "phone number customers call (0… or +84…; empty clears it)"),
    PersonField("zalo_user_id", "--zalo", "Zalo user id (empty clears it)"),
)


def normalise_phone(value: Any) -> str | None:
    """A phone number as E.164 (``+84912345678``), None when blank; ``BadValue`` names the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return phones.e164(str(value).strip())


def check_zalo(value: Any) -> str | None:
    """A Zalo user id: one word of text, None when blank; ``BadValue`` names the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    inputs.check_key(text, "zalo_user_id", ZALO_LENGTH)
    if any(c.isspace() for c in text):
        raise BadValue(f"zalo_user_id: {text!r} has spaces; a Zalo id is one word")
    return text


def check(values: Mapping[str, Any]) -> dict[str, Any]:
    """The contact facts given, normalised."""
    checkers = {"phone": normalise_phone, "zalo_user_id": check_zalo}
    return {name: checkers[name](value) for name, value in values.items()}


def read(session: Session, username: str) -> dict[str, Any]:
    """A staff member's phone and Zalo id (None when they have none yet)."""
    row = session.get(Staff, username)
    return {"phone": row.phone if row else None, "zalo_user_id": row.zalo_user_id if row else None}


def write(session: Session, username: str, values: Mapping[str, Any]) -> None:
    """Store checked contact facts (None clears one) on the user's staff row."""
    row = staff_row(session, username)
    if row is None:
        raise Missing(f"user {username!r} does not exist")
    for name, value in values.items():
        setattr(row, name, value)


def person_facts(templates: str | Path) -> PersonFacts:
    """The CRM's facts about people, and who lacks one that a template in ``templates`` prints."""
    folder = Path(templates)
    return PersonFacts(
        fields=FIELDS,
        read=read,
        check=check,
        write=write,
        gaps=lambda session: gaps.gaps(session, folder),
        review=lambda session, processes: gaps.deploy_review(session, folder, processes),
    )
