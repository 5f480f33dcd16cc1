"""The admin overview's figures, counted by the database, each count bounded (one read session).

A figure counts at most ``CAP + 1`` rows: past ``CAP`` the page says "more than CAP", so the page
costs the same however many rows the database holds. Each count reads an index:

- processes: the distinct keys of deployed BPMN versions (process_versions: a row per deployment);
- running instances: ``ix_instances_list_status`` (status, created_at, id), read in its order so
  that the cut at ``CAP + 1`` is a prefix of one index range;
- open incidents: ``ix_incidents_state``; messages that wait for an admin (unknown, failed):
  ``ix_outbox_due`` (state, due_at);
- users: the directory's primary key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, distinct, func, select

from runner.store.models import Incident, Instance, OutboxMessage, ProcessVersion, User

if TYPE_CHECKING:
    from runner.service.runtime import Runner

CAP = 10_000
UNDECIDED = ("unknown", "failed")  # outbox states an admin decides on (resend or dismiss)


@dataclass(frozen=True)
class Counts:
    """The overview's figures; a value of ``CAP + 1`` means more than ``CAP``."""

    processes: int
    running: int
    incidents: int
    undecided: int
    users: int


def _bounded(key: Any, *where: ColumnElement[bool], order: tuple[Any, ...] = ()) -> Select[Any]:
    """How many rows meet ``where``, counting no further than ``CAP + 1``."""
    first = select(key).where(*where).order_by(*order).limit(CAP + 1).subquery()
    return select(func.count()).select_from(first)


def statements() -> dict[str, Select[Any]]:
    """Every query of the overview, by name (the index each one reads is in the module's docstring)."""
    return {
        "processes": select(func.count(distinct(ProcessVersion.process_key))).where(ProcessVersion.kind == "bpmn"),
        "running": _bounded(
            Instance.id, Instance.status == "running", order=(Instance.status, Instance.created_at, Instance.id)
        ),
        "incidents": _bounded(Incident.id, Incident.state == "open"),
        "undecided": _bounded(OutboxMessage.id, OutboxMessage.state.in_(UNDECIDED)),
        "users": _bounded(User.username),
    }


def counts(runner: Runner) -> Counts:
    """The overview's figures now."""
    with runner.db.read() as s:
        return Counts(**{name: int(s.scalar(query) or 0) for name, query in statements().items()})


def shown(value: int) -> str:
    """A figure as the page writes it: the number, or "CAP+" past the cap."""
    return str(value) if value <= CAP else f"{CAP}+"
