"""crm.* handlers: the customer record as the procedures change it.

Each handler works on the customer whose id is the instance's business key, inside the
step's unit of work: its writes commit with the step or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.crm import customers as crm
from runner.crm import gaps, routines, sales
from runner.crm import settings as crm_settings
from runner.crm.models import Customer
from runner.errors import BadValue
from runner.registry import HandlerContext, Registry


def _customer(ctx: HandlerContext, *, lock: bool = False) -> Customer:
    return crm.get_customer(ctx.session, ctx.business_key, lock=lock)


def _text(params: dict[str, Any], name: str, default: str | None = None) -> str:
    value = params.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise BadValue(f"{name}: a non-empty text is required, got {value!r}")
    return value.strip()


def _whole(params: dict[str, Any], name: str, default: int | None = None, minimum: int = 0) -> int:
    value = crm.coerce(name, "integer", params.get(name, default))
    if value is None or value < minimum:
        raise BadValue(f"{name}: a whole number of at least {minimum} is required, got {params.get(name)!r}")
    return value


def add_note(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Add a note to the customer's discussion (Thảo luận)."""
    note_id = crm.add_note(
        ctx.session,
        ctx.business_key,
        _text(params, "text"),
        now=ctx.now,
        kind=_text(params, "kind", "discussion"),
        author=params.get("author"),
        instance_id=ctx.instance_id,
    )
    return {"note_id": note_id}


def add_tags(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Add tags ("A, B" or a list); tags already there stay as they are."""
    customer = _customer(ctx)
    sales.add_tags(ctx.session, customer.id, crm.split_tags(params.get("tags")), ctx.now)
    return {"tags": crm.tags(ctx.session, customer.id)}


def remove_tags(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Remove tags ("A, B" or a list); tags that are not there are ignored."""
    customer = _customer(ctx)
    sales.remove_tags(ctx.session, customer.id, crm.split_tags(params.get("tags")))
    return {"tags": crm.tags(ctx.session, customer.id)}


def set_status(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Set the customer's status, e.g. Đang chăm sóc, Hoạt động."""
    customer = _customer(ctx)
    customer.status = _text(params, "status")
    return {"status": customer.status}


def update_profile(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Store profile fields (typed per field) and report the required fields still missing."""
    customer = _customer(ctx)
    crm.update_fields(ctx.session, customer, dict(params), ctx.tz)
    missing = crm.missing_fields(ctx.session, customer)
    return {"profile_complete": not missing, "missing_fields": missing}


def assign_owner(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Give the customer to the next active staff member of ``role``, round-robin.

    The next one is who was assigned longest ago (never first), then by username. With
    ``exclude_current`` the current owner is skipped: the 60-minute rule of seed 001. With
    ``keep_current`` an owner chosen when the lead came in (an active staff member of ``role``)
    keeps it (``runner.crm.intake``), unless they lack a field this process's messages print of the owner.
    """
    customer = _customer(ctx, lock=True)
    role = _text(params, "role", "sales")
    exclude = crm.coerce("exclude_current", "boolean", params.get("exclude_current", False))
    # NOTE: a rep lacking what this process's messages print of the owner (owner.phone) never gets the
    # customer: not from the round-robin, and an owner chosen at intake who lacks it yields to the round-robin.
    needs = gaps.owner_needs(ctx.session, ctx.instance_id, Path(crm_settings.among(ctx.extensions).templates))
    if crm.coerce("keep_current", "boolean", params.get("keep_current", False)) and not exclude:
        current = crm.staff_row(ctx.session, customer.owner)
        if (
            current is not None
            and current.active
            and role in (current.roles or [])
            and not sales.lacks_needs(current, needs)
        ):
            return {"owner": current.username, "owner_name": current.full_name}
    chosen = sales.assign_round_robin(
        ctx.session, customer, role, exclude_current=bool(exclude), now=ctx.now, needs=needs
    )
    return {"owner": chosen.username, "owner_name": chosen.full_name}


def assign_teacher(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Make ``teacher`` the customer's teacher."""
    customer = _customer(ctx)
    teacher = crm.get_staff(ctx.session, _text(params, "teacher"), role="teacher")
    customer.teacher = teacher.username
    return {"teacher": teacher.username, "teacher_name": teacher.full_name}


def create_order(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Create an order for the chosen package (amount in VND), waiting for payment."""
    customer = _customer(ctx)
    package = _text(params, "package")
    order = sales.create_order(ctx.session, customer.id, package, _whole(params, "amount", minimum=1), ctx.now)
    return {"order_id": order.id}


def confirm_payment(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Record that the accountant confirmed the money arrived (confirming twice keeps the first)."""
    customer = _customer(ctx)
    order_id = _whole(params, "order_id", minimum=1)
    order = sales.locked_order(ctx.session, customer.id, order_id)
    if order.status != "paid":
        sales.mark_paid(order, _text(params, "confirmed_by"), ctx.now)
    return {"paid": True}


def create_contract(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Record a contract from ``start`` (default today, business time) for ``months`` (default 12).

    The customer's package, contract_start and contract_end follow the new contract.
    """
    customer = _customer(ctx)
    start = crm.coerce("start", "date", params.get("start"), ctx.tz) or ctx.now.astimezone(ctx.tz).date()
    months = _whole(params, "months", 12, minimum=1)
    contract = sales.create_contract(ctx.session, customer, _text(params, "package"), start, months, ctx.now)
    end = contract.end_date
    return {"contract_id": contract.id, "contract_start": start.isoformat(), "contract_end": end.isoformat()}


def staff_of_role(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """The active staff members of ``role`` (usernames, in order): one daily check-in each."""
    return {"staff": routines.members(ctx.session, _text(params, "role"))}


def register(registry: Registry) -> None:
    """Add this module's topics to ``registry``."""
    registry.add("crm.add_note", add_note)
    registry.add("crm.add_tags", add_tags)
    registry.add("crm.remove_tags", remove_tags)
    registry.add("crm.set_status", set_status)
    registry.add("crm.update_profile", update_profile)
    registry.add("crm.assign_owner", assign_owner)
    registry.add("crm.assign_teacher", assign_teacher)
    registry.add("crm.create_order", create_order)
    registry.add("crm.confirm_payment", confirm_payment)
    registry.add("crm.create_contract", create_contract)
    registry.add("crm.staff_of_role", staff_of_role)
