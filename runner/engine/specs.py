"""The runner's task specs: SpiffWorkflow specs with Camunda semantics.

External service tasks wait for handler jobs, plain and manual tasks pass through,
call activities honour camunda:in/out, multi-instance loops run over a fixed collection,
and non-interrupting boundary events may fire more than once.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from SpiffWorkflow.bpmn.specs.control import BoundaryEventJoin
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    CallActivity,
    ManualTask,
    NoneTask,
    ParallelMultiInstanceTask,
    SequentialMultiInstanceTask,
    ServiceTask,
    UserTask,
)
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.task import TaskState
from SpiffWorkflow.util.deep_merge import DeepMerge

from runner.engine import timers


class ExternalTask(ServiceTask):
    """A service task whose work is done by a handler outside the engine step.

    Running it leaves the task STARTED; the runner records a job for its topic and
    completes the task when the handler's result is committed.
    """

    def _run_hook(self, my_task):
        return None


class RunnerUserTask(UserTask):
    """A user task; assignment, dates and form live in ``extensions``."""


class PassThroughTask(NoneTask):
    """bpmn:task: Camunda passes through it (SpiffWorkflow would wait for a person forever)."""

    def __init__(self, wf_spec, bpmn_id, **kwargs):
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.manual = False


class PassThroughManualTask(ManualTask):
    """bpmn:manualTask: done outside any system, so Camunda passes through it too."""

    def __init__(self, wf_spec, bpmn_id, **kwargs):
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.manual = False


class RunnerCallActivity(CallActivity):
    """A call activity honouring camunda:in / camunda:out variable mappings.

    Without any mapping every variable goes in and comes back (SpiffWorkflow's default);
    with mappings only the mapped variables cross, as in Camunda.
    """

    def copy_data(self, my_task, subworkflow):
        mappings = (self.extensions or {}).get("call")
        if not mappings:
            return super().copy_data(my_task, subworkflow)
        start = subworkflow.get_next_task(subworkflow.task_tree, skip_subprocesses=True, spec_name="Start")
        start.set_data(**_mapped(my_task, mappings["in"]))

    def update_data(self, my_task, subworkflow):
        mappings = (self.extensions or {}).get("call")
        if not mappings:
            return super().update_data(my_task, subworkflow)
        my_task.data.update(_mapped(subworkflow.last_task, mappings["out"]))


class _CollectionMerge(MultiInstanceTask):
    """Camunda's collection loop: an instance's variables reach the process, its element variable does not."""

    def merge_child(self, workflow, child):
        item = self.input_item.bpmn_id if self.input_item is not None else None
        DeepMerge.merge(child.parent.data, {k: v for k, v in child.data.items() if k != item})
        child.parent.internal_data["merged"].append(str(child.id))


class ParallelCollectionLoop(ParallelMultiInstanceTask, _CollectionMerge):
    """camunda:collection without isSequential: one instance per item, all at once."""


class SequentialCollectionLoop(SequentialMultiInstanceTask, _CollectionMerge):
    """camunda:collection with isSequential="true": one instance per item, in order."""


# --- repeating non-interrupting boundary events ---------------------------------------


class RepeatingMessage(MessageEventDefinition):
    """A message on a non-interrupting boundary event: each one starts a path while the activity runs."""

    def catches(self, my_task, event):
        definition = event.event_definition
        return isinstance(definition, MessageEventDefinition) and definition.name == self.name

    def catch(self, my_task, event=None):
        my_task.internal_data.setdefault("runner:payloads", []).append(dict(event.payload or {}))

    def has_fired(self, my_task):
        return False

    def update_task(self, my_task):
        for payload in my_task.internal_data.pop("runner:payloads", []):
            my_task.data.update(payload)
            timers.spawn_paths(my_task)


def _repeating(definition) -> bool:
    return isinstance(definition, (timers.CycleTimer, RepeatingMessage))


class RunnerBoundaryEvent(BoundaryEvent):
    """A boundary event; a repeating one adds its paths per firing instead of predicting them."""

    def _predict_hook(self, my_task):
        if not _repeating(self.event_definition):
            super()._predict_hook(my_task)


class RunnerBoundaryJoin(BoundaryEventJoin):
    """Joins a task with its boundary events; paths a repeating event started run on after it ends.

    NOTE: SpiffWorkflow cancels a waiting boundary event with everything below it; in BPMN
    the activity's end stops the repeating event, not the paths it already started.
    """

    def _check_threshold_structured(self, my_task):
        finished, cancel = super()._check_threshold_structured(my_task)
        if finished:
            for task in [
                t
                for t in cancel
                if t.children
                and isinstance(t.task_spec, RunnerBoundaryEvent)
                and _repeating(t.task_spec.event_definition)
            ]:
                cancel.remove(task)
                task.workflow.top_workflow.event_manager.remove_task(task)
                task._set_state(TaskState.COMPLETED)
        return finished, cancel


def _mapped(task, mappings: list[dict[str, Any]]) -> dict[str, Any]:
    """The variables that camunda:in/out mappings take from a task's data."""
    found: dict[str, Any] = {}
    for mapping in mappings:
        if mapping.get("all"):
            found.update(deepcopy(task.data))
        elif mapping.get("expression"):
            found[mapping["target"]] = task.workflow.script_engine.evaluate(task, mapping["expression"])
        elif mapping.get("source"):
            # NOTE: like Camunda, a missing source variable arrives as null.
            found[mapping["target"] or mapping["source"]] = deepcopy(task.data.get(mapping["source"]))
    return found
