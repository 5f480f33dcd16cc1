"""Quiet hours: a customer's Zalo and e-mail wait for the sending window; staff's go at once.

The runner has RUNNER_SENDING_WINDOW 08:00-20:00 (Asia/Ho_Chi_Minh), shut on the business
calendar's days off (Sundays, Vietnam's public holidays, company days off). Messages go to the
local Zalo OA API and the SMTP server of ``test_transports`` on loopback; time is the virtual
clock, starting on Monday 7 December 2026 at 09:00 and moved by ``advance_clock`` (a clock run),
never slept.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import holidays
import pytest
from conftest import BPMN, make_runner, with_crm
from flask import Flask
from test_messaging import FIXTURES, add_people, run
from test_process_care import until_renewal
from test_process_onboarding import KH, post_sale_runner
from test_transports import (  # noqa: F401 - the local servers' fixtures
    SmtpServer,
    ZaloServer,
    mailserver,
    settings_for,
    zalo,
)

from runner.crm import views
from runner.crm.settings import CrmSettings
from runner.errors import DeploymentInvalid
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service import calendars, outbox
from runner.service.retries import compute_backoff
from runner.service.runtime import Runner
from runner.windows import QUIET_HOURS, SendingWindow
from tests import scenario
from tests.webapp import WebClient, add_user

QUIET = BPMN / "quiet"
WINDOW = SendingWindow.parse("08:00-20:00")


def quiet_runner(url: str, registry: Registry, crm: CrmSettings | None = None) -> Runner:
    """A runner with the 08:00-20:00 window on Monday 09:00, the messaging fixtures deployed, KH0001 and staff."""
    scenario.start_clock(url)  # NOTE: a fixed day: Sundays and holidays shut the window
    runner = make_runner(url, registry, extensions=with_crm(crm), sending_window=WINDOW)
    runner.deploy([FIXTURES / "demo.bpmn", FIXTURES / "schedule.bpmn", QUIET / "staff_mail.bpmn"])
    add_people(runner)
    return runner


@pytest.fixture(params=["sqlite", "postgresql"])
def wired(request, registry: Registry, zalo: ZaloServer, mailserver: SmtpServer) -> Iterator[Runner]:  # noqa: F811
    """On each backend: a quiet-hours runner whose zalo/email go to the local servers."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    runner = quiet_runner(url, registry, CrmSettings(**settings_for(zalo, mailserver)))
    yield runner
    runner.db.engine.dispose()


def local(runner: Runner) -> datetime:
    return runner.now().astimezone(runner.settings.tz)


def move_to(runner: Runner, hh_mm: str, *, days: int = 0) -> datetime:
    """Move the virtual clock to the next ``hh_mm`` business time (``days`` later still); the new local time."""
    now = local(runner)
    target = datetime.combine(now.date(), time.fromisoformat(hh_mm), tzinfo=now.tzinfo)
    if target < now:
        target += timedelta(days=1)
    runner.advance_clock(target + timedelta(days=days) - now)
    return local(runner)


def messages(runner: Runner) -> list[dict[str, Any]]:
    return [m for m in inbox.outbox(runner) if m["channel"] in ("zalo", "email")]


def test_a_customer_message_at_23_waits_and_goes_at_08_the_next_morning(
    wired: Runner,
    zalo: ZaloServer,  # noqa: F811
    mailserver: SmtpServer,  # noqa: F811
) -> None:
    asked = move_to(wired, "23:00")
    run(wired, "msg_demo", "KH0001")  # the demo account, by e-mail and to the customer on Zalo
    assert wired.deliver_outbox() == 0
    morning = datetime.combine(asked.date() + timedelta(days=1), time(8, 0), tzinfo=asked.tzinfo)
    waiting = messages(wired)
    assert [(m["channel"], m["state"], m["send_window"]) for m in waiting] == [
        ("email", "pending", QUIET_HOURS),
        ("zalo", "pending", QUIET_HOURS),
    ]
    assert {m["due_at"] for m in waiting} == {morning}
    assert {m["created_at"] for m in waiting} == {asked}

    move_to(wired, "07:59")
    assert (zalo.delivered, mailserver.accepted) == ([], [])
    move_to(wired, "09:00")  # the clock passes 08:00: both go out then, once
    assert len(zalo.delivered) == len(mailserver.accepted) == 1
    sent = messages(wired)
    assert [(m["state"], m["sent_at"]) for m in sent] == [("sent", morning), ("sent", morning)]
    move_to(wired, "09:00", days=1)
    assert len(zalo.delivered) == len(mailserver.accepted) == 1


