"""What the database holds, as Prometheus gauges read at scrape time, and the whole /metrics answer.

Each scrape runs a few small queries in one read session, each on an index:

- due timers and jobs: ``COUNT`` and ``MIN(due_at)`` over ``state = waiting|pending AND due_at <= now``,
  a range of the partial indexes ``ix_timers_claim`` / ``ix_jobs_claim`` (due_at, id) of the waiting
  (pending) rows; the lag is now minus the oldest due time;
- the outbox: ``COUNT`` per state for pending, sending and unknown, a prefix of ``ix_outbox_due`` (state, due_at);
- open incidents per kind: ``ix_incidents_state``;
- overdue tasks: ``ix_user_tasks_open`` (state, due_at);
- open tasks per candidate group: ``user_task_candidates`` holds one row per group an open task is
  offered to, and none once it ends, so ``GROUP BY name`` over its ``kind = 'group'`` rows counts
  them without reading user_tasks (a task offered to two groups counts in both).
  NOTE: that is every row of a narrow table that holds only open tasks' offers, so PostgreSQL reads
  it whole (a sequential scan and a hash of a handful of groups) rather than through
  ``ix_user_task_candidates_queue``: either way an exact count reads each offer once, and it grows
  with the open tasks. Flat would take a counter that every new or ended task writes (a hot row
  that all workers would queue on), which this gauge does not justify;
- open tasks offered to no group (label ``(none)``): the partial index ``ix_user_tasks_no_group``
  holds exactly those (open, ``candidate_groups`` = ``[]``), so the count reads only them.

"now" is the runner's clock (the virtual one under ``RUNNER_CLOCK=virtual``), so the lag is
what the worker is behind on, not the wall clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Select, Text, cast, func, literal_column, select
from sqlalchemy.exc import SQLAlchemyError

from runner import metrics
from runner.store.models import Incident, Job, OutboxMessage, Timer, UserTask, UserTaskCandidate

if TYPE_CHECKING:
    from runner.service.unit import Core

log = logging.getLogger(__name__)

OUTBOX_STATES = ("pending", "sending", "unknown")
NO_GROUP = "(none)"  # the label of open tasks offered to no candidate group
# An open task offered to no group: its JSON list is empty (as text: PostgreSQL's json has no equality).
# NOTE: ix_user_tasks_no_group's condition, with literals (not parameters) so that any plan, generic
# ones included, may use that partial index.
OPEN_ALONE = (
    UserTask.state == literal_column("'open'"),
    cast(UserTask.candidate_groups, Text) == literal_column("'[]'"),
)


@dataclass
class State:
    """The database's side of the metrics, as plain data."""

    timers_due: int = 0
    timers_lag: float = 0.0
    jobs_due: int = 0
    jobs_lag: float = 0.0
    outbox: dict[str, int] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    tasks_open: dict[str, int] = field(default_factory=dict)
    tasks_overdue: int = 0


def per_group() -> Select[*tuple[Any, ...]]:
    """(group, open tasks offered to it) for every group some open task is offered to (see the docstring)."""
    offers = UserTaskCandidate.__table__
    return select(offers.c.name, func.count()).where(offers.c.kind == "group").group_by(offers.c.name)


def statements(now: datetime) -> dict[str, Select[*tuple[Any, ...]]]:
    """Every query of a scrape, by name (the indexes each one reads are in this module's docstring)."""
    return {
        "timers_due": select(func.count(), func.min(Timer.due_at)).where(Timer.state == "waiting", Timer.due_at <= now),
        "jobs_due": select(func.count(), func.min(Job.due_at)).where(Job.state == "pending", Job.due_at <= now),
        "outbox": select(OutboxMessage.state, func.count())
        .where(OutboxMessage.state.in_(OUTBOX_STATES))
        .group_by(OutboxMessage.state),
        "incidents": select(Incident.kind, func.count()).where(Incident.state == "open").group_by(Incident.kind),
        "tasks_per_group": per_group(),
        "tasks_no_group": select(func.count()).where(*OPEN_ALONE),
        "tasks_overdue": select(func.count()).where(UserTask.state == "open", UserTask.due_at < now),
    }


def _lag(now: datetime, oldest: datetime | None) -> float:
    """How long the oldest due row has been due (seconds; 0 when none is)."""
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


def read_state(core: Core) -> State:
    """The gauges' values now (one read session)."""
    core.refresh_clock()
    now = core.now()
    queries = statements(now)
    with core.db.read() as s:
        timers, oldest_timer = s.execute(queries["timers_due"]).one()
        jobs, oldest_job = s.execute(queries["jobs_due"]).one()
        outbox = {str(k): int(n) for k, n in s.execute(queries["outbox"])}
        incidents = {str(k): int(n) for k, n in s.execute(queries["incidents"])}
        groups = {str(group): int(n) for group, n in s.execute(queries["tasks_per_group"])}
        alone = int(s.scalar(queries["tasks_no_group"]) or 0)
        overdue = int(s.scalar(queries["tasks_overdue"]) or 0)
    return State(
        timers_due=int(timers),
        timers_lag=_lag(now, oldest_timer),
        jobs_due=int(jobs),
        jobs_lag=_lag(now, oldest_job),
        outbox={name: 0 for name in OUTBOX_STATES} | outbox,
        incidents=incidents,
        tasks_open=groups | ({NO_GROUP: alone} if alone else {}),
        tasks_overdue=overdue,
    )


class StateCollector(Collector):
    """A custom collector: the database's gauges, read when Prometheus scrapes."""

    def __init__(self, core: Core):
        self.core = core

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("runner_database_up", "1 when the state gauges below could be read from the database.")
        try:
            state = read_state(self.core)
        except SQLAlchemyError as exc:
            # NOTE: the process metrics are still worth having when the database is down.
            log.warning("metrics: cannot read the database: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _gauge("runner_timers_due", "Timers due now and not yet fired.", state.timers_due)
        yield _gauge(
            "runner_timers_due_lag_seconds", "How long the oldest due timer has been due (0: none).", state.timers_lag
        )
        yield _gauge("runner_jobs_due", "Service-task jobs due now and not yet run.", state.jobs_due)
        yield _gauge(
            "runner_jobs_due_lag_seconds", "How long the oldest due job has been due (0: none).", state.jobs_lag
        )
        yield _labelled(
            "runner_outbox_messages", "Outbox messages per state (unknown: waits for an admin).", "state", state.outbox
        )
        yield _labelled("runner_incidents_open", "Open incidents per kind.", "kind", state.incidents)
        yield _labelled("runner_tasks_open", "Open user tasks per candidate group.", "group", state.tasks_open)
        yield _gauge("runner_tasks_overdue", "Open user tasks past their due date.", state.tasks_overdue)


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _labelled(name: str, help_text: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class _Joined(Collector):
    """Several collectors (or registries) as one."""

    def __init__(self, *parts: Collector):
        self.parts = parts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for part in self.parts:
            yield from part.collect()  # type: ignore[misc]


def render(core: Core) -> tuple[bytes, str]:
    """The /metrics answer: the processes' counters and histograms, then the database's gauges."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Joined(metrics.registry(core.settings), StateCollector(core)))
    return generate_latest(scrape), CONTENT_TYPE_LATEST
