"""The zalo and email transports against real local servers, and a worker killed mid-send.

``ZaloServer`` is an HTTP server on 127.0.0.1 that answers like the Zalo OA API (JSON
with ``error``; a wrong token is error -216). ``SmtpServer`` speaks SMTP over a socket
(EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, QUIT) and keeps every message it accepts.
Time moves on the runner's virtual clock; nothing here sleeps to wait for time.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import loopback
import pytest
import workerproc
from conftest import make_runner, with_crm
from test_messaging import FIXTURES, STARTS, add_people, run

from runner.crm.settings import CrmSettings
from runner.errors import Conflict
from runner.queries import tasklists as inbox
from runner.service import outbox
from runner.service.runtime import Runner

TOKEN = "oa-token-123"
WAIT = 60.0  # seconds a test waits for another thread or process before failing
WORKER = Path(workerproc.__file__)


# --- a local Zalo OA API --------------------------------------------------------------------


class ZaloServer:
    """Answers POST /v3.0/oa/message/cs and /v3.0/oa/group/message like Zalo; records every request."""

    PATHS = {"/v3.0/oa/message/cs": "user_id", "/v3.0/oa/group/message": "group_id"}

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.delivered: list[dict[str, Any]] = []
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.hold_next = False
        self.drop_next = False
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.url = ""

    def answer_next(self, status: int, body: dict[str, Any] | None = None) -> None:
        """Answer the next request with this status and body, delivering nothing."""
        with self.lock:
            self.answers.append((status, body or {}))

    def handle(self, path: str, token: str | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """The answer to one request; None: hang up without answering."""
        with self.lock:
            self.requests.append({"path": path, "token": token, "body": body})
            if self.answers:
                return self.answers.pop(0)
            if path not in self.PATHS:
                return 404, {"error": 404, "message": "not found"}
            if token != TOKEN:
                return 200, {"error": -216, "message": "Access token is invalid"}
            recipient = body.get("recipient", {}).get(self.PATHS[path])
            text = body.get("message", {}).get("text")
            if not recipient or not text:
                return 200, {"error": -201, "message": "Parameters are invalid"}
            self.delivered.append({"path": path, "recipient": recipient, "text": text})
            hold, self.hold_next = self.hold_next, False
            drop, self.drop_next = self.drop_next, False
        if drop:
            return None  # Zalo has the message; the answer is lost on the way back
        if hold:
            # Zalo has the message, but the sender never hears back.
            self.arrived.set()
            self.release.wait(WAIT)
        return 200, {"error": 0, "message": "Success", "data": {"message_id": f"m{len(self.delivered)}"}}


@contextlib.contextmanager
def serve_zalo() -> Iterator[ZaloServer]:
    """A Zalo OA API on 127.0.0.1, served from a thread while the block runs."""
    fake = ZaloServer()
    with loopback.serve(
        lambda path, headers, body: fake.handle(path, headers.get("access_token"), body), "zalo"
    ) as fake.url:
        try:
            yield fake
        finally:
            fake.release.set()


@pytest.fixture
def zalo() -> Iterator[ZaloServer]:
    """A Zalo OA API on 127.0.0.1, served from a thread."""
    with serve_zalo() as fake:
        yield fake


# --- a local SMTP server -------------------------------------------------------------------------


class SmtpServer:
    """Keeps the messages it accepts; ``data_replies`` answer the next DATA commands instead."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password
        self.lock = threading.Lock()
        self.accepted: list[dict[str, Any]] = []
        self.data_replies: list[str] = []
        self.logins: list[str] = []
        self.port = 0

    def check_login(self, user: str, password: str) -> bool:
        with self.lock:
            self.logins.append(user)
        return (user, password) == (self.user, self.password)

    def data(self, mail_from: str, rcpt: list[str], raw: bytes) -> str:
        with self.lock:
            if self.data_replies:
                return self.data_replies.pop(0)
            self.accepted.append(
                {"from": mail_from, "to": rcpt, "message": message_from_bytes(raw, policy=policy.default)}
            )
            return "250 2.0.0 OK: queued"


