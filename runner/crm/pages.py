"""Reads behind the customer pages and the API's customer endpoint, each in its own read session.

    pages.customer_profile(runner, "KH0001")               # crm.customer_view; Missing when there is none
    pages.search_customers(runner, person, "lan", limit=50)  # only the customers the person may see
    pages.calendar_feed(runner, "minh", since=..., tz=...)  # the iCalendar feed's bytes
    pages.payment_facts(runner, "KH0001")                  # newest order, newest contract and its value
    pages.lead_form(runner)                                # the new-lead form's fields and sales reps

The web app calls these (and ``runner.crm.views``) and never opens a session itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from runner.crm import bookings, customers, intake, sales, views
from runner.crm.fields import FIELD_TYPES, LISTED
from runner.crm.models import Customer, ExtraField, RequiredField
from runner.service import policy
from runner.store.models import User

if TYPE_CHECKING:
    from runner.service.runtime import Runner


def customer_profile(runner: Runner, customer_id: str) -> dict[str, Any]:
    """Everything about a customer (``customers.customer_view``); ``Missing`` (a NotFound) when there is none."""
    with runner.db.read() as s:
        return customers.customer_view(s, customer_id)


def extra_field_labels(runner: Runner) -> dict[str, str]:
    """The configured extra fields' names -> their labels."""
    with runner.db.read() as s:
        return {field["name"]: field["label"] for field in customers.lists(s)["extra_fields"]}


def search_customers(
    runner: Runner,
    person: policy.Person,
    text: str = "",
    *,
    tag: str | None = None,
    limit: int = 50,
    after: str | None = None,
) -> list[dict[str, Any]]:
    """``views.find_customers`` narrowed to the customers the person may see, after the customer id ``after``."""
    where = runner.policy.condition(person, Customer.id)
    return views.find_customers(runner, text, tag=tag, limit=limit, where=where, after=after)


def calendar_feed(runner: Runner, username: str, *, since: datetime, tz: ZoneInfo) -> bytes:
    """A staff member's appointments since ``since`` as iCalendar (``bookings.feed``)."""
    with runner.db.read() as s:
        return bookings.feed(s, username, since=since, tz=tz)


def payment_facts(runner: Runner, customer_id: str) -> dict[str, Any]:
    """The customer's newest order and contract with its value (``sales.payment_view``)."""
    with runner.db.read() as s:
        return sales.payment_view(s, customer_id)


def lead_form(runner: Runner) -> dict[str, Any]:
    """The new-lead form: ``fields`` (name, data_type, required, choices, label of an extra field) and ``owners``.

    ``owners`` are the active sales reps as (username, full name), whom the lead may be given to.
    """
    with runner.db.read() as s:
        configured = customers.lists(s)
        extra = {f.name: f for f in s.scalars(select(ExtraField))}
        required = {"name", *s.scalars(select(RequiredField.field))}  # a name always (runner.crm.intake)
        fields = [
            {
                "name": name,
                "data_type": FIELD_TYPES[name] if name in FIELD_TYPES else extra[name].data_type,
                "required": name in required,
                "choices": _choices(configured, name),
                "label": extra[name].label if name in extra else None,
            }
            for name in intake.lead_fields(s)
        ]
        # NOTE: users, not staff rows: a rep added by the admin pages has no staff row until given a customer
        people = s.execute(select(User.username, User.full_name, User.roles).where(User.active).order_by(User.username))
        owners = [(username, name) for username, name, roles in people if intake.OWNER_ROLE in (roles or [])]
    return {"fields": fields, "owners": owners}


def _choices(configured: dict[str, list[dict[str, Any]]], field: str) -> list[str] | None:
    """The configured list a field's value comes from (source, group, occupation, school), else None."""
    if field not in LISTED:
        return None
    key = {"source": "sources", "group": "groups", "occupation": "occupations", "school": "schools"}[field]
    return [entry["name"] for entry in configured[key]] or None
