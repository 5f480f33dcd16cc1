"""Editing a customer by hand: profile columns, extra fields, tags and the owner, each change kept.

    editing.edit_customer(runner, "KH0001", {"phone": "0912 000 111", "owner": "linh"}, person=p, version=3)
    editing.editable(runner, "KH0001")     # the values an edit form shows, and the version they are of
    editing.changes(session, "KH0001")     # who changed which field when, old -> new (the timeline's rows)

An edit names only the fields it changes (a partial update); an empty value clears a field.
Every changed field is a ``CustomerChange`` row (who, when by the runner's clock, old, new)
and the customer's ``version`` goes up by one. An edit made on an older version than the
stored one is an ``EditConflict`` naming the fields changed since and who changed them:
nobody overwrites someone else's edit unseen. A new owner takes over the customer's running
work: the open tasks assigned to the old owner and the process variable ``owner`` (the
assignee of later steps), through the runner's ``handover``.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runner.crm import customers as crm
from runner.crm import intake
from runner.crm.fields import FIELD_TYPES, clean_fields, coerce, json_value
from runner.crm.folding import phone_digits
from runner.crm.models import BadValue, Customer, CustomerChange, CustomerTag, ExtraField, Missing, RequiredField, Staff
from runner.errors import Conflict, Forbidden, FormInvalid
from runner.model.inputs import text_problem
from runner.service import handover
from runner.service.policy import Person

if TYPE_CHECKING:
    from runner.service.runtime import Runner

EDITORS = frozenset({"sales", "marketing", "customer_care", "team_leader", "admin"})  # who edits a profile
OWNER_EDITORS = frozenset({"team_leader", "admin"})  # who gives a customer to another rep
OWNER_ROLES = ("sales", "team_leader")  # who may own a customer
OWNER_VARIABLES = ("owner",)  # the process variables that name the owner (``${owner}`` in the diagrams)
TAG_MAX = 100  # customer_tags.tag


class EditConflict(Conflict):
    """Raised when a customer changed after the version an edit was made on; ``fields`` says what and by whom."""

    def __init__(self, customer_id: str, seen: int, current: int, fields: list[dict[str, Any]]):
        self.version, self.fields = current, fields
        named = ", ".join(f"{f['field']} ({f['actor'] or 'a process'})" for f in fields) or "its fields"
        super().__init__(
            f"customer {customer_id!r} was changed since version {seen} (now {current}): {named}; "
            "reload it and apply your change again"
        )


def values_of(session: Session, row: Customer) -> dict[str, Any]:
    """Every editable value of a customer as JSON: columns, extra fields, ``owner`` and ``tags``."""
    values = {field: json_value(getattr(row, field)) for field in FIELD_TYPES}
    names = session.scalars(select(ExtraField.name).order_by(ExtraField.position, ExtraField.name))
    values.update({name: (row.extra or {}).get(name) for name in names})
    values.update(owner=row.owner, tags=sorted(crm.tags(session, row.id)))  # a set: compared sorted
    return values


def editable(runner: Runner, customer_id: str) -> dict[str, Any]:
    """The values an edit form shows (``values``) and the ``version`` they are of; ``Missing`` if none."""
    with runner.db.read() as s:
        row = crm.get_customer(s, customer_id)
        return {"values": values_of(s, row), "version": row.version}


def form_options(runner: Runner) -> dict[str, Any]:
    """What an edit form offers: the configured lists by field, the extra fields, and who may own a customer."""
    with runner.db.read() as s:
        configured = crm.lists(s)
        owners = [
            {"username": p.username, "full_name": p.full_name}
            for p in s.scalars(select(Staff).order_by(Staff.username))
            if p.active and set(p.roles or []) & set(OWNER_ROLES)
        ]
    return {
        "lists": {
            "source": [x["name"] for x in configured["sources"]],
            "group": [x["name"] for x in configured["groups"]],
            "occupation": [x["name"] for x in configured["occupations"]],
            "school": [x["name"] for x in configured["schools"]],
        },
        "extra_fields": configured["extra_fields"],
        "required": configured["required_fields"],
        "owners": sorted(owners, key=lambda o: (o["full_name"], o["username"])),
    }


def changes(session: Session, customer_id: str, *, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
    """The customer's changed fields after version ``after``, newest first (ix_customer_changes_customer_version)."""
    rows = session.scalars(
        select(CustomerChange)
        .where(CustomerChange.customer_id == customer_id, CustomerChange.version > after)
        .order_by(CustomerChange.version.desc(), CustomerChange.id.desc())
        .limit(limit)
    )
    return [
        {"at": c.at, "field": c.field, "old": c.old, "new": c.new, "actor": c.actor, "version": c.version} for c in rows
    ]


def check_may_edit(person: Person, fields: list[str]) -> None:
    """Forbidden, naming the field, when the person's roles do not let them make this edit."""
    if not person.roles & EDITORS:
        raise Forbidden(f"{person.username} may not edit customers (roles {', '.join(sorted(EDITORS))})")
    if "owner" in fields and not person.roles & OWNER_EDITORS:
        raise Forbidden("field 'owner': only team leaders and admins give a customer to another staff member")


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, (str, list, tuple)) and not (raw.strip() if isinstance(raw, str) else raw))


