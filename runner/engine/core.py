"""The Engine: creates workflows, runs engine steps and applies what happened outside
(a person completing a task, a timer, a message, a handler result)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from runner.clock import Clock
from runner.engine import pruning, scripting, timers
from runner.engine import snapshot as views
from runner.engine.scripting import RestrictedScriptEngine
from runner.engine.snapshot import Snapshot, _element
from runner.engine.specs import ExternalTask
from runner.engine.timers import ClockTimer, repeats
from runner.errors import Conflict, NotFound, RunnerError, StepFailed, caused_by
from runner.sandbox import budget, expressions
from runner.sandbox.budget import Limits


class Engine:
    """Runs SpiffWorkflow workflows with the runner's clock and restricted scripts."""

    def __init__(self, clock: Clock, tz: tzinfo, limits: Limits = budget.DEFAULT):
        self.clock = clock
        self.tz = tz
        self.limits = limits
        self.script_engine = RestrictedScriptEngine(clock, tz, limits)

    # --- lifecycle ---------------------------------------------------------------

    def create(self, spec, subprocess_specs: dict[str, Any], data: dict[str, Any] | None = None) -> BpmnWorkflow:
        """A new workflow with initial data on its root task."""
        workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=self.script_engine)
        if data:
            workflow.task_tree.data.update(data)
        return workflow

    def start(
        self, workflow: BpmnWorkflow, trigger: tuple[str, str] | None = None, payload: dict[str, Any] | None = None
    ) -> None:
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
            ready = [t for t in workflow.get_tasks(state=TaskState.READY) if not isinstance(t.task_spec, StartEvent)]
            if not ready:
                break
            for task in ready:
                task.run()
        starts = [
            t
            for t in workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK)
            if isinstance(t.task_spec, StartEvent) and t.workflow is workflow
        ]
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
            element = getattr(spec, "bpmn_id", None) or getattr(spec, "name", None) or ""
            name = getattr(spec, "bpmn_name", None) or ""
            cause = caused_by(exc.__cause__ or exc.__context__, RunnerError)
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
        return self._guard(self._send, workflow, event)

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
            return scripting.evaluate(text, {"now": self.clock.now, **task.data, **(extra or {})}, self.limits)
        except RunnerError as exc:
            raise StepFailed(str(exc), *_element(task)) from exc

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
                raise StepFailed(
                    f"handler returned {type(result).__name__}, expected an object "
                    "(or map it with an output parameter)",
                    *_element(task),
                )
            return result
        scope = result if isinstance(result, dict) else {"result": result}
        return {name: self.parameter(task, param, scope) for name, param in outputs.items()}

    def replace_value(self, workflow: BpmnWorkflow, name: str, old: Any, new: Any) -> int:
        """Where variable ``name`` is ``old`` in a task not finished yet (or the last one), make it ``new``.

        For a decision taken outside the diagram (another person now owns the work): the tasks
        still to run copy their data from these, so later steps see ``new``. Returns how many
        tasks changed.
        """
        found = [*workflow.tasks.values()]
        for sub in workflow.subprocesses.values():
            found.extend(sub.tasks.values())
        changed = 0
        for task in found:
            # NOTE: the last finished task is what the instance's variables are read from
            if (task.state & TaskState.NOT_FINISHED_MASK or task is workflow.last_task) and task.data.get(name) == old:
                task.data[name] = new
                changed += 1
        return changed

    # --- what the instance waits for, and keeping the tree bounded --------------------

    def snapshot(self, workflow: BpmnWorkflow) -> Snapshot:
        """Everything the runner projects into tables after a unit of work."""
        return views.take(self, workflow)

    def prune(self, workflow: BpmnWorkflow) -> int:
        """Re-root each task tree just above its oldest unfinished task; returns tasks dropped."""
        return pruning.prune(workflow)

    current_data = staticmethod(views.current_data)


def _triggered_by(task: Task, kind: str, name: str) -> bool:
    """True when a start event task is the one a ("message", name) or ("timer", element) trigger fires."""
    definition = task.task_spec.event_definition
    if kind == "message":
        return isinstance(definition, MessageEventDefinition) and definition.name == name
    return kind == "timer" and _element(task)[0] == name