class _SmtpSession(socketserver.StreamRequestHandler):
    """One SMTP conversation (RFC 5321 subset) with AUTH PLAIN and LOGIN (RFC 4954)."""

    server: _SmtpTcpServer

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def read(self) -> str:
        return self.rfile.readline().decode("utf-8", "replace").rstrip("\r\n")

    def handle(self) -> None:
        smtp = self.server.smtp
        self.reply("220 localhost ESMTP test")
        mail_from, rcpt, authed = "", [], False
        while line := self.read():
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-localhost\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN")
            elif verb == "AUTH":
                authed = self.auth(arg)
                self.reply("235 2.7.0 Authentication successful" if authed else "535 5.7.8 Authentication failed")
            elif verb == "MAIL":
                if not authed:
                    self.reply("530 5.7.0 Authentication required")
                    continue
                mail_from, rcpt = arg.split(":", 1)[1].split()[0].strip("<>"), []
                self.reply("250 2.1.0 OK")
            elif verb == "RCPT":
                rcpt.append(arg.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 2.1.5 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                self.reply(smtp.data(mail_from, rcpt, self.read_data()))
            elif verb in ("RSET", "NOOP"):
                self.reply("250 2.0.0 OK")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Command not recognized")

    def auth(self, arg: str) -> bool:
        mechanism, _, initial = arg.partition(" ")
        if mechanism.upper() == "PLAIN":
            _, user, password = base64.b64decode(initial).decode().split("\0")
        else:  # LOGIN, the user name may come with the command (smtplib sends it so)
            if not initial:
                self.reply("334 " + base64.b64encode(b"Username:").decode())
                initial = self.read()
            user = base64.b64decode(initial).decode()
            self.reply("334 " + base64.b64encode(b"Password:").decode())
            password = base64.b64decode(self.read()).decode()
        return self.server.smtp.check_login(user, password)

    def read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)  # dot-unstuffing
        return b"".join(lines)


class _SmtpTcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, smtp: SmtpServer) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpSession)
        self.smtp = smtp


@pytest.fixture
def mailserver() -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 that wants login ``cskh`` / ``mat-khau``."""
    smtp = SmtpServer("cskh", "mat-khau")
    server = _SmtpTcpServer(smtp)
    smtp.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="smtp", daemon=True)
    thread.start()
    yield smtp
    server.shutdown()
    server.server_close()
    thread.join(WAIT)


# --- runners wired to the servers --------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """A fresh migrated database URL on each backend."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def settings_for(zalo: ZaloServer, mail: SmtpServer | None = None, token: str = TOKEN) -> dict[str, Any]:
    """CRM settings (``CrmSettings``) that route the zalo and email channels to the local servers."""
    values: dict[str, Any] = {
        "transports": "zalo=zalo_oa,email=smtp",
        "zalo_base_url": zalo.url,
        "zalo_access_token": token,
        "smtp_host": "127.0.0.1",
        "smtp_port": 9,
        "smtp_user": "cskh",
        "smtp_password": "mat-khau",
        "smtp_from": "cskh@easyedu.vn",
    }
    if mail is not None:
        values["smtp_port"] = mail.port
    return values


def wired(url: str, registry, zalo: ZaloServer, mail: SmtpServer | None = None, **overrides: Any) -> Runner:
    """A runner on ``url`` whose zalo/email channels go to the local servers; fixtures deployed."""
    crm = CrmSettings(**{**settings_for(zalo, mail), **overrides})
    runner = make_runner(url, registry, extensions=with_crm(crm))
    runner.deploy([FIXTURES / "schedule.bpmn", FIXTURES / "demo.bpmn"])
    add_people(runner)
    return runner


@pytest.fixture
def hub(sqlite_url: str, registry, zalo: ZaloServer, mailserver: SmtpServer) -> Iterator[Runner]:
    """A SQLite runner wired to both local servers."""
    runner = wired(sqlite_url, registry, zalo, mailserver)
    yield runner
    runner.db.engine.dispose()


