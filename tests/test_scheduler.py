"""Timers on the virtual clock: due-time order within one advance, and timer start events."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest

from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import runner_at

FIXTURES = Path(__file__).parent / "bpmn" / "scheduler"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
VN_HOLIDAYS = holidays.country_holidays("VN", years=2027)


def fired(runner: Runner) -> list[tuple[str, str]]:
    """(business key, element) of every timer.fired event, in the order they happened."""
    return [(h["business_key"], h["element_id"]) for h in inbox.history(runner, events=["timer.fired"])]


def test_one_advance_fires_everything_due_in_due_time_order(runner: Runner) -> None:
    runner.deploy([FIXTURES / "chain.bpmn"])
    runner.start_instance("chain", "A", {"first_wait": "PT30M"})  # first at 0:30, second at 1:30
    runner.start_instance("chain", "B", {"first_wait": "PT1H"})  # first at 1:00, second at 2:00
    runner.start_instance("chain", "C", {"first_wait": "PT3H"})  # first at 3:00: past the advance
    start = runner.now()

    assert runner.advance_clock(timedelta(hours=2, minutes=30)) == start + timedelta(hours=2, minutes=30)

    # The second timers only exist after the first ones fired, inside the same advance.
    assert fired(runner) == [("A", "first"), ("B", "first"), ("A", "second"), ("B", "second")]
    moments = [h["at"] for h in inbox.history(runner, events=["timer.fired"])]
    assert moments == [start + timedelta(minutes=m) for m in (30, 60, 90, 120)]
    done = {i["business_key"]: i["status"] for i in inbox.instances(runner, process_key="chain")}
    assert done == {"A": "completed", "B": "completed", "C": "running"}
    assert inbox.instances(runner, business_key="A")[0]["data"]["marked"] == "yes"


def test_a_fired_timer_stays_fired(runner: Runner) -> None:
    runner.deploy([FIXTURES / "chain.bpmn"])
    runner.start_instance("chain", "A", {"first_wait": "PT30M"})
    runner.advance_clock(timedelta(minutes=45))
    runner.advance_clock(timedelta(minutes=1))
    assert runner.run_due() == 0
    assert fired(runner) == [("A", "first")]


def test_timer_start_event_starts_instances_on_its_cycle(runner: Runner) -> None:
    runner.deploy([FIXTURES / "nightly.bpmn"])
    assert inbox.instances(runner, process_key="nightly") == []

    runner.advance_clock(timedelta(days=1, hours=1))
    assert len(inbox.instances(runner, process_key="nightly")) == 1
    runner.advance_clock(timedelta(days=5))
    started = inbox.instances(runner, process_key="nightly")
    assert len(started) == 3  # R3: three repetitions, then the cycle ends
    assert [t["element_id"] for t in inbox.tasks(runner, groups=["team_leader"])] == ["review"] * 3


def test_a_new_version_replaces_the_start_schedule(runner: Runner, tmp_path: Path) -> None:
    runner.deploy([FIXTURES / "nightly.bpmn"])
    weekly = tmp_path / "nightly.bpmn"
    weekly.write_text((FIXTURES / "nightly.bpmn").read_text().replace("R3/P1D", "R/P7D"))
    runner.deploy([weekly])
    runner.advance_clock(timedelta(days=6))
    assert inbox.instances(runner, process_key="nightly") == []
    runner.advance_clock(timedelta(days=1, hours=1))
    [instance] = inbox.instances(runner, process_key="nightly")
    assert instance["version_id"] == 2


def test_a_failing_timer_start_becomes_an_incident_without_an_instance(runner: Runner) -> None:
    runner.deploy([FIXTURES / "nightly_broken.bpmn"])
    runner.advance_clock(timedelta(days=1, hours=1))
    assert inbox.instances(runner, process_key="nightly_broken") == []
    [incident] = inbox.incidents(runner)
    assert incident["instance_id"] is None and incident["kind"] == "timer"
    assert incident["element_id"] == "compute" and "total" in incident["error"]

    runner.retry_incident(incident["id"], actor="admin")
    runner.run_due()  # still broken: a new incident, still no half-started instance
    assert inbox.instances(runner, process_key="nightly_broken") == []
    assert [i["state"] for i in inbox.incidents(runner, state=None)] == ["resolved", "open"]


BUSINESS = '<bpmn:extensionElements><camunda:properties><camunda:property name="calendar" value="business" />'
BUSINESS += "</camunda:properties></bpmn:extensionElements>"


def nightly(folder: Path, timer: str, business: bool) -> Path:
    """nightly.bpmn with another start timer, counted in working time when ``business``."""
    text = (FIXTURES / "nightly.bpmn").read_text().replace("<bpmn:timeCycle>R3/P1D</bpmn:timeCycle>", timer)
    if business:
        text = text.replace('name="Every day">', f'name="Every day">{BUSINESS}')
    path = folder / "nightly.bpmn"
    path.write_text(text)
    return path


def started_at(runner: Runner) -> list[datetime]:
    return sorted(i["created_at"].astimezone(TZ) for i in inbox.instances(runner, process_key="nightly"))


@pytest.mark.parametrize(
    ("business", "expected"),
    [
        # Friday 10:00 + one working day each: Saturday (open until 12:00), then Monday and Tuesday
        (True, [datetime(2026, 12, d, 10, 0, tzinfo=TZ) for d in (12, 14, 15)]),
        (False, [datetime(2026, 12, d, 10, 0, tzinfo=TZ) for d in (12, 13, 14)]),  # clock time: Sunday too
    ],
)
def test_a_business_time_start_cycle_counts_working_days(
    sqlite_url: str, registry: Registry, tmp_path: Path, business: bool, expected: list[datetime]
) -> None:
    runner = runner_at(sqlite_url, registry, datetime(2026, 12, 11, 10, 0, tzinfo=TZ))  # a Friday
    runner.deploy([nightly(tmp_path, "<bpmn:timeCycle>R3/P1D</bpmn:timeCycle>", business)])
    runner.advance_clock(timedelta(days=7))
    assert started_at(runner) == expected
    runner.db.engine.dispose()


def test_a_business_time_start_date_on_tet_waits_for_the_first_working_minute(
    sqlite_url: str, registry: Registry, tmp_path: Path
) -> None:
    runner = runner_at(sqlite_url, registry, datetime(2027, 2, 1, 9, 0, tzinfo=TZ))
    runner.deploy([nightly(tmp_path, "<bpmn:timeDate>2027-02-08T09:00:00+07:00</bpmn:timeDate>", True)])
    runner.advance_clock(timedelta(days=14))
    first_after_tet = next(
        d for d in (date(2027, 2, 8) + timedelta(days=n) for n in range(14)) if d not in VN_HOLIDAYS and d.weekday() < 6
    )
    assert started_at(runner) == [datetime.combine(first_after_tet, time(8, 0), TZ)]
    runner.db.engine.dispose()


@pytest.mark.parametrize(
    ("business", "expected"),
    [
        # deployed Friday 10:00, the cycle's start a year back at 08:30: Saturday's 08:30 first, then Monday's
        (True, [datetime(2026, 12, d, 8, 30, tzinfo=TZ) for d in (12, 14, 15)]),
        (False, [datetime(2026, 12, d, 8, 30, tzinfo=TZ) for d in (12, 13, 14, 15)]),  # clock time: Sunday too
    ],
)
def test_an_endless_cycle_deployed_after_its_start_begins_at_its_next_repetition(
    sqlite_url: str, registry: Registry, tmp_path: Path, business: bool, expected: list[datetime]
) -> None:
    runner = runner_at(sqlite_url, registry, datetime(2026, 12, 11, 10, 0, tzinfo=TZ))  # a Friday
    runner.deploy([nightly(tmp_path, "<bpmn:timeCycle>R/2025-12-01T08:30:00/P1D</bpmn:timeCycle>", business)])
    runner.advance_clock(timedelta(days=3, hours=23))  # to Tuesday 09:00: no day of the past year replayed
    assert started_at(runner) == expected
    runner.db.engine.dispose()


def test_a_bounded_cycle_keeps_its_past_start(sqlite_url: str, registry: Registry, tmp_path: Path) -> None:
    runner = runner_at(sqlite_url, registry, datetime(2026, 12, 11, 10, 0, tzinfo=TZ))
    runner.deploy([nightly(tmp_path, "<bpmn:timeCycle>R2/2026-12-10T08:30:00/P1D</bpmn:timeCycle>", False)])
    runner.advance_clock(timedelta(hours=1))
    # both repetitions were due before the deployment: they fire at once, none is skipped
    assert started_at(runner) == [datetime(2026, 12, 11, 10, 0, tzinfo=TZ)] * 2
    runner.db.engine.dispose()
