"""The runner's public API: deploy, start, complete, correlate, fire, work.

Every public method that changes an instance is one unit of work: one transaction that
loads the instance, applies one outside event through the engine, projects what the
instance now waits for into the inbox/timer/job/subscription tables, writes history and
saves the tree. The instance row's version column turns a concurrent second writer into
``Conflict``; nothing is half-written.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, func, select, update
from sqlalchemy.orm import Session

from runner.clock import FixedClock, SystemClock
from runner.engine import Engine, Snapshot, scripting
from runner.errors import (
    BudgetExceeded,
    Conflict,
    Invalid,
    NotCorrelated,
    NotFound,
    RunnerError,
    StepFailed,
    caused_by,
)
from runner.extension import Extension, Extensions, combined
from runner.model import forms, inputs
from runner.registry import Registry
from runner.sandbox.budget import Limits
from runner.service import accounts, policy, projection, tasks
from runner.service.deployment import Deployed, Deployer, latest_files, read_paths, staff_usernames
from runner.settings import Settings
from runner.store.database import Database, Prepared, WorkflowStore, add_row_later, attach, make_engine
from runner.store.models import (
    ClockRow,
    HistoryEvent,
    Incident,
    Instance,
    ProcessVersion,
    Subscription,
    Timer,
    UserTask,
)

log = logging.getLogger(__name__)

# NOTE: every cycle timer fires once per period on the way; ten years is already many firings.
MAX_CLOCK_STEP = timedelta(days=3653)
VIRTUAL_NOW = select(ClockRow.now).where(ClockRow.name == "virtual")
# NOTE: completing a task reads the task, its instance and the virtual clock in one
# statement compiled once (see storage.Prepared).
_INSTANCE_COLUMNS = [column.key for column in Instance.__table__.columns]
TASK_AND_INSTANCE = Prepared(
    select(
        *Instance.__table__.columns,
        UserTask.element_id.label("task_element_id"),
        UserTask.name.label("task_name"),
        UserTask.state.label("task_state"),
        UserTask.completed_by.label("task_completed_by"),
        UserTask.form.label("task_form"),
        VIRTUAL_NOW.scalar_subquery().label("virtual_now"),
    )
    .join_from(UserTask, Instance, Instance.id == UserTask.instance_id)
    .where(UserTask.id == bindparam("b_task"))
)


def _spec_text(s: Session, version_id: int) -> str:
    """The stored spec JSON of a version (loaded only when the spec cache misses)."""
    return s.get_one(ProcessVersion, version_id).spec


class Runner:
    """One runner over one database: ``Runner(settings, registry, extensions=(...))``.

    The handler registry is the caller's (see ``runner.registry``); without one the runner
    knows no service-task topic, and deploys only processes that call none.
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry | None = None,
        extensions: Iterable[Extension] | Extensions = (),
    ):
        self.settings = settings
        self.extensions = combined(extensions)
        self.policy = policy.Policy(self.extensions)
        self.db = Database(make_engine(settings.database_url))
        self.store = WorkflowStore()
        self.registry = registry if registry is not None else Registry()
        self.clock = self._start_clock() if settings.clock == "virtual" else SystemClock()
        # NOTE: set when the worker is asked to stop; a running script then ends at its next check.
        self.stopping = threading.Event()
        self.engine = Engine(self.clock, settings.tz, Limits(timeout=settings.script_timeout, stop=self.stopping))
        self.deployer = Deployer(self.store, self.registry.topics, self.registry.checks)

    # --- clock -----------------------------------------------------------------------

    def now(self) -> datetime:
        """The runner's current time (virtual or real)."""
        return self.clock.now()

    def _start_clock(self) -> FixedClock:
        """The persisted virtual clock (every process shares its 'now'), created at the real time on first use."""
        with self.db.unit() as s:
            row = s.get(ClockRow, "virtual")
            if row is not None:
                return FixedClock(row.now)
            clock = FixedClock(datetime.now().astimezone())
            s.add(ClockRow(name="virtual", now=clock.now()))
            return clock

    def _refresh_clock(self) -> None:
        """Catch up with the persisted virtual clock when another process moved it on."""
        if isinstance(self.clock, FixedClock):
            with self.db.read() as s:
                self._sync_clock(s)

    def _sync_clock(self, s: Session) -> None:
        """The same, inside a unit of work that is open anyway (one small read)."""
        if isinstance(self.clock, FixedClock):
            self._catch_up(s.connection().scalar(VIRTUAL_NOW))

    def _catch_up(self, stored: datetime | None) -> None:
        """Move the virtual clock to the persisted time if that is later."""
        if stored is not None and isinstance(self.clock, FixedClock) and stored > self.clock.now():
            self.clock.set(stored)

    @contextmanager
    def _unit(self, sync: bool = True) -> Iterator[Session]:
        """A unit of work that first catches up with the virtual clock (unless its first read does)."""
        with self.db.unit() as s:
            if sync:
                self._sync_clock(s)
            yield s

    def _save_clock(self, s: Session) -> None:
        """Persist the virtual clock if it moved on."""
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

    # --- deployment --------------------------------------------------------------------

    def deploy(self, files: Mapping[str, bytes] | Iterable[str | Path], actor: str = "") -> list[Deployed]:
        """Validate and store BPMN/DMN files; all problems at once, nothing stored on error.

        Each ``Deployed`` carries its warnings: user tasks that nobody but an admin would see.
        """
        if isinstance(files, (str, Path)):
            files = [files]
        files = dict(files) if isinstance(files, Mapping) else read_paths(list(files))
        with self.db.read() as s:
            known, staff = latest_files(s), staff_usernames(s)
        parsed = self.deployer.parse(files, known, staff)
        with self.db.unit() as s:
            deployed = self.deployer.store_versions(s, parsed, self.now(), actor)
            for item in deployed:
                if item.changed:
                    self._history(
                        s,
                        None,
                        "process.deployed",
                        actor=actor,
                        details={"process_key": item.process_key, "version": item.version, "file": item.file_name},
                    )
                    self._schedule_start_timers(s, item)
        return deployed

    def _schedule_start_timers(self, s: Session, item: Deployed) -> None:
        from runner.service import scheduler

        scheduler.schedule_start_timers(self, s, item)

    def latest_version(self, s: Session, process_key: str) -> ProcessVersion:
        """The newest deployed version of a process key."""
        row = s.scalars(
            select(ProcessVersion)
            .where(ProcessVersion.process_key == process_key, ProcessVersion.kind == "bpmn")
            .order_by(ProcessVersion.version.desc())
            .limit(1)
        ).first()
        if row is None:
            raise NotFound(f"process {process_key!r} is not deployed")
        return row

    def _specs(self, s: Session, version: ProcessVersion | int, called: dict[str, int]):
        """The spec of a version (a row or its id) with the specs of the processes it calls."""
        version_id = version if isinstance(version, int) else version.id
        spec, subs = self.store.load_spec(version_id, functools.partial(_spec_text, s, version_id))
        subs = dict(subs)
        for key, called_id in called.items():
            called_spec, called_subs = self.store.load_spec(called_id, functools.partial(_spec_text, s, called_id))
            subs.update(called_subs)
            subs[key] = called_spec
        return spec, subs

    def _called_versions(self, s: Session, version: ProcessVersion) -> dict[str, int]:
        """Call activities bind to the latest version of the called process at start."""
        found: dict[str, int] = {}
        todo = list(version.called)
        while todo:
            key = todo.pop()
            if key in found or key == version.process_key:
                continue
            row = self.latest_version(s, key)
            found[key] = row.id
            todo.extend(row.called)
        return found

    # --- instances -------------------------------------------------------------------

    def start_instance(
        self,
        process_key: str,
        business_key: str | None = None,
        data: Mapping[str, Any] | None = None,
        actor: str | None = None,
        *,
        person: policy.Person | None = None,
    ) -> str:
        """Start the latest version of a process for a customer; returns the instance id.

        With ``person`` (a signed-in user), ``runner.service.policy`` decides whether they may.
        """
        inputs.check_key(process_key, "process_key")
        inputs.check_key(business_key, "business_key")
        values = _plain(data, "start data")
        policy.check_data(values, "start data")
        actor = person.username if person is not None and actor is None else actor
        with scripting.acting_as(actor), self._unit() as s:
            if person is not None:
                self.policy.check_start(s, person, self.latest_version(s, process_key), business_key)
            return self._start(s, process_key, business_key, values, actor, None, None)

    def _start(
        self,
        s: Session,
        process_key: str,
        business_key: str | None,
        data: dict[str, Any],
        actor: str | None,
        trigger: tuple[str, str] | None,
        payload: dict[str, Any] | None,
    ) -> str:
        version = self.latest_version(s, process_key)
        called = self._called_versions(s, version)
        spec, subs = self._specs(s, version, called)
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
        s.add(inst)
        s.flush()
        self._history(
            s,
            inst,
            "instance.started",
            actor=actor,
            details={"version": version.version, "data": data, **({"trigger": list(trigger)} if trigger else {})},
        )
        self.engine.start(workflow, trigger, payload)
        self._commit_step(s, inst, workflow)
        return inst.id

    def load(self, s: Session, instance_id: str, *, lock: bool = False):
        """An instance row and its restored workflow."""
        inst = s.get(Instance, instance_id, with_for_update=lock and self.db.is_postgres)
        if inst is None:
            raise NotFound(f"instance {instance_id} does not exist")
        return inst, self._restore(s, inst)

    def _restore(self, s: Session, inst: Instance):
        """An instance row's workflow, restored on its version's (cached) specs."""
        spec, subs = self._specs(s, inst.version_id, inst.called_versions or {})
        return self.store.load_state(inst.state, spec, subs, self.engine.script_engine)

    def load_for_worker(self, s: Session, instance_id: str):
        """Like ``load`` with a row lock that skips (returns None) if another worker holds it."""
        if self.db.is_postgres:
            query = select(Instance.id).where(Instance.id == instance_id).with_for_update(skip_locked=True)
            if s.scalars(query).first() is None:
                return None
        return self.load(s, instance_id)

    def _commit_step(
        self, s: Session, inst: Instance, workflow, completed_task: str | None = None, actor: str | None = None
    ) -> Snapshot:
        """Bound the tree, save it and project what the instance waits for (in the caller's transaction)."""
        self.engine.prune(workflow)
        snap = self.engine.snapshot(workflow)
        projection.apply(self, s, inst, snap, self.store.dump_state(workflow), completed_task, actor)
        for name, payload in snap.thrown:
            self._throw(s, inst, name, payload)
        return snap

    def _throw(self, s: Session, inst: Instance, name: str, payload: dict[str, Any]) -> None:
        """A message thrown by an instance goes to the same customer's other instances."""
        try:
            self._correlate(s, name, inst.business_key, payload, exclude=inst.id)
        except NotCorrelated as exc:
            self._history(s, inst, "message.dropped", details={"message": name, "reason": str(exc)})
            log.warning("instance %s threw %r: %s", inst.id, name, exc)

    def complete_task(
        self,
        task_id: str,
        data: Mapping[str, Any] | None = None,
        actor: str | None = None,
        *,
        html: bool = False,
        groups: Iterable[str] | None = None,
    ) -> None:
        """Complete an open user task with form data; validation errors name each field.

        With ``groups`` (the roles of ``actor``), the person's right to complete is checked
        inside the same unit of work: only the assignee, or a candidate when nobody claimed it.

        When the instance's version column rejects the save (someone changed the instance
        meanwhile), the unit of work is tried once more on fresh state: it then succeeds, or
        reports who completed the task first.
        """
        inputs.check_key(task_id, "task_id", inputs.ROW_ID_LENGTH)
        rejected: Conflict | None = None
        for _ in range(2):
            seen: dict[str, str] = {}
            try:
                with scripting.acting_as(actor), self._unit(sync=False) as s:
                    if groups is not None:
                        tasks.hold_to_complete(s, task_id, actor or "", list(groups))
                    self._complete(s, task_id, _mapping(data, "form data"), actor, html, seen)
                return
            except Conflict as exc:
                if seen.get("state") == "open":
                    rejected = exc  # the version column rejected the save: try once more
                elif rejected is not None:
                    raise exc from rejected  # ... and the task turned out done by someone else
                else:
                    raise
            except RunnerError as exc:
                if caused_by(exc, BudgetExceeded) is not None:
                    self._record_breach(task_id, exc, actor)
                raise
        raise Conflict(
            f"task {seen['label']} keeps being changed by someone else at the same time; reload it and try again"
        ) from rejected

    def _complete(
        self, s: Session, task_id: str, data: dict[str, Any], actor: str | None, html: bool, seen: dict[str, str]
    ) -> None:
        row = TASK_AND_INSTANCE.first(s, {"b_task": task_id})
        if row is None:
            raise NotFound(f"task {task_id} does not exist")
        self._catch_up(row["virtual_now"])
        element, name, state = row["task_element_id"], row["task_name"], row["task_state"]
        seen["label"] = f"{element} ({name})" if name else element
        seen["state"] = state
        if state != "open":
            by = f" by {row['task_completed_by']}" if row["task_completed_by"] else ""
            raise Conflict(f"task {seen['label']} was already {state}{by}")
        # NOTE: no row lock: two people completing one task may both load the instance;
        # its version column then turns the second save into Conflict.
        inst = attach(s, Instance, {key: row[key] for key in _INSTANCE_COLUMNS})
        workflow = self._restore(s, inst)
        task = self.engine.task(workflow, task_id)
        form = forms.form_from_dict(row["task_form"]) if row["task_form"] else forms.Form(())
        values = forms.coerce(form, data, current=task.data, task=name or element, html=html)
        self.engine.complete_user_task(workflow, task_id, values)
        self._history(
            s,
            inst,
            "task.completed",
            element=element,
            actor=actor,
            details={"task_id": task_id, "name": name, "data": values},
        )
        self._commit_step(s, inst, workflow, completed_task=task_id, actor=actor)

    # --- who works on a task (see runner.service.tasks) ------------------------------------------

    def claim_task(self, task_id: str, user: str, groups: Iterable[str] = (), *, override: bool = False) -> None:
        """Make an open task the user's (a candidate user, or holding one of ``groups``; any task with ``override``)."""
        from runner.service import tasks

        _check_task_and_user(task_id, user)
        with self._unit() as s:
            tasks.claim(self, s, task_id, user, list(groups), override)

    def unclaim_task(self, task_id: str, user: str) -> None:
        """Give a task the user claimed back to its candidate groups."""
        from runner.service import tasks

        _check_task_and_user(task_id, user)
        with self._unit() as s:
            tasks.unclaim(self, s, task_id, user)

    def reassign_task(
        self, task_id: str, to_user: str | None, actor: str | None = None, *, override: bool = False
    ) -> None:
        """Give an open task to another active staff member who is a candidate (any one with ``override``;
        None: to nobody)."""
        from runner.service import tasks

        _check_task_and_user(task_id, to_user)
        with self._unit() as s:
            roles = accounts.active_user(s, to_user).roles if to_user else []
            tasks.reassign(self, s, task_id, to_user, actor or "", roles, override)

    def _record_breach(self, task_id: str, exc: RunnerError, actor: str | None) -> None:
        """An open incident for a completion whose step broke its budget (the completion itself
        was rolled back and the task stays open), so admins see the diagram needs mending.

        NOTE: one incident per task; each further try counts on it. Retrying the incident only
        resolves it: the person completes the task again once the diagram is mended.
        """
        with self.db.unit() as s:
            task = s.get(UserTask, task_id)
            if task is None:
                return
            # the element whose script broke the budget, else the task's own
            element = getattr(caused_by(exc, StepFailed), "element_id", "") or task.element_id
            incident = s.scalars(
                select(Incident).where(Incident.kind == "task", Incident.ref == task_id, Incident.state == "open")
            ).first()
            if incident is not None:
                incident.tries, incident.error = incident.tries + 1, str(exc)
                return
            s.add(
                Incident(
                    instance_id=task.instance_id,
                    kind="task",
                    ref=task_id,
                    element_id=element,
                    error=str(exc),
                    tries=1,
                    state="open",
                    created_at=self.now(),
                )
            )
            self._history(
                s,
                s.get(Instance, task.instance_id),
                "incident.raised",
                element=element,
                actor=actor,
                details={"error": str(exc), "kind": "task"},
            )

    def complete_task_as(
        self, task_id: str, data: Mapping[str, Any] | None, user: str, groups: Iterable[str] = (), *, html: bool = False
    ) -> None:
        """``complete_task`` for a person: only the assignee, or a candidate when nobody claimed it."""
        self.complete_task(task_id, data, actor=user, html=html, groups=list(groups))

    def migrate_instance(self, instance_id: str, to_version: int | None = None, actor: str | None = None) -> int:
        """Move a running instance to another version of its process (default latest); returns that version.

        Allowed when every task the instance has reached exists in the target version;
        otherwise Invalid names the missing elements and nothing changes.
        """
        from runner.service import instance_migration as migration

        inputs.check_key(instance_id, "instance_id", inputs.ROW_ID_LENGTH)
        with self._unit() as s:
            return migration.migrate(self, s, instance_id, to_version, actor)

    # --- messages ------------------------------------------------------------------

    def correlate(
        self,
        message_name: str,
        business_key: str | None,
        data: Mapping[str, Any] | None = None,
        actor: str | None = None,
        *,
        person: policy.Person | None = None,
    ) -> list[str]:
        """Deliver a message to a customer's waiting instances, or start processes for it.

        With ``person`` (a signed-in user), ``runner.service.policy`` decides whether they may send it.
        """
        inputs.check_key(message_name, "message_name", inputs.NAME_LENGTH)
        inputs.check_key(business_key, "business_key")
        values = _plain(data, "message data")
        policy.check_data(values, "message data")
        actor = person.username if person is not None and actor is None else actor
        with scripting.acting_as(actor), self._unit() as s:
            if person is not None:
                self.policy.check_message(s, person, message_name, business_key)
            return self._correlate(s, message_name, business_key, values, actor=actor)

    def _correlate(
        self,
        s: Session,
        name: str,
        business_key: str | None,
        payload: dict[str, Any],
        exclude: str | None = None,
        actor: str | None = None,
    ) -> list[str]:
        query = select(Subscription.instance_id).where(
            Subscription.message_name == name, Subscription.business_key == business_key
        )
        waiting = [i for i in dict.fromkeys(s.scalars(query)) if i != exclude]
        delivered = []
        for instance_id in waiting:
            inst, workflow = self.load(s, instance_id, lock=True)
            if self.engine.deliver_message(workflow, name, payload):
                self._history(s, inst, "message.correlated", actor=actor, details={"message": name, "data": payload})
                self._commit_step(s, inst, workflow)
                delivered.append(inst.id)
        if delivered:
            return delivered
        started = [
            self._start(s, v.process_key, business_key, {}, actor, ("message", name), payload)
            for v in self._message_start_versions(s, name)
        ]
        if not started:
            raise NotCorrelated(
                f"message {name!r} for business key {business_key!r}: no instance is waiting "
                "for it and no deployed process starts with it"
            )
        return started

    def _message_start_versions(self, s: Session, name: str) -> list[ProcessVersion]:
        """The latest versions (one query) whose message start events catch ``name``."""
        newest = (
            select(ProcessVersion.process_key, func.max(ProcessVersion.version).label("v"))
            .where(ProcessVersion.kind == "bpmn")
            .group_by(ProcessVersion.process_key)
            .subquery()
        )
        versions = s.scalars(
            select(ProcessVersion)
            .join(newest, (ProcessVersion.process_key == newest.c.process_key) & (ProcessVersion.version == newest.c.v))
            .order_by(ProcessVersion.process_key)
        )
        return [v for v in versions if name in (v.message_starts or [])]

    # --- history ---------------------------------------------------------------------

    def _history(
        self,
        s: Session,
        inst: Instance | None,
        event: str,
        *,
        element: str | None = None,
        actor: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        # NOTE: history is write-only: its rows of a unit go in with one INSERT at commit.
        add_row_later(
            s,
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

    # --- timers, jobs, outbox, incidents -----------------------------------------------

    def run_due(self) -> int:
        """Fire due timers and run due handler jobs, earliest first."""
        from runner.service import scheduler

        return scheduler.run_due(self)

    def advance_clock(self, delta: timedelta) -> datetime:
        """Move the virtual clock forward; everything due on the way fires in order."""
        from runner.service import scheduler

        if not isinstance(self.clock, FixedClock):
            raise RunnerError("the clock can only be moved with RUNNER_CLOCK=virtual")
        if not timedelta(0) <= delta <= MAX_CLOCK_STEP:
            raise Invalid(f"the clock moves forward by at most {MAX_CLOCK_STEP.days} days at a time, not {delta}")
        return scheduler.advance(self, delta)

    def deliver_outbox(self) -> int:
        """Send due outbox messages; returns how many were delivered."""
        from runner.service import outbox

        return outbox.deliver_due(self)

    def retry_incident(self, incident_id: int, actor: str | None = None) -> None:
        """Resolve an incident by trying its job, timer or outbox message again, due now."""
        from runner.service import jobs, outbox

        inputs.check_row_number(incident_id, "incident_id")
        with self.db.unit() as s:
            incident = s.get(Incident, incident_id)
            if incident is None:
                raise NotFound(f"incident {incident_id} does not exist")
            if incident.state != "open":
                raise Conflict(f"incident {incident_id} is already {incident.state}")
            if incident.kind == "job":
                jobs.retry_incident(self, s, incident)
            elif incident.kind == "outbox":
                outbox.retry_incident(self, s, incident)
            elif incident.kind == "timer":
                timer = s.get_one(Timer, int(incident.ref))
                timer.state, timer.due_at = "waiting", self.now()
            # NOTE: a "task" incident has nothing to run again: the task is still open.
            incident.state, incident.resolved_at, incident.resolved_by = "resolved", self.now(), actor
            inst = s.get(Instance, incident.instance_id) if incident.instance_id else None
            self._history(
                s,
                inst,
                "incident.resolved",
                element=incident.element_id,
                actor=actor,
                details={"incident": incident.id, "kind": incident.kind},
            )


def _mapping(data: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """Caller data as a dict; anything but a mapping is Invalid."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise Invalid(f"{what} must be a mapping of names to values, not {type(data).__name__}")
    return dict(data)


def _plain(data: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """Caller data that will be stored as JSON: a mapping of JSON values, else Invalid."""
    values = inputs.check_data(_mapping(data, what), what)  # first: it names the field
    try:
        json.dumps(values, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise Invalid(f"{what} is not JSON-safe: {exc}") from exc
    return values


def _check_task_and_user(task_id: str, user: str | None) -> None:
    """A task id and a username that can be looked up at all (else TextInvalid naming which)."""
    inputs.check_key(task_id, "task_id", inputs.ROW_ID_LENGTH)
    inputs.check_key(user, "user")