def row(runner: Runner, message_id: int) -> dict[str, Any]:
    return next(m for m in inbox.outbox(runner) if m["id"] == message_id)


def announce(runner: Runner) -> dict[str, Any]:
    """Run the Mẫu 2 task for KH0001; its one outbox row."""
    run(runner, "msg_schedule", "KH0001", {"session_starts": STARTS})
    [message] = [m for m in inbox.outbox(runner) if m["channel"] == "zalo"]
    return message


# --- Zalo ----------------------------------------------------------------------------------------


def test_each_message_is_delivered_once(db_url: str, registry, zalo: ZaloServer, mailserver: SmtpServer) -> None:
    runner = wired(db_url, registry, zalo, mailserver)
    try:
        run(runner, "msg_schedule", "KH0001", {"session_starts": STARTS})
        run(runner, "msg_demo", "KH0001")
        assert runner.deliver_outbox() == 3
        assert runner.deliver_outbox() == 0
        runner.advance_clock(timedelta(days=1))
        states = [m["state"] for m in inbox.outbox(runner)]
    finally:
        runner.db.engine.dispose()

    group, user = zalo.delivered
    assert (group["path"], group["recipient"]) == ("/v3.0/oa/group/message", "g-hoamai")
    assert "- Buổi 1: 09:00 Thứ Tư, 25/11/2026" in group["text"]
    assert (user["path"], user["recipient"]) == ("/v3.0/oa/message/cs", "u-hoamai")
    assert len(zalo.requests) == 2 and {r["token"] for r in zalo.requests} == {TOKEN}
    assert zalo.requests[0]["body"] == {"recipient": {"group_id": "g-hoamai"}, "message": {"text": group["text"]}}
    assert states == ["sent", "sent", "sent"]
    assert len(mailserver.accepted) == 1


def test_zalo_5xx_is_retried_on_the_clock(hub: Runner, zalo: ZaloServer) -> None:
    zalo.answer_next(502)
    zalo.answer_next(503)
    message = announce(hub)
    first = hub.now()

    assert hub.deliver_outbox() == 0
    after = row(hub, message["id"])
    assert (after["state"], after["attempts"]) == ("pending", 1)
    assert after["last_error"] == f"HTTP 502 from {zalo.url}/v3.0/oa/group/message"
    assert after["due_at"] == first + timedelta(seconds=10)
    hub.advance_clock(timedelta(seconds=9))
    assert len(zalo.requests) == 1

    hub.advance_clock(timedelta(seconds=1))
    assert len(zalo.requests) == 2
    hub.advance_clock(timedelta(seconds=20))

    assert len(zalo.requests) == 3 and len(zalo.delivered) == 1
    assert (row(hub, message["id"])["state"], row(hub, message["id"])["attempts"]) == ("sent", 3)
    assert inbox.incidents(hub) == []


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, None, "HTTP 400 from {url}/v3.0/oa/group/message"),
        (200, {"error": -213, "message": "User has not followed OA"}, "Zalo error -213: User has not followed OA"),
    ],
)
def test_zalo_4xx_or_api_error_becomes_an_incident_that_resends_on_retry(
    hub: Runner, zalo: ZaloServer, status: int, body: dict | None, error: str
) -> None:
    zalo.answer_next(status, body)
    message = announce(hub)
    hub.deliver_outbox()
    hub.advance_clock(timedelta(days=2))

    failed = row(hub, message["id"])
    assert (failed["state"], failed["last_error"]) == ("failed", error.format(url=zalo.url))
    [incident] = inbox.incidents(hub)
    assert (incident["kind"], incident["ref"], incident["element_id"]) == ("outbox", str(message["id"]), "announce")
    assert incident["instance_id"] == message["instance_id"]
    assert incident["error"] == f"zalo message {message['id']} failed: {error.format(url=zalo.url)}"
    assert len(zalo.requests) == 1 and zalo.delivered == []

    hub.retry_incident(incident["id"], actor="admin")
    assert hub.deliver_outbox() == 1
    assert row(hub, message["id"])["state"] == "sent"
    assert len(zalo.requests) == 2 and len(zalo.delivered) == 1
    assert inbox.incidents(hub) == []
    with pytest.raises(Conflict, match="already resolved"):
        hub.retry_incident(incident["id"])


