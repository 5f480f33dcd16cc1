"""User tasks in the Camunda dialect: assignment, dates, lanes, stages and forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lxml import etree

from runner.model import forms
from tests.harness import FIXTURES, Harness, utc

DATA = {"owner": "dung", "team": "care", "due_day": "2026-03-20T10:00:00"}


def start(mode: str) -> Harness:
    return Harness("user_tasks.bpmn", "user_tasks", mode).start(DATA)


def test_assignment_dates_and_lanes_in_order(mode):
    h = start(mode)
    groups = h.user_task("groups")
    assert (groups.assignee, groups.candidate_groups, groups.candidate_users) == ("an", ["sales", "managers"], [])
    assert groups.lane == "sales"
    assert groups.due_at == utc(2026, 3, 2, 2, 30)  # ${now() + timedelta(minutes=30)}
    assert groups.follow_up_at == utc(2026, 3, 3, 1, 0)  # naive ISO date-time in Asia/Ho_Chi_Minh
    h.complete("groups", {"note": "gọi lại"})

    lane_only = h.user_task("lane_only")
    assert (lane_only.candidate_groups, lane_only.assignee) == (["sales"], None)  # the lane's name
    assert lane_only.due_at == utc(2026, 3, 9, 17, 0)  # ISO date = local midnight
    h.clock.advance(timedelta(hours=1))
    h.complete("lane_only")

    lane_group = h.user_task("lane_group")
    assert lane_group.lane == "Chăm sóc khách hàng"
    assert lane_group.candidate_groups == ["customer_care"]  # the lane's `group` property
    assert lane_group.due_at == utc(2026, 3, 2, 3, 30)  # PT30M from when the task opened
    h.complete("lane_group")

    users = h.user_task("users")
    assert (users.candidate_users, users.candidate_groups, users.priority) == (["binh", "chi"], ["care"], 80)
    h.complete("users")

    owner = h.user_task("owner_task")
    assert owner.assignee == "dung"  # ${owner}
    assert owner.follow_up_at == utc(2026, 3, 20, 3, 0)  # ${due_day}
    assert owner.candidate_groups == ["customer_care"]
    h.complete("owner_task")

    assert h.completed
    assert h.history == ["StartEvent_1", "groups", "lane_only", "lane_group", "users", "owner_task", "EndEvent_1"]
    assert h.data == {**DATA, "note": "gọi lại"}


def test_due_date_is_fixed_when_the_task_opens(mode):
    h = start(mode)
    first = h.user_task("groups").due_at
    h.clock.advance(timedelta(hours=5))
    assert h.user_task("groups").due_at == first == utc(2026, 3, 2, 2, 30)


def test_stage_property_shows_on_the_task_and_the_snapshot(mode):
    h = start(mode)
    assert h.user_task("groups").stage == "Tiếp nhận"
    assert h.snapshot().stages == ["Tiếp nhận"]
    h.complete("groups")
    assert h.user_task("lane_only").stage is None
    assert h.snapshot().stages == []


def test_form_round_trips_through_the_snapshot(mode):
    h = start(mode)
    view = h.user_task("groups")
    doc = etree.parse(str(FIXTURES / "user_tasks.bpmn"))
    node = doc.find(".//{*}userTask[@id='groups']")
    assert view.form == forms.parse_form(node).to_dict()
    form = forms.form_from_dict(view.form)
    assert [f.id for f in form.fields] == ["note", "size"]
    assert [o.id for o in form.fields[1].options] == ["small", "big"]
    values = forms.coerce(form, {"note": "ok", "size": "big"})
    h.complete("groups", values)
    assert h.data["note"] == "ok" and h.data["size"] == "big"
    assert h.user_task("lane_only").form == {"fields": []}


def test_restores_really_happen(mode):
    h = start(mode)
    h.complete("groups")
    assert h.restores == (2 if mode == "save_restore" else 0)
    assert isinstance(h.user_task("lane_only").due_at, datetime)
    assert h.user_task("lane_only").due_at.tzinfo == UTC
