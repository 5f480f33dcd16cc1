"""The ``datetime`` form type: typed dd/MM/yyyy HH:mm in business time, stored ISO 8601 with offset,
``min``=``now`` on the runner's (virtual) clock, and the demo reminder an hour before the typed time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from runner.errors import DeploymentInvalid, FormInvalid
from runner.model import forms, formvalues
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import (
    START,
    add_customer,
    advance,
    company,
    complete,
    instance_of,
    outbox,
    runner_at,
    start,
    task,
)
from tests.test_process_sales import KH, PROCESSES, SURVEY, at, timers_scheduled

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DEMO = "Lịch hẹn Demo (ngày giờ)"
FORM_XML = f"""<bpmn:userTask xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Task_book" name="Đặt lịch">
  <bpmn:extensionElements><camunda:formData>
    <camunda:formField id="demo_at" label="{DEMO}" type="datetime">
      <camunda:validation><camunda:constraint name="required" /><camunda:constraint name="min" config="now" />
      </camunda:validation></camunda:formField>
    <camunda:formField id="until" label="Hạn chót" type="datetime">
      <camunda:validation><camunda:constraint name="max" config="2027-01-01T00:00" /></camunda:validation>
    </camunda:formField>
    <camunda:formField id="on_day" label="Ngày gọi" type="date">
      <camunda:validation><camunda:constraint name="min" config="now" /></camunda:validation>
    </camunda:formField>
  </camunda:formData></bpmn:extensionElements>
