"""Timers marked ``calendar=business`` count working time only, straight through and across save/restore."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from runner.engine import timers
from runner.errors import StepFailed
from runner.model import validation
from runner.model.worktime import BusinessCalendar
from tests.harness import FIXTURES, Harness

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FRIDAY_1700 = datetime(2026, 12, 11, 17, 0, tzinfo=TZ)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


def due(h: Harness) -> list[tuple[str, datetime]]:
    return sorted((t.element_id, t.due_at.astimezone(TZ)) for t in h.timers())


def test_a_lead_arriving_friday_at_five_is_due_saturday_at_half_past_eight(mode):
    h = Harness("business_timers.bpmn", "business_timers", mode, start=FRIDAY_1700).start(
        {"notice_at": "2027-02-06T00:00:00"}
    )
    assert due(h) == [("nudge", at(2026, 12, 11, 17, 20)), ("untouched", at(2026, 12, 12, 8, 30))]
    # Friday night and the small hours: one reminder inside working time, then nothing.
    assert h.fire_due(at(2026, 12, 12, 7, 59)) == ["nudge"]
    assert due(h) == [("nudge", at(2026, 12, 12, 8, 10)), ("untouched", at(2026, 12, 12, 8, 30))]
    assert h.fire_due(at(2026, 12, 12, 8, 30)) == ["nudge", "untouched"]
    # The notice is due at a Tết midnight: it waits for the first working minute after Tết.
    assert due(h) == [("notice", at(2027, 2, 11, 8, 0))]
    assert h.fire_due(at(2027, 2, 11, 7, 59)) == []
    assert h.fire_due(at(2027, 2, 11, 8, 0)) == ["notice"]
    # A timer without the property keeps counting clock time.
    assert due(h) == [("plain", at(2027, 2, 11, 9, 0))]
    assert h.fire_due(timedelta(hours=1)) == ["plain"] and h.completed


def test_the_calendar_of_the_unit_of_work_decides(mode):
    no_saturdays = BusinessCalendar.from_text(TZ, {d: "08:00-17:30" for d in ("mon", "tue", "wed", "thu", "fri")})
    with timers.calendar_from(lambda: no_saturdays):
        h = Harness("business_timers.bpmn", "business_timers", mode, start=FRIDAY_1700).start(
            {"notice_at": "2026-12-14T20:00:00"}
        )
        assert ("untouched", at(2026, 12, 14, 8, 30)) in due(h)  # Sunday and Saturday are off
        assert h.fire_due(at(2026, 12, 14, 8, 29)) == ["nudge", "nudge"]
        assert h.fire_due(at(2026, 12, 14, 8, 30)) == ["untouched"]
        assert due(h) == [("notice", at(2026, 12, 15, 8, 0))]  # Monday 20:00 → Tuesday morning


def test_a_bad_business_timer_value_fails_naming_the_element(mode):
    h = Harness("business_timers.bpmn", "business_timers", mode, start=FRIDAY_1700).start({"notice_at": "Thứ Hai"})
    with pytest.raises(StepFailed, match="notice"):
        h.complete("verify")


def test_deploy_refuses_an_unknown_calendar_naming_the_timer():
    xml = (FIXTURES / "business_timers.bpmn").read_bytes()
    assert validation.validate({"ok.bpmn": xml}, topics=()) == []
    bad = xml.replace(b'value="business"', b'value="weekdays"', 1)
    [problem] = validation.validate({"bad.bpmn": bad}, topics=())
    assert problem.element_id == "untouched" and "property 'calendar' is 'weekdays'" in problem.reason
