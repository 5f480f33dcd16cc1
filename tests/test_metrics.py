"""``/metrics``: who may read it, the database's gauges, the processes' counters and histograms,
and the whole of it from gunicorn's processes and a ``runner worker`` on loopback.

Values are read back with prometheus_client's own parser. Time is the virtual clock.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import BPMN, make_runner
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from runner import metrics
from runner.errors import Retry
from runner.queries import metrics as state
from runner.queries import tasklists as inbox
from runner.registry import HandlerContext, Registry
from runner.service import accounts as users
from runner.service.runtime import Runner
from tests.webapp import add_user
from web import create_app

METRICS = BPMN / "metrics"
CHECKOUT = Path(__file__).resolve().parents[1]
WAIT = 60.0  # seconds a real server or worker gets to come up or do its work


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def work(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """demo.echo's stand-in: fails for FAIL, asks to retry for RETRY, else queues a notice."""
    if ctx.business_key == "FAIL":
        raise RuntimeError("CRM is down")
    if ctx.business_key == "RETRY":
        raise Retry("CRM is busy")
    ctx.send("log", {"text": "xin chào"})
    return {}


@pytest.fixture
def observed(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """A runner (SQLite or PostgreSQL) whose demo.echo is ``work``, with both metrics fixtures deployed."""
    url = request.getfixturevalue(getattr(request, "param", "sqlite_url"))
    registry = Registry()
    registry.add("demo.echo", work)
    runner = make_runner(url, registry)
    runner.deploy([METRICS / "work.bpmn", METRICS / "wait.bpmn"])
    yield runner
    runner.db.engine.dispose()


# --- the database's gauges ----------------------------------------------------------------


@pytest.mark.parametrize("observed", ["sqlite_url", "pg_url"], indirect=True)
def test_state_gauges_count_due_work_the_outbox_incidents_and_open_tasks(observed: Runner) -> None:
    runner = observed
    t0 = runner.now()
    runner.start_instance("metrics_work", "OK")
    runner.start_instance("metrics_work", "FAIL")
    assert runner.run_due() == 2  # OK: a notice in the outbox and a task; FAIL: an incident (one try)
    runner.start_instance("metrics_work", "LATER")  # its job stays due
    runner.start_instance("metrics_wait", "W1")
    runner.start_instance("metrics_wait", "W2")  # two timers due at t0 + 1 h
    empty = state.read_state(runner)
    assert (empty.jobs_due, empty.timers_due, empty.timers_lag, empty.tasks_overdue) == (1, 0, 0.0, 0)

    # NOTE: the clock moves without firing anything, as when the worker is behind.
    runner.clock.set(t0 + timedelta(hours=2))
    now = state.read_state(runner)
    assert (now.timers_due, now.timers_lag) == (2, 3600.0)
    assert (now.jobs_due, now.jobs_lag) == (1, 7200.0)
    assert now.outbox == {"pending": 1, "sending": 0, "unknown": 0}
    assert now.incidents == {"job": 1}
    assert now.tasks_open == {"sales": 1, "customer_care": 1}  # one task offered to both groups
    assert now.tasks_overdue == 1  # its due date was t0 + 1 h

    runner.run_due()  # the timers fire: two tasks for no group; LATER's job runs: one more task
    after = state.read_state(runner)
    assert (after.timers_due, after.jobs_due, after.timers_lag, after.jobs_lag) == (0, 0, 0.0, 0.0)
    assert after.tasks_open == {"sales": 2, "customer_care": 2, state.NO_GROUP: 2}
    assert after.outbox["pending"] == 2


# --- who may read /metrics ------------------------------------------------------------------


@pytest.fixture
def guarded(runner: Runner) -> Flask:
    """The web app over ``runner``, letting 10.1.0.0/16 read /metrics without a token."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "RUNNER": runner,
            "RUNNER_SETTINGS": replace(runner.settings, metrics_allow=("10.1.0.0/16",)),
        }
    )
    add_user(runner, "admin1", ["admin"])
    add_user(runner, "sales1", ["sales"])
    return app


@pytest.mark.parametrize(
    ("who", "address", "status"),
    [
        (None, "127.0.0.1", 401),
        ("rt_not-a-token", "127.0.0.1", 401),
        ("sales1", "127.0.0.1", 403),
        ("admin1", "127.0.0.1", 200),
        (None, "10.1.2.3", 200),
        (None, "10.2.0.1", 401),
        ("sales1", "10.1.200.7", 200),  # the address alone lets it through
    ],
)
def test_metrics_are_for_admin_tokens_and_listed_addresses(
    guarded: Flask, runner: Runner, who: str | None, address: str, status: int
) -> None:
    token = who if who is None or who.startswith("rt_") else users.issue_token(runner, who)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = guarded.test_client().get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": address})
    assert answer.status_code == status
    if status == 200:
        assert answer.content_type.startswith("text/plain")
        assert value(samples(answer.get_data(as_text=True)), "runner_database_up") == 1
    else:
        assert b"runner_" not in answer.data  # never the data
        assert answer.get_json()["detail"]
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_signed_in_admins_session_cookie_is_not_enough(guarded: Flask) -> None:
    client = guarded.test_client()
    page = client.get("/login")
    token = page.get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
    assert client.post("/login", data={"username": "admin1", "password": "mat-khau-123", "csrf_token": token})
    assert client.get("/inbox/").status_code == 200  # signed in
    assert client.get("/metrics").status_code == 401


# --- the processes' counters and histograms, in one process ---------------------------------


def test_handler_calls_and_completions_are_counted_per_topic_and_outcome(observed: Runner) -> None:
    runner = observed
    before = samples(metrics_text(runner))
    for key in ("OK", "FAIL", "RETRY"):
        runner.start_instance("metrics_work", key)
    runner.run_due()
    [task] = inbox.tasks(runner, business_key="OK")
    runner.complete_task(task["id"], {}, actor="lan")
    with pytest.raises(Exception, match="already completed"):
        runner.complete_task(task["id"], {}, actor="lan")
    after = samples(metrics_text(runner))

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("runner_handler_calls_total", topic="demo.echo", outcome="ok") == 1
    assert grew("runner_handler_calls_total", topic="demo.echo", outcome="failed") == 1
    assert grew("runner_handler_calls_total", topic="demo.echo", outcome="retry") == 1
    assert grew("runner_handler_seconds_count", topic="demo.echo") == 3
    assert grew("runner_handler_seconds_bucket", topic="demo.echo", le="+Inf") == 3
    assert grew("runner_task_completions_total", outcome="ok") == 1
    assert grew("runner_task_completions_total", outcome="conflict") == 1
    assert grew("runner_task_completion_seconds_count", outcome="ok") == 1
    assert grew("runner_task_completion_seconds_count", outcome="conflict") == 1


def metrics_text(runner: Runner) -> str:
    body, _ = state.render(runner)
    return body.decode()


def test_http_latency_is_per_endpoint_never_per_path(guarded: Flask) -> None:
    client = guarded.test_client()
    for instance_id in ("a" * 36, "b" * 36):
        assert client.get(f"/api/instances/{instance_id}").status_code == 401
    assert client.get("/no/such/page").status_code == 404
    text = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.0.1"}).get_data(as_text=True)
    scraped = samples(text)
    counted = {
        dict(labels)["endpoint"]: value
        for (name, labels), value in scraped.items()
        if name == "runner_http_request_seconds_count"
    }
    assert value(scraped, "runner_http_request_seconds_count", endpoint="api.get_instance", method="GET", status="401")
    assert value(scraped, "runner_http_request_seconds_count", endpoint="none", method="GET", status="404")
    assert not [endpoint for endpoint in counted if "/" in endpoint or "aaaa" in endpoint]


def test_the_process_registry_is_the_multiprocess_folder_when_one_is_set(runner: Runner, tmp_path: Path) -> None:
    merged = metrics.registry(replace(runner.settings, metrics_dir=str(tmp_path)))
    assert merged is not metrics.PROCESS
    assert metrics.registry(runner.settings) is metrics.PROCESS


# --- for real: gunicorn's two processes and a runner worker on loopback -----------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, token: str = "") -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def _until(predicate, what: str) -> None:
    """Poll another process until it shows ``what`` (a readiness wait, not a timing)."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT:g} s"
        time.sleep(0.1)


@pytest.mark.slow
def test_one_scrape_of_gunicorn_shows_every_process_worker_included(
    sqlite_url: str, registry: Registry, tmp_path: Path
) -> None:
    runner = make_runner(sqlite_url, registry)  # the installed handlers: demo.echo is the real one
    runner.deploy([METRICS / "work.bpmn"])
    runner.start_instance("metrics_work", "OK")
    add_user(runner, "admin1", ["admin"])
    token = users.issue_token(runner, "admin1")
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {
        **os.environ,
        "RUNNER_DATABASE_URL": sqlite_url,
        "RUNNER_CLOCK": "virtual",
        "RUNNER_SECRET_KEY": "test-secret",
        "RUNNER_POLL_SECONDS": "0.2",
        "RUNNER_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    # The real worker runs the real demo.echo handler in its own process.
    worker = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "worker"],
        cwd=CHECKOUT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _until(lambda: inbox.tasks(runner, business_key="OK"), "the worker's handler call")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker_output, _ = worker.communicate(timeout=WAIT)
    assert worker.returncode == 0, worker_output
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "2", "web:create_app()"],
        cwd=CHECKOUT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        answered: list[int] = []

        def healthy() -> bool:
            try:
                answered.append(_get(f"{base}/healthz")[0])
            except OSError:
                return False
            return answered[-1] == 200

        _until(healthy, "gunicorn answering /healthz")
        for _ in range(5):  # spread over both processes
            answered.append(_get(f"{base}/healthz")[0])
        assert _get(f"{base}/metrics")[0] == 401
        status, text, headers = _get(f"{base}/metrics", token)
    finally:
        server.send_signal(signal.SIGTERM)
        server_output, _ = server.communicate(timeout=WAIT)
    assert status == 200, text
    scraped = samples(text)
    assert value(scraped, "runner_handler_calls_total", topic="demo.echo", outcome="ok") == 1  # the worker's
    assert value(scraped, "runner_handler_seconds_count", topic="demo.echo") == 1
    healthz = value(scraped, "runner_http_request_seconds_count", endpoint="healthz", method="GET", status="200")
    assert healthz == answered.count(200)  # summed over gunicorn's processes
    assert value(scraped, "runner_http_request_seconds_count", endpoint="metrics.scrape", method="GET", status="401")
    assert value(scraped, "runner_tasks_open", group="sales") == 1
    assert value(scraped, "runner_outbox_messages", state="pending") == 0  # demo.echo sends nothing
    assert len({p.name.rsplit("_", 1)[-1] for p in folder.glob("*.db")}) >= 2  # files of several processes
    assert headers["X-Request-ID"]
    # RUNNER_LOG_FORMAT=json: every line is JSON, gunicorn's master's and the worker's included
    for output in (server_output, worker_output):
        parsed = [json.loads(line) for line in output.splitlines() if line.strip()]
        assert parsed and all({"time", "level", "logger", "message"} <= set(line) for line in parsed)
    loggers = {line["logger"] for line in map(json.loads, server_output.splitlines())}
    assert {"gunicorn.error", "web.request"} <= loggers, loggers
    requests = [json.loads(line) for line in server_output.splitlines() if '"web.request"' in line]
    assert headers["X-Request-ID"] in {line["request_id"] for line in requests}