def test_a_staff_message_at_23_goes_at_once(wired: Runner, mailserver: SmtpServer) -> None:  # noqa: F811
    asked = move_to(wired, "23:00")
    run(wired, "quiet_staff", "KH0001")
    assert wired.deliver_outbox() == 1
    [message] = messages(wired)
    assert (message["state"], message["sent_at"], message["send_window"]) == ("sent", asked, None)
    [mail] = mailserver.accepted
    assert mail["to"] == ["lan@easyedu.vn"]


@pytest.mark.parametrize(("clock", "waits"), [("08:00", False), ("19:59", False), ("20:00", True)])
def test_the_window_edges(runner_at, clock: str, waits: bool) -> None:
    runner = runner_at(clock)
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    sent = runner.deliver_outbox()
    [message] = messages(runner)
    assert (sent, message["state"]) == ((0, "pending") if waits else (1, "sent"))


@pytest.fixture
def runner_at(sqlite_url: str, registry: Registry) -> Iterator[Any]:
    """A quiet-hours runner (log transports) moved to a given business time."""
    made: list[Runner] = []

    def at(clock: str) -> Runner:
        runner = quiet_runner(sqlite_url, registry)
        made.append(runner)
        move_to(runner, clock)
        return runner

    yield at
    for runner in made:
        runner.db.engine.dispose()


def test_a_message_due_before_closing_that_finds_the_window_shut_waits(runner_at) -> None:
    runner = runner_at("19:58")
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    [message] = messages(runner)
    assert message["due_at"] == runner.now()  # inside the window: due at once
    # The worker was down; it comes back at 22:00 (the clock moved without delivering).
    runner.clock.set(runner.now() + timedelta(hours=2, minutes=2))
    assert runner.deliver_outbox() == 0
    [message] = messages(runner)
    opening = datetime.combine(local(runner).date() + timedelta(days=1), time(8, 0), tzinfo=runner.settings.tz)
    assert (message["state"], message["due_at"]) == ("pending", opening)


