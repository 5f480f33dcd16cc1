"""Logs: JSON lines with ``RUNNER_LOG_FORMAT=json``, carrying the unit of work's instance, business
key and element, and a web request's id (the client's ``X-Request-ID`` when sane, echoed back)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import BPMN, make_runner
from flask import Flask

from runner import logs
from runner.errors import Invalid
from runner.queries import tasklists as inbox
from runner.registry import HandlerContext, Registry
from runner.service import accounts as users
from runner.service.runtime import Runner
from runner.settings import Settings
from tests.webapp import add_user
from web import create_app

METRICS = BPMN / "metrics"
handler_log = logging.getLogger("tests.handler")


def work(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Logs from its own thread, then fails for FAIL."""
    handler_log.info("calling the CRM for %s", ctx.business_key)
    if ctx.business_key == "FAIL":
        raise RuntimeError("CRM is down")
    ctx.send("log", {"text": "xin chào"})
    return {}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The runner's log lines as JSON, in a buffer; the usual configuration afterwards."""
    buffer = io.StringIO()
    logs.configure(Settings.from_env({}, log_format="json"), stream=buffer)
    yield buffer
    logs.configure(Settings.from_env({}))


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.fixture
def runner(sqlite_url: str) -> Iterator[Runner]:
    registry = Registry()
    registry.add("demo.echo", work)
    r = make_runner(sqlite_url, registry)
    r.deploy([METRICS / "work.bpmn", METRICS / "wait.bpmn"])
    yield r
    r.db.engine.dispose()


def test_a_job_runs_lines_carry_its_instance_business_key_and_element(runner: Runner, captured: io.StringIO) -> None:
    ok = runner.start_instance("metrics_work", "OK")
    failing = runner.start_instance("metrics_work", "FAIL")
    assert runner.run_due() == 2
    logging.getLogger("tests").info("after the run")

    found = lines(captured)
    called = [line for line in found if line["logger"] == "tests.handler"]
    assert sorted((c["message"], c["instance_id"], c["business_key"], c["element"]) for c in called) == [
        ("calling the CRM for FAIL", failing, "FAIL", "work"),
        ("calling the CRM for OK", ok, "OK", "work"),
    ]
    [failed] = [line for line in found if line["logger"] == "runner.service.jobs"]
    assert (failed["level"], failed["instance_id"], failed["business_key"], failed["element"]) == (
        "WARNING",
        failing,
        "FAIL",
        "work",
    )
    assert "CRM is down" in failed["message"]
    assert set(found[-1]) == {"time", "level", "logger", "message"}  # nothing leaks past the unit of work


@pytest.fixture
def engine_lines() -> Iterator[None]:
    """SpiffWorkflow's own INFO lines (a line per task state change): lines written deep inside a unit of work."""
    spiff = logging.getLogger("spiff")
    level = spiff.level
    spiff.setLevel(logging.INFO)
    yield
    spiff.setLevel(level)


def test_a_timers_firing_and_a_completion_carry_their_instance_on_every_line(
    runner: Runner, captured: io.StringIO, engine_lines: None
) -> None:
    waiting = runner.start_instance("metrics_wait", "W1")
    worked = runner.start_instance("metrics_work", "OK")
    runner.run_due()
    [task] = inbox.tasks(runner, business_key="OK")
    captured.truncate(0)
    captured.seek(0)

    runner.complete_task(task["id"], {})
    completing = lines(captured)
    captured.truncate(0)
    captured.seek(0)
    runner.clock.set(runner.now() + timedelta(hours=2))
    runner.run_due()
    firing = lines(captured)

    assert completing and firing
    assert {(line["instance_id"], line["business_key"], line["element"]) for line in completing} == {
        (worked, "OK", "review")
    }
    assert {(line["instance_id"], line["business_key"], line["element"]) for line in firing} == {
        (waiting, "W1", "wait_hour")
    }


def test_a_start_and_a_message_carry_the_instance_they_are_about(
    runner: Runner, captured: io.StringIO, engine_lines: None
) -> None:
    runner.deploy([METRICS / "message.bpmn"])
    captured.truncate(0)
    captured.seek(0)
    started = runner.start_instance("metrics_message", "KH9")
    starting = lines(captured)
    captured.truncate(0)
    captured.seek(0)
    assert runner.correlate("metrics_paid", "KH9", {"amount": 5}) == [started]
    correlating = lines(captured)

    assert starting and correlating
    assert {line["business_key"] for line in starting + correlating} == {"KH9"}
    # NOTE: the engine's first lines (the workflow made from its spec) come before the instance has
    # an id; from the moment it has one, every line carries it.
    first = next(i for i, line in enumerate(starting) if "instance_id" in line)
    assert first <= 2 and {line.get("instance_id") for line in starting[first:] + correlating} == {started}
    other = runner.start_instance("metrics_message", "KH10")  # a start inside a start's scope is its own
    assert other != started and lines(captured)[-1]["instance_id"] == other


