"""A user task marked ``calendar=business`` has its due date counted in working time, across save/restore."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree
from test_process_sales_business_time import KH, lead_at  # noqa: F401  # lead_at is a fixture

from runner.engine import timers
from runner.errors import StepFailed
from runner.model import validation
from runner.model.worktime import BusinessCalendar
from tests.harness import FIXTURES, TZ, Harness
from tests.scenario import complete, task

FILE, PROCESS = "business_due_dates.bpmn", "business_due_dates"
FRIDAY_1700 = datetime(2026, 12, 11, 17, 0, tzinfo=TZ)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


def due(h: Harness, ref: str) -> datetime:
    moment = h.user_task(ref).due_at
    assert moment is not None
    return moment.astimezone(TZ)


def started(mode: str, moment: datetime, deadline: str = "2027-02-06T09:00:00") -> Harness:
    return Harness(FILE, PROCESS, mode, start=moment).start({"deadline": deadline})


def test_friday_at_five_plus_sixty_working_minutes_is_saturday_at_half_past_eight(mode):
    h = started(mode, FRIDAY_1700)
    assert due(h, "verify") == at(2026, 12, 12, 8, 30)
    # Another step (a clock timer an hour later), saved and restored: the due date stays.
    assert h.fire_due(at(2026, 12, 11, 18, 0)) == ["tick"]
    assert due(h, "verify") == at(2026, 12, 12, 8, 30)
    # Without the property a due date is clock time: an hour after Friday 18:00.
    h.complete("verify")
    assert due(h, "plain") == at(2026, 12, 11, 19, 0)
    # A date that falls in time off (Saturday of Tết 2027) moves to the first working minute after Tết.
    h.complete("plain")
    assert due(h, "dated") == at(2027, 2, 11, 8, 0)
    h.clock.set(at(2027, 2, 3, 10, 0))  # a Wednesday, the eve of Tết: P3D is three working days
    h.complete("dated")
    assert due(h, "days") == at(2027, 2, 13, 10, 0)  # Thu 11, Fri 12, Sat 13 (a working morning)
    h.complete("days")
    assert h.completed


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (at(2026, 12, 12, 11, 30), at(2026, 12, 14, 8, 30)),  # Saturday 11:30 → Monday: nothing on Sunday
        (at(2027, 2, 3, 17, 0), at(2027, 2, 11, 8, 30)),  # the eve of Tết → after Tết (4–10 Feb 2027)
        (at(2026, 12, 7, 9, 0), at(2026, 12, 7, 10, 0)),  # inside working time: an hour
    ],
)
def test_sixty_working_minutes_skip_time_off(mode, created: datetime, expected: datetime):
    assert due(started(mode, created), "verify") == expected


def test_the_calendar_of_the_unit_of_work_decides(mode):
    no_saturdays = BusinessCalendar.from_text(TZ, {d: "08:00-17:30" for d in ("mon", "tue", "wed", "thu", "fri")})
    with timers.calendar_from(lambda: no_saturdays):
        h = started(mode, FRIDAY_1700)
        assert due(h, "verify") == at(2026, 12, 14, 8, 30)


def test_a_date_the_calendar_cannot_read_fails_naming_the_task(mode):
    h = started(mode, FRIDAY_1700, deadline="Thứ Hai")
    h.complete("verify")
    with pytest.raises(StepFailed, match="dated"):
        h.complete("plain")


def test_deploy_refuses_an_unknown_calendar_naming_the_user_task():
    xml = (FIXTURES / FILE).read_bytes()
    assert validation.validate({"ok.bpmn": xml}, topics=()) == []
    bad = xml.replace(b'value="business"', b'value="weekdays"', 1)
    [problem] = validation.validate({"bad.bpmn": bad}, topics=())
    assert problem.element_id == "verify" and "property 'calendar' is 'weekdays'" in problem.reason


def test_a_form_fields_properties_are_not_the_tasks():
    xml = (FIXTURES / FILE).read_bytes()
    field = (
        b'<camunda:formData><camunda:formField id="x" type="string"><camunda:properties>'
        b'<camunda:property name="calendar" value="weekdays" /></camunda:properties></camunda:formField>'
        b"</camunda:formData>"
    )
    end = b"</camunda:properties>\n      </bpmn:extensionElements>"
    with_field = xml.replace(end, end.replace(b"\n", field + b"\n", 1), 1)
    assert with_field != xml
    # NOTE: the field's own check refuses the value (form-field properties are read by id= or
    # name=); the task's calendar check does not see it, or it would say so a second time.
    [problem] = validation.validate({"ok.bpmn": with_field}, topics=())
    assert problem.reason.startswith("form field 'x': property 'calendar' is 'weekdays'")


@pytest.mark.parametrize(
    ("arrives", "expected"),
    [
        (at(2026, 12, 11, 17, 0), at(2026, 12, 12, 8, 30)),  # Friday 17:00 → Saturday 08:30
        (at(2027, 2, 3, 17, 0), at(2027, 2, 11, 8, 30)),  # Tết 2027 skipped
    ],
)
def test_the_shipped_verification_task_is_due_in_working_time(lead_at, arrives: datetime, expected: datetime):  # noqa: F811
    r = lead_at(arrives)
    assert task(r, KH, "Task_verify")["due_at"] == expected.astimezone(UTC)


def test_the_shipped_verification_task_reads_the_stored_calendar(lead_at):  # noqa: F811
    def day_off(r) -> None:
        r.business_calendar()  # read (and cached) before the edit: the edit must still be seen
        r.add_day_off(date(2026, 12, 8), "Nghỉ tổng kết năm", actor="admin")

    r = lead_at(at(2026, 12, 7, 17, 0), edit=day_off)
    assert task(r, KH, "Task_verify")["due_at"] == at(2026, 12, 9, 8, 30).astimezone(UTC)


SHIPPED = Path(__file__).resolve().parents[1] / "processes"
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": "http://camunda.org/schema/1.0/bpmn"}


def shipped_user_tasks() -> list[tuple[str, str, str, str | None]]:
    """(diagram, task id, camunda:dueDate, calendar property) of every shipped user task with a due date."""
    out = []
    for path in sorted(SHIPPED.glob("*.bpmn")):
        for node in etree.parse(str(path)).iterfind(".//bpmn:userTask", NS):
            due_date = node.get(f"{{{NS['camunda']}}}dueDate")
            if due_date:
                props = node.findall("bpmn:extensionElements/camunda:properties/camunda:property", NS)
                calendar = next((p.get("value") for p in props if p.get("name") == "calendar"), None)
                out.append((path.stem, node.get("id", ""), due_date, calendar))
    return out


def test_every_shipped_due_date_given_as_a_duration_counts_working_time():
    """A follow-up due "in a day" is a promise staff keep in working time, never on a Sunday or a holiday."""
    found = shipped_user_tasks()
    durations = [(d, t, due) for d, t, due, cal in found if due.startswith("P") and cal != "business"]
    assert durations == []
    assert len([t for _, t, due, _ in found if due.startswith("P")]) == 24  # the README's table lists them
    appointments = [t for _, t, due, cal in found if due.startswith("$") and cal is None]
    assert "Task_demo" in appointments and "Task_confirm" in appointments  # tied to the appointment: clock time


@pytest.mark.parametrize(
    ("arrives", "expected"),
    [
        (at(2026, 12, 11, 10, 0), at(2026, 12, 12, 10, 0)),  # Friday morning → Saturday morning
        (at(2026, 12, 11, 16, 0), at(2026, 12, 14, 8, 0)),  # Friday 16:00: Saturday closes at 12:00 → Monday
        (at(2027, 2, 5, 10, 0), at(2027, 2, 11, 10, 0)),  # the Friday before Tết 2027 → the first day after it
    ],
)
def test_the_team_leaders_check_of_a_doubtful_lead_is_due_a_working_day_later(lead_at, arrives, expected):  # noqa: F811
    r = lead_at(arrives)
    complete(r, KH, "Task_verify", {"verdict": "doubtful"}, by="an")
    assert task(r, KH, "Task_tl_verify")["due_at"] == expected.astimezone(UTC)
