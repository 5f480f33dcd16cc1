"""Races between people on one task, on SQLite and PostgreSQL, with real threads.

Each racer is a Runner object of its own on the same database (as two web workers are).
A barrier starts both at once; what wins is up to the database. Whatever the order, the
rules hold: a claim and a completion by someone else never both succeed, and of two
completions exactly one does, once.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import make_runner

from runner.errors import Conflict
from runner.queries import tasklists as inbox
from runner.service import accounts as users
from runner.service.runtime import Runner
from tests.webapp import add_user

RACE = Path(__file__).parent.parent / "bpmn" / "hostile" / "race.bpmn"
ROUNDS = 25
SALES = ["sales"]


@contextmanager
def second_runner(runner: Runner) -> Iterator[Runner]:
    """Another Runner object on the same database, as another web worker."""
    other = make_runner(runner.settings.database_url, runner.registry)
    try:
        yield other
    finally:
        other.db.engine.dispose()


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each outcome is "ok" or the exception raised."""
    barrier = threading.Barrier(len(calls), timeout=30)
    outcomes: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait()
        try:
            calls[n]()
            outcomes[n] = "ok"
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcomes[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    return outcomes


def _start_rounds(runner: Runner, rounds: int) -> list[tuple[str, str]]:
    """(instance id, its 'approve' task id) for each round, each its own customer."""
    runner.deploy([RACE])
    started = []
    for n in range(rounds):
        instance_id = runner.start_instance("race", f"KH{n}", {"approvals": 0})
        [task] = inbox.tasks(runner, business_key=f"KH{n}")
        started.append((instance_id, task["id"]))
    return started


def _completions(runner: Runner, instance_id: str) -> list[str | None]:
    return [h["actor"] for h in inbox.history(runner, instance_id=instance_id, events=["task.completed"])]


def test_a_claim_racing_someone_elses_completion_never_both_succeed(any_runner: Runner) -> None:
    for name in ("linh", "hung"):
        add_user(any_runner, name, SALES)
    counts = {"claim won": 0, "completion won": 0}
    with second_runner(any_runner) as other:
        for instance_id, task_id in _start_rounds(any_runner, ROUNDS):
            claimed, completed = race(
                functools.partial(any_runner.claim_task, task_id, "linh", SALES),
                functools.partial(other.complete_task_as, task_id, {"note": "xong"}, "hung", SALES),
            )
            assert [claimed, completed].count("ok") == 1, (claimed, completed)
            task = inbox.task(any_runner, task_id)
            if claimed == "ok":
                counts["claim won"] += 1
                assert isinstance(completed, Conflict) and "claimed by linh" in str(completed)
                assert (task["state"], task["assignee"]) == ("open", "linh")
                assert _completions(any_runner, instance_id) == []
            else:
                counts["completion won"] += 1
                assert isinstance(claimed, Conflict) and "completed by hung" in str(claimed)
                assert (task["state"], task["completed_by"]) == ("completed", "hung")
                assert _completions(any_runner, instance_id) == ["hung"]
    assert sum(counts.values()) == ROUNDS


def test_a_claim_between_the_completions_first_look_and_its_save_wins(any_runner: Runner) -> None:
    """The interleaving that let both succeed: linh claims just before hung's unit of work begins."""
    for name in ("linh", "hung"):
        add_user(any_runner, name, SALES)
    [(instance_id, task_id)] = _start_rounds(any_runner, 1)
    with second_runner(any_runner) as other:
        unit = any_runner.db.unit

        @contextmanager
        def claim_first():
            other.claim_task(task_id, "linh", SALES)  # another worker, committed before hung's unit begins
            any_runner.db.unit = unit
            with unit() as s:
                yield s

        any_runner.db.unit = claim_first
        with pytest.raises(Conflict, match="claimed by linh"):
            any_runner.complete_task_as(task_id, {"note": "xong"}, "hung", SALES)
    task = inbox.task(any_runner, task_id)
    assert (task["state"], task["assignee"]) == ("open", "linh")
    assert _completions(any_runner, instance_id) == []


def test_two_people_completing_one_task_one_wins_and_it_is_done_once(any_runner: Runner) -> None:
    for name in ("linh", "hung"):
        add_user(any_runner, name, SALES)
    with second_runner(any_runner) as other:
        for instance_id, task_id in _start_rounds(any_runner, ROUNDS):
            outcomes = race(
                functools.partial(any_runner.complete_task_as, task_id, {"note": "linh"}, "linh", SALES),
                functools.partial(other.complete_task_as, task_id, {"note": "hung"}, "hung", SALES),
            )
            assert outcomes.count("ok") == 1, outcomes
            winner = ("linh", "hung")[outcomes.index("ok")]
            [loser] = [o for o in outcomes if o != "ok"]
            assert isinstance(loser, Conflict) and f"completed by {winner}" in str(loser)
            assert _completions(any_runner, instance_id) == [winner]
            row = inbox.instance(any_runner, instance_id)
            assert row["data"]["approvals"] == 1 and row["data"]["note"] == winner
            assert [t["element_id"] for t in inbox.tasks(any_runner, business_key=row["business_key"])] == ["deliver"]


def test_the_loser_is_told_who_has_the_task_on_the_web_and_in_the_api(app, runner: Runner) -> None:
    for name in ("linh", "hung"):
        add_user(runner, name, SALES)
    [(instance_id, task_id)] = _start_rounds(runner, 1)
    runner.claim_task(task_id, "linh", SALES)
    web = app.test_client()
    web.login("hung")
    page = web.post(f"/inbox/tasks/{task_id}/complete", data={"note": "xong"}, follow_redirects=True)
    assert "Việc “Duyệt” đã được Linh nhận." in page.get_data(as_text=True)
    token = users.issue_token(runner, "hung", label="race")
    api = app.test_client().post(
        f"/api/tasks/{task_id}/complete", json={"data": {"note": "xong"}}, headers={"Authorization": f"Bearer {token}"}
    )
    assert api.status_code == 409 and "claimed by linh" in api.get_json()["detail"]
    assert _completions(runner, instance_id) == []
