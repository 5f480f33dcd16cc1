"""Pruning the task tree is safe for every construct a loop may hold.

Each loop (fixtures in ``bpmn/bounding/``) runs through the real Runner on SQLite for
400 rounds and at the Engine+WorkflowStore level for 1,100 rounds, with a save/restore
after every unit of work. Every loop has at least three tasks per round, so both runs go
far past SpiffWorkflow's depth cap of 1,000 if the tree were not pruned. Every round checks
which user tasks are open, that joins wait, the counters in the data, and that the
saved state and the live tree stay as small as in round 10-21.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_long_lived import Bounds, RunnerDriver, StoreDriver

from runner.errors import DeploymentInvalid
from runner.registry import HandlerContext, Registry

FIXTURES = Path(__file__).parent / "bpmn" / "bounding"
ROUNDS = {"runner": 400, "store": 1_100}

Driver = RunnerDriver | StoreDriver
Round = Callable[[Driver, int], None]


@pytest.fixture(params=sorted(ROUNDS))
def drive(request: pytest.FixtureRequest, registry: Registry) -> Callable[..., tuple[Driver, int]]:
    """A factory of (driver, rounds) for one process, at the Runner or at the store level."""

    def make(process_key: str, *files: str) -> tuple[Driver, int]:
        paths = [FIXTURES / name for name in files]
        if request.param == "runner":
            return RunnerDriver(request.getfixturevalue("runner"), paths, process_key), ROUNDS["runner"]
        return StoreDriver(paths, process_key, registry), ROUNDS["store"]

    return make


def play(driver: Driver, rounds: int, one_round: Round, **data: Any) -> None:
    """Run ``rounds`` rounds of a loop with ``limit == rounds``; it ends exactly after the last."""
    bounds = Bounds()
    driver.start({"rounds": 0, "limit": rounds, **data})
    for i in range(1, rounds + 1):
        assert driver.status() == "running", f"completed early, before round {i}"
        one_round(driver, i)
        assert driver.data()["rounds"] == i, f"round {i}: {driver.data()}"
        if i < rounds:
            bounds.check(i, driver.sizes())
    bounds.check_completed(rounds, driver.sizes())
    assert driver.status() == "completed"
    assert driver.open_tasks() == [] and driver.timers() == 0 and driver.messages() == []


def elements(driver: Driver) -> list[str]:
    """Element ids of the open user tasks."""
    return [element for element, _ in driver.open_tasks()]


def complete_one_by_one(driver: Driver, i: int, expected: list[str]) -> None:
    """Complete the expected open tasks in turn (reversed on odd rounds); the join waits for all."""
    tasks = driver.open_tasks()
    assert [element for element, _ in tasks] == expected, f"round {i}: {tasks}"
    order = tasks[::-1] if i % 2 else tasks
    for n, (element, task_id) in enumerate(order):
        assert driver.data()["rounds"] == i - 1, f"round {i}: the join went on before {element}"
        driver.complete(task_id, {"results": {element: i}})
        if n + 1 < len(order):
            assert driver.open_tasks() == sorted(order[n + 1 :]), f"round {i}"
    assert not set(tasks) & set(driver.open_tasks()), f"round {i}: a completed task is still open"
    # NOTE: each branch replaces "results" with its own; the join deep-merges the branches.
    assert driver.data()["results"] == {element: i for element in expected}, f"round {i}: {driver.data()}"


def test_parallel_split_and_join(drive) -> None:
    """Both branches open every round; the join waits for the second; both results are merged."""
    driver, rounds = drive("bound_parallel", "parallel.bpmn")
    play(driver, rounds, lambda d, i: complete_one_by_one(d, i, ["left", "right"]))


def test_interrupting_boundary_timer(drive, registry: Registry) -> None:
    """Every third round the review times out and escalates; otherwise it is done in time."""
    escalated: list[int] = []

    def escalate(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
        escalated.append(params["n"])
        return {"escalations": params["n"] + 1}

    registry.add("bounding.escalate", escalate)
    driver, rounds = drive("bound_interrupting", "boundary_interrupting.bpmn")

    def one_round(d: Driver, i: int) -> None:
        [(element, task_id)] = d.open_tasks()
        assert element == "review" and d.timers() == 1, f"round {i}"
        if i % 3 == 0:
            d.advance(timedelta(minutes=61))
            assert task_id not in [t for _, t in d.open_tasks()], f"round {i}: review not interrupted"
        else:
            d.advance(timedelta(minutes=30))
            assert d.open_tasks() == [("review", task_id)], f"round {i}: timer fired early"
            d.complete(task_id, {"note": f"in time {i}"})
            assert d.data()["note"] == f"in time {i}"
        assert escalated == list(range(i // 3)) and d.data()["escalations"] == i // 3

    play(driver, rounds, one_round, escalations=0)


def test_non_interrupting_cycle_timer(drive, registry: Registry) -> None:
    """An hourly reminder fires 0, 1 or 2 times while the work stays open, then stops with it."""
    reminded: list[int] = []
    registry.add("bounding.remind", lambda params, ctx: reminded.append(params["round"]) or {})
    driver, rounds = drive("bound_cycle", "boundary_cycle.bpmn")

    def one_round(d: Driver, i: int) -> None:
        [(element, task_id)] = d.open_tasks()
        assert element == "work" and d.timers() == 1, f"round {i}: {d.open_tasks()} timers={d.timers()}"
        before, fires = len(reminded), i % 3
        if fires:
            d.advance(timedelta(minutes=60 * fires + 1))
        assert reminded[before:] == [i - 1] * fires, f"round {i}: {reminded[before:]}"
        assert d.open_tasks() == [("work", task_id)] and d.timers() == 1
        d.complete(task_id, {})

    play(driver, rounds, one_round)
    assert len(reminded) == sum(i % 3 for i in range(1, rounds + 1))


def test_embedded_subprocess(drive) -> None:
    """The subprocess's user task opens each round and its data comes back out."""
    driver, rounds = drive("bound_subprocess", "subprocess.bpmn")

    def one_round(d: Driver, i: int) -> None:
        [(element, task_id)] = d.open_tasks()
        assert element == "fill", f"round {i}"
        d.complete(task_id, {"note": f"visit {i}"})
        assert (d.data()["visits"], d.data()["note"]) == (i, f"visit {i}")

    play(driver, rounds, one_round, visits=0)