def test_wrong_access_token_is_an_incident(sqlite_url: str, registry, zalo: ZaloServer) -> None:
    runner = wired(sqlite_url, registry, zalo, zalo_access_token="expired")
    try:
        message = announce(runner)
        runner.deliver_outbox()
        [incident] = inbox.incidents(runner)
    finally:
        runner.db.engine.dispose()
    assert incident["error"] == f"zalo message {message['id']} failed: Zalo error -216: Access token is invalid"
    assert zalo.requests[0]["token"] == "expired"


def test_unreachable_zalo_is_retried(sqlite_url: str, registry, zalo: ZaloServer) -> None:
    runner = wired(sqlite_url, registry, zalo, zalo_base_url="http://127.0.0.1:9")
    try:
        message = announce(runner)
        assert runner.deliver_outbox() == 0
        after = row(runner, message["id"])
    finally:
        runner.db.engine.dispose()
    assert after["state"] == "pending" and after["attempts"] == 1
    assert after["last_error"].startswith("cannot reach http://127.0.0.1:9/v3.0/oa/group/message")


def test_lost_answer_leaves_the_message_unknown_not_resent(hub: Runner, zalo: ZaloServer) -> None:
    zalo.drop_next = True
    message = announce(hub)
    assert hub.deliver_outbox() == 0
    hub.advance_clock(timedelta(days=3))

    unknown = row(hub, message["id"])
    assert unknown["state"] == "unknown"
    assert unknown["last_error"].startswith(
        f"no answer from {zalo.url}/v3.0/oa/group/message after sending: RemoteDisconnected"
    )
    assert len(zalo.requests) == 1 and len(zalo.delivered) == 1
    assert inbox.incidents(hub) == []

    outbox.resolve(hub, message["id"], "dismiss")  # the admin saw it arrive in the group
    assert row(hub, message["id"])["state"] == "dismissed"


def test_unknown_transport_name_fails_clearly(sqlite_url: str, registry, zalo: ZaloServer) -> None:
    runner = wired(sqlite_url, registry, zalo, transports="zalo=bo_cau")
    try:
        message = announce(runner)
        runner.deliver_outbox()
        failed = row(runner, message["id"])
    finally:
        runner.db.engine.dispose()
    assert failed["state"] == "failed"
    assert failed["last_error"] == "RUNNER_TRANSPORTS names transport 'bo_cau' for channel 'zalo'; use zalo_oa or log"
    assert zalo.requests == []


# --- a worker killed while Zalo holds the request ------------------------------------------------------


