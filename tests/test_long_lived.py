"""Years of looping: the live task tree and the saved state stay bounded.

SpiffWorkflow 3.2.0 walks a task tree only 1,000 levels deep, so without
``Engine.prune`` the care loop (four tasks a round) silently "completes" after 250
rounds, and its saved state grows every round. The loop here runs far past that, with a save/restore
after every unit of work: 10,000 rounds at the Engine+WorkflowStore level, and 2,000
through the real Runner on SQLite (every unit committed to the file and reloaded from it;
about a minute; ``bench.long_lived`` ages an instance 10,000 rounds this way).

The two drivers below are shared with ``test_bounding.py``: one scenario function
drives either of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

from runner.clock import FixedClock
from runner.engine import Engine, Snapshot
from runner.engine.parser import RunnerParser, normalize
from runner.engine.serializer import WorkflowStore
from runner.queries import tasklists as inbox
from runner.registry import HandlerContext, Registry
from runner.service.runtime import Runner
from runner.store.models import Instance

BPMN = Path(__file__).parent / "bpmn"
LOOP = BPMN / "loop.bpmn"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2026, 1, 5, 9, 0, tzinfo=TZ)
MONTH = timedelta(days=31)
MAX_JOBS = 100
COMPLETED_SLACK = 2.0


def count_tasks(workflow: BpmnWorkflow) -> int:
    """Tasks held in memory: the top-level tree plus every subprocess tree."""
    return len(workflow.tasks) + sum(len(sub.tasks) for sub in workflow.subprocesses.values())


class StoreDriver:
    """One instance at the Engine+WorkflowStore level: each unit of work ends in prune, dump, load.

    It does what ``Unit.commit`` and the next ``Unit.load`` do to the tree,
    without the database, and runs service-task handlers from the registry.
    """

    def __init__(self, files: list[Path], process_key: str, registry: Registry):
        parser = RunnerParser()
        for path in files:
            parser.add_bpmn_xml(etree.fromstring(normalize(path.read_bytes())), filename=path.name)
        self.spec, self.subs = parser.get_spec(process_key), parser.get_subprocess_specs(process_key)
        self.clock = FixedClock(START)
        self.engine = Engine(self.clock, TZ)
        self.store = WorkflowStore()
        self.registry = registry
        self.state = ""
        self.snap = Snapshot()
        self.tasks_in_tree = 0

    def start(self, data: dict[str, Any]) -> None:
        """Create and start the instance."""
        workflow = self.engine.create(self.spec, self.subs, dict(data))
        self.engine.start(workflow)
        self._save(workflow)
        self._run_jobs()

    def _unit(self, action: Callable[..., Any], *args: Any) -> Any:
        """Load the workflow, apply ``action(workflow, *args)``, save it; the action's result."""
        workflow = self.store.load_state(self.state, self.spec, self.subs, self.engine.script_engine)
        result = action(workflow, *args)
        self._save(workflow)
        return result

    def _finish(self, workflow: BpmnWorkflow, task_id: str, result: Any) -> None:
        self.engine.finish_external(workflow, task_id, self.engine.map_result(workflow, task_id, result))

    def _save(self, workflow: BpmnWorkflow) -> None:
        self.engine.prune(workflow)
        self.snap = self.engine.snapshot(workflow)
        self.tasks_in_tree = count_tasks(workflow)
        self.state = self.store.dump_state(workflow)

    def _run_jobs(self) -> None:
        for _ in range(MAX_JOBS):
            if not self.snap.jobs:
                return
            job = self.snap.jobs[0]
            ctx = HandlerContext(
                instance_id="store",
                business_key=None,
                idempotency_key=job.task_id,
                element_id=job.element_id,
                topic=job.topic,
                attempt=1,
                now=self.clock.now(),
            )
            result = self.registry.get(job.topic)(dict(job.params), ctx)
            self._unit(self._finish, job.task_id, result)
        raise AssertionError(f"more than {MAX_JOBS} jobs in a row")

    def open_tasks(self) -> list[tuple[str, str]]:
        """(element id, task id) of each open user task, by element id."""
        return sorted((t.element_id, t.task_id) for t in self.snap.user_tasks)

    def complete(self, task_id: str, data: dict[str, Any]) -> None:
        """Complete a user task, then run the jobs it led to."""
        self._unit(self.engine.complete_user_task, task_id, dict(data))
        self._run_jobs()

    def advance(self, delta: timedelta) -> None:
        """Move the clock, firing due timers (and the jobs after them) in due order."""
        target = self.clock.now() + delta
        for _ in range(MAX_JOBS):
            due = [t for t in self.snap.timers if t.due_at <= target]
            if not due:
                break
            timer = min(due, key=lambda t: t.due_at)
            self.clock.set(max(timer.due_at, self.clock.now()))
            self._unit(self.engine.fire_timer, timer.task_id, timer.timer_name)
            self._run_jobs()
        self.clock.set(target)

    def correlate(self, name: str, payload: dict[str, Any]) -> None:
        """Deliver a message the instance waits for."""
        assert self._unit(self.engine.deliver_message, name, dict(payload)), name
        self._run_jobs()

    def data(self) -> dict[str, Any]:
        """The instance's variables."""
        return self.snap.data

    def status(self) -> str:
        """running or completed."""
        return "completed" if self.snap.completed else "running"

    def timers(self) -> int:
        """How many timers wait."""
        return len(self.snap.timers)

    def messages(self) -> list[str]:
        """Message names the instance waits for."""
        return sorted(self.snap.messages)

    def sizes(self) -> tuple[int, int]:
        """(length of the saved state, tasks in the live tree)."""
        return len(self.state), self.tasks_in_tree


