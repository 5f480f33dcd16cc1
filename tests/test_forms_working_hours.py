"""Appointments in working time: a date or date-time field with the property ``calendar`` = ``business``.

The shipped sales diagram marks the demo and the negotiation this way, so a demo cannot be booked
at 19:00, on a Sunday, on Tết or on a company day off an admin added; the runner reads the stored
calendar of the unit of work (default: Mon–Fri 08:00–17:30, Sat 08:00–12:00, Vietnam's holidays).
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from lxml import etree

from runner.errors import DeploymentInvalid, FormInvalid
from runner.model import forms, worktime
from runner.service.runtime import Runner
from tests.scenario import complete, instance_of, outbox, task
from tests.test_forms_datetime import DEMO, NOW, TZ, r  # noqa: F401  # r is a fixture
from tests.test_process_sales import KH, SURVEY
from tests.webapp import WebClient, add_user

CALENDAR = worktime.default_calendar(TZ)


def field_xml(ftype: str = "datetime", calendar: str = "business") -> str:
    return f"""<bpmn:userTask xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Task_book" name="Đặt lịch">
  <bpmn:extensionElements><camunda:formData>
    <camunda:formField id="meet_at" label="Lịch hẹn" type="{ftype}">
      <camunda:properties><camunda:property id="calendar" value="{calendar}" /></camunda:properties>
    </camunda:formField>
  </camunda:formData></bpmn:extensionElements>
</bpmn:userTask>"""


def submit(typed: str, ftype: str = "datetime", cal: worktime.BusinessCalendar = CALENDAR) -> dict:
    form = forms.parse_form(etree.fromstring(field_xml(ftype)))
    return forms.coerce(form, {"meet_at": typed}, now=NOW, tz=TZ, task="Đặt lịch", calendar=lambda: cal)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("08/12/2026 08:00", "2026-12-08T08:00:00+07:00"),  # the opening minute is working time
        ("08/12/2026 17:29", "2026-12-08T17:29:00+07:00"),
        ("12/12/2026 11:45", "2026-12-12T11:45:00+07:00"),  # Saturday morning
    ],
)
def test_a_moment_inside_working_hours_is_taken(typed: str, stored: str) -> None:
    assert submit(typed) == {"meet_at": stored}


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("08/12/2026 19:00", "must be in working hours; on 08/12/2026 they are 08:00-17:30"),  # an evening
        ("08/12/2026 17:30", "must be in working hours; on 08/12/2026 they are 08:00-17:30"),  # closing time
        ("08/12/2026 07:59", "must be in working hours; on 08/12/2026 they are 08:00-17:30"),
        ("12/12/2026 14:00", "must be in working hours; on 12/12/2026 they are 08:00-12:00"),  # Saturday afternoon
        ("13/12/2026 10:00", "must be on a working day; 13/12/2026 is not one"),  # Sunday
        ("08/02/2027 10:00", "must be on a working day; 08/02/2027 is not one"),  # Tết 2027
    ],
)
def test_a_moment_outside_working_time_is_refused_naming_the_field_and_the_days_hours(typed: str, words: str) -> None:
    with pytest.raises(FormInvalid) as refused:
        submit(typed)
    assert refused.value.errors == {"meet_at": f"Lịch hẹn {words}"}
    assert refused.value.codes == {"meet_at": "hours"}


def test_a_date_field_must_be_a_working_day() -> None:
    assert submit("2026-12-12", "date") == {"meet_at": "2026-12-12"}
    with pytest.raises(FormInvalid) as refused:
        submit("2027-02-08", "date")
    assert refused.value.errors == {"meet_at": "Lịch hẹn must be on a working day; 08/02/2027 is not one"}


def test_the_calendar_given_decides_and_is_read_only_when_the_field_is_submitted() -> None:
    day_off = dataclasses.replace(CALENDAR, days_off=frozenset({date(2026, 12, 8)}))
    with pytest.raises(FormInvalid, match="must be on a working day; 08/12/2026 is not one"):
        submit("08/12/2026 10:00", cal=day_off)
    form = forms.parse_form(etree.fromstring(field_xml()))

    def unread() -> worktime.BusinessCalendar:
        raise AssertionError("the calendar was read for a form whose field was not submitted")

    assert forms.coerce(form, {}, now=NOW, tz=TZ, calendar=unread) == {}


def test_a_form_that_checks_working_hours_needs_the_calendar() -> None:
    form = forms.parse_form(etree.fromstring(field_xml()))
    with pytest.raises(ValueError, match="pass calendar="):
        forms.coerce(form, {"meet_at": "08/12/2026 10:00"}, now=NOW, tz=TZ)


@pytest.mark.parametrize(
    ("ftype", "calendar", "problem"),
    [
        ("datetime", "weekdays", "form field 'meet_at': property 'calendar' is 'weekdays'; it must be 'business'"),
        ("datetime", "", "form field 'meet_at': property 'calendar' is ''; it must be 'business'"),
        ("string", "business", "form field 'meet_at': property 'calendar' applies to date and datetime fields"),
    ],
)
def test_deploy_refuses_a_calendar_it_does_not_know_or_on_a_field_without_time(
    ftype: str, calendar: str, problem: str
) -> None:
    with pytest.raises(DeploymentInvalid) as refused:
        forms.parse_form(etree.fromstring(field_xml(ftype, calendar)))
    [found] = refused.value.problems
    assert (found.element_id, found.reason.split(" or absent")[0].split(", not")[0]) == ("Task_book", problem)


def test_the_property_survives_the_round_trip() -> None:
    form = forms.parse_form(etree.fromstring(field_xml()))
    again = forms.form_from_dict(form.to_dict())
    assert again == form and again.field("meet_at").calendar == "business"


# --- the shipped sales diagram ---------------------------------------------------------------------


@pytest.fixture
def runner(r: Runner) -> Runner:  # noqa: F811  # r: the imported fixture
    """The survey's runner (``tests.test_forms_datetime.r``: KH0001 at the survey), named as the app fixture wants."""
    return r