class Worker:
    """``tests/workerproc.py deliver`` as a separate OS process on the test's database."""

    def __init__(self, url: str, zalo: ZaloServer) -> None:
        settings = settings_for(zalo)
        self.env = {
            **os.environ,
            "RUNNER_DATABASE_URL": url,
            "RUNNER_CLOCK": "virtual",
            **{f"RUNNER_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), "deliver"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """Kill (through Popen, by pid) whatever is still running."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=WAIT)


def test_nothing_is_sent_twice_across_a_worker_crash(db_url: str, registry, zalo: ZaloServer) -> None:
    runner = wired(db_url, registry, zalo)
    workers = Worker(db_url, zalo)
    try:
        message = announce(runner)
        zalo.hold_next = True
        proc = workers.start()
        assert zalo.arrived.wait(WAIT), "the worker's request never reached the Zalo server"
        assert row(runner, message["id"])["state"] == "sending"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=WAIT)
        assert proc.returncode == -signal.SIGKILL
        zalo.release.set()

        # The clock has not moved, so the lease still runs: the restarted worker sees the
        # dead sender's lock free and settles the message at start-up.
        again = workers.start()
        out, err = again.communicate(timeout=WAIT)
        assert again.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["sent"] == 0

        unknown = row(runner, message["id"])
        assert unknown["state"] == "unknown"
        assert "may or may not have arrived" in unknown["last_error"]
        runner.advance_clock(timedelta(days=3))
        assert row(runner, message["id"])["state"] == "unknown"
        assert len(zalo.requests) == 1 and len(zalo.delivered) == 1
    finally:
        workers.close()
        runner.db.engine.dispose()


# --- e-mail ----------------------------------------------------------------------------------------


def test_each_email_is_delivered_once_over_smtp(hub: Runner, mailserver: SmtpServer) -> None:
    run(hub, "msg_demo", "KH0001")
    assert hub.deliver_outbox() == 2
    assert hub.deliver_outbox() == 0
    hub.advance_clock(timedelta(days=1))

    [mail] = mailserver.accepted
    assert mailserver.logins == ["cskh"]
    assert (mail["from"], mail["to"]) == ("cskh@easyedu.vn", ["hoamai@example.vn"])
    msg = mail["message"]
    assert msg["Subject"] == "[EasyEdu] Tài khoản dùng thử Easy Edu Platform - Trung tâm Anh ngữ Hoa Mai"
    assert msg["From"] == "cskh@easyedu.vn" and msg["To"] == "hoamai@example.vn"
    email_row = next(m for m in inbox.outbox(hub) if m["channel"] == "email")
    assert msg["Message-ID"] == "<{}@easyedu.vn>".format(email_row["idempotency_key"].replace("/", "."))
    body = msg.get_content()
    assert "https://hoamai.easyedu.vn" in body and "Nguyễn Thị Lan" in body
    assert email_row["state"] == "sent"


def test_smtp_4xx_is_retried_and_5xx_becomes_an_incident(hub: Runner, mailserver: SmtpServer) -> None:
    mailserver.data_replies += ["451 4.3.0 Thử lại sau", "550 5.1.1 Hộp thư không tồn tại"]
    run(hub, "msg_demo", "KH0001")
    email_row = next(m for m in inbox.outbox(hub) if m["channel"] == "email")

    hub.deliver_outbox()
    assert row(hub, email_row["id"])["state"] == "pending"
    hub.advance_clock(timedelta(seconds=10))
    failed = row(hub, email_row["id"])
    assert failed["state"] == "failed"
    assert failed["last_error"] == "SMTP 550: 5.1.1 Hộp thư không tồn tại"
    [incident] = inbox.incidents(hub)
    assert incident["element_id"] == "mail_demo"

    hub.retry_incident(incident["id"])
    hub.deliver_outbox()
    assert row(hub, email_row["id"])["state"] == "sent"
    assert len(mailserver.accepted) == 1


def test_smtp_login_refused_is_an_incident(sqlite_url: str, registry, zalo: ZaloServer, mailserver: SmtpServer) -> None:
    runner = wired(sqlite_url, registry, zalo, mailserver, smtp_password="sai")
    try:
        run(runner, "msg_demo", "KH0001")
        runner.deliver_outbox()
        [incident] = inbox.incidents(runner)
    finally:
        runner.db.engine.dispose()
    assert "SMTP login as 'cskh' refused: 535 5.7.8 Authentication failed" in incident["error"]
    assert mailserver.accepted == []


def test_admin_decision_on_a_failed_message_settles_its_incident(hub: Runner, zalo: ZaloServer) -> None:
    zalo.answer_next(404)
    message = announce(hub)
    hub.deliver_outbox()
    assert len(inbox.incidents(hub)) == 1

    outbox.resolve(hub, message["id"], "dismiss")
    assert inbox.incidents(hub) == []
    assert row(hub, message["id"])["state"] == "dismissed"