@pytest.mark.slow
def test_a_worker_alone_on_its_host_serves_its_own_metrics(sqlite_url: str, registry: Registry) -> None:
    runner = make_runner(sqlite_url, registry)
    runner.deploy([METRICS / "work.bpmn"])
    runner.start_instance("metrics_work", "OK")
    add_user(runner, "admin1", ["admin"])
    add_user(runner, "sales1", ["sales"])
    admin, sales = users.issue_token(runner, "admin1"), users.issue_token(runner, "sales1")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "RUNNER_DATABASE_URL": sqlite_url,
        "RUNNER_CLOCK": "virtual",
        "RUNNER_POLL_SECONDS": "0.2",
        "RUNNER_WORKER_METRICS": f"127.0.0.1:{port}",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "worker"],
        cwd=CHECKOUT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _until(lambda: inbox.tasks(runner, business_key="OK"), "the worker's handler call")
        url = f"http://127.0.0.1:{port}/metrics"
        answers = {who: _get(url, token) for who, token in (("nobody", ""), ("sales", sales), ("admin", admin))}
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=WAIT)
    assert worker.returncode == 0, output
    assert (answers["nobody"][0], answers["sales"][0], answers["admin"][0]) == (401, 403, 200)
    assert "runner_" not in answers["nobody"][1] + answers["sales"][1]
    scraped = samples(answers["admin"][1])
    assert value(scraped, "runner_handler_calls_total", topic="demo.echo", outcome="ok") == 1
    assert value(scraped, "runner_tasks_open", group="sales") == 1
    assert f"worker metrics on http://127.0.0.1:{port}/metrics" in output


