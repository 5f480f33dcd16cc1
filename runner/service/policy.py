"""Who may do what to which customer: start processes, send messages, read a customer's data.

One module decides; the web pages, the REST API and the CLI (``--actor`` naming a user)
ask it through ``Runner.start_instance(person=...)``, ``Runner.correlate(person=...)`` and
``check_customer``/``customer_condition``. The rules, as the README's table shows them:

- **Starting** a process: the process names who may start it with Camunda 7's
  ``camunda:candidateStarterGroups`` / ``candidateStarterUsers`` on ``bpmn:process``.
  A process without either may be started by admins only (nobody is let in by omission).
  The person must also be able to see the customer (the business key) they start it for.
- **Sending** a message: ``MESSAGE_SENDERS`` names the roles per message name; other
  names are for admins. Here too the customer must be one the person can see.
- **Seeing** a customer (page, timeline, instances, history, diagrams): admins and team
  leaders see all; everybody sees the customers of the open tasks they may work on; and
  by role: sales their own customers and unassigned leads, marketing the customers not
  yet handed to the post-sale pipeline, customer care those in it, teachers those they
  train (the customer's teacher, or a booking with them), accountants those with an order.
  A customer someone may not see answers 404, as if it did not exist: a customer's name
  or key is itself business data (who the company sells to).

Start and message data may not use a name that expressions already mean (``RESERVED``):
such a key would shadow ``now``, ``len``, ``true``... in every later expression.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, cast, false, literal, or_, select
from sqlalchemy.orm import Session

from runner.crm.customers import PIPELINES
from runner.crm.models import Booking, Customer, Order
from runner.engine import scripting
from runner.errors import Forbidden, Invalid, NotFound
from runner.model import document as bpmnxml
from runner.store.models import Instance, ProcessVersion, UserTask

SEE_ALL = frozenset({"admin", "team_leader"})
POST_SALE = tuple(sorted(key for key, pipeline in PIPELINES.items() if pipeline == "Sau bán hàng"))
# NOTE: messages people may send by hand (API, CLI); processes throw others to each other.
MESSAGE_SENDERS: Mapping[str, frozenset[str]] = {
    "start_onboarding": frozenset({"sales", "team_leader"}),  # hand a won customer to onboarding
    "start_renewal": frozenset({"customer_care", "team_leader"}),  # the customer asks to renew early
    "payment_received": frozenset({"accountant"}),  # the money arrived
}
RESERVED = frozenset({*scripting.RESERVED_NAMES})


@dataclass(frozen=True)
class Person:
    """A signed-in staff member as the policy sees them: a username and roles."""

    username: str
    roles: frozenset[str]

    @classmethod
    def of(cls, username: str, roles: Iterable[str]) -> Person:
        """A person from a username and any iterable of roles."""
        return cls(username, frozenset(roles))

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


# --- data ------------------------------------------------------------------------------------------


def check_data(data: Mapping[str, Any], what: str) -> None:
    """Invalid (422) naming each key of start or message data that expressions already mean."""
    bad = sorted(key for key in data if key in RESERVED or key.startswith("__"))
    if bad:
        raise Invalid(
            f"{what}: {', '.join(repr(k) for k in bad)} "
            f"{'is a name' if len(bad) == 1 else 'are names'} that expressions already use; rename "
            f"{'it' if len(bad) == 1 else 'them'}"
        )


# --- starting and messages ------------------------------------------------------------------------------


def starters(xml: str, process_key: str) -> tuple[frozenset[str], frozenset[str]]:
    """The (groups, users) a process's ``camunda:candidateStarterGroups``/``Users`` name."""
    root = bpmnxml.parse(xml.encode("utf-8"))
    for process in bpmnxml.bpmn_iter(root, "process"):
        if process.get("id") == process_key:
            return _names(bpmnxml.camunda_attr(process, "candidateStarterGroups")), _names(
                bpmnxml.camunda_attr(process, "candidateStarterUsers")
            )
    return frozenset(), frozenset()


