"""The one module that drives SpiffWorkflow's runtime.

It creates workflows, runs engine steps, applies what happened outside (a person
completing a task, a timer, a message, a handler result), keeps the task tree bounded
and reports what the instance now waits for as a plain ``Snapshot``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from runner import expressions, scripting, timers
from runner.bpmn import ExternalTask
from runner.clock import Clock
from runner.errors import Conflict, NotFound, RunnerError, StepFailed
from runner.scripting import RestrictedScriptEngine
from runner.timers import ClockTimer, repeats

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


class Engine:
    """Runs SpiffWorkflow workflows with the runner's clock and restricted scripts."""

    def __init__(self, clock: Clock, tz: tzinfo):
        self.clock = clock
        self.tz = tz
        self.script_engine = RestrictedScriptEngine(clock, tz)

    # --- lifecycle ---------------------------------------------------------------

    def create(self, spec, subprocess_specs: dict[str, Any], data: dict[str, Any] | None = None) -> BpmnWorkflow:
        """A new workflow with initial data on its root task."""
        workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=self.script_engine)
        if data:
            workflow.task_tree.data.update(data)
        return workflow

    def start(self, workflow: BpmnWorkflow, trigger: tuple[str, str] | None = None,
              payload: dict[str, Any] | None = None) -> None:
        """Run the start of a workflow; a trigger picks which start event fires.

        ``trigger`` is ``("message", name)`` or ``("timer", element_id)``; other start
        events of the process are cancelled so that only one path starts. A trigger
        that matches no start event raises NotFound.
        """
        self._guard(self._start, workflow, trigger, payload)

    def _start(self, workflow, trigger, payload) -> None:
        if trigger is None:
            workflow.do_engine_steps()
            return
        kind, name = trigger
        # Run the start machinery by hand until the start events are reached.
        for _ in range(10):
            ready = [t for t in workflow.get_tasks(state=TaskState.READY)
                     if not isinstance(t.task_spec, StartEvent)]
            if not ready:
                break
            for task in ready:
                task.run()
        starts = [t for t in workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK)
                  if isinstance(t.task_spec, StartEvent) and t.workflow is workflow]
        chosen = [t for t in starts if _triggered_by(t, kind, name)]
        if not chosen:
            raise NotFound(f"process {workflow.spec.name!r} has no {kind} start event {name!r}")
        for task in starts:
            if task not in chosen:
                task.cancel()
        for task in chosen:
            definition = task.task_spec.event_definition
            if kind == "timer":
                timers.fire(definition.timer_state(task), False, self.tz)
                task.task_spec._update(task)
            else:
                workflow.catch(BpmnEvent(definition, payload=dict(payload or {})))
        workflow.do_engine_steps()

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except RunnerError:
            raise
        except SpiffWorkflowException as exc:
            task = getattr(exc, "task", None)
            spec = getattr(exc, "task_spec", None) or (task.task_spec if task is not None else None)
            element = getattr(spec, "bpmn_id", None) or getattr(spec, "name", "")
            name = getattr(spec, "bpmn_name", None) or ""
            cause = _runner_cause(exc)
            raise StepFailed(str(cause) if cause else str(exc), element, name) from exc

    # --- outside events ----------------------------------------------------------

    def task(self, workflow: BpmnWorkflow, task_id: str) -> Task:
        """A task of the workflow (or of one of its subprocesses) by id."""
        try:
            task = workflow.get_task_from_id(UUID(task_id))
        except (ValueError, SpiffWorkflowException):
            task = None
        if task is None:
            raise NotFound(f"task {task_id} is not in this instance")
        return task

    def complete_user_task(self, workflow: BpmnWorkflow, task_id: str, data: dict[str, Any]) -> Task:
        """Complete a READY user task with (already validated) data, then run on."""
        task = self.task(workflow, task_id)
        if not isinstance(task.task_spec, UserTask):
            raise NotFound(f"task {task_id} ({_element(task)[0]}) is not a user task")
        if task.state != TaskState.READY:
            raise Conflict(f"task {_element(task)[0]} is {TaskState.get_name(task.state)}, not open")
        task.data.update(data)
        self._guard(self._run_and_step, workflow, task)
        return task

    def _run_and_step(self, workflow: BpmnWorkflow, task: Task) -> None:
        task.run()
        workflow.do_engine_steps()

    def fire_timer(self, workflow: BpmnWorkflow, task_id: str, timer_name: str) -> bool:
        """Fire one timer of a waiting task; False when it no longer waits (a stale row)."""
        task = self.task(workflow, task_id)
        definition = self._timer_definition(task, timer_name)
        if definition is None or task.state != TaskState.WAITING:
            return False
        state = definition.timer_state(task)
        if state.get("due") is None:
            return False
        timers.fire(state, repeats(task) and definition.kind == "cycle", self.tz)
        self._guard(self._update_and_step, workflow, task)
        return True

    def _update_and_step(self, workflow: BpmnWorkflow, task: Task) -> None:
        task.task_spec._update(task)
        workflow.do_engine_steps()

    @staticmethod
    def _timer_definition(task: Task, name: str):
        definition = getattr(task.task_spec, "event_definition", None)
        candidates = definition.event_definitions if isinstance(definition, MultipleEventDefinition) else [definition]
        for candidate in candidates:
            if isinstance(candidate, ClockTimer) and candidate.name == name:
                return candidate
        return None

    def deliver_message(self, workflow: BpmnWorkflow, name: str, payload: dict[str, Any]) -> int:
        """Deliver a message to the tasks waiting for it; returns how many caught it."""
        event = BpmnEvent(MessageEventDefinition(name), payload=dict(payload))
        caught = self._guard(workflow.send_event_quietly, event) if hasattr(workflow, "send_event_quietly") \
            else self._guard(self._send, workflow, event)
        return caught

    def _send(self, workflow: BpmnWorkflow, event: BpmnEvent) -> int:
        caught = workflow.event_manager.catch(event, internal=False)
        if caught:
            workflow.do_engine_steps()
        return caught

    def finish_external(self, workflow: BpmnWorkflow, task_id: str, result: dict[str, Any]) -> Task:
        """Complete a STARTED service task with its handler's (mapped) result, then run on."""
        task = self.task(workflow, task_id)
        if not isinstance(task.task_spec, ExternalTask) or task.state != TaskState.STARTED:
            raise Conflict(f"service task {_element(task)[0]} is {TaskState.get_name(task.state)}, not waiting")
        task.data.update(result)
        self._guard(self._complete_and_step, workflow, task)
        return task

    def _complete_and_step(self, workflow: BpmnWorkflow, task: Task) -> None:
        task.complete()
        workflow.do_engine_steps()

    def evaluate(self, task: Task, text: str, extra: dict[str, Any] | None = None) -> Any:
        """An expression over a task's data (with ``now()``), errors naming the element."""
        try:
            return scripting.evaluate(text, {"now": self.clock.now, **task.data, **(extra or {})})
        except RunnerError as exc:
            raise StepFailed(str(exc), *_element(task)) from exc

    # --- what the instance waits for ------------------------------------------------

    def snapshot(self, workflow: BpmnWorkflow) -> Snapshot:
        """Everything the runner projects into tables after a unit of work."""
        snap = Snapshot(completed=workflow.is_completed(), data=self.current_data(workflow))
        for task in self._tasks(workflow, ACTIVE):
            self._observe(task, snap)
        for event in workflow.get_events():
            if isinstance(event.event_definition, MessageEventDefinition):
                snap.thrown.append((event.event_definition.name, dict(event.payload or {})))
        return snap

    @staticmethod
    def current_data(workflow: BpmnWorkflow) -> dict[str, Any]:
        """The instance's variables: those of the most recently finished task."""
        if workflow.is_completed() and workflow.data:
            return dict(workflow.data)
        task = workflow.last_task or workflow.task_tree
        return {k: v for k, v in task.data.items() if not callable(v)}

    def _tasks(self, workflow: BpmnWorkflow, state: int) -> list[Task]:
        found = [t for t in workflow.tasks.values() if t.state & state]
        for sub in workflow.subprocesses.values():
            found.extend(t for t in sub.tasks.values() if t.state & state)
        return found

    def _observe(self, task: Task, snap: Snapshot) -> None:
        spec = task.task_spec
        stage = props(task).get("stage")
        if stage and stage not in snap.stages:
            snap.stages.append(stage)
        if isinstance(spec, UserTask) and task.state == TaskState.READY:
            snap.user_tasks.append(self._user_task(task))
        elif isinstance(spec, ExternalTask) and task.state == TaskState.STARTED:
            snap.jobs.append(self._job(task))
        elif isinstance(spec, CatchingEvent) and task.state == TaskState.WAITING:
            self._observe_events(task, spec.event_definition, snap)

    def _observe_events(self, task: Task, definition, snap: Snapshot) -> None:
        items = definition.event_definitions if isinstance(definition, MultipleEventDefinition) else [definition]
        for item in items:
            if isinstance(item, MessageEventDefinition) and item.name not in snap.messages:
                snap.messages.append(item.name)
            elif isinstance(item, ClockTimer):
                state = item.timer_state(task)
                if state.get("due"):
                    snap.timers.append(TimerView(str(task.id), _element(task)[0], item.name,
                                                 datetime.fromisoformat(state["due"]), state["value"]))

    def _user_task(self, task: Task) -> UserTaskView:
        ext = task.task_spec.extensions or {}
        info = ext.get("user_task", {})
        element, name = _element(task)
        assignee = self._maybe(task, info.get("assignee"))
        due_at, follow_up_at = self._dates(task, info)
        return UserTaskView(
            task_id=str(task.id), element_id=element, name=name, lane=task.task_spec.lane,
            stage=ext.get("properties", {}).get("stage"),
            assignee=str(assignee) if assignee else None,
            candidate_groups=self._names(task, info.get("candidate_groups", [])),
            candidate_users=self._names(task, info.get("candidate_users", [])),
            due_at=due_at, follow_up_at=follow_up_at,
            priority=int(self._maybe(task, info.get("priority")) or 50),
            form=ext.get("form", {}),
        )

    def _maybe(self, task: Task, text: str | None) -> Any:
        if not text:
            return None
        return self.evaluate(task, text) if expressions.is_wrapped(text) else text

    def _names(self, task: Task, values: list[str]) -> list[str]:
        names: list[str] = []
        for value in values:
            result = self._maybe(task, value)
            items = result if isinstance(result, (list, tuple, set)) else str(result).split(",")
            names.extend(str(i).strip() for i in items if str(i).strip())
        return names

    def _dates(self, task: Task, info: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
        """Due and follow-up dates, fixed when the task is first seen (PT30M is from creation, not from now)."""
        dates = task.internal_data.get("runner:dates")
        if dates is None:
            moments = (self._moment(task, info.get("due_date")), self._moment(task, info.get("follow_up_date")))
            dates = [m.isoformat() if m else None for m in moments]
            task.internal_data["runner:dates"] = dates
        due, follow_up = (datetime.fromisoformat(d) if d else None for d in dates)
        return due, follow_up

    def _moment(self, task: Task, text: str | None) -> datetime | None:
        """A due/follow-up date: an expression, an ISO date-time or an ISO duration from now."""
        value = self._maybe(task, text)
        if value is None:
            return None
        now = self.clock.now()
        if isinstance(value, timedelta):
            return now + value
        if isinstance(value, str) and value.strip().upper().startswith("P"):
            value = timers.timeparse.parse_duration(value.strip()).add_to(now)
        elif isinstance(value, str):
            value = timers.timeparse.parse_date(value.strip(), self.tz)
        if not isinstance(value, datetime):
            raise StepFailed(f"due date {text!r} gave {value!r}, not a date", *_element(task))
        return (value if value.tzinfo else value.replace(tzinfo=self.tz)).astimezone(timezone.utc)

    def _job(self, task: Task) -> JobView:
        ext = task.task_spec.extensions or {}
        params = {name: self.parameter(task, param) for name, param in ext.get("inputs", {}).items()}
        return JobView(str(task.id), _element(task)[0], ext.get("topic") or "", params,
                       dict(ext.get("properties", {})))

    def parameter(self, task: Task, param: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
        """The value of a camunda input/output parameter (literal, expression, list or map)."""
        kind = param.get("kind")
        if kind == "list":
            return [self.parameter(task, p, extra) for p in param["items"]]
        if kind == "map":
            return {k: self.parameter(task, p, extra) for k, p in param["entries"].items()}
        if kind == "script":
            return self.evaluate(task, param["value"], extra)
        text = param.get("value", "")
        return self.evaluate(task, text, extra) if expressions.is_wrapped(text) else text

    def map_result(self, workflow: BpmnWorkflow, task_id: str, result: Any) -> dict[str, Any]:
        """Handler result → task data: output parameters if any, else the result dict merged."""
        task = self.task(workflow, task_id)
        outputs = (task.task_spec.extensions or {}).get("outputs", {})
        if not outputs:
            if result is None:
                return {}
            if not isinstance(result, dict):
                raise StepFailed(f"handler returned {type(result).__name__}, expected an object "
                                 "(or map it with an output parameter)", *_element(task))
            return result
        scope = result if isinstance(result, dict) else {"result": result}
        return {name: self.parameter(task, param, scope) for name, param in outputs.items()}

    # --- keeping the live tree bounded ----------------------------------------------

    def prune(self, workflow: BpmnWorkflow) -> int:
        """Re-root each task tree just above its oldest unfinished task; returns tasks dropped.

        NOTE: every unfinished task, every join's split and every boundary event's
        split sit below the lowest common ancestor of the unfinished tasks, so what is
        dropped is finished history that no spec looks at again.
        """
        dropped = self._reroot(workflow, workflow)
        for sub in list(workflow.subprocesses.values()):
            if sub.parent_task_id in workflow.subprocesses or self._owner_exists(workflow, sub):
                dropped += self._reroot(workflow, sub)
        return dropped

    @staticmethod
    def _owner_exists(top: BpmnWorkflow, sub) -> bool:
        return top.get_task_from_id(sub.parent_task_id) is not None

    def _reroot(self, top: BpmnWorkflow, wf) -> int:
        unfinished = [t for t in wf.tasks.values() if not t.has_state(TaskState.FINISHED_MASK)]
        if not unfinished:
            return 0
        common = _ancestors(unfinished[0])
        for task in unfinished[1:]:
            chain = {t.id for t in _ancestors(task)}
            common = [t for t in common if t.id in chain]
        new_root = common[0].parent or common[0]
        # NOTE: joins read the parent of every task of their spec, so a join task never
        # becomes the root (the only task without a parent).
        while isinstance(new_root.task_spec, Join) and new_root.parent is not None:
            new_root = new_root.parent
        if new_root is wf.task_tree:
            return 0
        keep = {t.id for t in _descendants(new_root)}
        dropped = [tid for tid in wf.tasks if tid not in keep]
        for tid in dropped:
            if tid in top.subprocesses:
                top.delete_subprocess(wf.tasks[tid])
            del wf.tasks[tid]
        new_root._parent = None
        wf.task_tree = new_root
        if wf.last_task is not None and wf.last_task.id not in keep:
            wf.last_task = None
        return len(dropped)


def _triggered_by(task: Task, kind: str, name: str) -> bool:
    """True when a start event task is the one a ("message", name) or ("timer", element) trigger fires."""
    definition = task.task_spec.event_definition
    if kind == "message":
        return isinstance(definition, MessageEventDefinition) and definition.name == name
    return kind == "timer" and _element(task)[0] == name


def _runner_cause(exc: BaseException) -> RunnerError | None:
    """The runner error behind a SpiffWorkflow error (raised explicitly or while handling it)."""
    seen: set[int] = set()
    current = exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen:
        if isinstance(current, RunnerError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _ancestors(task: Task) -> list[Task]:
    """The task and its ancestors, nearest first."""
    chain = []
    while task is not None:
        chain.append(task)
        task = task.parent
    return chain


def _descendants(task: Task) -> list[Task]:
    found, stack = [], [task]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(current.children)
    return found
