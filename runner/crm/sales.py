"""Tags, round-robin owners, orders and contracts: the rows the crm.* steps write.

Every function takes the caller's session and plain values and never commits: the step's
unit of work does, so a retried step writes its rows once or not at all.
"""

from __future__ import annotations

import calendar as months_calendar
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runner.crm.gaps import PERSON_KEYS, lacks
from runner.crm.models import Contract, Customer, CustomerTag, Order, Staff
from runner.crm.needs import Need
from runner.crm.staff import ensure_staff
from runner.errors import Missing
from runner.store.database import savepoint


def add_tags(session: Session, customer_id: str, tags: Iterable[str], now: datetime) -> None:
    """Give the customer ``tags``; a tag already there (or added meanwhile by another unit) stays as it is."""
    have = set(session.scalars(select(CustomerTag.tag).where(CustomerTag.customer_id == customer_id)))
    for tag in tags:
        if tag in have:
            continue
        try:
            # NOTE: another instance of the same customer may add the same tag at the same time.
            with savepoint(session):
                session.add(CustomerTag(customer_id=customer_id, tag=tag, added_at=now))
                session.flush()
        except IntegrityError:
            pass


def remove_tags(session: Session, customer_id: str, tags: Iterable[str]) -> None:
    """Take ``tags`` from the customer; tags that are not there are ignored."""
    session.execute(delete(CustomerTag).where(CustomerTag.customer_id == customer_id, CustomerTag.tag.in_(list(tags))))


def lacks_needs(person: Staff, needs: Sequence[Need]) -> list[Need]:
    """The needs (fields the process's messages print of the owner) a staff member cannot meet."""
    return lacks({k: getattr(person, k) for k in PERSON_KEYS}, needs)


def assign_round_robin(
    session: Session,
    customer: Customer,
    role: str,
    *,
    exclude_current: bool,
    now: datetime,
    needs: Sequence[Need] = (),
) -> Staff:
    """Make the next active staff member of ``role`` the customer's owner and return them.

    The next one is who was assigned longest ago (never first), then by username. With
    ``exclude_current`` the current owner is skipped. A member lacking a field that ``needs``
    says the process's messages print of the owner (a phone) is skipped too: the gap shows
    here, as the step's incident naming who lacks what, not steps later at the message.
    """
    # NOTE: the staff rows are locked so that two concurrent assignments take turns; NO KEY
    # UPDATE (key_share) still lets other steps point customers at these staff members.
    ensure_staff(session)  # users added by the CLI or admin pages join the turn too
    people = session.scalars(
        select(Staff).where(Staff.active).order_by(Staff.username).with_for_update(key_share=True)
    ).all()
    pool = [p for p in people if role in (p.roles or []) and not (exclude_current and p.username == customer.owner)]
    if not pool:
        other = " other than the current owner" if exclude_current else ""
        raise Missing(f"role: no active staff member with role {role!r}{other}")
    missing = {p.username: lacks_needs(p, needs) for p in pool}
    ready = [p for p in pool if not missing[p.username]]
    if not ready:
        why = "; ".join(
            f"{p.full_name} ({p.username}) has no {', '.join(sorted({n.field for n in missing[p.username]}))}"
            for p in pool
        )
        templates = ", ".join(sorted({n.template for gaps in missing.values() for n in gaps}))
        raise Missing(
            f"role: no active staff member with role {role!r} has what this process's messages ({templates}) "
            f"print of the owner: {why}; fill it in (admin, users) and retry"
        )
    chosen = min(ready, key=lambda p: (p.last_assigned_at is not None, p.last_assigned_at or now, p.username))
    chosen.last_assigned_at = now
    customer.owner = chosen.username
    return chosen


def create_order(session: Session, customer_id: str, package: str, amount: int, now: datetime) -> Order:
    """A new order of ``package`` for ``amount`` VND, waiting for payment (flushed: it has its id)."""
    order = Order(customer_id=customer_id, package=package, amount=amount, status="pending", created_at=now)
    session.add(order)
    session.flush()
    return order


def locked_order(session: Session, customer_id: str, order_id: int) -> Order:
    """The customer's order ``order_id``, locked until the unit ends."""
    order = session.get(Order, order_id, with_for_update=True)
    if order is None or order.customer_id != customer_id:
        raise Missing(f"order_id: order {order_id} of customer {customer_id} does not exist")
    return order


def mark_paid(order: Order, confirmed_by: str, now: datetime) -> None:
    """Record that ``confirmed_by`` saw the order's money arrive."""
    order.status, order.paid_at, order.confirmed_by = "paid", now, confirmed_by


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, or the month's last day when it is shorter."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, months_calendar.monthrange(year, month)[1]))


def create_contract(
    session: Session, customer: Customer, package: str, start: date, months: int, now: datetime
) -> Contract:
    """A contract from ``start`` for ``months``; the customer's package and contract dates follow it."""
    end = add_months(start, months)
    contract = Contract(
        customer_id=customer.id, package=package, start_date=start, end_date=end, months=months, created_at=now
    )
    session.add(contract)
    customer.package, customer.contract_start, customer.contract_end = package, start, end
    session.flush()
    return contract


def payment_view(session: Session, customer_id: str) -> dict[str, Any]:
    """What the accountant checks a payment against: the newest order and the newest contract with its value.

    A contract has no amount of its own: its value is the amount of the first order of its
    package placed with it or after it (the sales procedure saves the contract, then the order).
    """
    order = session.scalars(
        select(Order).where(Order.customer_id == customer_id).order_by(Order.created_at.desc(), Order.id.desc())
    ).first()
    contract = session.scalars(
        select(Contract)
        .where(Contract.customer_id == customer_id)
        .order_by(Contract.created_at.desc(), Contract.id.desc())
    ).first()
    value = None
    if contract is not None:
        value = session.scalars(
            select(Order.amount)
            .where(
                Order.customer_id == customer_id,
                Order.package == contract.package,
                Order.created_at >= contract.created_at,
            )
            .order_by(Order.created_at, Order.id)
        ).first()
    return {
        "order": None if order is None else _order_json(order),
        "contract": None if contract is None else _contract_json(contract, value),
    }


def _order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "package": order.package,
        "amount": order.amount,
        "status": order.status,
        "created_at": order.created_at.isoformat(),
        "paid_at": order.paid_at.isoformat() if order.paid_at else None,
    }


def _contract_json(contract: Contract, value: int | None) -> dict[str, Any]:
    return {
        "id": contract.id,
        "package": contract.package,
        "start": contract.start_date.isoformat(),
        "end": contract.end_date.isoformat(),
        "months": contract.months,
        "value": value,
    }