def _names(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


def check_start(s: Session, person: Person, version: ProcessVersion, business_key: str | None) -> None:
    """Forbidden unless the process lets the person start it; NotFound for a customer they cannot see."""
    if not person.is_admin:
        groups, users = starters(
            s.scalar(select(ProcessVersion.xml).where(ProcessVersion.id == version.id)) or "", version.process_key
        )
        if person.username not in users and not (person.roles & groups):
            allowed = ", ".join(sorted(groups | users)) or "admins only"
            raise Forbidden(f"{person.username} may not start process {version.process_key!r} (started by: {allowed})")
    check_customer(s, person, business_key)


def check_message(s: Session, person: Person, name: str, business_key: str | None) -> None:
    """Forbidden unless the person's roles may send the message; NotFound for a customer they cannot see."""
    if not person.is_admin and not (person.roles & MESSAGE_SENDERS.get(name, frozenset())):
        allowed = ", ".join(sorted(MESSAGE_SENDERS.get(name, ()))) or "admins only"
        raise Forbidden(f"{person.username} may not send message {name!r} (sent by: {allowed})")
    check_customer(s, person, business_key)


# --- seeing customers ----------------------------------------------------------------------------------


def customer_condition(person: Person, column: Any) -> ColumnElement[bool] | None:
    """A SQL condition on a customer-id column: the customers ``person`` may see (None: all of them)."""
    if person.roles & SEE_ALL:
        return None
    me, roles = person.username, person.roles
    parts = [column.in_(_task_customers(person))]
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
    return or_(*parts)


def _task_customers(person: Person):
    """Business keys of the open tasks the person may work on (their own, or offered to them)."""
    offered = [
        _json_list_has(UserTask.candidate_users, person.username),
        *(_json_list_has(UserTask.candidate_groups, role) for role in sorted(person.roles)),
    ]
    return select(UserTask.business_key).where(
        UserTask.state == "open",
        UserTask.business_key.is_not(None),
        or_(UserTask.assignee == person.username, (UserTask.assignee.is_(None)) & or_(false(), *offered)),
    )


def _json_list_has(column: Any, value: str) -> ColumnElement[bool]:
    """True when a JSON list column holds ``value`` (matched on its JSON text, on every backend)."""
    needle = json.dumps(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return cast(column, String).like(f"%{needle}%", escape="\\")


def may_see(s: Session, person: Person, business_key: str | None) -> bool:
    """True when the person may see the customer (or the instance without a customer) ``business_key``."""
    condition = customer_condition(person, literal(business_key, String))
    if condition is None:
        return True
    if business_key is None:
        return False
    return s.scalar(select(literal(1)).where(condition)) is not None


def check_customer(s: Session, person: Person | None, business_key: str | None) -> None:
    """NotFound, as for a customer that does not exist, when the person may not see it (None: no check)."""
    if person is not None and not may_see(s, person, business_key):
        raise NotFound(
            f"customer {business_key!r} does not exist"
            if business_key
            else "instances without a customer are for admins and team leaders"
        )


def visible(s: Session, person: Person, business_keys: Iterable[str | None]) -> set[str | None]:
    """The keys among ``business_keys`` that the person may see."""
    keys = set(business_keys)
    condition = customer_condition(person, Customer.id)
    if condition is None:
        return keys
    wanted = [k for k in keys if k is not None]
    found: set[str | None] = (
        set(s.scalars(select(Customer.id).where(Customer.id.in_(wanted), condition))) if wanted else set()
    )
    rows = set(s.scalars(select(Customer.id).where(Customer.id.in_(wanted)))) if wanted else set()
    # NOTE: a business key with no customer row (rare: tests, imports) is asked about on its own.
    return found | {k for k in wanted if k not in rows and may_see(s, person, k)}
