"""Leads come in: a new customer, checked, numbered and started on the sales procedure in one unit of work.

    lead = intake.create_lead(runner, {"name": "Trung tâm Sao Mai", "phone": "0912.345.678",
                                       "source": "Facebook", ...}, person=person)
    lead.customer_id, lead.owner, lead.instance_id      # 'KH0041', 'hung', '6f1c...'
    intake.check_lead(runner, values)                   # the cleaned values, or the same errors, nothing stored
    intake.normalize_phone("+84 912 345 678")           # '+84912345678' (E.164), as stored

``FormInvalid`` (an ``Invalid``) names every bad field at once; ``DuplicateCustomer`` (a ``Conflict``)
names the existing customer that has the phone number or e-mail address already. Either way nothing
is stored: the customer, its owner's turn, its code and its sales instance commit together or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from runner.crm import customers as crm
from runner.crm import gaps, phones, sales
from runner.crm import settings as crm_settings
from runner.crm.fields import FIELD_TYPES, clean_fields
from runner.crm.folding import phone_digits
from runner.crm.models import Customer, CustomerCode, ExtraField, RequiredField
from runner.crm.needs import Need
from runner.engine import scripting
from runner.errors import Conflict, FormInvalid, Invalid, Missing
from runner.service import policy

if TYPE_CHECKING:
    from runner.service.runtime import Runner
    from runner.service.unit import Unit

CODE_PREFIX = "KH"  # khách hàng: KH0001, KH0002... (wider past KH9999)
CODE_DIGITS = 4
PROCESS_KEY = "sales"
OWNER_ROLE = "sales"
EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+"
)
NOT_A_FIELD = ("owner",)  # given with the lead but not a profile field
# Columns the procedures fill in later, never given with a lead (not offered by ``lead_fields``).
LATER = ("status", "contract_start", "contract_end", "package", "trial_link", "zalo_group_id")


class DuplicateCustomer(Conflict):
    """Raised when a lead's phone number or e-mail address already belongs to a customer; names that customer."""

    def __init__(self, field: str, value: str, customer_id: str, name: str):
        self.field, self.value, self.customer_id, self.name = field, value, customer_id, name
        what = "phone number" if field == "phone" else "e-mail address"
        super().__init__(f"field {field!r}: the {what} {value} belongs to customer {customer_id} ({name})")


@dataclass(frozen=True)
class Lead:
    """A lead as created: its customer code, name, owner and the sales instance started for it."""

    customer_id: str
    name: str
    owner: str
    owner_name: str
    instance_id: str


# --- one value at a time ---------------------------------------------------------------------------


def normalize_phone(text: str) -> str:
    """A phone number in E.164 (+84912345678): '+84 912 345 678', '0912345678', '0912.345.678' are one number.

    ``BadValue`` (an ``Invalid``) names the field when it is no valid number.
    """
    return phones.e164(text, "field 'phone'")


def normalize_email(text: str) -> str:
    """An e-mail address in lower case, its syntax checked; ``BadValue`` names the field."""
    value = text.strip().lower()
    if len(value) > 200 or not EMAIL.fullmatch(value) or ".." in value:
        raise crm.BadValue(f"field 'email': {text!r} is not an e-mail address")
    return value


# --- checking a lead ------------------------------------------------------------------------------


def _field_of(message: str, default: str) -> str:
    """The field a ``BadValue`` message names ("field 'phone': ..."), else ``default``."""
    found = re.match(r"field '([^']+)'", message)
    return found.group(1) if found else default


def clean_lead(
    session: Session, values: Mapping[str, Any], tz: tzinfo | None = None, *, required: bool = True
) -> tuple[dict[str, Any], str | None]:
    """(profile values, owner) of a lead, typed and checked; ``FormInvalid`` names every bad field.

    With ``required`` the configured required fields (seed 003, ``RequiredField``) must be filled.
    """
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for field, raw in values.items():
        if field in NOT_A_FIELD:
            continue
        value = raw.strip() if isinstance(raw, str) else raw
        try:
            # NOTE: a value of another type is refused by clean_fields, naming the field
            if field == "phone" and isinstance(value, str) and value:
                value = normalize_phone(value)
            elif field == "email" and isinstance(value, str) and value:
                value = normalize_email(value)
            columns, extra = clean_fields(session, {field: value}, tz)
        except crm.BadValue as exc:
            errors[_field_of(str(exc), field)] = str(exc)
            continue
        cleaned.update(columns, **extra)
    configured = session.scalars(select(RequiredField.field).order_by(RequiredField.position, RequiredField.field))
    # NOTE: a customer always has a name, whatever is configured
    for field in ["name", *(configured if required else ())]:
        if field not in cleaned and field not in errors:
            errors[field] = f"field {field!r}: required"
    owner = _owner(session, values.get("owner"), errors)
    if errors:
        raise FormInvalid(errors)
    return cleaned, owner