def test_a_retry_that_falls_in_the_quiet_hours_waits_for_the_opening(
    wired: Runner,
    zalo: ZaloServer,  # noqa: F811
) -> None:
    move_to(wired, "19:59")
    zalo.answer_next(503)
    run(wired, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    wired.clock.set(wired.now() + timedelta(seconds=55))  # the first try at 19:59:55; its backoff is 10 s
    assert wired.deliver_outbox() == 0
    [message] = messages(wired)
    opening = datetime.combine(local(wired).date() + timedelta(days=1), time(8, 0), tzinfo=wired.settings.tz)
    assert (message["state"], message["attempts"], message["due_at"]) == ("pending", 1, opening)
    move_to(wired, "08:30")
    assert [m["state"] for m in messages(wired)] == ["sent"] and len(zalo.delivered) == 1


def test_a_sender_that_died_at_night_leaves_its_message_for_the_opening(runner_at) -> None:
    runner = runner_at("21:00")
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    [message] = messages(runner)
    with runner.db.unit() as s:  # as a sender killed mid-delivery leaves it: sending, its lease run out
        row = s.get_one(outbox.OutboxMessage, message["id"])
        row.state, row.attempts, row.locked_until = "sending", 1, runner.now() - timedelta(minutes=1)
    assert outbox.recover(runner) == 1
    [message] = messages(runner)
    opening = datetime.combine(local(runner).date() + timedelta(days=1), time(8, 0), tzinfo=runner.settings.tz)
    assert (message["state"], message["due_at"]) == ("pending", opening)  # the log transport is idempotent


def test_an_admin_resend_at_night_waits_for_the_opening(runner_at) -> None:
    runner = runner_at("21:00")
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    [message] = messages(runner)
    with runner.db.unit() as s:
        s.get_one(outbox.OutboxMessage, message["id"]).state = "unknown"
    outbox.resolve(runner, message["id"], "resend")
    [message] = messages(runner)
    assert message["state"] == "pending" and local(runner).hour == 21
    assert message["due_at"].astimezone(runner.settings.tz).hour == 8


def test_a_wrong_audience_is_a_deploy_problem_naming_the_task(runner: Runner, tmp_path: Path) -> None:
    source = (QUIET / "staff_mail.bpmn").read_text(encoding="utf-8")
    bad = tmp_path / "bad.bpmn"
    bad.write_text(source.replace(">staff<", ">boss<"), encoding="utf-8")
    with pytest.raises(DeploymentInvalid) as caught:
        runner.deploy(bad)
    assert "mail_staff" in str(caught.value) and "'audience' is 'boss'" in str(caught.value)


# --- days the business calendar does not work --------------------------------------------------------


def tet_2027() -> list[date]:
    """Tết 2027 as the holidays package has it (the 29th of the old year to the fifth day of the new one)."""
    return sorted(d for d, name in holidays.country_holidays("VN", years=2027).items() if "Lunar New Year" in name)


def vn(text: str) -> datetime:
    """A business-time moment, e.g. '2026-12-13 19:00' (a Sunday)."""
    return datetime.fromisoformat(text).replace(tzinfo=scenario.TZ)


def advance_to(runner: Runner, moment: datetime) -> None:
    runner.advance_clock(moment - runner.now())


def test_tet_2027_is_the_packages_run_of_holidays_and_work_starts_again_on_thursday() -> None:
    tet = tet_2027()
    assert tet == [date(2027, 2, 4) + timedelta(days=n) for n in range(7)]
    assert (tet[-1] + timedelta(days=1)).strftime("%A") == "Thursday"


def test_a_demo_message_due_on_tet_waits_for_the_first_working_morning_after_it(
    wired: Runner,
    zalo: ZaloServer,  # noqa: F811
    mailserver: SmtpServer,  # noqa: F811
) -> None:
    new_year = next(d for d, name in holidays.country_holidays("VN", years=2027).items() if name == "Lunar New Year")
    asked = datetime.combine(new_year, time(10, 0), tzinfo=scenario.TZ)  # inside the hours, on Tết
    reopens = datetime.combine(tet_2027()[-1] + timedelta(days=1), time(8, 0), tzinfo=scenario.TZ)
    advance_to(wired, asked)
    run(wired, "msg_demo", "KH0001")
    assert wired.deliver_outbox() == 0
    assert [(m["state"], m["created_at"], m["due_at"]) for m in messages(wired)] == [("pending", asked, reopens)] * 2
    advance_to(wired, reopens - timedelta(minutes=1))  # Tết's last evening, then its night
    assert (zalo.delivered, mailserver.accepted) == ([], [])
    advance_to(wired, reopens + timedelta(hours=1))
    assert len(zalo.delivered) == len(mailserver.accepted) == 1
    assert [(m["state"], m["sent_at"]) for m in messages(wired)] == [("sent", reopens)] * 2


@pytest.mark.parametrize(
    ("asked", "goes"),
    [
        ("2026-12-12 15:00", "2026-12-12 15:00"),  # Saturday afternoon: Saturday has hours, so at once
        ("2026-12-12 21:00", "2026-12-14 08:00"),  # Saturday evening: Sunday is shut, so Monday
        ("2026-12-13 10:00", "2026-12-14 08:00"),  # Sunday inside the hours: Monday
        ("2026-12-13 19:00", "2026-12-14 08:00"),  # Sunday evening: Monday
        ("2027-01-01 09:00", "2027-01-02 08:00"),  # New Year's Day (a Friday): Saturday morning
    ],
)
def test_a_customer_message_keeps_to_the_calendars_open_days(runner_at, asked: str, goes: str) -> None:
    runner = runner_at("09:00")
    advance_to(runner, vn(asked))
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2027-02-25T09:00:00+07:00"]})
    [message] = messages(runner)
    assert (message["created_at"], message["due_at"]) == (vn(asked), vn(goes))


def test_a_message_asked_on_sunday_evening_goes_on_monday_at_the_opening(
    wired: Runner,
    zalo: ZaloServer,  # noqa: F811
) -> None:
    advance_to(wired, vn("2026-12-13 19:00"))
    run(wired, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    advance_to(wired, vn("2026-12-14 07:59"))
    assert zalo.delivered == []
    advance_to(wired, vn("2026-12-14 12:00"))
    assert [(m["state"], m["due_at"], m["sent_at"]) for m in messages(wired)] == [
        ("sent", vn("2026-12-14 08:00"), vn("2026-12-14 08:00"))
    ]
    assert len(zalo.delivered) == 1


def test_a_company_day_off_an_admin_adds_holds_for_messages_waiting_and_new_ones(
    wired: Runner,
    zalo: ZaloServer,  # noqa: F811
    mailserver: SmtpServer,  # noqa: F811
) -> None:
    advance_to(wired, vn("2026-12-07 23:00"))  # Monday night
    run(wired, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    [waiting] = messages(wired)
    assert waiting["due_at"] == vn("2026-12-08 08:00")
    wired.add_day_off("2026-12-08", "Tất niên sớm", actor="boss")  # Tuesday, as the admin page does
    assert [m["due_at"] for m in messages(wired)] == [vn("2026-12-09 08:00")]  # moved on by the edit
    run(wired, "msg_demo", "KH0001")  # written after the edit: due after the day off
    assert [m["due_at"] for m in messages(wired)] == [vn("2026-12-09 08:00")] * 3
    advance_to(wired, vn("2026-12-08 19:00"))  # the day off passes: all wait on
    assert (zalo.delivered, mailserver.accepted) == ([], [])
    assert [(m["state"], m["due_at"]) for m in messages(wired)] == [("pending", vn("2026-12-09 08:00"))] * 3
    advance_to(wired, vn("2026-12-09 09:00"))
    assert [(m["state"], m["sent_at"]) for m in messages(wired)] == [("sent", vn("2026-12-09 08:00"))] * 3
    assert (len(zalo.delivered), len(mailserver.accepted)) == (2, 1)


def test_a_day_off_found_when_the_message_is_due_still_holds_it_back(runner_at) -> None:
    """The worker's deferral pass reads the calendar too: a day off that reached the database
    without the runner's edit (another tool, a restore) still shuts the window."""
    runner = runner_at("21:00")  # Monday night
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    with runner.db.unit() as s:
        calendars.add_day_off(s, runner.settings.tz, runner.now(), date(2026, 12, 8), "", "restore")
    assert [m["due_at"] for m in messages(runner)] == [vn("2026-12-08 08:00")]
    advance_to(runner, vn("2026-12-08 09:00"))
    assert [(m["state"], m["due_at"]) for m in messages(runner)] == [("pending", vn("2026-12-09 08:00"))]


def test_a_day_off_removed_again_brings_nothing_forward(runner_at) -> None:
    runner = runner_at("21:00")
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    runner.add_day_off("2026-12-08", actor="boss")
    runner.remove_day_off("2026-12-08", actor="boss")
    assert [m["due_at"] for m in messages(runner)] == [vn("2026-12-09 08:00")]


def test_hours_saved_without_a_weekday_shut_its_quiet_hours_for_waiting_messages(runner_at) -> None:
    runner = runner_at("21:00")
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    runner.save_business_calendar({day: "08:00-17:00" for day in ("mon", "wed", "thu", "fri")}, "VN", actor="boss")
    assert [m["due_at"] for m in messages(runner)] == [vn("2026-12-09 08:00")]


def test_the_calendar_is_read_afresh_by_each_unit_of_work(runner_at) -> None:
    runner = runner_at("21:00")  # Monday night
    runner.add_day_off("2026-12-08", actor="boss")
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2026-12-25T09:00:00+07:00"]})
    runner.remove_day_off("2026-12-08", actor="boss")
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2026-12-26T09:00:00+07:00"]})
    assert [m["due_at"] for m in messages(runner)] == [vn("2026-12-09 08:00"), vn("2026-12-08 08:00")]
    runner.save_business_calendar({day: "08:00-17:00" for day in ("mon", "wed", "thu", "fri")}, "VN", actor="boss")
    run(runner, "msg_schedule", "KH0001", {"session_starts": ["2026-12-27T09:00:00+07:00"]})
    assert [m["due_at"] for m in messages(runner)] == [vn("2026-12-09 08:00")] * 3


# --- without a window ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def unwindowed(request, registry: Registry, zalo: ZaloServer, mailserver: SmtpServer) -> Iterator[Runner]:  # noqa: F811
    """On each backend: a runner without a sending window (RUNNER_SENDING_WINDOW=off), the local servers."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    scenario.start_clock(url)
    runner = make_runner(url, registry, extensions=with_crm(CrmSettings(**settings_for(zalo, mailserver))))
    runner.deploy([FIXTURES / "demo.bpmn"])
    add_people(runner)
    yield runner
    runner.db.engine.dispose()


def test_without_a_window_a_clock_run_sends_each_message_and_each_retry_when_it_is_due(
    unwindowed: Runner,
    zalo: ZaloServer,  # noqa: F811
    mailserver: SmtpServer,  # noqa: F811
) -> None:
    assert unwindowed.settings.sending_window is None
    asked = move_to(unwindowed, "23:00")
    zalo.answer_next(503)
    zalo.answer_next(503)
    run(unwindowed, "msg_demo", "KH0001")  # written due at once; nothing delivered yet
    advance_to(unwindowed, asked + timedelta(hours=1))
    third = asked + compute_backoff(1, 10.0) + compute_backoff(2, 10.0)  # 23:00:30
    assert [(m["channel"], m["state"], m["attempts"], m["due_at"], m["sent_at"]) for m in messages(unwindowed)] == [
        ("email", "sent", 1, asked, asked),
        ("zalo", "sent", 3, third, third),
    ]
    assert (len(zalo.requests), len(zalo.delivered), len(mailserver.accepted)) == (3, 1, 1)


# --- the customer's timeline ------------------------------------------------------------------------


def test_the_timeline_shows_a_waiting_message_as_scheduled_until_sent(runner_at) -> None:
    runner = runner_at("23:00")
    run(runner, "msg_demo", "KH0001")
    entries = [e for e in views.timeline(runner, "KH0001") if e["kind"] == "message"]
    opening = datetime.combine(local(runner).date() + timedelta(days=1), time(8, 0), tzinfo=runner.settings.tz)
    assert [(e["state"], e["scheduled_for"]) for e in entries] == [("pending", opening)] * 2
    move_to(runner, "08:05")
    entries = [e for e in views.timeline(runner, "KH0001") if e["kind"] == "message"]
    assert [(e["state"], e["scheduled_for"], e["sent_at"]) for e in entries] == [("sent", None, opening)] * 2


def test_the_timeline_shows_a_message_moved_past_sunday_as_scheduled_for_monday(runner_at) -> None:
    runner = runner_at("09:00")
    advance_to(runner, vn("2026-12-13 19:00"))  # Sunday evening
    run(runner, "msg_demo", "KH0001")
    entries = [e for e in views.timeline(runner, "KH0001") if e["kind"] == "message"]
    assert [(e["state"], e["scheduled_for"]) for e in entries] == [("pending", vn("2026-12-14 08:00"))] * 2


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The web app's runner: quiet hours, log transports, an admin who may sign in."""
    r = quiet_runner(sqlite_url, registry)
    add_user(r, "boss", ["admin"])
    yield r
    r.db.engine.dispose()


def test_the_customer_page_says_when_a_waiting_message_will_go(client: WebClient, app: Flask, runner: Runner) -> None:
    asked = move_to(runner, "23:00")
    run(runner, "msg_demo", "KH0001")
    client.login("boss")
    page = client.get("/customers/KH0001").get_data(as_text=True)
    tomorrow = (asked + timedelta(days=1)).strftime("%d/%m")
    assert page.count(f"Đã lên lịch gửi lúc {tomorrow} 08:00") == 2
    client.post("/lang/en", data={"next": "/customers/KH0001"})
    page = client.get("/customers/KH0001").get_data(as_text=True)
    assert page.count(f"Scheduled for {tomorrow} 08:00") == 2
    move_to(runner, "08:05")
    page = client.get("/customers/KH0001").get_data(as_text=True)
    assert "Scheduled for" not in page and page.count("Sent") >= 2


def test_a_day_off_added_on_the_admin_page_reschedules_what_the_customer_page_shows(
    client: WebClient, app: Flask, runner: Runner
) -> None:
    move_to(runner, "23:00")  # Monday night
    run(runner, "msg_demo", "KH0001")
    client.login("boss")
    page = client.get("/customers/KH0001").get_data(as_text=True)
    assert page.count("Đã lên lịch gửi lúc 08/12 08:00") == 2
    assert client.post("/admin/calendar/days-off", data={"day": "2026-12-08", "note": "Tất niên"}).status_code == 302
    page = client.get("/customers/KH0001").get_data(as_text=True)
    assert page.count("Đã lên lịch gửi lúc 09/12 08:00") == 2 and "08/12 08:00" not in page


# --- a shipped diagram ---------------------------------------------------------------------------------


def test_the_renewal_notice_waits_for_the_window_to_open(sqlite_url: str, registry: Registry) -> None:
    """renewal.bpmn's Zalo notice is sent as the renewal starts: at 00:00 three months before the
    contract ends (or, once that timer counts business time, at the working day's 08:00). With a
    09:00-20:00 window it waits for 09:00 of that day either way, and goes then.
    """
    r = post_sale_runner(sqlite_url, registry, sending_window=SendingWindow.parse("09:00-20:00"))
    try:
        started = until_renewal(r).astimezone(scenario.TZ)
        nine = started.replace(hour=9, minute=0)
        [notice] = [m for m in scenario.outbox(r, KH) if m["payload"].get("template") == "renewal_notice"]
        assert (notice["state"], notice["created_at"], notice["due_at"]) == ("pending", started, nine)
        scenario.advance(r, to=nine + timedelta(hours=1))
        [notice] = [m for m in scenario.outbox(r, KH) if m["payload"].get("template") == "renewal_notice"]
        assert (notice["state"], notice["sent_at"]) == ("sent", nine)
    finally:
        r.db.engine.dispose()
