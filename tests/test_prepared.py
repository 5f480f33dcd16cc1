"""The storage fast paths: statements run on the driver, and the task tree's own converter.

``storage.Prepared`` must store and read exactly what the ORM would (UTC datetimes, JSON,
Python-side column defaults) and report driver errors the way SQLAlchemy does, on both
databases. The task converter must keep SpiffWorkflow's format and survive data the
registry has to convert.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from harness import Harness
from runtime_helpers import fixture, only_task, row_counts
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from runner.engine.serializer import WorkflowStore
from runner.errors import Conflict
from runner.service.runtime import Runner
from runner.store.database import Prepared, insert_row
from runner.store.models import Timer, UserTask

SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")
ONE_TIMER = Prepared(
    select(Timer.__table__.c.due_at, Timer.__table__.c.state, Timer.__table__.c.value).where(
        Timer.__table__.c.task_id == bindparam("b_task")
    )
)


def test_prepared_rows_read_back_as_the_orm_wrote_them(any_runner: Runner) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn")])
    instance_id = any_runner.start_instance("order", "school-1")
    due = datetime(2026, 3, 2, 9, 30, tzinfo=SAIGON)
    with any_runner.db.unit() as s:
        # state and value are left out: their Python-side defaults fill them.
        insert_row(s, Timer, instance_id=instance_id, task_id="t-1", element_id="Timer_1", timer_name="t", due_at=due)
        found = ONE_TIMER.first(s, {"b_task": "t-1"})
        missing = ONE_TIMER.first(s, {"b_task": "t-2"})
    assert found == {"due_at": due.astimezone(UTC), "state": "waiting", "value": ""}
    assert found["due_at"].tzinfo is not None
    assert missing is None
    with any_runner.db.read() as s:
        row = s.scalars(select(Timer).where(Timer.task_id == "t-1")).one()
    assert (row.due_at, row.state, row.value) == (due, "waiting", "")


def test_prepared_json_matches_the_orm(any_runner: Runner) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn")])
    any_runner.start_instance("order", "school-1")
    task = only_task(any_runner, "school-1", "Activity_review")
    with any_runner.db.read() as s:
        row = s.get(UserTask, task["id"])
        # Written by projection through Prepared: JSON lists and dicts, not their text.
        assert isinstance(row.candidate_groups, list) and isinstance(row.form, dict)
        assert row.form["fields"], row.form


def test_a_driver_error_is_reported_and_the_unit_stores_nothing(any_runner: Runner) -> None:
    any_runner.deploy([fixture("modeler_order.bpmn")])
    instance_id = any_runner.start_instance("order", "school-1")
    task = only_task(any_runner, "school-1", "Activity_review")
    before = row_counts(any_runner)
    # PostgreSQL's unique violation is a concurrent writer's mark (Conflict); SQLite's is the
    # driver's IntegrityError, wrapped by SQLAlchemy.
    expected = Conflict if any_runner.db.is_postgres else IntegrityError
    with pytest.raises(expected) as raised, any_runner.db.unit() as s:
        insert_row(
            s,
            Timer,
            instance_id=instance_id,
            task_id="t-1",
            element_id="Timer_1",
            timer_name="t",
            due_at=datetime.now(UTC),
        )
        insert_row(
            s,
            UserTask,
            id=task["id"],
            instance_id=instance_id,
            process_key="order",
            element_id="Activity_review",
            created_at=datetime.now(UTC),
        )
    assert "user_tasks" in str(raised.value) or "UNIQUE" in str(raised.value).upper()
    assert row_counts(any_runner) == before


def test_a_date_in_task_data_survives_a_save() -> None:
    # SpiffWorkflow 3.2.0 writes a task's changed values as they are, so a date there
    # could not be saved; the runner's converter passes them through the registry.
    h = Harness("parallel.bpmn", "parallel", "save_restore").start({"price": 30, "qty": 5, "customer": "ACME"})
    h.complete("contract", {"signed": True, "signed_on": date(2026, 3, 2)})
    assert h.restores >= 2
    values = [t.data["signed_on"] for t in h.workflow.tasks.values() if "signed_on" in t.data]
    assert values and all(v == date(2026, 3, 2) and type(v) is date for v in values)


def test_saved_tree_keeps_spiffworkflows_format() -> None:
    h = Harness("parallel.bpmn", "parallel", "save_restore").start({"price": 30, "qty": 5, "customer": "ACME"})
    saved = json.loads(WorkflowStore().dump_state(h.workflow))
    root = saved["tasks"][saved["root"]]
    assert root["parent"] is None and root["data"]["customer"] == "ACME"
    for task_id, task in saved["tasks"].items():
        assert task["id"] == task_id and task["typename"] == "Task"
        assert set(task) == {
            "id",
            "parent",
            "children",
            "last_state_change",
            "state",
            "task_spec",
            "triggered",
            "internal_data",
            "data",
            "delta",
            "typename",
        }
    # The restored ids print as the saved text, and compare equal to plain UUIDs.
    restored = WorkflowStore().load_state(json.dumps(saved), h.spec, h.subprocess_specs, h.engine.script_engine)
    assert sorted(str(i) for i in restored.tasks) == sorted(saved["tasks"])
    assert all(restored.get_task_from_id(t.id) is t for t in restored.tasks.values())


def test_data_with_a_typename_key_of_its_own_survives_every_save(runner: Runner) -> None:
    # The registry reads a stored dict with a "typename" as an object it converted; such
    # data used to leave the instance impossible to load.
    runner.deploy([Path(__file__).parent / "bpmn" / "loop.bpmn"])
    meta = {"typename": "boom", "rows": [1, {"typename": "date", "value": "2026-03-02"}], "on": "x"}
    instance_id = runner.start_instance("care_loop", "school-1", {"rounds": 0, "limit": 5, "meta": meta})
    for _ in range(2):
        task = only_task(runner, "school-1", "call")
        runner.complete_task(task["id"], {"note": "typename"})
        runner.advance_clock(timedelta(days=31))
    with runner.db.read() as s:
        inst, workflow = runner.load(s, instance_id)
    assert inst.data["meta"] == meta and inst.data["rounds"] == 2
    [waiting] = [t for t in workflow.tasks.values() if t.task_spec.name == "call" and t.data]
    assert waiting.data["meta"] == meta


def test_a_date_inside_data_with_a_typename_key_keeps_its_type() -> None:
    h = Harness("parallel.bpmn", "parallel", "save_restore").start({"price": 30, "qty": 5, "customer": "ACME"})
    h.complete("contract", {"signed": {"typename": "x", "on": date(2026, 3, 2)}})
    values = [t.data["signed"] for t in h.workflow.tasks.values() if "signed" in t.data]
    assert values and all(v == {"typename": "x", "on": date(2026, 3, 2)} for v in values)
