"""crm.* handlers: the customer record as the procedures change it.

Each handler works on the customer whose id is the instance's business key, inside the
step's unit of work: its writes commit with the step or not at all.
"""

from __future__ import annotations

import calendar as months_calendar
from datetime import date
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from runner.crm import customers as crm
from runner.crm.models import Contract, Customer, CustomerTag, Order, Staff
from runner.errors import BadValue, Missing
from runner.registry import HandlerContext, Registry
from runner.store.database import savepoint


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
    have = set(crm.tags(ctx.session, customer.id))
    for tag in crm.split_tags(params.get("tags")):
        if tag in have:
            continue
        try:
            # NOTE: another instance of the same customer may add the same tag at the same time.
            with savepoint(ctx.session):
                ctx.session.add(CustomerTag(customer_id=customer.id, tag=tag, added_at=ctx.now))
                ctx.session.flush()
        except IntegrityError:
            pass
    return {"tags": crm.tags(ctx.session, customer.id)}


def remove_tags(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Remove tags ("A, B" or a list); tags that are not there are ignored."""
    customer = _customer(ctx)
    ctx.session.execute(
        delete(CustomerTag).where(
            CustomerTag.customer_id == customer.id, CustomerTag.tag.in_(crm.split_tags(params.get("tags")))
        )
    )
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
    ``exclude_current`` the current owner is skipped: the 60-minute rule of seed 001.
    """
    customer = _customer(ctx, lock=True)
    role = _text(params, "role", "sales")
    exclude = crm.coerce("exclude_current", "boolean", params.get("exclude_current", False))
    # NOTE: the staff rows are locked so that two concurrent assignments take turns; NO KEY
    # UPDATE (key_share) still lets other steps point customers at these staff members.
    crm.ensure_staff(ctx.session)  # users added by the CLI or admin pages join the turn too
    people = ctx.session.scalars(
        select(Staff).where(Staff.active).order_by(Staff.username).with_for_update(key_share=True)
    ).all()
    pool = [p for p in people if role in (p.roles or []) and not (exclude and p.username == customer.owner)]
    if not pool:
        other = " other than the current owner" if exclude else ""
        raise Missing(f"role: no active staff member with role {role!r}{other}")
    chosen = min(pool, key=lambda p: (p.last_assigned_at is not None, p.last_assigned_at or ctx.now, p.username))
    chosen.last_assigned_at = ctx.now
    customer.owner = chosen.username
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
    order = Order(
        customer_id=customer.id,
        package=_text(params, "package"),
        amount=_whole(params, "amount", minimum=1),
        status="pending",
        created_at=ctx.now,
    )
    ctx.session.add(order)
    ctx.session.flush()
    return {"order_id": order.id}


def confirm_payment(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Record that the accountant confirmed the money arrived (confirming twice keeps the first)."""
    customer = _customer(ctx)
    order_id = _whole(params, "order_id", minimum=1)
    order = ctx.session.get(Order, order_id, with_for_update=True)
    if order is None or order.customer_id != customer.id:
        raise Missing(f"order_id: order {order_id} of customer {customer.id} does not exist")
    if order.status != "paid":
        order.status, order.paid_at, order.confirmed_by = "paid", ctx.now, _text(params, "confirmed_by")
    return {"paid": True}


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, or the month's last day when it is shorter."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, months_calendar.monthrange(year, month)[1]))


def create_contract(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Record a contract from ``start`` (default today, business time) for ``months`` (default 12).

    The customer's package, contract_start and contract_end follow the new contract.
    """
    customer = _customer(ctx)
    start = crm.coerce("start", "date", params.get("start"), ctx.tz) or ctx.now.astimezone(ctx.tz).date()
    months = _whole(params, "months", 12, minimum=1)
    end = add_months(start, months)
    contract = Contract(
        customer_id=customer.id,
        package=_text(params, "package"),
        start_date=start,
        end_date=end,
        months=months,
        created_at=ctx.now,
    )
    ctx.session.add(contract)
    customer.package, customer.contract_start, customer.contract_end = contract.package, start, end
    ctx.session.flush()
    return {"contract_id": contract.id, "contract_start": start.isoformat(), "contract_end": end.isoformat()}


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
