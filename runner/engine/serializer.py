"""Workflow (de)serialization: specs and task trees as JSON text, and back.

NOTE: this is the only module that serializes workflows. Specs are stored once per
process version and cached in memory; an instance row holds only its task tree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from threading import Lock
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from runner.engine.parser import serializer_config
from runner.errors import Invalid, RunnerError

PREDICTED = TaskState.PREDICTED_MASK | TaskState.FUTURE
ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED


class _StateConverter(BpmnWorkflowConverter):
    """The workflow without its specs: those live once per process version.

    NOTE: the top-level tasks go straight to ``_task_to_dict``/``_task_from_dict``
    rather than through the registry's lookup per task; the format is SpiffWorkflow's.
    """

    def to_dict(self, workflow):
        return {
            "data": _convert(self.registry, self.registry.clean(workflow.data)),
            "correlations": workflow.correlations,
            "last_task": str(workflow.last_task.id) if workflow.last_task is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": {str(task_id): _task_to_dict(self.registry, task) for task_id, task in workflow.tasks.items()},
            "root": str(workflow.task_tree.id),
            "subprocesses": self.mapping_to_dict(workflow.subprocesses),
            "bpmn_events": self.registry.convert(workflow.bpmn_events),
        }

    def from_dict(self, dct, spec=None, subprocess_specs=None, script_engine=None):
        workflow = self.target_class(spec, subprocess_specs, script_engine=script_engine, deserializing=True)
        workflow.tasks = tasks = {}
        for task_id, task_dct in dct["tasks"].items():
            tasks[_uuid(task_id)] = _task_from_dict(self.registry, task_dct, workflow)
        workflow.task_tree = tasks.get(_uuid(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class _Id(UUID):
    """A task id that remembers its text: a saved tree writes every id several times."""

    __slots__ = ("text",)
    text: str

    def __init__(self, text: str):
        super().__init__(text)
        object.__setattr__(self, "text", text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"UUID({self.text!r})"

    def __reduce__(self):
        return _Id, (self.text,)


class _UUIDs:
    """Task ids parsed once per process: an instance's tasks live through many loads.

    NOTE: parsing a UUID string is most of the cost of restoring a small tree; the
    table is cleared when it grows past ``limit`` so memory stays bounded.
    """

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self._parsed: dict[str, UUID] = {}

    def __call__(self, text: str) -> UUID:
        found = self._parsed.get(text)
        if found is None:
            if len(self._parsed) >= self.limit:
                self._parsed.clear()
            found = self._parsed[text] = _Id(text)
        return found


_uuid = _UUIDs()
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_json(value: Any) -> bool:
    """Plain JSON: nothing in it for the registry to convert (nor a dict it would mistake for one)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is dict:
        return "typename" not in value and all(type(key) is str and _is_json(item) for key, item in value.items())
    if kind is list:
        return all(_is_json(item) for item in value)
    return False


def _is_stored_json(value: Any) -> bool:
    """Stored JSON with no converted object in it (those are dicts with a ``typename``)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is dict:
        return "typename" not in value and all(_is_stored_json(item) for item in value.values())
    if kind is list:
        return all(_is_stored_json(item) for item in value)
    return False


def _convert(registry, value: Any) -> Any:
    """``registry.convert`` with a fast way through the usual case, plain JSON data."""
    return value if _is_json(value) else registry.convert(_escape(value))


class _Keyed:
    """Instance data holding a ``typename`` key of its own, wrapped for storage.

    NOTE: the registry takes every stored dict with a ``typename`` for an object it
    converted, so such data (from a form, a handler, a message or a script) used to
    make the instance impossible to load again. Not a dict subclass: the registry
    turns those into plain dicts before it looks at their type.
    """

    def __init__(self, items: dict[str, Any]):
        self.items = items


def _escape(value: Any) -> Any:
    """``value`` with every dict that has a ``typename`` key made a ``_Keyed``."""
    kind = type(value)
    if kind is dict:
        inner = {key: _escape(item) for key, item in value.items()}
        return _Keyed(inner) if "typename" in inner else inner
    if kind is list:
        return [_escape(item) for item in value]
    return value


def _restore(registry, value: Any) -> Any:
    """``registry.restore`` with the same fast way (freshly parsed JSON is not shared)."""
    return value if _is_stored_json(value) else registry.restore(value)


def _task_to_dict(registry, task: Task) -> dict[str, Any]:
    """SpiffWorkflow's task format: data stored as a delta to the parent's.

    NOTE: unlike SpiffWorkflow 3.2.0's own converter, changed values in the delta go
    through the registry too, so a date set on a task survives a save.
    """
    parent = task.parent
    if parent is None:
        data, delta = _convert(registry, task.data), {}
    else:
        data = {}
        delta = {
            "updates": _convert(registry, DeepMerge.get_updated_keys(parent.data, task.data)),
            "deletions": DeepMerge.get_deleted_keys(parent.data, task.data),
        }
    return {
        "id": str(task.id),
        "parent": str(task._parent) if parent is not None else None,
        "children": [str(child) for child in task._children],
        "last_state_change": task.last_state_change,
        "state": task.state,
        "task_spec": task.task_spec.name,
        "triggered": task.triggered,
        "internal_data": _convert(registry, task.internal_data),
        "data": data,
        "delta": delta,
        "typename": "Task",
    }


def _task_from_dict(registry, dct: dict[str, Any], workflow) -> Task:
    """A task restored from ``_task_to_dict``'s format, with interned ids."""
    spec = workflow.spec.task_specs.get(dct["task_spec"])
    task = Task(workflow, spec, state=dct["state"], id=_uuid(dct["id"]))
    parent = dct["parent"]
    task._parent = None if parent is None else _uuid(parent)
    task._children = [_uuid(child) for child in dct["children"]]
    task.last_state_change = dct["last_state_change"]
    task.triggered = dct["triggered"]
    task.internal_data = _restore(registry, dct["internal_data"])
    if isinstance(spec, CatchingEvent) and task.has_state(TaskState.WAITING):
        task.workflow.top_workflow.event_manager.add_task(task)
    delta = dct.get("delta")
    if delta and parent is not None:
        data = DeepMerge.merge({}, task.parent.data)
        data.update(_restore(registry, delta.get("updates", {})))
        for key in delta.get("deletions", ()):
            data.pop(key, None)
    else:
        data = _restore(registry, dct["data"])
    task.data = data
    return task


