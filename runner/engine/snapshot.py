"""What an instance waits for after a step, read off SpiffWorkflow's task tree.

``take`` turns a workflow into a plain ``Snapshot`` (user tasks, timers, jobs, message
subscriptions, thrown messages, stages) that the runner projects into its tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from runner.clock import Clock
from runner.engine import timers
from runner.engine.specs import ExternalTask
from runner.engine.timers import ClockTimer
from runner.errors import Invalid, StepFailed
from runner.model import timeparse, worktime
from runner.model.worktime import BusinessCalendar
from runner.sandbox import expressions


class Engine(Protocol):
    """What a snapshot reads through the engine (``core.Engine`` is one): its clock, zone and expressions."""

    clock: Clock
    tz: tzinfo

    def evaluate(self, task: Task, text: str, extra: dict[str, Any] | None = None) -> Any:
        """An expression's value on a task."""
        ...

    def parameter(self, task: Task, param: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
        """A parameter's value on a task."""
        ...


ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED


@dataclass(frozen=True)
class UserTaskView:
    """A READY user task as the inbox needs it."""

    task_id: str
    element_id: str
    name: str
    lane: str | None
    stage: str | None
    assignee: str | None
    candidate_groups: list[str]
    candidate_users: list[str]
    due_at: datetime | None
    follow_up_at: datetime | None
    priority: int
    form: dict[str, Any]


@dataclass(frozen=True)
class TimerView:
    """A timer event some task waits on."""

    task_id: str
    element_id: str
    timer_name: str
    due_at: datetime
    value: str


@dataclass(frozen=True)
class JobView:
    """A STARTED external service task, with its evaluated input parameters."""

    task_id: str
    element_id: str
    topic: str
    params: dict[str, Any]
    properties: dict[str, str]


@dataclass
class Snapshot:
    """What an instance waits for after a step, and what it threw outside."""

    user_tasks: list[UserTaskView] = field(default_factory=list)
    timers: list[TimerView] = field(default_factory=list)
    jobs: list[JobView] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    thrown: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    completed: bool = False
    data: dict[str, Any] = field(default_factory=dict)


def _element(task: Task) -> tuple[str, str]:
    spec = task.task_spec
    return getattr(spec, "bpmn_id", None) or spec.name, getattr(spec, "bpmn_name", None) or ""


def props(task: Task) -> dict[str, str]:
    """The camunda:properties of a task's element."""
    return (getattr(task.task_spec, "extensions", None) or {}).get("properties", {})


def take(engine: Engine, workflow: BpmnWorkflow) -> Snapshot:
    """Everything the runner projects into tables after a unit of work."""
    snap = Snapshot(completed=workflow.is_completed(), data=current_data(workflow))
    for task in _tasks(workflow, ACTIVE):
        _observe(engine, task, snap)
    for event in workflow.get_events():
        if isinstance(event.event_definition, MessageEventDefinition):
            snap.thrown.append((event.event_definition.name, dict(event.payload or {})))
    return snap


def current_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The instance's variables: those of the most recently finished task."""
    if workflow.is_completed() and workflow.data:
        return dict(workflow.data)
    task = workflow.last_task or workflow.task_tree
    return {k: v for k, v in task.data.items() if not callable(v)}


def _tasks(workflow: BpmnWorkflow, state: int) -> list[Task]:
    found = [t for t in workflow.tasks.values() if t.state & state]
    for sub in workflow.subprocesses.values():
        found.extend(t for t in sub.tasks.values() if t.state & state)
    return found


def _observe(engine: Engine, task: Task, snap: Snapshot) -> None:
    spec = task.task_spec
    stage = props(task).get("stage")
    if stage and stage not in snap.stages:
        snap.stages.append(stage)
    if isinstance(spec, UserTask) and task.state == TaskState.READY:
        snap.user_tasks.append(_user_task(engine, task))
    elif isinstance(spec, ExternalTask) and task.state == TaskState.STARTED:
        snap.jobs.append(_job(engine, task))
    elif isinstance(spec, CatchingEvent) and task.state == TaskState.WAITING:
        _observe_events(engine, task, spec.event_definition, snap)


def _observe_events(engine: Engine, task: Task, definition, snap: Snapshot) -> None:
    items = definition.event_definitions if isinstance(definition, MultipleEventDefinition) else [definition]
    for item in items:
        if isinstance(item, MessageEventDefinition) and item.name not in snap.messages:
            snap.messages.append(item.name)
        elif isinstance(item, ClockTimer):
            state = item.timer_state(task)
            if state.get("due"):
                snap.timers.append(
                    TimerView(
                        str(task.id), _element(task)[0], item.name, datetime.fromisoformat(state["due"]), state["value"]
                    )
                )


def _user_task(engine: Engine, task: Task) -> UserTaskView:
    ext = task.task_spec.extensions or {}
    info = ext.get("user_task", {})
    element, name = _element(task)
    assignee = _maybe(engine, task, info.get("assignee"))
    due_at, follow_up_at = _dates(engine, task, info)
    return UserTaskView(
        task_id=str(task.id),
        element_id=element,
        name=name,
        lane=task.task_spec.lane,
        stage=ext.get("properties", {}).get("stage"),
        assignee=str(assignee) if assignee else None,
        candidate_groups=_names(engine, task, info.get("candidate_groups", [])),
        candidate_users=_names(engine, task, info.get("candidate_users", [])),
        due_at=due_at,
        follow_up_at=follow_up_at,
        priority=int(_maybe(engine, task, info.get("priority")) or 50),
        form=ext.get("form", {}),
    )


def _maybe(engine: Engine, task: Task, text: str | None) -> Any:
    if not text:
        return None
    return engine.evaluate(task, text) if expressions.is_wrapped(text) else text


def _names(engine: Engine, task: Task, values: list[str]) -> list[str]:
    names: list[str] = []
    for value in values:
        result = _maybe(engine, task, value)
        items = result if isinstance(result, (list, tuple, set)) else str(result).split(",")
        names.extend(str(i).strip() for i in items if str(i).strip())
    return names


def _dates(engine: Engine, task: Task, info: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """Due and follow-up dates, fixed when the task is first seen (PT30M is from creation, not from now).

    A user task marked ``calendar=business`` has its due date counted in working time.
    """
    dates = task.internal_data.get("runner:dates")
    if dates is None:
        business = timers.calendar_name(task.task_spec) == timers.BUSINESS
        cal = timers.business_calendar(engine.tz) if business and info.get("due_date") else None
        moments = (_moment(engine, task, info.get("due_date"), cal), _moment(engine, task, info.get("follow_up_date")))
        dates = [m.isoformat() if m else None for m in moments]
        task.internal_data["runner:dates"] = dates
    due, follow_up = (datetime.fromisoformat(d) if d else None for d in dates)
    return due, follow_up


def _moment(engine: Engine, task: Task, text: str | None, cal: BusinessCalendar | None = None) -> datetime | None:
    """A due/follow-up date: an expression, an ISO date-time or an ISO duration from now.

    With a business calendar a duration counts working time and a moment in time off moves
    to the next working instant; a value the calendar cannot place fails naming the task.
    """
    raw = _maybe(engine, task, text)
    if raw is None:
        return None
    now = engine.clock.now()
    try:
        value = _when(raw, engine.tz)
        if value is None:
            raise StepFailed(f"due date {text!r} gave {raw!r}, not a date", *_element(task))
        return (_in_clock_time(now, value) if cal is None else _in_business_time(cal, now, value)).astimezone(UTC)
    except (Invalid, OverflowError, ValueError) as exc:  # e.g. not ISO 8601, P9999Y, no working time
        raise StepFailed(f"due date {text!r}: {exc}", *_element(task)) from exc


def _when(value: Any, tz: tzinfo) -> datetime | timedelta | timeparse.Duration | None:
    """A due date's value as a moment (aware) or a duration; None if it is neither."""
    if isinstance(value, str) and value.strip().upper().startswith("P"):
        return timeparse.parse_duration(value.strip())
    if isinstance(value, str):
        value = timeparse.parse_date(value.strip(), tz)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    return value if isinstance(value, (timedelta, timeparse.Duration)) else None


def _in_clock_time(now: datetime, value: datetime | timedelta | timeparse.Duration) -> datetime:
    if isinstance(value, datetime):
        return value
    return now + value if isinstance(value, timedelta) else value.add_to(now)


def _in_business_time(
    cal: BusinessCalendar, now: datetime, value: datetime | timedelta | timeparse.Duration
) -> datetime:
    """A due moment in working time: a duration counted in working time, a date moved out of time off."""
    if isinstance(value, datetime):
        return worktime.next_working_instant(cal, value)
    if isinstance(value, timedelta):
        return worktime.add_working_time(cal, now, value)
    return worktime.add_duration(cal, now, value)


def _job(engine: Engine, task: Task) -> JobView:
    ext = task.task_spec.extensions or {}
    params = {name: engine.parameter(task, param) for name, param in ext.get("inputs", {}).items()}
    return JobView(str(task.id), _element(task)[0], ext.get("topic") or "", params, dict(ext.get("properties", {})))