# --- what a scrape costs: indexes, not tables ------------------------------------------------

ROWS = 100_000
# Each table holds ROWS rows, a small share of them in the state a gauge counts (as in a
# database that has run for a while): 5 % due work, 10 % open tasks, 1 % open incidents or
# undelivered messages. One INSERT ... SELECT generate_series per table.
FILL = [
    f"""insert into timers (element_id, timer_name, due_at, state, value)
        select 'wait', 'duration', now() at time zone 'utc' - (i % 1000 + 1) * interval '1 minute',
               case when i % 20 = 0 then 'waiting' else 'fired' end, 'PT1H'
        from generate_series(1, {ROWS}) as i""",
    f"""insert into jobs (id, instance_id, element_id, topic, params, properties, state, attempts,
                          max_attempts, timeout, due_at, created_at)
        select md5(i::text), :instance, 'work', 'demo.echo', '{{}}', '{{}}',
               case when i % 20 = 0 then 'pending' else 'done' end, 0, 3, 30,
               now() at time zone 'utc' - (i % 1000 + 1) * interval '1 minute', now() at time zone 'utc'
        from generate_series(1, {ROWS}) as i""",
    f"""insert into user_tasks (id, instance_id, process_key, element_id, name, candidate_groups,
                                candidate_users, priority, form, state, due_at, due_sort, created_at)
        select md5(i::text), :instance, 'metrics_work', 'review', 'Xem lại',
               (case when i % 3 = 0 then '["sales"]' else '["sales", "customer_care"]' end)::json, '[]', 50, '{{}}',
               case when i % 10 = 0 then 'open' else 'completed' end,
               now() at time zone 'utc' + (i % 100 - 50) * interval '1 hour',
               now() at time zone 'utc' + (i % 100 - 50) * interval '1 hour', now() at time zone 'utc'
        from generate_series(1, {ROWS}) as i""",
    # NOTE: the projection writes a candidate row per group of an open task (runner.service.projection._offer).
    """insert into user_task_candidates (task_id, kind, name, due_sort)
        select t.id, 'group', g.name, t.due_sort
        from user_tasks t cross join json_array_elements_text(t.candidate_groups) as g(name)
        where t.state = 'open'""",
    f"""insert into outbox (idempotency_key, channel, payload, state, attempts, due_at, created_at)
        select 'k' || i, 'log', '{{}}', case when i % 100 = 0 then 'pending' else 'sent' end, 1,
               now() at time zone 'utc', now() at time zone 'utc'
        from generate_series(1, {ROWS}) as i""",
    f"""insert into incidents (instance_id, kind, ref, element_id, error, tries, state, created_at)
        select :instance, 'job', i::text, 'work', 'CRM is down', 3,
               case when i % 100 = 0 then 'open' else 'resolved' end, now() at time zone 'utc'
        from generate_series(1, {ROWS}) as i""",
]


