"""Two gunicorn web processes and three workers on one PostgreSQL schema behave like one runner.

The topology of the README's "Scale out" section, on loopback: two real gunicorn servers
(``web:create_app()``, one process each, on two ports) and three ``tests/workerproc.py loop``
processes, all on one schema, on the shared virtual clock. The test

- deploys through one web process and starts instances through the other (no stale
  "latest version"): a second version deployed through the second is what the first starts;
- sends every message twice at the same moment, once through each web process: exactly one
  correlates, the other finds nobody waiting;
- moves the shared clock a day on (without firing anything) and checks both web processes
  report the new time; then the three workers fire every timer and run every job;
- counts history and timer rows: each message correlated once, each timer fired once,
  each job done once, each instance completed once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import workerproc
from conftest import BPMN
from sqlalchemy import func, select

from runner.service import tokens
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store.models import HistoryEvent, Instance, Job, Timer
from tests.webapp import add_user

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CHECKOUT = Path(__file__).resolve().parents[1]
DIAGRAM = BPMN / "scale" / "paid_then_wait.bpmn"
INSTANCES = 40
WORKERS = 3
DEADLINE = 60.0  # seconds a worker keeps going before it gives up (exit code 3)
SERVER_START = 30.0  # seconds a gunicorn server may take to answer /healthz


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Web:
    """One gunicorn server on a loopback port, called with an admin's bearer token."""

    def __init__(self, env: dict[str, str], token: str):
        self.port = _free_port()
        self.token = token
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", "1"]
            + ["--threads", "4", "web:create_app()"],
            cwd=CHECKOUT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited {self.proc.returncode}: {self.proc.stderr.read()[-3000:]}")
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)  # not listening yet: a server start-up, not a clock in the test
        raise AssertionError(f"gunicorn on port {self.port} did not answer within {SERVER_START} s")

    def call(self, method: str, path: str, body: Any = None, files: dict[str, bytes] | None = None):
        """(status, JSON answer) of one request."""
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if files is not None:
            boundary = uuid.uuid4().hex
            parts = [
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                f"Content-Type: application/xml\r\n\r\n".encode()
                + content
                + b"\r\n"
                for name, content in files.items()
            ]
            data = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()  # type: ignore[union-attr]


def _workers(env: dict[str, str]) -> list[dict[str, Any]]:
    procs = [
        subprocess.Popen(
            [sys.executable, workerproc.__file__, "loop", "--seconds", str(DEADLINE)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    reports = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=DEADLINE + 30)
            assert proc.returncode == 0, f"worker exited {proc.returncode}: {err[-3000:]}"
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return reports


def _per_instance(runner: Runner, event: str) -> Counter[str]:
    with runner.db.read() as s:
        rows = s.execute(
            select(HistoryEvent.instance_id, func.count()).where(HistoryEvent.event == event).group_by("instance_id")
        )
        return Counter({instance_id: count for instance_id, count in rows})


def test_two_web_processes_and_three_workers_on_one_schema_act_as_one(pg_url: str) -> None:
    runner = Runner(Settings.from_env({}, database_url=pg_url, clock="virtual"), registry=workerproc.make_registry())
    add_user(runner, "admin1", ["admin"])
    token = tokens.issue_token(runner, "admin1", label="scale-out")
    env = {
        **os.environ,
        "RUNNER_DATABASE_URL": pg_url,
        "RUNNER_CLOCK": "virtual",
        "RUNNER_SECRET_KEY": "scale-out-test-key",
        "RUNNER_DB_POOL_SIZE": "4",
        "RUNNER_DB_MAX_OVERFLOW": "2",
        "RUNNER_DB_STATEMENT_TIMEOUT": "30",
    }
    first, second = webs = [Web(env, token), Web(env, token)]
    try:
        for web in webs:
            web.wait_ready()
        xml = DIAGRAM.read_bytes()

        # Deployed through one, started through the other; then the other way round with version 2.
        assert first.call("POST", "/api/deployments", files={"scale_v1.bpmn": xml})[0] == 201
        half = INSTANCES // 2

        def start(web: Web, n: int) -> str:
            status, answer = web.call("POST", "/api/instances", {"process_key": "scale_out", "business_key": f"KH{n}"})
            assert status == 201, answer
            return answer["id"]

        with ThreadPoolExecutor(8) as pool:
            v1 = list(pool.map(lambda n: start(second, n), range(half)))
            v2_xml = xml.replace(b'name="Paid, then a day"', b'name="Paid, then a day (v2)"')
            assert second.call("POST", "/api/deployments", files={"scale_v2.bpmn": v2_xml})[0] == 201
            v2 = list(pool.map(lambda n: start(first, n), range(half, INSTANCES)))
            versions = Counter(first.call("GET", f"/api/instances/{i}")[1]["version"] for i in v1 + v2[:3])
        assert versions == {1: half, 2: 3}

        # Every message sent twice at once, through each web process: one correlates, one finds nobody.
        def send(args: tuple[Web, int]) -> tuple[int, int]:
            web, n = args
            return n, web.call("POST", "/api/messages", {"name": "scale_paid", "business_key": f"KH{n}"})[0]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, [(web, n) for n in range(INSTANCES) for web in webs]))
        by_customer: dict[int, list[int]] = {}
        for n, status in answers:
            by_customer.setdefault(n, []).append(status)
        assert all(sorted(statuses) in ([200, 404], [200, 409]) for statuses in by_customer.values()), by_customer

        # The shared clock moves a day on, nothing fired yet: both web processes see the new time.
        runner.refresh_clock()
        runner.clock.advance(timedelta(days=1, hours=1))  # type: ignore[attr-defined]
        with runner.db.unit() as s:
            runner.save_clock(s)
        moved = runner.now().isoformat()
        assert [web.call("GET", "/healthz")[1]["now"] for web in webs] == [moved, moved]

        reports = _workers({**env, "RUNNER_WORKER_ID": ""})
        assert all(report["done"] for report in reports), reports
        assert sum(report["ran"] for report in reports) == 2 * INSTANCES  # a timer and a job each

        ids = set(v1 + v2)
        assert _per_instance(runner, "message.correlated") == Counter(dict.fromkeys(ids, 1))
        assert _per_instance(runner, "timer.fired") == Counter(dict.fromkeys(ids, 1))
        assert _per_instance(runner, "instance.completed") == Counter(dict.fromkeys(ids, 1))
        with runner.db.read() as s:
            assert s.scalar(select(func.count()).select_from(Instance).where(Instance.status == "completed")) == len(
                ids
            )
            fired = s.execute(select(Timer.instance_id, Timer.state)).all()
            done = s.execute(select(Job.instance_id, Job.state)).all()
        assert Counter(fired) == Counter({(i, "fired"): 1 for i in ids})
        assert Counter(done) == Counter({(i, "done"): 1 for i in ids})
        assert [web.call("GET", "/healthz")[1]["now"] for web in webs] == [moved, moved]
    finally:
        for web in webs:
            web.stop()
        runner.db.engine.dispose()
