"""EasyEdu's rules on top of the runner's policy: who sees which customer, who sends which message.

A business key is a customer id. Besides the core's rule (admins see all, everybody the
customers of the open tasks they may work on), as the README's table shows:

- admins and team leaders see all customers;
- sales see their own customers and unassigned leads;
- marketing the customers not yet handed to the post-sale pipeline, customer care those in it;
- teachers those they train (the customer's teacher, or a booking with them);
- accountants those with an order.

``MESSAGE_SENDERS`` names the roles that may send each message by hand (API, CLI);
processes throw others to each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from runner.crm.customers import PIPELINES
from runner.crm.models import Booking, Customer, Order
from runner.service.policy import Person
from runner.store.models import Instance

SEE_ALL = frozenset({"admin", "team_leader"})
POST_SALE = tuple(sorted(key for key, pipeline in PIPELINES.items() if pipeline == "Sau bán hàng"))
MESSAGE_SENDERS: Mapping[str, frozenset[str]] = {
    "start_onboarding": frozenset({"sales", "team_leader"}),  # hand a won customer to onboarding
    "start_renewal": frozenset({"customer_care", "team_leader"}),  # the customer asks to renew early
    "payment_received": frozenset({"accountant"}),  # the money arrived
}


class CustomerScope:
    """The customers a staff member may see, as a ``runner.extension.Scope``."""

    @property
    def key_column(self) -> Any:
        """Customer ids are the business keys."""
        return Customer.id

    def sees_all(self, person: Person) -> bool:
        """Admins and team leaders see every customer."""
        return bool(person.roles & SEE_ALL)

    def grants(self, person: Person, column: Any) -> list[ColumnElement[bool]]:
        """Conditions on a customer-id column: the customers the person's roles let them see."""
        me, roles = person.username, person.roles
        parts = []
        if "sales" in roles:
            parts.append(column.in_(select(Customer.id).where(or_(Customer.owner == me, Customer.owner.is_(None)))))
        post_sale = select(Instance.business_key).where(
            Instance.process_key.in_(POST_SALE), Instance.business_key.is_not(None)
        )
        if "marketing" in roles:
            parts.append(column.in_(select(Customer.id).where(Customer.id.not_in(post_sale))))
        if "customer_care" in roles:
            parts.append(column.in_(post_sale))
        if "teacher" in roles:
            parts.append(column.in_(select(Customer.id).where(Customer.teacher == me)))
            parts.append(column.in_(select(Booking.customer_id).where(Booking.teacher == me)))
        if "accountant" in roles:
            parts.append(column.in_(select(Order.customer_id)))
        return parts
