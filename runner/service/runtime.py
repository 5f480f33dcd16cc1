"""The runner's public API: deploy, start, complete, correlate, fire, work.

Every public method that changes an instance is one unit of work: one transaction that
loads the instance, applies one outside event through the engine, projects what the
instance now waits for into the inbox/timer/job/subscription tables, writes history and
saves the tree. The instance row's version column turns a concurrent second writer into
``Conflict``; nothing is half-written.

``Runner`` is a ``runner.service.unit.Core`` (parts, clock, units of work); the work of a
unit (history, engine steps, starts, messages) is ``Unit``'s, and the services below
(scheduler, jobs, outbox, tasks, instance_migration) get a ``Core`` or a ``Unit``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from runner import logs, metrics
from runner.clock import FixedClock
from runner.engine import scripting, timers
from runner.errors import (
    BudgetExceeded,
    Conflict,
    Invalid,
    NotFound,
    RunnerError,
    StepFailed,
    caused_by,
)
from runner.extension import Extension, Extensions, combined
from runner.model import forms, inputs, worktime
from runner.registry import Registry
from runner.service import (
    accounts,
    calendars,
    clockruns,
    instance_migration,
    jobs,
    outbox,
    policy,
    scheduler,
    sendwindows,
    tasks,
)
from runner.service.deployment import Deployed, Deployer, latest_files, read_paths, staff_usernames
from runner.service.unit import VIRTUAL_NOW, Core, Unit
from runner.settings import Settings
from runner.store.database import Prepared, attach
from runner.store.models import (
    Incident,
    Instance,
    ProcessVersion,
    Timer,
    UserTask,
)

MAX_CLOCK_STEP = clockruns.MAX_STEP
# NOTE: completing a task reads the task, its instance and the virtual clock in one
# statement compiled once (see store.database.Prepared).
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


class Runner(Core):
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
        self.extensions: Extensions = combined(extensions)
        super().__init__(settings, registry if registry is not None else Registry(), self.extensions)
        self.policy = policy.Policy(self.extensions)
        self.deployer = Deployer(
            self.store, self.registry.topics, self.registry.checks, lambda: self.extensions.option_lists
        )

    # --- deployment --------------------------------------------------------------------

    def deploy(self, files: Mapping[str, bytes] | Iterable[str | Path], actor: str = "") -> list[Deployed]:
        """Validate and store BPMN/DMN files; all problems at once, nothing stored on error.

        Each ``Deployed`` carries its warnings: user tasks that nobody but an admin would see, and
        (``people``) the people a step would fail on, as the extensions review them.
        """
        if isinstance(files, (str, Path)):
            files = [files]
        files = dict(files) if isinstance(files, Mapping) else read_paths(list(files))
        with self.db.read() as s:
            known, staff = latest_files(s), staff_usernames(s)
        parsed = self.deployer.parse(files, known, staff)
        with self.db.read() as s:
            people = self.extensions.review(
                s, [(p.process_key, p.xml, p.file_name) for p in parsed if p.kind == "bpmn"]
            )
        with self.unit(sync=False) as unit:
            deployed = self.deployer.store_versions(unit.session, parsed, self.now(), actor)
            for item in deployed:
                if item.changed:
                    unit.record(
                        None,
                        "process.deployed",
                        actor=actor,
                        details={"process_key": item.process_key, "version": item.version, "file": item.file_name},
                    )
                    scheduler.schedule_start_timers(unit, item)
        return [replace(item, people=tuple(people.get(item.process_key, ()))) for item in deployed]

    def latest_version(self, s: Session, process_key: str) -> ProcessVersion:
        """The newest deployed version of a process key."""
        return Unit(s, self).latest_version(process_key)

    # --- instances -------------------------------------------------------------------

    @logs.bind()  # NOTE: each call binds its own log fields (runner.logs), dropped when it returns
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
        logs.annotate(business_key=business_key)
        with scripting.acting_as(actor), self.unit() as unit:
            if person is not None:
                self.policy.check_start(unit.session, person, unit.latest_version(process_key), business_key)
            return unit.start(process_key, business_key, values, actor)

    def load(self, s: Session, instance_id: str, *, lock: bool = False):
        """An instance row and its restored workflow."""
        return Unit(s, self).load(instance_id, lock=lock)

    @metrics.completion()
    @logs.bind()
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
                with scripting.acting_as(actor), self.unit(sync=False) as unit:
                    if groups is not None:
                        tasks.hold_to_complete(unit.session, task_id, actor or "", list(groups))
                    self._complete(unit, task_id, _mapping(data, "form data"), actor, html, seen)
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
        self, unit: Unit, task_id: str, data: dict[str, Any], actor: str | None, html: bool, seen: dict[str, str]
    ) -> None:
        s = unit.session
        row = TASK_AND_INSTANCE.first(s, {"b_task": task_id})
        if row is None:
            raise NotFound(f"task {task_id} does not exist")
        self.catch_up(row["virtual_now"])
        element, name, state = row["task_element_id"], row["task_name"], row["task_state"]
        logs.annotate(instance_id=row["id"], business_key=row["business_key"], element=element)
        seen["label"] = f"{element} ({name})" if name else element
        seen["state"] = state
        if state != "open":
            by = f" by {row['task_completed_by']}" if row["task_completed_by"] else ""
            raise Conflict(f"task {seen['label']} was already {state}{by}")
        # NOTE: no row lock: two people completing one task may both load the instance;
        # its version column then turns the second save into Conflict.
        inst = attach(s, Instance, {key: row[key] for key in _INSTANCE_COLUMNS})
        workflow = unit.restore(inst)
        task = self.engine.task(workflow, task_id)
        form = forms.form_from_dict(row["task_form"]) if row["task_form"] else forms.Form(())
        # NOTE: options from a configured list are checked against the list as it is now, in this unit
        form = forms.with_lists(form, lambda name: self.extensions.options(s, name))
        tz = self.settings.tz
        values = forms.coerce(
            form,
            data,
            current=task.data,
            task=name or element,
            html=html,
            now=self.now(),
            tz=tz,
            calendar=lambda: timers.business_calendar(tz),  # NOTE: the unit's stored calendar, read if needed
        )
        self.engine.complete_user_task(workflow, task_id, values)
        unit.record(
            inst,
            "task.completed",
            element=element,
            actor=actor,
            details={"task_id": task_id, "name": name, "data": values},
        )
        unit.commit(inst, workflow, completed_task=task_id, actor=actor)

    # --- who works on a task (see runner.service.tasks) ------------------------------------------

    def claim_task(self, task_id: str, user: str, groups: Iterable[str] = (), *, override: bool = False) -> None:
        """Make an open task the user's (a candidate user, or holding one of ``groups``; any task with ``override``)."""
        _check_task_and_user(task_id, user)
        with self.unit() as unit:
            tasks.claim(unit, task_id, user, list(groups), override)

    def unclaim_task(self, task_id: str, user: str) -> None:
        """Give a task the user claimed back to its candidate groups."""
        _check_task_and_user(task_id, user)
        with self.unit() as unit:
            tasks.unclaim(unit, task_id, user)

    def reassign_task(
        self, task_id: str, to_user: str | None, actor: str | None = None, *, override: bool = False
    ) -> None:
        """Give an open task to another active staff member who is a candidate (any one with ``override``;
        None: to nobody)."""
        _check_task_and_user(task_id, to_user)
        with self.unit() as unit:
            roles = accounts.active_user(unit.session, to_user).roles if to_user else []
            tasks.reassign(unit, task_id, to_user, actor or "", roles, override)

    def _record_breach(self, task_id: str, exc: RunnerError, actor: str | None) -> None:
        """An open incident for a completion whose step broke its budget (the completion itself
        was rolled back and the task stays open), so admins see the diagram needs mending.

        NOTE: one incident per task; each further try counts on it. Retrying the incident only
        resolves it: the person completes the task again once the diagram is mended.
        """
        with self.unit(sync=False) as unit:
            s = unit.session
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
            unit.record(
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
        inputs.check_key(instance_id, "instance_id", inputs.ROW_ID_LENGTH)
        with self.unit() as unit:
            return instance_migration.migrate(unit, instance_id, to_version, actor)

    # --- messages ------------------------------------------------------------------

    @logs.bind()
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
        logs.annotate(business_key=business_key)
        with scripting.acting_as(actor), self.unit() as unit:
            if person is not None:
                self.policy.check_message(unit.session, person, message_name, business_key)
            return unit.correlate(message_name, business_key, values, actor=actor)

    # --- timers, jobs, outbox, incidents -----------------------------------------------

    def run_due(self) -> int:
        """Fire due timers and run due handler jobs, earliest first."""
        return scheduler.run_due(self)

    def advance_clock(self, delta: timedelta, actor: str = "", progress: scheduler.Progress | None = None) -> datetime:
        """Move the virtual clock forward here and now; everything due on the way fires in order.

        A clock run executed in this process (``request_clock_run`` leaves it to the background).
        """
        if not isinstance(self.clock, FixedClock):
            raise RunnerError("the clock can only be moved with RUNNER_CLOCK=virtual")
        _check_step(delta)
        return scheduler.advance(self, delta, actor, progress)

    def request_clock_run(
        self, delta: timedelta, actor: str = "", *, expected: datetime | None = None, key: str | None = None
    ) -> dict[str, Any]:
        """Queue a clock run (see ``runner.service.clockruns``); it returns at once, an executor works it off.

        ``expected``: the clock time the caller saw (refused with Conflict if it moved since);
        ``key``: an idempotency key (a repeated key returns the first run).
        """
        _check_step(delta)
        if key is not None:
            inputs.check_key(key, "idempotency_key")
        return clockruns.request(self, delta, actor, expected=expected, key=key)

    def clock_run(self, run_id: int) -> dict[str, Any]:
        """One clock run as plain data (NotFound if there is none)."""
        inputs.check_row_number(run_id, "run_id")
        return clockruns.get(self, run_id)

    def current_clock_run(self) -> dict[str, Any] | None:
        """The active clock run, else the latest, else None."""
        return clockruns.current(self)

    def stalled_clock_run(self) -> int | None:
        """The id of the active clock run if nobody works on it (queued, or its executor's lease ran out)."""
        return clockruns.waiting(self) if isinstance(self.clock, FixedClock) else None

    def execute_clock_run(
        self, run_id: int | None = None, progress: scheduler.Progress | None = None
    ) -> dict[str, Any] | None:
        """Work off the active clock run in this process, unless another holds it (then None)."""
        return scheduler.execute_run(self, run_id, progress)

    def deliver_outbox(self) -> int:
        """Send due outbox messages; returns how many were delivered."""
        return outbox.deliver_due(self)

    # --- the business calendar ------------------------------------------------------

    def business_calendar(self) -> dict[str, Any]:
        """The business calendar: hours per weekday, whose holidays count, company days off, version."""
        with self.reading() as unit:
            cal = calendars.load(unit.session, self.settings.tz)
            return {**worktime.as_record(cal), "days_off": calendars.days_off(unit.session)}

    def save_business_calendar(self, hours: Mapping[str, str], country: str | None, actor: str = "") -> None:
        """Replace the working hours per weekday and the holiday country (Invalid names a bad field)."""
        with self.unit() as unit:
            cal = calendars.save(unit.session, self.settings.tz, unit.now(), _mapping(hours, "hours"), country, actor)
            unit.record(None, "calendar.changed", actor=actor, details=worktime.as_record(cal))
            sendwindows.defer_to_calendar(unit)  # NOTE: a weekday without hours shuts the quiet hours too

    def add_day_off(self, day: date | str, note: str = "", actor: str = "") -> None:
        """Add a company day off (a local date), or change its note."""
        when = _day(day)
        with self.unit() as unit:
            calendars.add_day_off(unit.session, self.settings.tz, unit.now(), when, note.strip(), actor)
            unit.record(None, "calendar.day_off_added", actor=actor, details={"day": when.isoformat(), "note": note})
            sendwindows.defer_to_calendar(unit)

    def remove_day_off(self, day: date | str, actor: str = "") -> None:
        """Remove a company day off (NotFound if it is not one)."""
        when = _day(day)
        with self.unit() as unit:
            calendars.remove_day_off(unit.session, self.settings.tz, unit.now(), when, actor)
            unit.record(None, "calendar.day_off_removed", actor=actor, details={"day": when.isoformat()})

    def retry_incident(self, incident_id: int, actor: str | None = None) -> None:
        """Resolve an incident by trying its job, timer or outbox message again, due now."""
        inputs.check_row_number(incident_id, "incident_id")
        with self.unit(sync=False) as unit:
            s = unit.session
            incident = s.get(Incident, incident_id)
            if incident is None:
                raise NotFound(f"incident {incident_id} does not exist")
            if incident.state != "open":
                raise Conflict(f"incident {incident_id} is already {incident.state}")
            if incident.kind == "job":
                jobs.retry_incident(unit, incident)
            elif incident.kind == "outbox":
                outbox.retry_incident(unit, incident)
            elif incident.kind == "timer":
                timer = s.get_one(Timer, int(incident.ref))
                timer.state, timer.due_at = "waiting", self.now()
            # NOTE: a "task" incident has nothing to run again: the task is still open.
            incident.state, incident.resolved_at, incident.resolved_by = "resolved", self.now(), actor
            inst = s.get(Instance, incident.instance_id) if incident.instance_id else None
            unit.record(
                inst,
                "incident.resolved",
                element=incident.element_id,
                actor=actor,
                details={"incident": incident.id, "kind": incident.kind},
            )


def _day(value: date | str) -> date:
    """A local date given as a date or as 'YYYY-MM-DD' (else Invalid naming the field)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise Invalid(f"day: {value!r} is not a date like 2027-02-03") from None


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


def _check_step(delta: timedelta) -> None:
    """A step the virtual clock may take in one run (else Invalid)."""
    if not timedelta(0) <= delta <= MAX_CLOCK_STEP:
        raise Invalid(f"the clock moves forward by at most {MAX_CLOCK_STEP.days} days at a time, not {delta}")


def _check_task_and_user(task_id: str, user: str | None) -> None:
    """A task id and a username that can be looked up at all (else TextInvalid naming which)."""
    inputs.check_key(task_id, "task_id", inputs.ROW_ID_LENGTH)
    inputs.check_key(user, "user")