class RunnerDriver:
    """One instance through the real Runner: every call is the Runner's own unit of work."""

    def __init__(self, runner: Runner, files: list[Path], process_key: str, business_key: str = "customer-1"):
        self.runner = runner
        self.process_key = process_key
        self.business_key = business_key
        self.instance_id = ""
        self._seen: dict[str, Any] | None = None
        runner.deploy(list(files))

    def start(self, data: dict[str, Any]) -> None:
        """Start the instance and run what falls due at once."""
        self.instance_id = self.runner.start_instance(self.process_key, self.business_key, data)
        self._settle()

    def _settle(self) -> None:
        """Run the jobs a step created, as the worker would (skipped when none is pending)."""
        self._seen = None
        if self._instance()["jobs"]:
            self.runner.run_due()
            self._seen = None

    def open_tasks(self) -> list[tuple[str, str]]:
        """(element id, task id) of each open user task, by element id."""
        return sorted((t["element_id"], t["id"]) for t in inbox.tasks(self.runner, business_key=self.business_key))

    def complete(self, task_id: str, data: dict[str, Any]) -> None:
        """Complete a user task, then run the jobs it led to."""
        self.runner.complete_task(task_id, data, actor="tester")
        self._settle()

    def advance(self, delta: timedelta) -> None:
        """Move the virtual clock; the Runner fires what falls due on the way."""
        self.runner.advance_clock(delta)
        self._seen = None

    def correlate(self, name: str, payload: dict[str, Any]) -> None:
        """Deliver a message the instance waits for."""
        assert self.runner.correlate(name, self.business_key, payload) == [self.instance_id]
        self._settle()

    def _instance(self) -> dict[str, Any]:
        # NOTE: read once per step; every call that changes the instance clears it.
        if self._seen is None:
            self._seen = inbox.instance(self.runner, self.instance_id)
        return self._seen

    def data(self) -> dict[str, Any]:
        """The instance's variables, as the instances table holds them."""
        return self._instance()["data"]

    def status(self) -> str:
        """The instance's status column."""
        return self._instance()["status"]

    def timers(self) -> int:
        """How many timer rows of the instance wait."""
        return len(self._instance()["timers"])

    def messages(self) -> list[str]:
        """Message names the instance is subscribed to."""
        return sorted(self._instance()["waits"].get("messages", []))

    def sizes(self) -> tuple[int, int]:
        """(length of the saved state column, tasks in the restored tree)."""
        with self.runner.db.unit() as s:
            inst, workflow = self.runner.load(s, self.instance_id)
            return len(inst.state), count_tasks(workflow)


