"""Website and landing-page forms post leads to POST /api/leads with their source's key, as a real HTTP client would.

The app runs under werkzeug's threaded server on loopback; the posts are urllib requests. A post makes
one customer and its sales instance (source: the key's, owner: the round-robin's), once per Idempotency-Key
(also when two posts race, on PostgreSQL); a known phone number gets the same answer and a note on
that customer's timeline; wrong, revoked and staff keys get 401, bad fields 422 by name, big bodies 413.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import make_server

from runner.cli import main
from runner.crm import capture, lead_keys
from runner.crm.models import Customer, LeadPost, Note
from runner.errors import BadValue
from runner.queries import tasklists
from runner.registry import Registry
from runner.service import accounts
from runner.service.runtime import Runner
from tests.scenario import START, add_customer, company, runner_at
from tests.webapp import add_user
from web import create_app
from web.extensions import run_here

SALES = Path(__file__).resolve().parents[1] / "processes" / "sales.bpmn"
ORIGIN = "https://easyedu.vn"
FORM = {"name": "Trung tâm Anh ngữ Sao Mai", "phone": "0912 345 678", "email": "saomai@example.vn"}


@contextmanager
def serving(runner: Runner) -> Iterator[str]:
    """The web app over ``runner`` on a loopback port (a thread per request); yields its base URL."""
    app = create_app(
        {
            "SECRET_KEY": "test-secret",
            "RUNNER": runner,
            "RUNNER_SETTINGS": runner.settings,
            "CLOCK_RUN_EXECUTOR": run_here,
        }
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="leads-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)


def _world(url: str, registry: Registry) -> Runner:
    runner = runner_at(url, registry, START)
    company(runner)
    runner.deploy([SALES])
    return runner


@pytest.fixture
def r(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    runner = _world(sqlite_url, registry)
    yield runner
    runner.db.engine.dispose()


@pytest.fixture
def base(r: Runner) -> Iterator[str]:
    with serving(r) as url:
        yield url


@pytest.fixture
def key(r: Runner) -> str:
    return lead_keys.create_key(r, "Website", "trang dùng thử", origins=[ORIGIN])[1]


def post(base: str, body: Any, *, key: str | None = None, form: bool = False, **headers: str) -> tuple[int, Any, Any]:
    """(status, JSON answer, headers) of a POST /api/leads over HTTP."""
    data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
    kind = "application/x-www-form-urlencoded" if form else "application/json"
    sent = {"Content-Type": kind, **({"X-Lead-Key": key} if key else {}), **headers}
    request = urllib.request.Request(f"{base}/api/leads", data=data, headers=sent, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read()), answer.headers
    except urllib.error.HTTPError as refused:
        with refused:  # NOTE: closes its socket
            return refused.code, json.loads(refused.read() or b"null"), refused.headers


def customers(runner: Runner) -> list[Customer]:
    with runner.db.read() as s:
        return list(s.scalars(sa.select(Customer).order_by(Customer.id)))


def sales_instances(runner: Runner, customer_id: str) -> list[dict[str, Any]]:
    return [i for i in tasklists.instances(runner, business_key=customer_id) if i["process_key"] == "sales"]


# --- a lead comes in -----------------------------------------------------------------------------------------------


def test_a_post_makes_a_customer_of_the_keys_source_with_an_owner_and_a_sales_instance(
    r: Runner, base: str, key: str
) -> None:
    status, answer, _headers = post(base, FORM, key=key, **{"Idempotency-Key": "form-1"})
    assert status == 201, answer
    assert answer["status"] == "received" and "customer" not in answer
    [made] = customers(r)
    assert (made.name, made.phone, made.email, made.source) == (FORM["name"], "+84912345678", FORM["email"], "Website")
    assert made.owner is not None  # the round-robin's
    assert len(sales_instances(r, made.id)) == 1


def test_a_plain_html_form_posts_its_fields_with_the_key_as_a_field(r: Runner, base: str, key: str) -> None:
    fields = {**FORM, "lead_key": key, "idempotency_key": "page-load-7", "submit": "Đăng ký"}
    status, answer, _headers = post(base, fields, form=True)
    assert status == 201, answer
    [made] = customers(r)
    assert made.source == "Website" and "submit" not in made.extra


def test_the_same_idempotency_key_twice_makes_one_lead_and_answers_the_first_reference(
    r: Runner, base: str, key: str
) -> None:
    first = post(base, FORM, key=key, **{"Idempotency-Key": "k-1"})
    again = post(base, FORM, key=key, **{"Idempotency-Key": "k-1"})
    assert (first[0], again[0]) == (201, 200)
    assert again[1] == first[1] and again[2]["Idempotent-Replayed"] == "true"
    [made] = customers(r)
    assert len(sales_instances(r, made.id)) == 1


def test_the_same_idempotency_key_with_another_body_is_refused(r: Runner, base: str, key: str) -> None:
    assert post(base, FORM, key=key, **{"Idempotency-Key": "k-1"})[0] == 201
    status, answer, _headers = post(base, {**FORM, "name": "Khác"}, key=key, **{"Idempotency-Key": "k-1"})
    assert status == 422 and "idempotency_key" in answer["detail"]
    assert len(customers(r)) == 1


def test_a_failed_post_gives_its_idempotency_key_back(r: Runner, base: str, key: str) -> None:
    assert post(base, {**FORM, "phone": "123"}, key=key, **{"Idempotency-Key": "k-1"})[0] == 422
    assert post(base, {**FORM, "phone": "123"}, key=key, **{"Idempotency-Key": "k-1"})[0] == 422  # not a replay
    assert post(base, FORM, key=key, **{"Idempotency-Key": "k-1"})[0] == 201


def test_a_post_still_being_made_answers_409_and_one_abandoned_is_taken_over(r: Runner, base: str, key: str) -> None:
    key_id = lead_keys.list_keys(r)[0]["id"]
    with r.db.unit() as s:  # the claim of a first post whose process died before it made the lead
        s.add(
            LeadPost(
                id="a" * 32, key_id=key_id, client_key="k-9", body_hash=capture.body_hash(FORM), created_at=r.now()
            )
        )
    status, _answer, headers = post(base, FORM, key=key, **{"Idempotency-Key": "k-9"})
    assert status == 409 and headers["Retry-After"] == "1"
    assert customers(r) == []
    r.advance_clock(capture.STALE + timedelta(seconds=1))
    status, answer, _headers = post(base, FORM, key=key, **{"Idempotency-Key": "k-9"})
    assert (status, answer["reference"]) == (201, "a" * 32)
    assert len(customers(r)) == 1


# --- who may post --------------------------------------------------------------------------------------------------


def test_a_wrong_key_a_missing_key_and_a_revoked_key_get_401(r: Runner, base: str, key: str) -> None:
    assert post(base, FORM, key="lk_" + "x" * 43)[0] == 401
    assert post(base, FORM)[0] == 401
    key_id = lead_keys.list_keys(r)[0]["id"]
    lead_keys.revoke_key(r, key_id)
    status, answer, headers = post(base, FORM, key=key)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert customers(r) == []


def test_a_staff_api_token_is_no_lead_key_and_a_lead_key_opens_no_staff_api(r: Runner, base: str, key: str) -> None:
    accounts.create_user(r, "admin9", "Quản trị", ["admin"], password="mat-khau-dai-9")
    staff_token = accounts.issue_token(r, "admin9", label="staff")
    assert post(base, FORM, Authorization=f"Bearer {staff_token}")[0] == 401
    assert post(base, FORM, key="", Authorization=f"Bearer {key}")[0] == 201  # the bearer form of the lead key works
    request = urllib.request.Request(f"{base}/api/customers", headers={"Authorization": f"Bearer {key}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    with refused.value:
        assert refused.value.code == 401


def test_a_key_is_shown_once_and_stored_only_as_a_hash(r: Runner, key: str) -> None:
    [listed] = lead_keys.list_keys(r)
    assert listed["prefix"] == key[:10] and listed["source"] == "Website" and listed["origins"] == [ORIGIN]
    with r.db.read() as s:
        dump = json.dumps([list(row) for row in s.execute(sa.text("select * from lead_keys"))], default=str)
    assert key not in dump and lead_keys.key_hash(key) in dump


def test_a_key_needs_a_configured_source_and_real_origins(r: Runner) -> None:
    with pytest.raises(BadValue, match="field 'source'"):
        lead_keys.create_key(r, "Tờ rơi", "không có nguồn này")
    with pytest.raises(BadValue, match="field 'origins'"):
        lead_keys.create_key(r, "Website", "sai", origins=["easyedu.vn/dang-ky"])


# --- what a form sends ---------------------------------------------------------------------------------------------


def test_a_bad_phone_is_refused_naming_the_phone(r: Runner, base: str, key: str) -> None:
    status, answer, _headers = post(base, {**FORM, "phone": "0912"}, key=key)
    assert status == 422 and set(answer["errors"]) == {"phone"}
    assert customers(r) == []


def test_the_form_cannot_choose_the_source_or_the_owner(r: Runner, base: str, key: str) -> None:
    status, answer, _headers = post(base, {**FORM, "source": "Google", "owner": "hung"}, key=key)
    assert status == 422 and set(answer["errors"]) == {"source", "owner"}


def test_a_known_phone_gets_the_same_answer_and_a_note_on_that_customers_timeline(
    r: Runner, base: str, key: str
) -> None:
    add_customer(r, "KH0007", "Trung tâm Hoa Sen", phone="+84912345678")
    status, answer, _headers = post(base, {**FORM, "name": "Ai đó"}, key=key, **{"Idempotency-Key": "k-2"})
    assert status == 201 and set(answer) == {"status", "reference"}  # nothing about KH0007
    assert [c.id for c in customers(r)] == ["KH0007"]
    with r.db.read() as s:
        [note] = s.scalars(sa.select(Note).where(Note.customer_id == "KH0007"))
        post_row = s.get(LeadPost, answer["reference"])
    assert note.kind == "web_form" and "Ai đó" in note.text and "Website" in note.text
    assert post_row is not None and (post_row.outcome, post_row.customer_id) == ("known", "KH0007")


def test_a_body_larger_than_a_form_is_refused_with_413(r: Runner, base: str, key: str) -> None:
    status, answer, _headers = post(base, {**FORM, "website": "x" * 20_000}, key=key)
    assert status == 413 and answer["error"] == "Request Entity Too Large"
    assert customers(r) == []


def test_a_key_posts_its_rate_a_minute_then_waits(r: Runner, base: str) -> None:
    key = lead_keys.create_key(r, "Website", "nhỏ", per_minute=2)[1]
    phones = ["0912345601", "0912345602", "0912345603", "0912345604"]
    statuses = [post(base, {**FORM, "email": None, "phone": p}, key=key)[0] for p in phones[:3]]
    assert statuses == [201, 201, 429]
    r.advance_clock(timedelta(minutes=1))
    assert post(base, {**FORM, "email": None, "phone": phones[3]}, key=key)[0] == 201


def test_a_page_of_a_listed_origin_may_post_and_read_and_another_origin_may_not(r: Runner, base: str, key: str) -> None:
    status, _answer, headers = post(base, FORM, key=key, Origin=ORIGIN)
    assert status == 201 and headers["Access-Control-Allow-Origin"] == ORIGIN
    status, _answer, headers = post(
        base, {**FORM, "phone": "0987654321", "email": None}, key=key, Origin="https://evil.example"
    )
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    preflight = urllib.request.Request(f"{base}/api/leads", method="OPTIONS", headers={"Origin": ORIGIN})
    with urllib.request.urlopen(preflight, timeout=60) as answer:
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "X-Lead-Key" in answer.headers["Access-Control-Allow-Headers"]


# --- two posts at once, on PostgreSQL ------------------------------------------------------------------------------


def test_two_concurrent_posts_with_one_idempotency_key_make_one_lead_on_postgresql(
    pg_url: str, registry: Registry
) -> None:
    runner = _world(pg_url, registry)
    try:
        key = lead_keys.create_key(runner, "Website", "đua")[1]
        with serving(runner) as base:
            barrier = threading.Barrier(4)
            answers: list[tuple[int, Any, Any]] = []

            def send() -> None:
                barrier.wait()
                answers.append(post(base, FORM, key=key, **{"Idempotency-Key": "race-1"}))

            threads = [threading.Thread(target=send) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
        statuses = sorted(a[0] for a in answers)
        assert statuses.count(201) == 1 and set(statuses) <= {200, 201, 409}, statuses
        [made] = customers(runner)
        assert len(sales_instances(runner, made.id)) == 1
        with runner.db.read() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(LeadPost)) == 1
    finally:
        runner.db.engine.dispose()


# --- the command line ----------------------------------------------------------------------------------------------


def test_runner_lead_keys_adds_a_working_key_lists_it_and_revokes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], registry: Registry
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("RUNNER_DATABASE_URL", url)
    monkeypatch.setenv("RUNNER_CLOCK", "virtual")
    assert main(["db", "upgrade"]) == 0
    runner = _world(url, registry)
    capsys.readouterr()
    assert main(["lead-keys", "add", "Website", "--label", "trang hè", "--origin", ORIGIN]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith(lead_keys.KEY_PREFIX)
    assert lead_keys.use_key(runner, secret).source == "Website"
    assert main(["lead-keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert secret[:10] in listed and "trang hè" in listed and secret not in listed
    assert main(["lead-keys", "revoke", str(lead_keys.list_keys(runner)[0]["id"])]) == 0
    with pytest.raises(lead_keys.KeyRefused):
        lead_keys.use_key(runner, secret)
    assert main(["lead-keys", "add", "Tờ rơi", "--label", "x"]) != 0  # no such source
    runner.db.engine.dispose()


# --- the admin page ------------------------------------------------------------------------------------------------


def test_an_admin_makes_a_key_sees_it_once_lists_and_revokes_it_and_others_may_not(app: Flask, runner: Runner) -> None:
    company(runner)
    add_user(runner, "admin1", ["admin"])
    add_user(runner, "sales9", ["sales"])
    admin = app.test_client()
    admin.login("admin1")
    made = admin.post("/lead-keys", data={"source": "Website", "label": "khai giảng hè", "origins": ORIGIN})
    assert made.status_code == 201
    secret = re.search(r'data-testid="new-lead-key">([^<]+)<', made.get_data(as_text=True)).group(1)
    assert lead_keys.use_key(runner, secret).origins == (ORIGIN,)
    listing = admin.get("/lead-keys").get_data(as_text=True)
    assert secret[:10] in listing and "khai giảng hè" in listing and secret not in listing
    refused = admin.post("/lead-keys", data={"source": "Website", "label": "x", "origins": "ftp://x"})
    assert refused.status_code == 422 and "origins" in refused.get_data(as_text=True)
    [key] = lead_keys.list_keys(runner)
    assert admin.post(f"/lead-keys/{key['id']}/revoke", data={"csrf_token": "wrong"}).status_code == 400  # CSRF
    admin.post(f"/lead-keys/{key['id']}/revoke")
    assert lead_keys.list_keys(runner)[0]["revoked_at"] is not None
    rep = app.test_client()
    rep.login("sales9")
    assert rep.get("/lead-keys").status_code == 403
    assert rep.post("/lead-keys", data={"source": "Website", "label": "x"}).status_code == 403


def post_form_raw(base: str, fields: dict[str, str]) -> tuple[int, str | None, bytes]:
    """(status, Location, body) of a plain form post, redirects not followed, as a browser first sees it."""
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        body = urllib.parse.urlencode(fields)
        conn.request("POST", "/api/leads", body, {"Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        return answer.status, answer.getheader("Location"), answer.read()
    finally:
        conn.close()


def test_a_plain_form_naming_its_thank_you_page_is_sent_there_with_its_reference(
    r: Runner, base: str, key: str
) -> None:
    thanks = f"{ORIGIN}/cảm-ơn?form=dung-thu"
    fields = {**FORM, "lead_key": key, "idempotency_key": "page-load-9", "thanks_url": thanks}
    status, location, _body = post_form_raw(base, fields)
    assert status == 303 and location is not None
    assert location.startswith(f"{ORIGIN}/c%E1%BA%A3m-%C6%A1n?form=dung-thu&reference=")
    reference = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["reference"][0]
    [made] = customers(r)
    with r.db.read() as s:
        assert s.get(LeadPost, reference).customer_id == made.id
    assert "thanks_url" not in made.extra
    again = post_form_raw(base, fields)  # the visitor presses back and posts again: the same lead, the same page
    assert again[:2] == (303, location) and len(customers(r)) == 1


@pytest.mark.parametrize(
    "thanks",
    [
        "https://evil.example/cam-on",  # another site: no open redirect
        "javascript:alert(1)",
        f"{ORIGIN}/cam-on\r\nSet-Cookie: x=1",  # no header injection
        f"{ORIGIN}/" + "a" * 600,
    ],
)
def test_a_thank_you_page_off_the_keys_origins_is_refused_naming_the_field(
    r: Runner, base: str, key: str, thanks: str
) -> None:
    status, location, body = post_form_raw(base, {**FORM, "lead_key": key, "thanks_url": thanks})
    assert (status, location) == (422, None)
    assert set(json.loads(body)["errors"]) == {"thanks_url"} and customers(r) == []