def _clean(session: Session, field: str, raw: Any, tz: tzinfo | None) -> Any:
    """One field's new value as stored (JSON); BadValue names the field."""
    if field == "tags":
        found = [] if _blank(raw) else sorted(crm.split_tags(raw))
        for tag in found:  # NOTE: checked here, not by the database: PostgreSQL would fail the whole unit
            problem = text_problem(tag) or (len(tag) > TAG_MAX and f"at most {TAG_MAX} characters")
            if problem:
                raise BadValue(f"field 'tags': {tag[:40]!r}: {problem}")
        return found
    if field == "owner":
        if _blank(raw) or not isinstance(raw, str):
            raise BadValue("field 'owner': choose a staff member (a username)")
        person = crm.get_staff(session, raw.strip())
        if not set(person.roles or []) & set(OWNER_ROLES):
            raise BadValue(f"field 'owner': {raw!r} is not a sales rep or team leader")
        return person.username
    if field in ("phone", "email") and isinstance(raw, str) and raw.strip():
        # NOTE: stored as a new lead's are (E.164, lower case), so duplicates and search find them
        return (intake.normalize_phone if field == "phone" else intake.normalize_email)(raw.strip())
    if _blank(raw):
        required = session.scalar(select(RequiredField.field).where(RequiredField.field == field))
        if field == "name" or required:
            raise BadValue(f"field {field!r}: is required and cannot be emptied")
        if field in FIELD_TYPES or session.get(ExtraField, field) is not None:
            return None
    columns, extra = clean_fields(session, {field: raw}, tz)
    return json_value(columns.get(field, extra.get(field)))


def clean_edit(
    session: Session, customer_id: str, values: dict[str, Any], tz: tzinfo | None, before: dict[str, Any]
) -> dict[str, Any]:
    """Every field of an edit typed and checked; FormInvalid maps each bad field to its message.

    A field left empty that was empty (``before``) is no change, even when it is required. A phone
    number or e-mail address of another customer is refused, naming that customer.
    """
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, raw in values.items():
        if _blank(raw) and _blank(before.get(field)) and field in before:
            continue
        try:
            cleaned[field] = _clean(session, field, raw, tz)
        except BadValue as exc:
            errors[field] = str(exc)
        except Missing as exc:  # an owner who is not (or no longer) staff
            errors[field] = f"field {field!r}: {exc}"
    for field in ("phone", "email"):
        value = cleaned.get(field)
        found = intake.find_duplicate(session, value, None) if field == "phone" else None
        found = intake.find_duplicate(session, None, value) if field == "email" else found
        if value and found is not None and found.customer_id != customer_id:
            errors[field] = str(found)
    if errors:
        raise FormInvalid(errors)
    return cleaned


def _same(field: str, old: Any, new: Any) -> bool:
    """Whether a new value is the old one (a phone number in another spelling, an e-mail in other case)."""
    if field == "phone" and old and new:
        return phone_digits(old) == phone_digits(new)
    if field == "email" and old and new:
        return str(old).lower() == new
    return old == new


def _store(session: Session, row: Customer, field: str, new: Any, now: Any) -> None:
    if field == "tags":
        kept = set(new)
        for tag in session.scalars(select(CustomerTag).where(CustomerTag.customer_id == row.id)):
            if tag.tag not in kept:
                session.delete(tag)
        session.flush()
        known = set(crm.tags(session, row.id))
        session.add_all(CustomerTag(customer_id=row.id, tag=t, added_at=now) for t in new if t not in known)
    elif field == "owner":
        row.owner = new
    elif field in FIELD_TYPES:
        setattr(row, field, coerce(field, FIELD_TYPES[field], new))  # back from JSON: dates
    else:
        extra = dict(row.extra or {})
        if new is None:
            extra.pop(field, None)
        else:
            extra[field] = new
        row.extra = extra


def edit_customer(
    runner: Runner, customer_id: str, values: dict[str, Any], *, person: Person, version: int | None
) -> dict[str, Any]:
    """Apply a partial edit made on ``version`` (None: the stored one); returns the changes and tasks moved.

    Forbidden names a field the person may not change, FormInvalid every bad value, Missing the
    customer, EditConflict the fields someone changed since ``version``. Nothing is stored on error.
    """
    if not isinstance(values, dict) or not values:
        raise FormInvalid({"fields": "no field to change"})
    check_may_edit(person, list(values))
    now = runner.now()
    with runner.unit() as unit:
        s = unit.session
        row = crm.get_customer(s, customer_id, lock=True)  # NOTE: a second editor waits here, then sees the new version
        if version is not None and version != row.version:
            raise EditConflict(customer_id, version, row.version, changes(s, customer_id, after=version))
        before = values_of(s, row)
        wanted = clean_edit(s, customer_id, values, runner.settings.tz, before)
        diff = {f: new for f, new in wanted.items() if not _same(f, before.get(f), new)}
        if not diff:
            return {"version": row.version, "changes": [], "tasks": []}
        row.version += 1
        for field, new in diff.items():
            _store(s, row, field, new, now)
            s.add(
                CustomerChange(
                    customer_id=row.id,
                    version=row.version,
                    field=field,
                    old=before.get(field),
                    new=new,
                    actor=person.username,
                    at=now,
                )
            )
        s.flush()
        moved: dict[str, Any] = {"tasks": []}
        if "owner" in diff:
            moved = handover.hand_over(
                unit, customer_id, before["owner"], diff["owner"], person.username, OWNER_VARIABLES
            )
        return {"version": row.version, "changes": sorted(diff), "tasks": moved["tasks"]}
