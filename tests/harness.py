"""Engine-level scenario harness: BPMN fixtures run without a database.

Each operation applies one outside event through ``runner.engine.Engine`` the way the
runner's units of work do. With ``restore_each_step`` the workflow is then pruned,
dumped with ``WorkflowStore.dump_state`` and restored with ``load_state``, like
``Unit.commit`` followed by the next unit's ``Unit.load``; the test goes on
with the restored workflow. The specs are restored from their JSON (``dump_spec``) by a
fresh store each time, as after a worker restart, so nothing survives in memory.
Scenario tests run in both modes through the ``mode`` fixture (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from runner.clock import FixedClock
from runner.engine import Engine, JobView, Snapshot, TimerView, UserTaskView
from runner.engine.parser import RunnerParser, normalize
from runner.engine.serializer import WorkflowStore

FIXTURES = Path(__file__).parent / "bpmn" / "engine"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)  # a Monday, 02:00 UTC
MODES = ["straight", "save_restore"]
MAX_STEPS = 500


def parse(file_name: str, process_id: str):
    """The spec and subprocess specs of one process in a fixture file."""
    parser = RunnerParser()
    parser.add_bpmn_xml(etree.fromstring(normalize((FIXTURES / file_name).read_bytes())), filename=file_name)
    return parser.get_spec(process_id), parser.get_subprocess_specs(process_id)


class Harness:
    """One instance of one process, driven step by step on a fixed clock."""

    def __init__(self, file_name: str, process_id: str, mode: str = "straight", start: datetime = START):
        self.restore_each_step = mode == "save_restore"
        self.store = WorkflowStore()
        self.spec, self.subprocess_specs = parse(file_name, process_id)
        self.spec_json = self.store.dump_spec(self.spec, self.subprocess_specs)
        if self.restore_each_step:
            self.spec, self.subprocess_specs = WorkflowStore().load_spec(0, self.spec_json)
        self.clock = FixedClock(start)
        self.engine = Engine(self.clock, TZ)
        self.workflow: BpmnWorkflow | None = None
        self.history: list[str] = []
        self.cancelled: list[str] = []
        self.thrown: list[tuple[str, dict[str, Any]]] = []
        self.restores = 0
        self._seen: set = set()

    # --- operations ---------------------------------------------------------------

    def start(
        self,
        data: Mapping[str, Any] | None = None,
        trigger: tuple[str, str] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Harness:
        """Create the workflow and run its start (optionally by a message or timer trigger)."""
        self.workflow = self.engine.create(self.spec, self.subprocess_specs, dict(data or {}))
        self._step(self.engine.start, trigger, dict(payload) if payload else None)
        return self

    def complete(self, ref: str, data: Mapping[str, Any] | None = None) -> None:
        """Complete the one open user task with this element id or task id."""
        task = self.user_task(ref)
        self._step(self.engine.complete_user_task, task.task_id, dict(data or {}))

    def fire_due(self, until: datetime | timedelta) -> list[str]:
        """Fire timers due up to a moment in due order, moving the clock; returns their element ids."""
        target = self.clock.now() + until if isinstance(until, timedelta) else until
        fired: list[str] = []
        for _ in range(MAX_STEPS):
            due = [t for t in self.snapshot().timers if t.due_at <= target]
            if not due:
                break
            timer = min(due, key=lambda t: t.due_at)
            if timer.due_at > self.clock.now():
                self.clock.set(timer.due_at)
            self._step(self.engine.fire_timer, timer.task_id, timer.timer_name)
            fired.append(timer.element_id)
        else:
            raise AssertionError(f"more than {MAX_STEPS} timer firings before {target}")
        self.clock.set(max(target, self.clock.now()))
        return fired

    def deliver(self, message: str, payload: Mapping[str, Any] | None = None) -> int:
        """Deliver a message; returns how many waiting events caught it."""
        return self._step(self.engine.deliver_message, message, dict(payload or {}))

    def run_jobs(self, handlers: Mapping[str, Callable[[dict[str, Any]], Any]]) -> list[JobView]:
        """Run open service-task jobs whose topic has a handler, until none is left; returns them."""
        done: list[JobView] = []
        for _ in range(MAX_STEPS):
            jobs = [j for j in self.snapshot().jobs if j.topic in handlers]
            if not jobs:
                return done
            job = jobs[0]
            self._step(self._finish, job, handlers[job.topic])
            done.append(job)
        raise AssertionError(f"more than {MAX_STEPS} jobs")

    def _finish(self, workflow: BpmnWorkflow, job: JobView, handler: Callable[[dict[str, Any]], Any]) -> None:
        mapped = self.engine.map_result(workflow, job.task_id, handler(dict(job.params)))
        self.engine.finish_external(workflow, job.task_id, mapped)

    # --- what the instance looks like ----------------------------------------------

    def snapshot(self) -> Snapshot:
        """The engine's snapshot of the current workflow."""
        return self.engine.snapshot(self.workflow)

    def ready(self) -> list[UserTaskView]:
        """The open user tasks."""
        return self.snapshot().user_tasks

    def user_task(self, ref: str) -> UserTaskView:
        """The one open user task with this element id or task id."""
        found = [t for t in self.ready() if ref in (t.element_id, t.task_id)]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} open user tasks match {ref!r}: {[t.element_id for t in self.ready()]}")
        return found[0]

    def task_data(self, ref: str) -> dict[str, Any]:
        """The data an open user task sees (inside a called process it is that process's data)."""
        return dict(self.engine.task(self.workflow, self.user_task(ref).task_id).data)

    def timers(self) -> list[TimerView]:
        """The waiting timers, earliest first."""
        return sorted(self.snapshot().timers, key=lambda t: t.due_at)

    @property
    def data(self) -> dict[str, Any]:
        """The instance's current variables."""
        return self.engine.current_data(self.workflow)

    @property
    def completed(self) -> bool:
        """True once the instance has finished."""
        return self.workflow.is_completed()

    # --- bookkeeping ----------------------------------------------------------------

    def _step(self, action: Callable[..., Any], *args: Any) -> Any:
        """Apply ``action(workflow, *args)``, record what finished, save/restore in that mode; its result."""
        try:
            result = action(self.workflow, *args)
        finally:
            self._record()
        # NOTE: a snapshot hands out thrown messages once, as Unit.commit expects.
        self.thrown.extend(self.engine.snapshot(self.workflow).thrown)
        if self.restore_each_step:
            self._save_restore()
        return result

    def _record(self) -> None:
        """Append newly finished elements to ``history``/``cancelled`` in the order they finished."""
        tasks = list(self.workflow.tasks.values())
        for sub in self.workflow.subprocesses.values():
            tasks.extend(sub.tasks.values())
        fresh = sorted(
            (
                t
                for t in tasks
                if t.id not in self._seen
                and t.has_state(TaskState.FINISHED_MASK)
                and getattr(t.task_spec, "bpmn_id", None)
            ),
            key=lambda t: t.last_state_change,
        )
        for task in fresh:
            self._seen.add(task.id)
            target = self.history if task.state == TaskState.COMPLETED else self.cancelled
            target.append(task.task_spec.bpmn_id)

    def _save_restore(self) -> None:
        self.engine.prune(self.workflow)
        text = self.store.dump_state(self.workflow)
        fresh = WorkflowStore()
        self.spec, self.subprocess_specs = fresh.load_spec(0, self.spec_json)
        self.workflow = fresh.load_state(text, self.spec, self.subprocess_specs, self.engine.script_engine)
        self.restores += 1


def utc(*args: int) -> datetime:
    """An aware UTC datetime."""
    return datetime(*args, tzinfo=UTC)