</bpmn:userTask>"""
NOW = datetime(2026, 12, 8, 9, 0, tzinfo=TZ)  # the runner's clock in these tests, not the machine's


def form() -> forms.Form:
    return forms.parse_form(etree.fromstring(FORM_XML))


def submit(values: dict, now: datetime = NOW) -> dict:
    return forms.coerce(form(), values, now=now, tz=TZ, task="Đặt lịch")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("09/12/2026 10:00", "2026-12-09T10:00:00+07:00"),
        ("9/12/2026 10:00", "2026-12-09T10:00:00+07:00"),
        (" 09/12/2026 10h00 ", "2026-12-09T10:00:00+07:00"),
        ("09-12-2026 10:00", "2026-12-09T10:00:00+07:00"),
        ("09.12.2026 10.00", "2026-12-09T10:00:00+07:00"),
        ("2026-12-09T10:00", "2026-12-09T10:00:00+07:00"),  # a browser's datetime-local input
        ("2026-12-09T03:00:00Z", "2026-12-09T10:00:00+07:00"),  # an API client in UTC: the same instant
        ("2026-12-09T10:00:00+07:00", "2026-12-09T10:00:00+07:00"),
        (datetime(2026, 12, 9, 3, 0, tzinfo=UTC), "2026-12-09T10:00:00+07:00"),
    ],
)
def test_a_date_time_is_typed_in_business_time_and_stored_with_its_offset(typed: object, stored: str) -> None:
    assert submit({"demo_at": typed}) == {"demo_at": stored}
    assert datetime.fromisoformat(stored).astimezone(UTC) == datetime(2026, 12, 9, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "typed",
    ["09/12/2026", "2026-12-09", "31/02/2026 10:00", "09/12/2026 25:00", "ngày mai 10h", "", 20261209, True],
)
def test_a_date_time_without_a_time_of_day_or_unreadable_is_refused_naming_the_field(typed: object) -> None:
    with pytest.raises(FormInvalid) as refused:
        submit({"demo_at": typed})
    assert list(refused.value.errors) == ["demo_at"]
    assert refused.value.errors["demo_at"].startswith(DEMO)
    assert refused.value.codes["demo_at"] in ("type", "required")  # type: ignore[attr-defined]


def test_min_now_is_the_runners_clock_not_the_machines() -> None:
    with pytest.raises(FormInvalid) as refused:
        submit({"demo_at": "08/12/2026 08:59"})
    assert refused.value.errors == {"demo_at": f"{DEMO} must be in the future"}
    assert refused.value.codes == {"demo_at": "min"}  # type: ignore[attr-defined]
    assert submit({"demo_at": "08/12/2026 09:00"}) == {"demo_at": "2026-12-08T09:00:00+07:00"}
    # A virtual clock years ahead of the machine: a time the machine thinks is future is past.
    later = datetime(2031, 1, 1, 9, 0, tzinfo=TZ)
    with pytest.raises(FormInvalid, match="must be in the future"):
        submit({"demo_at": "01/06/2030 10:00"}, now=later)


def test_a_form_that_checks_against_now_needs_the_clock() -> None:
    with pytest.raises(ValueError, match="now="):
        forms.coerce(form(), {"demo_at": "09/12/2026 10:00"}, tz=TZ)


def test_other_limits_still_apply_to_dates_and_date_times() -> None:
    with pytest.raises(FormInvalid) as refused:
        submit({"demo_at": "09/12/2026 10:00", "until": "01/01/2027 00:01", "on_day": "2026-12-07"})
    assert refused.value.errors == {
        "until": "Hạn chót must not be after 01/01/2027 00:00",
        "on_day": "Ngày gọi must not be before today",
    }
    assert submit({"demo_at": "09/12/2026 10:00", "until": "31/12/2026 23:59", "on_day": "2026-12-08"}) == {
        "demo_at": "2026-12-09T10:00:00+07:00",
        "until": "2026-12-31T23:59:00+07:00",
        "on_day": "2026-12-08",
    }


def test_the_definition_survives_the_round_trip_and_now_fits_only_moments() -> None:
    again = forms.form_from_dict(form().to_dict())
    assert again == form()
    assert (again.field("demo_at").min, again.field("until").max) == (forms.NOW, datetime(2027, 1, 1))
    bad = FORM_XML.replace(
        'type="datetime">\n      <camunda:validation><camunda:constraint name="max"',
        'type="long">\n      <camunda:validation><camunda:constraint name="max"',
    )
    bad = bad.replace('config="2027-01-01T00:00"', 'config="now"')
    with pytest.raises(DeploymentInvalid, match="constraint 'max' has invalid config 'now'"):
        forms.parse_form(etree.fromstring(bad))


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("2026-12-09T10:00:00+07:00", "09/12/2026 10:00"),
        ("2026-12-09T03:00:00+00:00", "09/12/2026 10:00"),
        ("2026-12-09", "09/12/2026 00:00"),  # a date-only value from before the field had a time: kept, read as 00:00
        (date(2026, 12, 9), "09/12/2026 00:00"),
        ("not a moment", "not a moment"),
    ],
)
def test_a_stored_date_time_is_shown_in_business_time(stored: object, shown: str) -> None:
    assert formvalues.show_moment(stored, TZ) == shown


# --- the sales diagram on the virtual clock -----------------------------------------------------


@pytest.fixture
def r(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The company at Monday 7 December 2026 09:00 (virtual clock), lead KH0001 at the survey."""
    runner = runner_at(sqlite_url, registry, START)
    company(runner)
    add_customer(runner, KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn")
    runner.deploy([PROCESSES])
    start(runner, "sales", KH)
    advance(runner, minutes=10)
    complete(runner, KH, "Task_verify", {"verdict": "good"}, by="an")
    complete(runner, KH, "Task_call", {"call_result": "reached"}, by="an")
    yield runner
    runner.db.engine.dispose()


def test_a_demo_in_the_past_of_the_virtual_clock_is_refused_and_the_task_stays_open(r: Runner) -> None:
    survey = task(r, KH, "Task_survey")
    for typed in ("01/01/2020 10:00", "07/12/2026 09:00"):  # long ago, and ten minutes before the clock
        with pytest.raises(FormInvalid) as refused:
            r.complete_task(survey["id"], {**SURVEY, "demo_at": typed}, actor="an")
        assert refused.value.errors == {"demo_at": f"{DEMO} must be in the future"}
    assert task(r, KH, "Task_survey")["state"] == "open" and outbox(r, KH) == []


def test_the_demo_reminder_fires_60_minutes_before_the_typed_local_time(r: Runner) -> None:
    complete(r, KH, "Task_survey", {**SURVEY, "demo_at": "09/12/2026 10:00"}, by="an")
    assert instance_of(r, KH, "sales")["data"]["demo_at"] == "2026-12-09T10:00:00+07:00"
    assert timers_scheduled(r, KH, "Timer_demo_reminder") == [at(9, 9)]
    assert at(9, 9).astimezone(UTC) == datetime(2026, 12, 9, 2, 0, tzinfo=UTC)  # what the timer row holds

    advance(r, to=at(9, 8, 59))
    assert [m["payload"].get("template") for m in outbox(r, KH)] == ["demo_account", "demo_account"]
    advance(r, minutes=1)
    confirmation = outbox(r, KH)[-1]["payload"]
    assert confirmation["template"] == "demo_confirmation" and "10:00" in confirmation["text"]
    assert "09/12/2026" in confirmation["text"]
    assert task(r, KH, "Task_confirm")["due_at"] == at(9, 9, 30).astimezone(UTC)


def old_sales(folder: Path) -> Path:
    """sales.bpmn as shipped before: the appointments were date-only fields with no check on the past."""
    text = (PROCESSES / "sales.bpmn").read_text(encoding="utf-8")
    text = text.replace('type="datetime"', 'type="date"').replace('<camunda:constraint name="min" config="now" />', "")
    path = folder / "sales.bpmn"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_date_only_demo_kept_from_before_still_runs_after_the_instance_moves_to_the_new_form(
    sqlite_url: str, registry: Registry, tmp_path: Path
) -> None:
    """Not migrated: a stored "2026-12-09" stays valid; timers read it as 00:00 business time, the form shows it."""
    r = runner_at(sqlite_url, registry, START)
    company(r)
    add_customer(r, KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn")
    r.deploy([old_sales(tmp_path), *(PROCESSES / f"{key}.bpmn" for key in ("onboarding", "care_month", "renewal"))])
    start(r, "sales", KH)
    complete(r, KH, "Task_verify", {"verdict": "good"}, by="an")
    complete(r, KH, "Task_call", {"call_result": "reached"}, by="an")
    complete(r, KH, "Task_survey", {**SURVEY, "demo_at": "2026-12-09"}, by="an")  # the old date-only form
    assert timers_scheduled(r, KH, "Timer_demo_reminder") == [at(8, 23)]  # the old midnight booking

    r.deploy([PROCESSES])
    sales = instance_of(r, KH, "sales")
    r.migrate_instance(sales["id"])
    advance(r, to=at(8, 23))
    assert outbox(r, KH)[-1]["payload"]["template"] == "demo_confirmation"
    confirm = task(r, KH, "Task_confirm")
    assert forms.form_from_dict(confirm["form"]).field("demo_at").type == "datetime"
    assert formvalues.show_moment(instance_of(r, KH, "sales")["data"]["demo_at"], TZ) == "09/12/2026 00:00"
    complete(r, KH, "Task_confirm", {"demo_status": "rescheduled", "demo_at": "09/12/2026 15:00"}, by="an")
    assert instance_of(r, KH, "sales")["data"]["demo_at"] == "2026-12-09T15:00:00+07:00"
    assert timers_scheduled(r, KH, "Timer_demo_reminder")[-1] == at(9, 14)
    r.db.engine.dispose()