class _TaskConverter(TaskConverter):
    """Tasks of subprocesses (reached through the registry) use the same two functions."""

    def to_dict(self, task):
        dct = _task_to_dict(self.registry, task)
        del dct["typename"]  # the registry adds it
        return dct

    def from_dict(self, dct, workflow):
        return _task_from_dict(self.registry, dct, workflow)


def _registry():
    config = serializer_config()
    config[BpmnWorkflow] = _StateConverter
    config[Task] = _TaskConverter
    registry = BpmnWorkflowSerializer.configure(config)
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
    registry.register(
        _Keyed,
        lambda v: {"items": {key: registry.convert(item) for key, item in v.items.items()}},
        lambda v: {key: registry.restore(item) for key, item in v["items"].items()},
        typename="runner.KeyedData",
    )
    return registry


class WorkflowStore:
    """Turns specs and workflows into JSON text and back, with a cache of specs per version."""

    def __init__(self):
        self.registry = _registry()
        self._specs: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._lock = Lock()

    def dump_spec(self, spec, subprocess_specs: dict[str, Any]) -> str:
        """A process spec and the specs it needs, as JSON."""
        return json.dumps(
            {
                "spec": self.registry.convert(spec),
                "subprocess_specs": {k: self.registry.convert(v) for k, v in subprocess_specs.items()},
            }
        )

    def load_spec(self, version_id: int, text: str | Callable[[], str]) -> tuple[Any, dict[str, Any]]:
        """The parsed spec of a version, restored once per process (``text`` may be a loader)."""
        with self._lock:
            if version_id not in self._specs:
                dct = json.loads(text() if callable(text) else text)
                spec = self.registry.restore(dct["spec"])
                subs = {k: self.registry.restore(v) for k, v in dct["subprocess_specs"].items()}
                self._specs[version_id] = (spec, subs)
            return self._specs[version_id]

    def dump_state(self, workflow: BpmnWorkflow) -> str:
        """The task tree and data of a workflow, as JSON."""
        try:
            return json.dumps(self.registry.convert(workflow), separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise RunnerError(f"instance data is not JSON-safe: {exc}") from exc

    def load_state(self, text: str, spec, subprocess_specs: dict[str, Any], script_engine) -> BpmnWorkflow:
        """A workflow restored from its JSON and its (cached) specs."""
        dct = json.loads(text)
        return self.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs, script_engine=script_engine)

    def load_state_on(self, text: str, spec, subprocess_specs: dict[str, Any], script_engine) -> BpmnWorkflow:
        """A saved instance restored against another version's specs; raises Invalid naming missing elements.

        Task specs are referenced by name (the BPMN element id), so the tree restores when
        every task that has been reached still exists. What was only predicted after the
        active tasks is dropped and predicted again from the target version's flows.
        """
        dct = json.loads(text)
        missing: list[str] = []
        for wf in (dct, *dct["subprocesses"].values()):
            target = spec if wf is dct else subprocess_specs.get(wf["spec"])
            missing += _drop_predicted(wf, target)
        if missing:
            raise Invalid(
                "the target version lacks element(s) the instance has reached: " + ", ".join(dict.fromkeys(missing))
            )
        workflow = self.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs, script_engine=script_engine)
        for wf in (workflow, *workflow.subprocesses.values()):
            wf._predict()
        return workflow


def _drop_predicted(wf: dict[str, Any], spec) -> list[str]:
    """Remove tasks predicted below active ones; return reached task specs ``spec`` lacks."""
    tasks = wf["tasks"]
    if spec is None:
        return [wf["spec"]]
    drop: set[str] = set()
    for task in tasks.values():
        if task["state"] & ACTIVE:
            stack = list(task["children"])
            while stack:
                child = tasks[stack.pop()]
                if child["state"] & PREDICTED:
                    drop.add(child["id"])
                    stack.extend(child["children"])
    for task_id in drop:
        del tasks[task_id]
    for task in tasks.values():
        task["children"] = [c for c in task["children"] if c not in drop]
    return [t["task_spec"] for t in tasks.values() if t["task_spec"] not in spec.task_specs]
