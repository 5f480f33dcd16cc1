"""Admin pages (web/admin/) and the runner functions behind them (migration dry run, version counts).

Deploy with the element-level report, processes with instance counts per version, the
migration dry run and run, incidents and outbox decisions, users and tokens, the virtual clock.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.clock import FixedClock
from runner.errors import Invalid, NotFound
from runner.queries import tasklists as inbox
from runner.registry import HandlerContext, Registry
from runner.service import accounts as users
from runner.service import instance_migration as migration
from runner.service import workers
from runner.service.runtime import Runner
from runner.settings import Settings
from tests.webapp import PASSWORD, WebClient, add_user
from web import create_app

BPMN = Path(__file__).parent / "bpmn"
ADMIN = BPMN / "admin"
TIMERS = BPMN / "runtime" / "timers.bpmn"
NOTIFY = BPMN / "jobs" / "notify.bpmn"
TWO_TRIES = BPMN / "jobs" / "two_tries.bpmn"


@pytest.fixture
def admin(client: WebClient, staff) -> WebClient:
    """A client signed in as admin1."""
    assert client.login("admin1").status_code == 302
    return client


def _files(*paths: Path, names: list[str] | None = None) -> dict[str, Any]:
    return {"files": [(io.BytesIO(p.read_bytes()), (names or [p.name for p in paths])[i]) for i, p in enumerate(paths)]}


def _text(response) -> str:
    return response.get_data(as_text=True)


def _task(runner: Runner, business_key: str, element: str) -> dict[str, Any]:
    [task] = [t for t in inbox.tasks(runner, business_key=business_key) if t["element_id"] == element]
    return task


def test_admin_pages_are_for_admins_only(client: WebClient, staff) -> None:
    client.login("team_leader1")
    assert client.get("/admin/").status_code == 403
    assert client.post("/admin/deploy", data=_files(ADMIN / "signup_v1.bpmn")).status_code == 403
    assert "/admin/" not in _text(client.get("/inbox/"))  # no admin link in the top bar


def test_overview_shows_counts_and_the_virtual_clock(admin: WebClient, runner: Runner) -> None:
    runner.deploy([ADMIN / "signup_v1.bpmn"])
    runner.start_instance("signup", "KH1")
    page = _text(admin.get("/admin/"))
    assert "Đồng hồ ảo" in page and "+1 tuần" in page
    assert re.search(r"<strong>1</strong>phiên chạy đang chạy", page)
    assert 'href="/admin/"' in _text(admin.get("/inbox/"))  # the top-bar link


# --- deploy ---------------------------------------------------------------------------------------


def test_a_broken_diagram_shows_the_element_level_report_and_stores_nothing(admin: WebClient, runner: Runner) -> None:
    response = admin.post(
        "/admin/deploy", data=_files(ADMIN / "signup_broken.bpmn"), content_type="multipart/form-data"
    )
    assert response.status_code == 422
    page = _text(response)
    assert "Không triển khai được: 2 lỗi" in page
    rows = re.findall(r'<tr data-element="([^"]*)">(.*?)</tr>', page, re.S)
    assert [element for element, _ in rows] == ["create_account", "send_welcome"]
    assert "Tạo tài khoản demo" in rows[0][1] and "camunda:class" in rows[0][1]
    assert "Gửi thư chào mừng" in rows[1][1] and "no.such.topic" in rows[1][1]
    assert inbox.process_versions(runner) == []


def test_deploy_shows_the_versions_created_and_offers_the_migration(admin: WebClient, runner: Runner) -> None:
    first = _text(
        admin.post("/admin/deploy", data=_files(ADMIN / "signup_v1.bpmn"), content_type="multipart/form-data")
    )
    assert re.search(r'data-process="signup">.*?v1 <span class="badge ok">mới</span>', first, re.S)
    clash = admin.post(
        "/admin/deploy",
        data=_files(ADMIN / "signup_v2.bpmn", ADMIN / "signup_v1.bpmn", names=["signup.bpmn", "other.bpmn"]),
        content_type="multipart/form-data",
    )
    assert clash.status_code == 422  # two files defining one process: reported by element, nothing stored
    assert re.search(r'<tr data-element="signup">.*?Duplicate process ID', _text(clash), re.S)
    again = _text(
        admin.post("/admin/deploy", data=_files(ADMIN / "signup_v2.bpmn"), content_type="multipart/form-data")
    )
    assert re.search(r"v2 <span class=\"badge ok\">mới</span>", again)
    assert "/admin/processes/signup/versions/1/migration?to=2" in again
    assert [v["version"] for v in inbox.process_versions(runner)[0]["versions"]] == [2, 1]
    assert inbox.history(runner, events=["process.deployed"])[-1]["actor"] == "admin1"


@pytest.mark.parametrize(
    "names,message", [(["signup.txt"], "Chỉ nhận tệp .bpmn hoặc .dmn."), (["a.bpmn", "a.bpmn"], "Hai tệp trùng tên.")]
)
def test_bad_uploads_are_reported_per_file(admin: WebClient, runner: Runner, names, message) -> None:
    paths = [ADMIN / "signup_v1.bpmn"] * len(names)
    response = admin.post("/admin/deploy", data=_files(*paths, names=names), content_type="multipart/form-data")
    assert response.status_code == 422 and message in _text(response)
    assert inbox.process_versions(runner) == []
    empty = admin.post("/admin/deploy", data={}, content_type="multipart/form-data")
    assert empty.status_code == 422 and "Chọn ít nhất một tệp" in _text(empty)


# --- processes and versions ---------------------------------------------------------------------------


def test_processes_list_versions_with_instance_counts(admin: WebClient, runner: Runner) -> None:
    runner.deploy([ADMIN / "signup_v1.bpmn"])
    for key in ("A", "B"):
        runner.start_instance("signup", key)
    for element in ("check_form", "call_customer"):
        runner.complete_task(_task(runner, "A", element)["id"])
    runner.deploy([ADMIN / "signup_v2.bpmn"])
    runner.start_instance("signup", "C")
    [signup] = inbox.process_versions(runner)
    assert [(v["version"], v["running"], v["completed"], v["instances"]) for v in signup["versions"]] == [
        (2, 1, 0, 1),
        (1, 1, 1, 2),
    ]
    page = _text(admin.get("/admin/processes"))
    rows = dict(re.findall(r'<tr data-version="(\d)">(.*?)</tr>', page, re.S))
    assert re.search(r'class="running">1<.*class="completed">1<', rows["1"], re.S)
    assert re.search(r'class="running">1<.*class="completed">0<', rows["2"], re.S)
    assert "/admin/processes/signup/versions/1/migration" in rows["1"]
    assert "/migration" not in rows["2"]  # nothing newer to move to
    assert "/processes/signup/versions/1/diagram" in rows["1"]


# --- migration: runner side ---------------------------------------------------------------------------------


@pytest.fixture
def two_versions(runner: Runner) -> dict[str, str]:
    """Three running instances of signup v1 (two at check_form, one at call_customer), then v2 deployed.

    v2 renames call_customer to demo_call and changes check_form's name and groups.
    """
    runner.deploy([ADMIN / "signup_v1.bpmn"])
    ids = {key: runner.start_instance("signup", key) for key in ("A", "B", "C")}
    runner.complete_task(_task(runner, "C", "check_form")["id"])
    runner.deploy([ADMIN / "signup_v2.bpmn"])
    return ids


def test_dry_run_says_which_instances_can_move_and_why_not(runner: Runner, two_versions) -> None:
    report = migration.dry_run(runner, "signup", 1)
    assert (report["from"], report["to"]) == (1, 2)
    assert report["diff"]["removed"] == [{"element": "call_customer", "name": "Gọi khách", "to": "demo_call"}]
    assert {e["element"] for e in report["diff"]["changed"]} >= {"check_form"}
    by_key = {i["business_key"]: i for i in report["instances"]}
    for key in ("A", "B"):
        assert by_key[key]["movable"] and by_key[key]["blockers"] == [] and by_key[key]["active"] == ["check_form"]
        [change] = by_key[key]["changes"]
        assert change["element"] == "check_form" and "extensions" in change["attributes"]
    blocked = by_key["C"]
    assert not blocked["movable"] and "call_customer" in blocked["error"]
    assert blocked["blockers"] == [
        {"element": "call_customer", "name": "Gọi khách", "reason": "renamed", "to": "demo_call"}
    ]
    assert [i["version_id"] for i in inbox.instances(runner)] == [1, 1, 1]  # nothing moved


def test_dry_run_agrees_with_the_migration_itself(runner: Runner, two_versions) -> None:
    report = migration.dry_run(runner, "signup", 1, 2)
    results = migration.migrate_many(runner, "signup", [i["id"] for i in report["instances"]], 2, actor="admin1")
    assert [r["ok"] for r in results] == [i["movable"] for i in report["instances"]]
    assert migration.dry_run(runner, "signup", 1)["instances"] == [i for i in report["instances"] if not i["movable"]]
    moved = inbox.history(runner, instance_id=two_versions["A"], events=["instance.migrated"])
    assert [(h["actor"], h["details"]) for h in moved] == [("admin1", {"from": 1, "to": 2})]
    assert _task(runner, "A", "check_form")["candidate_groups"] == ["sales", "team_leader"]


def test_dry_run_and_migrate_many_errors(runner: Runner, two_versions) -> None:
    with pytest.raises(NotFound, match="has no version 3"):
        migration.dry_run(runner, "signup", 2)
    with pytest.raises(Invalid, match="cannot move to itself"):
        migration.dry_run(runner, "signup", 1, 1)
    with pytest.raises(NotFound):
        migration.dry_run(runner, "nope", 1)
    [result] = migration.migrate_many(runner, "other", [two_versions["A"]], 2)
    assert not result["ok"] and "of process 'other' does not exist" in result["error"]


# --- migration: pages ---------------------------------------------------------------------------------------


def test_migration_page_reports_then_migrates_with_progress_batches(
    admin: WebClient, runner: Runner, two_versions
) -> None:
    page = _text(admin.get("/admin/processes/signup/versions/1/migration"))
    assert "2 chuyển được" in page and "1 không chuyển được" in page
    blocked = re.search(rf'<tr data-instance="{two_versions["C"]}" class="blocked">(.*?)</tr>', page, re.S).group(1)
    assert "call_customer" in blocked and "Gọi khách" in blocked and "demo_call" in blocked
    movable = re.findall(r'<input type="hidden" name="ids" value="([^"]+)">', page)
    assert sorted(movable) == sorted([two_versions["A"], two_versions["B"]])
    assert "<progress" in page

    # the page's script posts batches and reads JSON
    first = admin.post(
        "/admin/processes/signup/versions/1/migration",
        data={"to": "2", "ids": movable[:1]},
        headers={"Accept": "application/json"},
    )
    assert first.get_json() == {"moved": 1, "moved_ids": movable[:1], "failed": []}
    rest = admin.post(
        "/admin/processes/signup/versions/1/migration",
        data={"to": "2", "ids": [movable[1], two_versions["C"]]},
        headers={"Accept": "application/json"},
    )
    body = rest.get_json()
    assert body["moved"] == 1 and [f["id"] for f in body["failed"]] == [two_versions["C"]]
    assert "call_customer" in body["failed"][0]["error"]
    assert len(inbox.history(runner, events=["instance.migrated"])) == 2
    after = _text(admin.get("/admin/processes/signup/versions/1/migration?to=2"))
    assert "2 chuyển được" not in after and "1 không chuyển được" in after


def test_migration_without_javascript_redirects_with_a_summary(admin: WebClient, runner: Runner, two_versions) -> None:
    response = admin.post(
        "/admin/processes/signup/versions/1/migration", data={"to": "2", "ids": list(two_versions.values())}
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/migration?to=2")
    page = _text(admin.get(response.headers["Location"]))
    assert "Đã chuyển 2/3 phiên chạy sang phiên bản 2." in page
    assert admin.get("/admin/processes/signup/versions/2/migration").status_code == 404
    assert admin.get("/admin/processes/nope/versions/1/migration").status_code == 404
    assert admin.post("/admin/processes/signup/versions/1/migration", data={"to": "2"}).status_code == 400


# --- incidents and outbox decisions -----------------------------------------------------------------------------


def test_incidents_show_the_error_and_can_be_retried(admin: WebClient, runner: Runner, registry: Registry) -> None:
    tries: list[int] = []

    def work(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
        tries.append(ctx.attempt)
        if len(tries) <= 2:
            raise RuntimeError("CRM đang bảo trì")
        return {"crm_id": "x"}

    registry.add("test.work", work)
    runner.deploy([TWO_TRIES])
    runner.start_instance("jobs_two_tries", "KH1", {"customer": "KH1"})
    runner.advance_clock(timedelta(hours=1))
    [incident] = inbox.incidents(runner)
    page = _text(admin.get("/admin/incidents"))
    row = re.search(rf'<tr data-incident="{incident["id"]}">(.*?)</tr>', page, re.S).group(1)
    assert "KH1" in row and "work" in row and "CRM đang bảo trì" in row
    response = admin.post(f"/admin/incidents/{incident['id']}/retry")
    assert response.status_code == 302
    assert f"Đã thử lại sự cố #{incident['id']}" in _text(admin.get("/admin/incidents"))
    assert inbox.incidents(runner) == []
    assert inbox.incidents(runner, state="resolved")[0]["resolved_by"] == "admin1"
    admin.post(f"/admin/incidents/{incident['id']}/retry")
    assert "đã được xử lý trước đó" in _text(admin.get("/admin/incidents"))
    admin.post("/admin/incidents/999999/retry")
    assert "Không có sự cố #999999" in _text(admin.get("/admin/incidents"))
    runner.run_due()
    assert [t["element_id"] for t in inbox.tasks(runner, business_key="KH1")] == ["check"]


def test_failed_outbox_messages_can_be_resent_or_dismissed(admin: WebClient, runner: Runner) -> None:
    runner.deploy([NOTIFY])
    for key in ("KH1", "KH2"):
        runner.start_instance("jobs_notify", key, {"channel": "fax", "text": "xin chào"})
    runner.run_due()
    runner.deliver_outbox()
    failed = inbox.outbox(runner, state="failed")
    assert len(failed) == 2
    page = _text(admin.get("/admin/incidents"))
    assert all(f'data-message="{m["id"]}"' in page for m in failed)
    assert "no transport for channel &#39;fax&#39;" in page
    admin.post(f"/admin/outbox/{failed[0]['id']}/resolve", data={"action": "resend"})
    admin.post(f"/admin/outbox/{failed[1]['id']}/resolve", data={"action": "dismiss"})
    states = {m["id"]: m["state"] for m in inbox.outbox(runner)}
    assert (states[failed[0]["id"]], states[failed[1]["id"]]) == ("pending", "dismissed")
    admin.post(f"/admin/outbox/{failed[1]['id']}/resolve", data={"action": "resend"})
    assert "không còn chờ quyết định" in _text(admin.get("/admin/incidents"))


# --- users and tokens --------------------------------------------------------------------------------------------


def test_create_a_user_with_roles(admin: WebClient, runner: Runner, app) -> None:
    response = admin.post(
        "/admin/users",
        data={
            "username": "lan",
            "full_name": "Nguyễn Thị Lan",
            "email": "lan@example.vn",
            "password": "mat-khau-lan",
            "roles": ["sales", "team_leader"],
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/admin/users/lan"
    assert users.get_user(runner, "lan")["roles"] == ["sales", "team_leader"]
    fresh = app.test_client()
    assert fresh.login("lan", "mat-khau-lan").status_code == 302
    page = _text(admin.get("/admin/users"))
    assert re.search(r'data-user="lan">.*Kinh doanh.*Trưởng nhóm', page, re.S)


@pytest.mark.parametrize(
    "form,message",
    [
        ({"username": "lan", "full_name": "Lan"}, "ít nhất một vai trò"),
        ({"username": "", "full_name": "Lan", "roles": ["sales"]}, "Cần tên đăng nhập"),
        ({"username": "lan", "full_name": "Lan", "roles": ["sales"], "password": "123"}, "ít nhất 8 ký tự"),
        ({"username": "lan", "full_name": "Lan", "roles": ["sales"]}, "ít nhất 8 ký tự"),
        ({"username": "sales1", "full_name": "Lan", "roles": ["sales"], "password": "mat-khau-123"}, "already exists"),
    ],
)
def test_create_user_errors_keep_the_form(admin: WebClient, runner: Runner, form, message) -> None:
    response = admin.post("/admin/users", data=form)
    assert response.status_code == 422 and message in _text(response)
    assert f'value="{form["full_name"]}"' in _text(response)
    assert users.get_user(runner, "lan") is None


def test_change_roles_deactivate_and_reset_password(admin: WebClient, runner: Runner, app) -> None:
    admin.post("/admin/users/sales1/roles", data={"roles": ["sales", "customer_care"]})
    assert users.get_user(runner, "sales1")["roles"] == ["sales", "customer_care"]
    admin.post("/admin/users/sales1/password", data={"password": "moi-mat-khau-1"})
    other = app.test_client()
    assert other.login("sales1", "moi-mat-khau-1").status_code == 302
    admin.post("/admin/users/sales1/active", data={"active": "0"})
    assert users.get_user(runner, "sales1") is None
    assert app.test_client().login("sales1", "moi-mat-khau-1").status_code == 401
    assert "Đã khóa" in _text(admin.get("/admin/users/sales1"))
    admin.post("/admin/users/sales1/active", data={"active": "1"})
    assert users.get_user(runner, "sales1")["active"]
    admin.post("/admin/users/sales1/password", data={"password": "ngan"})
    assert "ít nhất 8 ký tự" in _text(admin.get("/admin/users/sales1"))
    assert admin.get("/admin/users/nobody").status_code == 404


def test_an_admin_cannot_lock_themselves_out(admin: WebClient, runner: Runner) -> None:
    admin.post("/admin/users/admin1/active", data={"active": "0"})
    assert "tự khóa" in _text(admin.get("/admin/users/admin1"))
    admin.post("/admin/users/admin1/roles", data={"roles": ["sales"]})
    assert "tự bỏ vai trò quản trị" in _text(admin.get("/admin/users/admin1"))
    assert users.get_user(runner, "admin1")["roles"] == ["admin"]


def test_tokens_are_shown_once_and_can_be_revoked(admin: WebClient, runner: Runner) -> None:
    response = admin.post("/admin/users/sales1/tokens", data={"label": "Zalo bot"})
    assert response.status_code == 201
    token = re.search(r'data-testid="new-token">(rt_[^<]+)<', _text(response)).group(1)
    assert users.verify_token(runner, token)["username"] == "sales1"
    page = _text(admin.get("/admin/users/sales1"))
    assert token not in page and "Zalo bot" in page and token[:10] in page
    [row] = users.list_tokens(runner, "sales1")
    assert admin.post(f"/admin/users/admin1/tokens/{row['id']}/revoke").status_code == 404  # not admin1's
    admin.post(f"/admin/users/sales1/tokens/{row['id']}/revoke")
    assert users.verify_token(runner, token) is None
    assert "đã thu hồi" in _text(admin.get("/admin/users/sales1"))


# --- the virtual clock ------------------------------------------------------------------------------------------


def test_advancing_the_clock_fires_timers_and_shows_what_happened(admin: WebClient, runner: Runner) -> None:
    runner.deploy([TIMERS])
    runner.start_instance("follow_up", "KH7")
    runner.complete_task(_task(runner, "KH7", "prepare")["id"])
    before = runner.now()
    response = admin.post("/admin/clock/advance", data={"by": "day"})
    assert response.status_code == 302 and "run=" in response.headers["Location"]
    assert runner.now() == before + timedelta(days=1)
    page = _text(admin.get(response.headers["Location"]))
    assert "Đồng hồ ảo đang chuyển tới" in page and "Những gì vừa diễn ra" in page
    effects = re.search(r'<ul class="timeline effects">(.*?)</ul>', page, re.S).group(1)
    assert "timer.fired" in effects and "KH7" in effects
    assert _task(runner, "KH7", "call_back")
    admin.post("/admin/clock/advance", data={"by": "week"})
    assert runner.now() == before + timedelta(days=8)
    assert admin.post("/admin/clock/advance", data={"by": "year"}).status_code == 400


def _seen(page: str) -> str:
    return re.search(r'name="seen" value="([^"]+)"', page).group(1)


def test_while_the_clock_moves_the_page_shows_progress_and_refuses_a_second_click(
    app, admin: WebClient, runner: Runner
) -> None:
    queued: list[int] = []
    app.config["CLOCK_RUN_EXECUTOR"] = lambda _runner, run_id: queued.append(run_id)
    before = runner.now()
    seen = _seen(_text(admin.get("/admin/")))
    admin.post("/admin/clock/advance", data={"by": "week", "seen": seen})
    page = _text(admin.get("/admin/"))
    assert 'data-testid="clock-run" data-state="queued"' in page and '<meta http-equiv="refresh"' in page
    assert page.count(" disabled>") == 3  # the three buttons
    admin.post("/admin/clock/advance", data={"by": "week", "seen": seen})  # the double click
    assert "Đồng hồ đang được chuyển" in _text(admin.get("/admin/"))
    runner.execute_clock_run(queued[0])
    assert runner.now() == before + timedelta(weeks=1)  # one week, not two
    admin.post("/admin/clock/advance", data={"by": "day", "seen": seen})  # a page left open
    assert "Đồng hồ đã chuyển đi" in _text(admin.get("/admin/"))
    assert runner.now() == before + timedelta(weeks=1)
    page = _text(admin.get("/admin/"))
    assert " disabled>" not in page and "refresh" not in page
    assert admin.post("/admin/clock/advance", data={"by": "day", "seen": "hôm qua"}).status_code == 400


def test_the_real_clock_has_no_buttons(sqlite_url: str, registry: Registry) -> None:
    real = Runner(Settings.from_env({}, database_url=sqlite_url, clock="system"), registry=registry)
    try:
        add_user(real, "admin1", ["admin"])
        flask_app = create_app({"TESTING": True, "SECRET_KEY": "t", "RUNNER": real, "RUNNER_SETTINGS": real.settings})
        flask_app.test_client_class = WebClient
        client = flask_app.test_client()
        client.login("admin1", PASSWORD)
        page = _text(client.get("/admin/"))
        assert "+1 giờ" not in page and "RUNNER_CLOCK=virtual" in page
        client.post("/admin/clock/advance", data={"by": "hour"})
        assert "Chỉ chỉnh được đồng hồ" in _text(client.get("/admin/"))
    finally:
        real.db.engine.dispose()


def test_without_the_crm_the_admin_offers_the_groups_users_have(sqlite_url: str) -> None:
    """A runner without extensions names no groups: the page offers those its users have, by name."""
    core = Runner(Settings.from_env({}, database_url=sqlite_url, clock="virtual"), registry=Registry())
    try:
        add_user(core, "admin1", ["admin"])
        add_user(core, "kho1", ["warehouse"])
        flask_app = create_app({"TESTING": True, "SECRET_KEY": "t", "RUNNER": core, "RUNNER_SETTINGS": core.settings})
        flask_app.test_client_class = WebClient
        client = flask_app.test_client()
        client.login("admin1", PASSWORD)
        page = _text(client.get("/admin/users"))
        assert re.search(r'data-user="kho1">.*<span class="tag">warehouse</span>', page, re.S)
        assert 'name="roles" value="warehouse"' in page and 'value="sales"' not in page
        client.post("/admin/users/kho1/roles", data={"roles": ["warehouse", "admin"]})
        assert users.get_user(core, "kho1")["roles"] == ["warehouse", "admin"]
    finally:
        core.db.engine.dispose()


def test_admin_pages_in_english(admin: WebClient, runner: Runner) -> None:
    admin.post("/lang/en", data={"next": "/admin/"})
    page = _text(admin.get("/admin/"))
    assert "Virtual clock (demo mode)" in page and "+1 week" in page and "Đồng hồ" not in page
    assert "Validate and deploy" in _text(admin.get("/admin/deploy"))


# --- workers ----------------------------------------------------------------------------------


def test_the_workers_page_shows_live_and_lost_workers_their_lag_and_last_error(
    admin: WebClient, runner: Runner
) -> None:
    from_now = FixedClock(runner.now())
    quiet = Runner(replace(runner.settings, worker_id="quiet:1"), registry=runner.registry)
    workers.beat(quiet, from_now)
    from_now.advance(timedelta(seconds=runner.settings.worker_timeout_seconds + 1))
    workers.beat(runner, from_now, done=7, error="RunnerError: the database went away")
    assert workers.release_lost(runner, from_now) == ["quiet:1"]

    page = _text(admin.get("/admin/workers"))
    assert runner.settings.worker_id in page and "quiet:1" in page
    assert "Đang chạy" in page and "Đã mất" in page
    assert "RunnerError: the database went away" in page
    assert re.search(r"<td>7</td>", page)
    admin.post("/lang/en", data={"next": "/admin/workers"})
    english = _text(admin.get("/admin/workers"))
    assert "Workers" in english and "Lost" in english and "Last heartbeat" in english
    quiet.db.engine.dispose()