def _owner(session: Session, raw: Any, errors: dict[str, str]) -> str | None:
    """The chosen owner's username (an active staff member of ``OWNER_ROLE``), None for the round-robin."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        errors["owner"] = f"field 'owner': expected a username, got {raw!r}"
        return None
    try:
        return crm.get_staff(session, raw.strip(), role=OWNER_ROLE).username
    except Missing as exc:
        errors["owner"] = f"field 'owner': {exc}"
        return None


def find_duplicate(session: Session, phone: str | None, email: str | None) -> DuplicateCustomer | None:
    """The error naming the customer that already has this phone number or e-mail address, or None."""
    checks = []
    if phone:
        # NOTE: search_phone is every stored spelling's digits with +84 as 0 (folding.phone_digits)
        checks.append(("phone", phone, Customer.search_phone == phone_digits(phone)))
    if email:
        checks.append(("email", email, Customer.email == email.lower()))  # ix_customers_email; stored lower case
    for field, value, condition in checks:
        found = session.execute(select(Customer.id, Customer.name).where(condition).order_by(Customer.id).limit(1))
        row = found.first()
        if row is not None:
            return DuplicateCustomer(field, value, row.id, row.name)
    return None


# --- numbering ----------------------------------------------------------------------------------------


def next_customer_id(session: Session) -> str:
    """A new customer code (KH0042), never one in use; concurrent intakes take turns on its counter row.

    NOTE: the UPDATE locks the prefix's counter row until the unit of work ends (PostgreSQL;
    SQLite has one writer anyway), so the duplicate check that follows it sees every lead
    committed before: two intakes of the same number cannot both pass it.
    """
    if session.get(CustomerCode, CODE_PREFIX) is None:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        start = _highest_code(session)
        session.execute(
            dialect.insert(CustomerCode).values(prefix=CODE_PREFIX, last_number=start).on_conflict_do_nothing()
        )
    while True:
        number = session.scalar(
            update(CustomerCode)
            .where(CustomerCode.prefix == CODE_PREFIX)
            .values(last_number=CustomerCode.last_number + 1)
            .returning(CustomerCode.last_number)
            .execution_options(synchronize_session=False)
        )
        code = f"{CODE_PREFIX}{number:0{CODE_DIGITS}d}"
        if session.get(Customer, code) is None:  # codes typed by hand (the demo, the CLI) are skipped
            return code


def _highest_code(session: Session) -> int:
    """The highest number among the codes already there (once: the counter starts after it)."""
    ids = session.scalars(select(Customer.id).where(Customer.id.like(f"{CODE_PREFIX}%")))
    numbers = [int(i[len(CODE_PREFIX) :]) for i in ids if i[len(CODE_PREFIX) :].isdigit()]
    return max(numbers, default=0)


# --- creating ---------------------------------------------------------------------------------------------


def check_lead(runner: Runner, values: Mapping[str, Any], *, required: bool = True) -> dict[str, Any]:
    """The lead's cleaned values (``owner`` among them) if it could be created now; nothing is stored.

    Raises what ``create_lead`` would: ``FormInvalid`` per field, ``DuplicateCustomer``.
    """
    with runner.db.read() as s:
        cleaned, owner = clean_lead(s, values, runner.settings.tz, required=required)
        duplicate = find_duplicate(s, cleaned.get("phone"), cleaned.get("email"))
    if duplicate is not None:
        raise duplicate
    return {**cleaned, "owner": owner}


def create_lead(
    runner: Runner,
    values: Mapping[str, Any],
    *,
    person: policy.Person | None = None,
    actor: str | None = None,
    required: bool = True,
    process_key: str = PROCESS_KEY,
) -> Lead:
    """Create the customer and start ``process_key`` for it, in one unit of work; returns the ``Lead``.

    ``values``: profile fields (``runner.crm.fields.FIELD_TYPES``, configured extra fields) and
    ``owner`` (a sales rep's username; none: the round-robin). With ``person`` (a signed-in user),
    the process's starters decide whether they may (``Forbidden``).
    """
    if not isinstance(values, Mapping):
        raise Invalid(f"a lead is a mapping of field names to values, not {type(values).__name__}")
    actor = person.username if person is not None and actor is None else actor
    with scripting.acting_as(actor), runner.unit() as unit:
        return create_lead_in(
            runner, unit, values, person=person, actor=actor, required=required, process_key=process_key
        )


def _add_customer(unit: Unit, cleaned: dict[str, Any]) -> Customer:
    """The new customer row, after the duplicate check (flushed, no owner yet)."""
    s = unit.session
    customer_id = next_customer_id(s)  # NOTE: first: it makes concurrent intakes take turns
    duplicate = find_duplicate(s, cleaned.get("phone"), cleaned.get("email"))
    if duplicate is not None:
        raise duplicate
    fields = {k: v for k, v in cleaned.items() if k != "name"}
    return crm.add_customer(s, customer_id, cleaned["name"], now=unit.now(), **fields)


def _give_owner(unit: Unit, customer: Customer, owner: str | None, needs: list[Need]) -> crm.Staff:
    """The chosen owner, or the next sales rep of the round-robin (``FormInvalid`` when there is none).

    NOTE: an owner must have what the process's messages print of them (``needs``: a phone), or the
    demo e-mail would stop steps later; a chosen one lacking it is a field error, the round-robin skips them.
    """
    if owner is not None:
        chosen = crm.get_staff(unit.session, owner)
        lacking = sales.lacks_needs(chosen, needs)
        if lacking:
            missing = ", ".join(sorted({n.field for n in lacking}))
            templates = ", ".join(sorted({n.template for n in lacking}))
            raise FormInvalid({"owner": f"field 'owner': {chosen.full_name} has no {missing}, which {templates} print"})
        customer.owner = owner
        return chosen
    try:
        return sales.assign_round_robin(
            unit.session, customer, OWNER_ROLE, exclude_current=False, now=unit.now(), needs=needs
        )
    except Missing as exc:
        raise FormInvalid({"owner": f"field 'owner': nobody to give the lead to ({exc}); choose an owner"}) from exc


def lead_fields(session: Session) -> list[str]:
    """The fields a lead form offers, required ones first: columns intake sets, then configured extra fields."""
    required = list(session.scalars(select(RequiredField.field).order_by(RequiredField.position, RequiredField.field)))
    extra = list(session.scalars(select(ExtraField.name).order_by(ExtraField.position, ExtraField.name)))
    rest = [f for f in (*FIELD_TYPES, *extra) if f not in required and f not in LATER]
    return [*required, *rest]


def create_lead_in(
    runner: Runner,
    unit: Unit,
    values: Mapping[str, Any],
    *,
    person: policy.Person | None = None,
    actor: str | None = None,
    required: bool = True,
    process_key: str = PROCESS_KEY,
) -> Lead:
    """``create_lead`` inside the caller's unit of work, so that the caller's own writes commit with the lead.

    NOTE: a lead import marks its file's row in the same transaction (``runner.crm.lead_imports``):
    a crash then leaves both or neither. The caller wraps it in ``scripting.acting_as(actor)``.
    """
    cleaned, owner = clean_lead(unit.session, values, runner.settings.tz, required=required)
    customer = _add_customer(unit, cleaned)
    if person is not None:
        # NOTE: asked while the lead has no owner yet, which every starter may see
        runner.policy.check_start(unit.session, person, unit.latest_version(process_key), customer.id)
    needs = gaps.latest_owner_needs(unit.session, process_key, Path(crm_settings.among(runner.extensions).templates))
    chosen = _give_owner(unit, customer, owner, needs)
    instance_id = unit.start(process_key, customer.id, {}, actor)
    return Lead(customer.id, customer.name, chosen.username, chosen.full_name, instance_id)
