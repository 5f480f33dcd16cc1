"""The seam between the runner's facade and its services: ``Core`` and ``Unit``.

``Core`` holds the parts every unit of work runs with (settings, database, spec store,
engine, clock, handler registry) and opens units of work; ``runtime.Runner`` is a ``Core``
with the public API on top. A ``Unit`` is one open transaction as the services
(scheduler, jobs, outbox, tasks, instance migration) see it: its session, the time, the
history it records and the engine steps it commits. The services receive a ``Core`` or a
``Unit`` as an argument and never import the runtime.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, bindparam, func, select, update
from sqlalchemy.orm import Session

from runner import logs
from runner.clock import Clock, FixedClock, SystemClock
from runner.engine import Engine, Snapshot, calendar_from
from runner.engine.serializer import WorkflowStore
from runner.errors import NotCorrelated, NotFound
from runner.model.worktime import BusinessCalendar
from runner.registry import Registry
from runner.sandbox.budget import Limits
from runner.service import projection
from runner.service.calendars import CalendarCache
from runner.service.calls import CallThreads
from runner.settings import Settings
from runner.store.database import Database, PoolOptions, Prepared, add_row_later, attach, make_engine
from runner.store.leases import SenderLocks, WorkerLocks
from runner.store.models import ClockRow, HistoryEvent, Instance, ProcessVersion, Subscription
from runner.windows import Windows

log = logging.getLogger(__name__)

VIRTUAL_NOW = select(ClockRow.now).where(ClockRow.name == "virtual")

# NOTE: every start reads a version row and every job an instance row: compiled once
# (see store.database.Prepared), then attached to the session as if the ORM had loaded them.
_versions, _instances = ProcessVersion.__table__, Instance.__table__
LATEST_VERSION = Prepared(
    select(*[c for c in _versions.c if c.key not in ("xml", "spec")])  # deferred: the spec comes from a cache
    .where(_versions.c.process_key == bindparam("b_key"), _versions.c.kind == "bpmn")
    .order_by(_versions.c.version.desc())
    .limit(1)
)
_one_instance = select(_instances).where(_instances.c.id == bindparam("b_id"))
LOAD_INSTANCE = Prepared(_one_instance)
LOCK_INSTANCE = Prepared(_one_instance.with_for_update())
LOCK_INSTANCE_OR_SKIP = Prepared(_one_instance.with_for_update(skip_locked=True))


def _spec_text(s: Session, version_id: int) -> str:
    """The stored spec JSON of a version (loaded only when the spec cache misses)."""
    return s.get_one(ProcessVersion, version_id).spec


def pool_options(settings: Settings) -> PoolOptions:
    """The connection pool and PostgreSQL options the ``db_*`` settings name."""
    return PoolOptions(
        size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        timeout=settings.db_pool_timeout,
        statement_timeout=settings.db_statement_timeout,
        prepared_statements=settings.db_prepared_statements,
    )


class ExtensionsView(Protocol):
    """What the services read of the runner's extensions (``runner.extension.Extensions`` is one)."""

    def transport(self, channel: str) -> Callable[[Settings], Any] | None:
        """The transport factory for ``channel``, or None."""
        ...

    @property
    def roles(self) -> tuple[str, ...]:
        """The groups users may be given (empty: any group)."""
        ...

    @property
    def person_fields(self) -> tuple[Any, ...]:
        """The facts extensions keep about people (``runner.extension.PersonField``)."""
        ...

    def check_person(self, values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Person facts split per extension and normalised; ``BadValue`` names a bad field."""
        ...

    def write_person(self, s: Session, username: str, checked: Mapping[str, Mapping[str, Any]]) -> None:
        """Store checked person facts in the caller's session."""
        ...

    def read_person(self, s: Session, username: str) -> dict[str, Any]:
        """Every extension's facts about one person."""
        ...

    def people_gaps(self, s: Session) -> list[dict[str, Any]]:
        """The people who lack a fact a deployed process's step needs."""
        ...

    @property
    def option_lists(self) -> frozenset[str]:
        """The names of the configured lists enum form fields may name."""
        ...

    def options(self, s: Session, name: str) -> list[tuple[str, str]]:
        """A configured list as it is now, (id, label) pairs."""
        ...


class Core:
    """The runner's parts, its clock and its units of work (``Runner`` adds the public API)."""

    def __init__(self, settings: Settings, registry: Registry, extensions: ExtensionsView):
        self.settings = settings
        self.extensions = extensions
        self.db = Database(make_engine(settings.database_url, pool=pool_options(settings)))
        self.store = WorkflowStore()
        # NOTE: the handler registry (topics, checks, handler functions) the runner was built with.
        self.registry = registry
        self.clock: Clock = self._start_clock() if settings.clock == "virtual" else SystemClock()
        # NOTE: set when the worker is asked to stop; a running script then ends at its next check.
        self.stopping = threading.Event()
        self.engine = Engine(self.clock, settings.tz, Limits(timeout=settings.script_timeout, stop=self.stopping))
        # The business calendar as business-time timers read it, cached by its version.
        self.calendars = CalendarCache(settings.tz)
        # The outbox's transports, built once per channel (see outbox.transport_for).
        self.transports: dict[str, Any] = {}
        self.sender_locks = SenderLocks(self.db)
        # Whether the worker named in a lease on a timer or job still runs (runner.service.claims).
        self.worker_locks = WorkerLocks(self.db)
        # Handler calls run on these threads (kept between calls), see runner.service.calls.
        self.calls = CallThreads()
        # The daily sending window (RUNNER_SENDING_WINDOW) on every day: ``windows_in`` closes
        # it on the business calendar's days off, which is what a message's due time keeps to.
        self.daily_windows = Windows(settings.tz, settings.sending_window)

    def now(self) -> datetime:
        """The runner's current time (virtual or real)."""
        return self.clock.now()

    def windows_in(self, calendar: Callable[[], BusinessCalendar]) -> Windows:
        """The sending windows, shut on the days off of the business calendar ``calendar`` gives.

        NOTE: ``calendar`` is asked only when a windowed message needs a day checked; a unit's
        source (``CalendarCache.source``) reads the stored calendar once per unit, so an edit
        in the admin page holds from the next unit on.
        """
        if self.daily_windows.quiet_hours is None:
            return self.daily_windows
        return dataclasses.replace(self.daily_windows, closed=lambda day: calendar().is_day_off(day))

    @contextmanager
    def unit(self, sync: bool = True) -> Iterator[Unit]:
        """One unit of work (one transaction); first catches up with the virtual clock unless ``sync`` is False."""
        with self.db.unit() as s:
            calendar = self.calendars.source(s)  # NOTE: one source: timers and windows share its read
            with calendar_from(calendar):
                if sync:
                    self._sync_clock(s)
                yield Unit(s, self, calendar)

    @contextmanager
    def reading(self) -> Iterator[Unit]:
        """A unit over a read-only session, for queries that restore workflows (nothing is committed)."""
        with self.db.read() as s:
            calendar = self.calendars.source(s)
            with calendar_from(calendar):
                yield Unit(s, self, calendar)

    # --- the virtual clock --------------------------------------------------------------

    def _start_clock(self) -> FixedClock:
        """The persisted virtual clock (every process shares its 'now'), created at the real time on first use."""
        with self.db.unit() as s:
            row = s.get(ClockRow, "virtual")
            if row is not None:
                return FixedClock(row.now)
            clock = FixedClock(datetime.now().astimezone())
            s.add(ClockRow(name="virtual", now=clock.now()))
            return clock

    def refresh_clock(self) -> None:
        """Catch up with the persisted virtual clock when another process moved it on."""
        if isinstance(self.clock, FixedClock):
            with self.db.read() as s:
                self._sync_clock(s)

    def _sync_clock(self, s: Session) -> None:
        """The same, inside a unit of work that is open anyway (one small read)."""
        if isinstance(self.clock, FixedClock):
            self.catch_up(s.connection().scalar(VIRTUAL_NOW))

    def catch_up(self, stored: datetime | None) -> None:
        """Move the virtual clock to a persisted time (read by the caller) if that is later."""
        if stored is not None and isinstance(self.clock, FixedClock):
            self.clock.catch_up(stored)

    def save_clock(self, s: Session) -> None:
        """Persist the virtual clock if it moved on (in the caller's unit of work)."""
        if not isinstance(self.clock, FixedClock):
            return
        # NOTE: a conditional UPDATE locks the clock row only when the clock really moved;
        # locking it in every step would serialize all units of work on one row.
        moved = cast(
            CursorResult[Any],
            s.execute(
                update(ClockRow)
                .where(ClockRow.name == "virtual", ClockRow.now < self.clock.now())
                .values(now=self.clock.now())
                .execution_options(synchronize_session=False)
            ),
        )
        if moved.rowcount == 0 and s.get(ClockRow, "virtual") is None:
            s.add(ClockRow(name="virtual", now=self.clock.now()))


class Unit:
    """One unit of work: its session, history it records and the engine steps it commits."""

    def __init__(self, session: Session, core: Core, calendar: Callable[[], BusinessCalendar] | None = None):
        self.session = session
        self.core = core
        self.engine = core.engine
        # The business calendar as this unit sees it (read once, when first asked; timers share it).
        self.calendar = calendar if calendar is not None else core.calendars.source(session)

    @functools.cached_property
    def windows(self) -> Windows:
        """When this unit's windowed messages may go out: the daily window on the calendar's open days."""
        return self.core.windows_in(self.calendar)

    def now(self) -> datetime:
        """The runner's current time."""
        return self.core.clock.now()

    def record(
        self,
        inst: Instance | None,
        event: str,
        *,
        element: str | None = None,
        actor: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Write one history event (of ``inst``, or of no instance)."""
        # NOTE: history is write-only: its rows of a unit go in with one INSERT at commit.
        add_row_later(
            self.session,
            HistoryEvent,
            at=self.now(),
            instance_id=inst.id if inst else None,
            business_key=inst.business_key if inst else None,
            process_key=inst.process_key if inst else None,
            event=event,
            element_id=element,
            actor=actor,
            details=details or {},
        )

    # --- versions and specs -------------------------------------------------------------

    def latest_version(self, process_key: str) -> ProcessVersion:
        """The newest deployed version of a process key."""
        row = LATEST_VERSION.first(self.session, {"b_key": process_key})
        if row is None:
            raise NotFound(f"process {process_key!r} is not deployed")
        return attach(self.session, ProcessVersion, row)

    def specs(self, version: ProcessVersion | int, called: dict[str, int]) -> tuple[Any, dict[str, Any]]:
        """The spec of a version (a row or its id) with the specs of the processes it calls."""
        s, store = self.session, self.core.store
        version_id = version if isinstance(version, int) else version.id
        spec, subs = store.load_spec(version_id, functools.partial(_spec_text, s, version_id))
        subs = dict(subs)
        for key, called_id in called.items():
            called_spec, called_subs = store.load_spec(called_id, functools.partial(_spec_text, s, called_id))
            subs.update(called_subs)
            subs[key] = called_spec
        return spec, subs

    def called_versions(self, version: ProcessVersion) -> dict[str, int]:
        """Call activities bind to the latest version of the called process at start."""
        found: dict[str, int] = {}
        todo = list(version.called)
        while todo:
            key = todo.pop()
            if key in found or key == version.process_key:
                continue
            row = self.latest_version(key)
            found[key] = row.id
            todo.extend(row.called)
        return found

    # --- instances ----------------------------------------------------------------------

    @logs.bind()  # NOTE: the new instance's log fields last as long as this call (runner.logs)
    def start(
        self,
        process_key: str,
        business_key: str | None,
        data: dict[str, Any],
        actor: str | None,
        trigger: tuple[str, str] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> str:
        """Start the latest version of a process; returns the new instance's id."""
        version = self.latest_version(process_key)
        called = self.called_versions(version)
        spec, subs = self.specs(version, called)
        workflow = self.engine.create(spec, subs, data)
        now = self.now()
        inst = Instance(
            id=str(uuid.uuid4()),
            process_key=process_key,
            version_id=version.id,
            business_key=business_key,
            status="running",
            state="",
            data=data,
            called_versions=called,
            stages=[],
            waits={},
            created_at=now,
            updated_at=now,
        )
        # NOTE: not added to the session: commit() INSERTs it once, with its first state.
        logs.annotate(instance_id=inst.id, business_key=business_key)
        self.record(
            inst,
            "instance.started",
            actor=actor,
            details={"version": version.version, "data": data, **({"trigger": list(trigger)} if trigger else {})},
        )
        self.engine.start(workflow, trigger, payload)
        self.commit(inst, workflow)
        return inst.id

    def load(self, instance_id: str, *, lock: bool = False) -> tuple[Instance, Any]:
        """An instance row and its restored workflow."""
        query = LOCK_INSTANCE if lock and self.core.db.is_postgres else LOAD_INSTANCE
        inst = self._instance(query, instance_id)
        if inst is None:
            raise NotFound(f"instance {instance_id} does not exist")
        return inst, self.restore(inst)

    def _instance(self, query: Prepared, instance_id: str) -> Instance | None:
        """An instance row read with ``query``, as the session's object (the one it holds, if any)."""
        row = query.first(self.session, {"b_id": instance_id})
        return None if row is None else attach(self.session, Instance, row)

    def restore(self, inst: Instance) -> Any:
        """An instance row's workflow, restored on its version's (cached) specs."""
        spec, subs = self.specs(inst.version_id, inst.called_versions or {})
        return self.core.store.load_state(inst.state, spec, subs, self.engine.script_engine)

    def load_for_worker(self, instance_id: str) -> tuple[Instance, Any] | None:
        """Like ``load`` with a row lock that skips (returns None) if another worker holds it."""
        if not self.core.db.is_postgres:
            return self.load(instance_id)
        # NOTE: the row comes with its lock, in one round trip.
        inst = self._instance(LOCK_INSTANCE_OR_SKIP, instance_id)
        if inst is None:
            return None
        return inst, self.restore(inst)

    def commit(
        self, inst: Instance, workflow: Any, completed_task: str | None = None, actor: str | None = None
    ) -> Snapshot:
        """Bound the tree, save it and project what the instance waits for (in this unit's transaction).

        ``completed_task`` is the user task or the job this unit of work completed.
        """
        self.engine.prune(workflow)
        snap = self.engine.snapshot(workflow)
        state = self.core.store.dump_state(workflow)
        timeout = self.core.settings.handler_timeout
        for event in projection.apply(self.session, inst, snap, state, completed_task, actor, self.now(), timeout):
            self.record(inst, event.name, element=event.element, details=event.details)
        for name, payload in snap.thrown:
            self._throw(inst, name, payload)
        return snap

    # --- messages -----------------------------------------------------------------------

    def _throw(self, inst: Instance, name: str, payload: dict[str, Any]) -> None:
        """A message thrown by an instance goes to the same customer's other instances."""
        try:
            self.correlate(name, inst.business_key, payload, exclude=inst.id)
        except NotCorrelated as exc:
            self.record(inst, "message.dropped", details={"message": name, "reason": str(exc)})
            log.warning("instance %s threw %r: %s", inst.id, name, exc)

    @logs.bind()
    def correlate(
        self,
        name: str,
        business_key: str | None,
        payload: dict[str, Any],
        exclude: str | None = None,
        actor: str | None = None,
    ) -> list[str]:
        """Deliver a message to waiting instances (all but ``exclude``), or start the processes it starts."""
        query = select(Subscription.instance_id).where(
            Subscription.message_name == name, Subscription.business_key == business_key
        )
        waiting = [i for i in dict.fromkeys(self.session.scalars(query)) if i != exclude]
        delivered = []
        for instance_id in waiting:
            logs.annotate(instance_id=instance_id, business_key=business_key)
            inst, workflow = self.load(instance_id, lock=True)
            if self.engine.deliver_message(workflow, name, payload):
                self.record(inst, "message.correlated", actor=actor, details={"message": name, "data": payload})
                self.commit(inst, workflow)
                delivered.append(inst.id)
        if delivered:
            return delivered
        started = [
            self.start(v.process_key, business_key, {}, actor, ("message", name), payload)
            for v in self._message_start_versions(name)
        ]
        if not started:
            raise NotCorrelated(
                f"message {name!r} for business key {business_key!r}: no instance is waiting "
                "for it and no deployed process starts with it"
            )
        return started

    def _message_start_versions(self, name: str) -> list[ProcessVersion]:
        """The latest versions (one query) whose message start events catch ``name``."""
        newest = (
            select(ProcessVersion.process_key, func.max(ProcessVersion.version).label("v"))
            .where(ProcessVersion.kind == "bpmn")
            .group_by(ProcessVersion.process_key)
            .subquery()
        )
        versions = self.session.scalars(
            select(ProcessVersion)
            .join(newest, (ProcessVersion.process_key == newest.c.process_key) & (ProcessVersion.version == newest.c.v))
            .order_by(ProcessVersion.process_key)
        )
        return [v for v in versions if name in (v.message_starts or [])]
