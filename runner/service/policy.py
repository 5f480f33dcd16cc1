"""Who may do what: start processes, send messages, see a business key's instances and data.

One module decides; the web pages, the REST API and the CLI (``--actor`` naming a user)
ask it through ``Runner.start_instance(person=...)``, ``Runner.correlate(person=...)`` and
``Runner.policy`` (a ``Policy``). The core's rules; an extension (``runner.extension``) adds
its own through a ``Scope`` and ``message_senders`` (EasyEdu's customer rules: ``runner.crm.scope``):

- **Starting** a process: the process names who may start it with Camunda 7's
  ``camunda:candidateStarterGroups`` / ``candidateStarterUsers`` on ``bpmn:process``.
  A process without either may be started by admins only (nobody is let in by omission).
  The person must also be able to see the business key they start it for.
- **Sending** a message: the extensions' ``message_senders`` name the roles per message
  name; other names are for admins. Here too the business key must be one the person can see.
- **Seeing** a business key (its instances, history, diagrams): without an extension's
  scope the runner does not know what a key names, and everybody sees every key. With one,
  admins see all; everybody sees the keys of the open tasks they may work on; the scope may
  let a person see all keys, or more keys. A key someone may not see answers 404, as if it
  did not exist.

Start and message data may not use a name that expressions already mean (``RESERVED``):
such a key would shadow ``now``, ``len``, ``true``... in every later expression.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, String, and_, exists, false, literal, or_, select
from sqlalchemy.orm import Session

from runner.engine import scripting
from runner.errors import Forbidden, Invalid, NotFound
from runner.extension import Extensions, Person
from runner.model import document as bpmnxml
from runner.store.models import ProcessVersion, UserTask, UserTaskCandidate

RESERVED = frozenset({*scripting.RESERVED_NAMES})


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


# --- starting ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def starters(xml: str, process_key: str) -> tuple[frozenset[str], frozenset[str]]:
    """The (groups, users) a process's ``camunda:candidateStarterGroups``/``Users`` name.

    NOTE: cached on the version's XML, which never changes: every start (a lead's, an import row's)
    asks, and parsing the diagram each time cost more than the rest of the check.
    """
    root = bpmnxml.parse(xml.encode("utf-8"))
    for process in bpmnxml.bpmn_iter(root, "process"):
        if process.get("id") == process_key:
            return _names(bpmnxml.camunda_attr(process, "candidateStarterGroups")), _names(
                bpmnxml.camunda_attr(process, "candidateStarterUsers")
            )
    return frozenset(), frozenset()


def _names(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


def _task_keys(person: Person, column: Any) -> ColumnElement[bool]:
    """True for a business key with an open task the person may work on (their own, or offered to them).

    NOTE: correlated to ``column`` so that each key is one probe of ``ix_user_tasks_business_key`` and of
    the candidate rows' primary key, never a read of every task offered to the person's groups.
    """
    offer = UserTaskCandidate.__table__.alias("offer")
    roles = sorted(person.roles)
    offered = exists().where(
        offer.c.task_id == UserTask.id,
        or_(
            and_(offer.c.kind == "user", offer.c.name == person.username),
            and_(offer.c.kind == "group", offer.c.name.in_(roles)) if roles else false(),
        ),
    )
    return exists().where(
        UserTask.business_key == column,
        UserTask.state == "open",
        or_(UserTask.assignee == person.username, UserTask.assignee.is_(None) & offered),
    )


class Policy:
    """The rules of one runner: the core's, plus those of its extensions."""

    def __init__(self, extensions: Extensions | None = None):
        self.extensions = extensions if extensions is not None else Extensions()

    # --- starting and messages --------------------------------------------------------------------

    def check_start(self, s: Session, person: Person, version: ProcessVersion, business_key: str | None) -> None:
        """Forbidden unless the process lets the person start it; NotFound for a key they cannot see."""
        if not person.is_admin:
            groups, users = starters(
                s.scalar(select(ProcessVersion.xml).where(ProcessVersion.id == version.id)) or "",
                version.process_key,
            )
            if person.username not in users and not (person.roles & groups):
                allowed = ", ".join(sorted(groups | users)) or "admins only"
                raise Forbidden(
                    f"{person.username} may not start process {version.process_key!r} (started by: {allowed})"
                )
        self.check_key(s, person, business_key)

    def check_message(self, s: Session, person: Person, name: str, business_key: str | None) -> None:
        """Forbidden unless the person's roles may send the message; NotFound for a key they cannot see."""
        senders = self.extensions.message_senders(name)
        if not person.is_admin and not (person.roles & senders):
            allowed = ", ".join(sorted(senders)) or "admins only"
            raise Forbidden(f"{person.username} may not send message {name!r} (sent by: {allowed})")
        self.check_key(s, person, business_key)

    # --- seeing business keys ----------------------------------------------------------------------

    def condition(self, person: Person, column: Any) -> ColumnElement[bool] | None:
        """A SQL condition on a business-key column: the keys ``person`` may see (None: all of them)."""
        scopes = self.extensions.scopes
        if not scopes or person.is_admin or any(scope.sees_all(person) for scope in scopes):
            return None
        return or_(_task_keys(person, column), *(part for scope in scopes for part in scope.grants(person, column)))

    def may_see(self, s: Session, person: Person, business_key: str | None) -> bool:
        """True when the person may see ``business_key`` (or, for None, the instances without one)."""
        condition = self.condition(person, literal(business_key, String))
        if condition is None:
            return True
        if business_key is None:
            return False
        return s.scalar(select(literal(1)).where(condition)) is not None

    def check_key(self, s: Session, person: Person | None, business_key: str | None) -> None:
        """NotFound, as for a customer that does not exist, when the person may not see it (None: no check)."""
        if person is not None and not self.may_see(s, person, business_key):
            raise NotFound(
                f"customer {business_key!r} does not exist"
                if business_key
                else "instances without a customer are for admins and team leaders"
            )

    def visible(self, s: Session, person: Person, business_keys: Iterable[str | None]) -> set[str | None]:
        """The keys among ``business_keys`` that the person may see."""
        keys = set(business_keys)
        if self.condition(person, literal(None, String)) is None:
            return keys
        wanted = sorted(k for k in keys if k is not None)
        found: set[str | None] = set()
        asked: set[str] = set()
        for scope in self.extensions.scopes:
            # NOTE: keys with a row of the scope's table are asked about in one query each scope.
            column = scope.key_column
            rows = set(s.scalars(select(column).where(column.in_(wanted)))) - asked if wanted else set()
            condition = self.condition(person, column)
            if rows and condition is not None:
                found |= set(s.scalars(select(column).where(column.in_(rows), condition)))
                asked |= rows
        # NOTE: a business key with no row (rare: tests, imports) is asked about on its own.
        return found | {k for k in wanted if k not in asked and self.may_see(s, person, k)}
