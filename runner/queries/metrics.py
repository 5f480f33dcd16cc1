"""What the database holds, as Prometheus gauges read at scrape time, and the whole /metrics answer.

Each scrape runs a few small queries in one read session, each on an index:

- due timers and jobs: ``COUNT`` and ``MIN(due_at)`` over ``state = waiting|pending AND due_at <= now``,
  a range of the partial indexes ``ix_timers_claim`` / ``ix_jobs_claim`` (due_at, id) of the waiting
  (pending) rows; the lag is now minus the oldest due time;
- the outbox: ``COUNT`` per state for pending, sending and unknown, a prefix of ``ix_outbox_due`` (state, due_at);
- open incidents per kind: ``ix_incidents_state``;
- open tasks per candidate group, and overdue tasks: ``ix_user_tasks_open`` (state, due_at).
  NOTE: the groups are a JSON list per task, so the open tasks are grouped by that list in SQL
  (as text: PostgreSQL's json has no equality) and only the distinct lists, a handful, reach Python;
  a task offered to two groups counts in both. The database still reads every open task's row for
  it: the one query here that grows with the open tasks, not with what is due.

"now" is the runner's clock (the virtual one under ``RUNNER_CLOCK=virtual``), so the lag is
what the worker is behind on, not the wall clock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Row, Select, Text, cast, func, select
from sqlalchemy.exc import SQLAlchemyError

from runner import metrics
from runner.store.models import Incident, Job, OutboxMessage, Timer, UserTask

if TYPE_CHECKING:
    from runner.service.unit import Core

log = logging.getLogger(__name__)

OUTBOX_STATES = ("pending", "sending", "unknown")
NO_GROUP = "(none)"  # the label of open tasks offered to no candidate group


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


def statements(now: datetime) -> dict[str, Select[*tuple[Any, ...]]]:
    """Every query of a scrape, by name (the indexes each one reads are in this module's docstring)."""
    groups_text = cast(UserTask.candidate_groups, Text)
    return {
        "timers_due": select(func.count(), func.min(Timer.due_at)).where(Timer.state == "waiting", Timer.due_at <= now),
        "jobs_due": select(func.count(), func.min(Job.due_at)).where(Job.state == "pending", Job.due_at <= now),
        "outbox": select(OutboxMessage.state, func.count())
        .where(OutboxMessage.state.in_(OUTBOX_STATES))
        .group_by(OutboxMessage.state),
        "incidents": select(Incident.kind, func.count()).where(Incident.state == "open").group_by(Incident.kind),
        "tasks_per_group": select(groups_text, func.count()).where(UserTask.state == "open").group_by(groups_text),
        "tasks_overdue": select(func.count()).where(UserTask.state == "open", UserTask.due_at < now),
    }


def _lag(now: datetime, oldest: datetime | None) -> float:
    """How long the oldest due row has been due (seconds; 0 when none is)."""
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


def _per_group(rows: Iterable[Row[Any, Any]]) -> dict[str, int]:
    """Open tasks per group from the counts per distinct list of groups."""
    found: dict[str, int] = {}
    for text, count in rows:
        groups = json.loads(text) if text else []
        for group in dict.fromkeys(groups or [NO_GROUP]):
            found[str(group)] = found.get(str(group), 0) + int(count)
    return found


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
        groups = _per_group(s.execute(queries["tasks_per_group"]))
        overdue = int(s.scalar(queries["tasks_overdue"]) or 0)
    return State(
        timers_due=int(timers),
        timers_lag=_lag(now, oldest_timer),
        jobs_due=int(jobs),
        jobs_lag=_lag(now, oldest_job),
        outbox={name: 0 for name in OUTBOX_STATES} | outbox,
        incidents=incidents,
        tasks_open=groups,
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