def test_a_demo_booked_in_the_evening_or_on_a_day_off_is_refused_and_the_task_stays_open(runner: Runner) -> None:
    runner.add_day_off("2026-12-10", "Team building", actor="admin")  # the stored calendar, not the default
    survey = task(runner, KH, "Task_survey")
    for typed, words in [
        ("08/12/2026 19:30", "must be in working hours; on 08/12/2026 they are 08:00-17:30"),
        ("13/12/2026 09:00", "must be on a working day; 13/12/2026 is not one"),
        ("10/12/2026 09:00", "must be on a working day; 10/12/2026 is not one"),
    ]:
        with pytest.raises(FormInvalid) as refused:
            runner.complete_task(survey["id"], {**SURVEY, "demo_at": typed}, actor="an")
        assert refused.value.errors == {"demo_at": f"{DEMO} {words}"}
    assert task(runner, KH, "Task_survey")["state"] == "open" and outbox(runner, KH) == []

    complete(runner, KH, "Task_survey", {**SURVEY, "demo_at": "11/12/2026 10:00"}, by="an")
    assert instance_of(runner, KH, "sales")["data"]["demo_at"] == "2026-12-11T10:00:00+07:00"


def test_the_task_page_says_working_hours_and_refuses_an_evening_demo_in_vietnamese(
    client: WebClient, runner: Runner
) -> None:
    survey = task(runner, KH, "Task_survey")
    add_user(runner, "an", ["sales"])
    client.login("an")
    page = client.get(f"/inbox/tasks/{survey['id']}").get_data(as_text=True)
    assert "Theo giờ Asia/Ho_Chi_Minh · từ bây giờ · trong giờ làm việc" in page
    values = {key: "on" if value is True else str(value) for key, value in SURVEY.items() if value is not False}
    answer = client.post(f"/inbox/tasks/{survey['id']}/complete", data={**values, "demo_at": "08/12/2026 19:30"})
    assert answer.status_code == 422
    assert f"{DEMO} phải nằm trong giờ làm việc của công ty." in answer.get_data(as_text=True)
    assert task(runner, KH, "Task_survey")["state"] == "open"
