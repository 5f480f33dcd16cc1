"""Quiet hours: a customer's Zalo and e-mail wait for the sending window; staff's go at once.

The runner has RUNNER_SENDING_WINDOW 08:00-20:00 (Asia/Ho_Chi_Minh). Messages go to the local
Zalo OA API and the SMTP server of ``test_transports`` on loopback; time is the virtual clock,
moved by ``advance_clock`` (a clock run), never slept.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

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
from runner.service import outbox
from runner.service.runtime import Runner
from runner.windows import QUIET_HOURS, SendingWindow
from tests import scenario
from tests.webapp import WebClient, add_user

QUIET = BPMN / "quiet"
WINDOW = SendingWindow.parse("08:00-20:00")


def quiet_runner(url: str, registry: Registry, crm: CrmSettings | None = None) -> Runner:
    """A runner with the 08:00-20:00 window, the messaging fixtures deployed, KH0001 and staff."""
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