def test_call_activity(drive) -> None:
    """The called process's user task opens each round and its data comes back out."""
    driver, rounds = drive("bound_call", "call_activity.bpmn", "called.bpmn")

    def one_round(d: Driver, i: int) -> None:
        [(element, task_id)] = d.open_tasks()
        assert element == "answer", f"round {i}"
        d.complete(task_id, {"note": f"answer {i}"})
        assert (d.data()["answers"], d.data()["note"]) == (i, f"answer {i}")

    play(driver, rounds, one_round, answers=0)


def test_call_activity_holding_an_embedded_subprocess(drive) -> None:
    """Re-rooting the called tree above a finished subprocess drops that subprocess safely."""
    driver, rounds = drive("bound_call_nested", "call_nested.bpmn", "called_nested.bpmn")

    def one_round(d: Driver, i: int) -> None:
        [(element, task_id)] = d.open_tasks()
        assert element == "talk", f"round {i}"
        d.complete(task_id, {})
        [(element, task_id)] = d.open_tasks()
        assert element == "wrap_up", f"round {i}"
        d.complete(task_id, {})
        [(element, task_id)] = d.open_tasks()
        assert element == "follow_up", f"round {i}"
        d.complete(task_id, {})
        assert d.data()["answers"] == i

    play(driver, rounds, one_round, answers=0)


def test_multi_instance_over_a_collection(drive) -> None:
    """One, two or three checks open (one per item); the loop goes on after the last one."""
    driver, rounds = drive("bound_multi", "multi_instance.bpmn")
    sizes = [(i - 1) % 3 + 1 for i in range(1, rounds + 1)]

    def one_round(d: Driver, i: int) -> None:
        tasks = d.open_tasks()
        assert elements(d) == ["check"] * sizes[i - 1], f"round {i}: {tasks}"
        for n, (_, task_id) in enumerate(tasks):
            assert d.data()["rounds"] == i - 1
            d.complete(task_id, {"checked_by": "tester"})
            if n + 1 < len(tasks):
                assert d.open_tasks() == tasks[n + 1 :], f"round {i}"
        assert d.data()["checked"] == sum(sizes[:i])

    play(driver, rounds, one_round, items=["a"], checked=0)