@pytest.mark.slow
@pytest.mark.postgres
def test_every_gauge_query_reads_an_index_not_a_table_at_100k_rows(pg_url: str, registry: Registry) -> None:
    runner = make_runner(pg_url, registry)
    runner.deploy([METRICS / "work.bpmn"])
    instance_id = runner.start_instance("metrics_work", "KH1")
    with runner.db.engine.begin() as conn:
        for fill in FILL:
            conn.execute(sa.text(fill), {"instance": instance_id})
        for table in ("timers", "jobs", "user_tasks", "user_task_candidates", "outbox", "incidents"):
            conn.exec_driver_sql(f"analyze {table}")
    plans = {}
    with runner.db.engine.connect() as conn:
        for name, statement in state.statements(runner.now()).items():
            compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            # NOTE: the columns are UTC timestamps without a time zone, as UTCDateTime binds them.
            params = {
                k: v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v
                for k, v in compiled.params.items()
            }
            plans[name] = "\n".join(row[0] for row in conn.exec_driver_sql(f"explain {compiled}", params))
    # NOTE: the per-group count reads every open offer (runner.queries.metrics): the candidate table,
    # which holds nothing else, is the one table it may read whole; it never reads user_tasks.
    whole = {"tasks_per_group": "Seq Scan on user_task_candidates"}
    assert {name: plan for name, plan in plans.items() if "Seq Scan" in plan.replace(whole.get(name, "-"), "")} == {}
    assert "user_tasks " not in plans["tasks_per_group"]
    read = state.read_state(runner)
    assert (read.timers_due, read.jobs_due, read.tasks_overdue) == (ROWS // 20, ROWS // 20 + 1, ROWS // 20)
    assert (read.outbox["pending"], read.incidents) == (ROWS // 100, {"job": ROWS // 100})
    assert read.tasks_open == {"sales": ROWS // 10, "customer_care": ROWS // 10 - ROWS // 30}
    runner.db.engine.dispose()