def test_an_outbox_delivery_carries_its_customer(runner: Runner, captured: io.StringIO) -> None:
    runner.start_instance("metrics_work", "OK")
    runner.run_due()
    captured.truncate(0)
    captured.seek(0)
    assert runner.deliver_outbox() == 1
    [sent] = [line for line in lines(captured) if line["logger"] == "runner.service.outbox"]
    assert sent["business_key"] == "OK" and "xin chào" in sent["message"]


def test_the_text_format_shows_the_fields_after_the_message() -> None:
    buffer = io.StringIO()
    logs.configure(Settings.from_env({}), stream=buffer)
    try:
        with logs.bind(instance_id="i-1", business_key="KH1"):
            logs.annotate(element="call")
            logging.getLogger("tests").warning("late")
    finally:
        logs.configure(Settings.from_env({}))
    assert buffer.getvalue().rstrip().endswith("WARNING tests: late [instance_id=i-1 business_key=KH1 element=call]")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"RUNNER_LOG_FORMAT": "xml"}, "RUNNER_LOG_FORMAT"),
        ({"RUNNER_METRICS_ALLOW": "10.0.0.0/33"}, "RUNNER_METRICS_ALLOW"),
        ({"RUNNER_METRICS_ALLOW": "10.0.0.1, prometheus.local"}, "prometheus.local"),
        ({"PROMETHEUS_MULTIPROC_DIR": "no/such/folder"}, "PROMETHEUS_MULTIPROC_DIR"),
        ({"RUNNER_WORKER_METRICS": "9101"}, "RUNNER_WORKER_METRICS"),
        ({"RUNNER_WORKER_METRICS": "0.0.0.0:99999"}, "RUNNER_WORKER_METRICS"),
    ],
)
def test_bad_log_and_metrics_settings_are_refused_naming_the_variable(raw: dict[str, str], problem: str) -> None:
    with pytest.raises(Invalid, match=problem):
        Settings.from_env(raw)


def test_the_settings_read_the_format_the_networks_and_the_multiprocess_folder(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "RUNNER_LOG_FORMAT": "JSON",
            "RUNNER_METRICS_ALLOW": "10.1.2.3, 10.0.0.0/8,::1",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        }
    )
    assert (settings.log_format, settings.metrics_allow, settings.metrics_dir) == (
        "json",
        ("10.1.2.3/32", "10.0.0.0/8", "::1/128"),
        str(tmp_path),
    )
    assert (Settings.from_env({}).log_format, Settings.from_env({}).metrics_allow) == ("text", ())


# --- web requests ---------------------------------------------------------------------------


@pytest.fixture
def json_app(runner: Runner) -> Iterator[Flask]:
    """The web app logging JSON (its factory configures logging, as under gunicorn)."""
    yield create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "RUNNER": runner,
            "RUNNER_SETTINGS": replace(runner.settings, log_format="json"),
        }
    )
    logs.configure(Settings.from_env({}))


@pytest.mark.parametrize(
    ("offered", "kept"),
    [
        ("req-42.a:b_c", True),
        ("x" * 128, True),
        ("x" * 129, False),  # too long
        ("two words", False),
        ("<script>", False),
        ("", False),
    ],
)
def test_a_request_id_is_the_clients_when_sane_else_new_and_is_echoed(
    json_app: Flask, capsys: pytest.CaptureFixture[str], offered: str, kept: bool
) -> None:
    answer = json_app.test_client().get("/healthz", headers={"X-Request-ID": offered} if offered else {})
    echoed = answer.headers["X-Request-ID"]
    assert (echoed == offered) is kept
    if not kept:
        assert len(echoed) == 32 and int(echoed, 16) >= 0
    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"web.request"' in line]
    assert line["request_id"] == echoed
    assert line["message"].startswith("GET healthz 200 ")


def test_a_requests_unit_of_work_logs_carry_the_request_id_and_the_instance(
    json_app: Flask, runner: Runner, capsys: pytest.CaptureFixture[str], engine_lines: None
) -> None:
    worked = runner.start_instance("metrics_work", "OK")
    runner.run_due()
    [task] = inbox.tasks(runner, business_key="OK")
    add_user(runner, "admin1", ["admin"])
    token = users.issue_token(runner, "admin1")
    capsys.readouterr()

    answer = json_app.test_client().post(
        f"/api/tasks/{task['id']}/complete",
        json={"data": {}},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-7"},
    )
    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "req-7"
    found = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    engine = [line for line in found if line["logger"].startswith("spiff")]
    assert engine and {
        (line["request_id"], line["instance_id"], line["business_key"], line["element"]) for line in engine
    } == {("req-7", worked, "OK", "review")}
    [done] = [line for line in found if line["logger"] == "web.request"]
    assert (done["request_id"], set(done) & {"instance_id", "business_key"}) == ("req-7", set())