class Bounds:
    """The largest sizes seen in a window of early rounds; later rounds may not exceed them by 10%."""

    def __init__(self, window: range = range(10, 22), slack: float = 1.1):
        self.window = window
        self.slack = slack
        self.state = 0
        self.tasks = 0

    def check(self, round_no: int, sizes: tuple[int, int], slack: float | None = None) -> None:
        """Record (in the window) or check (after it) one round's (state length, task count)."""
        state, tasks = sizes
        slack = slack or self.slack
        if round_no in self.window:
            self.state, self.tasks = max(self.state, state), max(self.tasks, tasks)
        elif round_no >= self.window.stop:
            assert state <= self.state * slack, f"round {round_no}: state {state} > {self.state} x {slack}"
            assert tasks <= self.tasks * slack, f"round {round_no}: {tasks} tasks > {self.tasks} x {slack}"

    def check_completed(self, round_no: int, sizes: tuple[int, int]) -> None:
        """A completed instance keeps its last round or two: prune has no unfinished task to re-root above."""
        self.check(round_no, sizes, COMPLETED_SLACK)


def play_loop(driver: StoreDriver | RunnerDriver, rounds: int, size_every: int = 1) -> Bounds:
    """The care loop for ``rounds`` rounds with ``limit == rounds``, checked every round."""
    bounds = Bounds()
    driver.start({"rounds": 0, "limit": rounds})
    for i in range(1, rounds + 1):
        assert driver.status() == "running", f"completed early, before round {i}"
        open_tasks = driver.open_tasks()
        assert [element for element, _ in open_tasks] == ["call"], f"round {i}: {open_tasks}"
        driver.complete(open_tasks[0][1], {"note": f"round {i}"})
        assert driver.open_tasks() == [] and driver.timers() == 1, f"round {i}: not waiting for the month"
        driver.advance(MONTH)
        data = driver.data()
        assert (data["rounds"], data["note"]) == (i, f"round {i}"), f"round {i}: {data}"
        if i == rounds:
            bounds.check_completed(i, driver.sizes())
        elif i % size_every == 0 or i in bounds.window:
            bounds.check(i, driver.sizes())
    assert driver.status() == "completed"
    assert driver.open_tasks() == [] and driver.timers() == 0
    return bounds


def test_loop_runs_ten_thousand_rounds_at_store_level(registry: Registry) -> None:
    """10,000 rounds, each unit of work pruned, dumped and restored: no early end, bounded state."""
    driver = StoreDriver([LOOP], "care_loop", registry)
    bounds = play_loop(driver, 10_000)
    assert driver.data()["rounds"] == 10_000 and driver.data()["note"] == "round 10000"
    # Unpruned, four tasks a round reach SpiffWorkflow's depth cap (1,000) after 250 rounds.
    assert bounds.tasks < 30, bounds.tasks


RUNNER_ROUNDS = 2_000


@pytest.mark.slow
def test_loop_runs_two_thousand_rounds_through_the_runner(runner: Runner) -> None:
    """2,000 rounds through the Runner on SQLite, each step committed and reloaded.

    NOTE: six times the rounds after which SpiffWorkflow's depth cap ends an unpruned loop (about
    333); the 10,000 rounds are the store-level test's above and ``bench.long_lived``'s, whose
    aged-versus-fresh figures show the flat cost. At 10,000 this test took 8.5 minutes of CI.
    """
    driver = RunnerDriver(runner, [LOOP], "care_loop")
    bounds = play_loop(driver, RUNNER_ROUNDS, size_every=100)
    data = driver.data()
    assert (data["rounds"], data["note"]) == (RUNNER_ROUNDS, f"round {RUNNER_ROUNDS}")
    assert bounds.tasks < 30, bounds.tasks
    with runner.db.read() as s:
        row = s.get(Instance, driver.instance_id)
        assert row.status == "completed" and row.ended_at is not None
    tasks = inbox.tasks(runner, business_key="customer-1", state="completed")
    assert len(tasks) == RUNNER_ROUNDS and {t["completed_by"] for t in tasks} == {"tester"}


def test_timer_lookup_by_task_does_not_scan_the_instances_old_timers(runner: Runner) -> None:
    """The projection's lookup of a task's timer row is served by an index that includes task_id."""
    lookup = "SELECT id FROM timers WHERE instance_id = ? AND task_id = ? AND timer_name = ?"
    with runner.db.engine.connect() as conn:
        plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {lookup}", ("i", "t", "n")))
    assert "task_id=?" in plan, plan