def test_event_based_gateway(drive) -> None:
    """A reply (odd rounds) or the timeout (even rounds) wins; the other is withdrawn."""
    driver, rounds = drive("bound_event", "event_gateway.bpmn")

    def one_round(d: Driver, i: int) -> None:
        assert d.open_tasks() == [] and d.messages() == ["ping"] and d.timers() == 1, f"round {i}"
        if i % 2:
            d.correlate("ping", {"reply": i})
            assert d.data()["reply"] == i
        else:
            d.advance(timedelta(minutes=61))
        assert (d.data()["replies"], d.data()["timeouts"]) == ((i + 1) // 2, i // 2)

    play(driver, rounds, one_round, replies=0, timeouts=0)


def inclusive_round(d: Driver, i: int) -> None:
    """The split opens a, b, both or the default c; the join waits for exactly those."""
    done = i - 1
    expected = [name for name, on in (("a", done % 2 == 0), ("b", done % 3 == 0)) if on] or ["c"]
    complete_one_by_one(d, i, expected)


def test_inclusive_gateway(drive) -> None:
    """The split opens a, b, both or the default c; the join waits for exactly those."""
    driver, rounds = drive("bound_inclusive", "inclusive.bpmn")
    play(driver, rounds, inclusive_round)


def test_inclusive_gateway_round_after_a_single_branch(runner) -> None:
    """Regression: after a round with one branch, the split's task must not become the tree's root.

    InclusiveGateway reads ``task.parent.state`` of every task of its spec; a pruned root
    has no parent (AttributeError in round 3 before Engine._reroot skipped join tasks).
    """
    driver = RunnerDriver(runner, [FIXTURES / "inclusive.bpmn"], "bound_inclusive")
    play(driver, 3, inclusive_round)


def test_inclusive_gateway_as_loop_target(runner) -> None:
    """The same with the inclusive gateway itself as the loop target (no merge gateway before it)."""
    driver = RunnerDriver(runner, [FIXTURES / "inclusive_loop_entry.bpmn"], "inclusive_entry")
    play(driver, 12, inclusive_round)


def test_parallel_gateway_as_loop_target_is_rejected(runner) -> None:
    """A parallel split that is also the loop target would wait forever once pruned (and in Camunda at once)."""
    with pytest.raises(DeploymentInvalid, match="fork: parallel gateway joins the loop-back flow"):
        runner.deploy([FIXTURES / "parallel_loop_entry.bpmn"])


def test_window_with_a_daily_loop_ended_by_a_terminate_event(drive) -> None:
    """As sales.bpmn's closing window: contacts open 0-2 times beside the push; closing withdraws those left open."""
    driver, rounds = drive("bound_window", "window_daily.bpmn")

    def one_round(d: Driver, i: int) -> None:
        [(element, push_id)] = d.open_tasks()
        assert element == "push" and d.timers() == 1, f"round {i}: {d.open_tasks()} timers={d.timers()}"
        contacts, fires = d.data()["contacts"], i % 3
        if fires:
            d.advance(timedelta(minutes=60 * fires + 1))
        assert sorted(elements(d)) == sorted(["push"] + ["contact"] * fires), f"round {i}"
        left_open = fires and i % 2  # odd rounds leave the last contact undone
        for _, task_id in [t for t in d.open_tasks() if t[0] == "contact"][: fires - left_open]:
            d.complete(task_id, {})
        d.complete(push_id, {"closed": True})  # the terminate end event withdraws an undone contact
        assert push_id not in [t for _, t in d.open_tasks()] and "contact" not in elements(d), f"round {i}"
        # NOTE: the terminate end event hands out the push branch's data: what the daily branch set
        # stays in it (sales.bpmn's daily branch keeps nothing the process reads after the window).
        assert d.data()["contacts"] == contacts == 0, f"round {i}"

    play(driver, rounds, one_round, contacts=0)


def test_a_week_long_window_of_daily_contacts_grows_by_a_few_tasks_a_day(drive) -> None:
    """Inside one window the daily loop cannot be pruned: the open push holds the fork above both loops.

    NOTE: so the window's tree grows by a few tasks a day (about 6 here), nowhere near SpiffWorkflow's
    depth cap of 1,000 in the seven days sales.bpmn's interrupting Timer_7d gives it; after the
    closing point the negotiation goes on in a plain loop (Task_care), which prunes. A window that
    looped for months would need the pruning to cut inside one branch.
    """
    driver, _ = drive("bound_window", "window_daily.bpmn")
    driver.start({"rounds": 0, "limit": 1, "contacts": 0})
    grown = []
    for day in range(1, 8 + 1):
        driver.advance(timedelta(minutes=61))
        [(_, task_id)] = [t for t in driver.open_tasks() if t[0] == "contact"]
        driver.complete(task_id, {})
        assert elements(driver) == ["push"] and driver.timers() == 1, f"day {day}"
        grown.append(driver.sizes()[1])
    steps = [b - a for a, b in itertools.pairwise(grown)]
    assert len(set(steps)) == 1 and 0 < steps[0] <= 8, grown  # linear, a few tasks a day
    assert grown[-1] < 100
    [(_, push_id)] = driver.open_tasks()
    driver.complete(push_id, {"closed": True})
    assert driver.status() == "completed" and driver.open_tasks() == [] and driver.timers() == 0
