"""Sign-in, CSRF, the failed-login slow-down, languages, and the role × endpoint matrix.

The matrix walks ``app.url_map``: every endpoint the app registers must have a line in
``ACCESS`` below, so a new page or API route without one fails ``test_every_endpoint_has_an_
access_rule`` by name. To add yours: one line ``"blueprint.endpoint": {"role", ...}`` (or
``ANY`` for every signed-in user, ``PUBLIC`` for no sign-in). The matrix then requests the
endpoint as each role and as an anonymous visitor, with placeholder URL values, and checks
403 for the roles not listed, no 401/403 for the others, and never a 5xx.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask, render_template_string

from runner.crm.models import ROLES
from runner.service import accounts as users
from runner.service.runtime import Runner
from tests.webapp import PASSWORD, WebClient
from web import create_app

PUBLIC = "public"
ANY = "any signed-in user"
ACCESS: dict[str, object] = {
    # web/__init__.py, web/auth.py, web/i18n.py
    "index": PUBLIC,
    "healthz": PUBLIC,
    "auth.login": PUBLIC,
    "auth.logout": PUBLIC,
    "i18n.switch": PUBLIC,
    # web/inbox.py (which tasks a user may see or work is checked per task, see test_web_inbox)
    "inbox.my_tasks": ANY,
    "inbox.group_tasks": ANY,
    "inbox.all_tasks": {"team_leader", "admin"},
    "inbox.task": ANY,
    "inbox.claim": ANY,
    "inbox.unclaim": ANY,
    "inbox.complete": ANY,
    "inbox.reassign": {"team_leader", "admin"},
    # web/diagrams.py
    "diagrams.instance": ANY,
    "diagrams.definition": {"admin", "team_leader"},
    # web/attachments.py (who may see the instance's customer is checked per file, see test_web_attachments)
    "attachments.download": ANY,
    # web/crm/customers/ (the calendar feed is public: its secret token is the credential)
    "customers.search": ANY,
    "customers.detail": ANY,
    "customers.add_note": ANY,
    "customers.edit": {"sales", "marketing", "customer_care", "team_leader", "admin"},  # web/crm/customers/edits.py
    "customers.save": {"sales", "marketing", "customer_care", "team_leader", "admin"},
    "customers.boards": ANY,
    "customers.board": ANY,
    "customers.my_calendar": ANY,
    "customers.renew_feed": ANY,
    "customers.feed": PUBLIC,
    **{f"customers.{name}": {"admin"} for name in ("lead_keys_page", "create_lead_key", "revoke_lead_key")},
    "customers.new_lead": {"marketing", "sales", "admin"},
    "customers.create_lead": {"marketing", "sales", "admin"},
    # web/admin/
    **{
        f"admin.{name}": {"admin"}
        for name in (
            "index",
            "advance_clock",
            "deploy",
            "processes",
            "migration_plan",
            "migrate",
            "incidents",
            "retry_incident",
            "resolve_message",
            "worker_list",
            "user_list",
            "create_user",
            "user",
            "set_roles",
            "set_profile",
            "business_calendar",
            "save_business_calendar",
            "add_day_off",
            "remove_day_off",
            "set_active",
            "reset_password",
            "unlock_login",
            "issue_token",
            "revoke_token",
        )
    },
    # web/api/ (tasks: which ones a user may see or work is checked per task, see test_api)
    "api.openapi": PUBLIC,
    **{
        f"api.{name}": ANY
        for name in (
            "process_definitions",
            "create_instance",
            "list_instances",
            "get_instance",
            "list_tasks",
            "claim_task",
            "complete_task",
            "send_message",
        )
    },
    "crm_api.get_customer": ANY,  # web/crm/api.py
    "crm_api.create_customer": {"marketing", "sales", "admin"},  # web/crm/api.py: a new lead (runner.crm.intake)
    "crm_api.update_customer": {"sales", "marketing", "customer_care", "team_leader", "admin"},
    "crm_api.list_customers": ANY,  # web/crm/api.py: each sees the customers runner.crm.scope grants
    **{
        f"api.{name}": {"admin"}
        for name in ("create_deployment", "list_incidents", "retry_incident", "advance_clock", "get_clock_run")
    },
    # web/crm/lead_imports.py
    **{
        f"lead_imports.{name}": {"marketing", "sales", "admin"}
        for name in ("index", "upload", "show", "step", "progress", "report")
    },
    # web/crm/routines.py: the team leader's check-in page; anyone files feature requests and sees their own
    "routines.checkins": {"team_leader", "admin"},
    **{f"routines.{name}": ANY for name in ("feature_requests", "new_feature_request", "file_feature_request")},
    # other blueprints: add one line per endpoint here
}
# NOTE: /metrics takes no session at all, only an admin's bearer token or a listed address:
# its own matrix is in tests/test_metrics.py (test_metrics_are_for_admin_tokens_and_listed_addresses).
# POST /api/leads takes a website form's lead key only (no session, no staff token; 401 for every role
# here): its own matrix is in tests/test_lead_capture.py, its CORS preflight answers OPTIONS only.
SKIP = {"static", "metrics.scrape", "crm_leads.post_lead", "crm_leads.lead_preflight"}


# --- sign-in ----------------------------------------------------------------------------


def test_login_page_is_vietnamese_and_has_a_csrf_field(client: WebClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert 'name="csrf_token"' in page
    assert "Đăng nhập" in page and "Mật khẩu" in page


def test_anonymous_visitors_are_sent_to_the_login_page(client: WebClient, staff) -> None:
    response = client.get("/inbox/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/inbox/")


def test_login_goes_back_to_the_page_asked_for(client: WebClient, staff) -> None:
    response = client.post("/login?next=/inbox/group", data={"username": "sales1", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/inbox/group"
    assert "Nhân viên sales" in client.get("/inbox/group").get_data(as_text=True)


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example/x", "javascript:alert(1)"]
)
def test_login_never_redirects_to_another_site(client: WebClient, staff, target: str) -> None:
    response = client.post("/login", data={"username": "sales1", "password": PASSWORD, "next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/"


@pytest.mark.parametrize("username,password", [("sales1", "wrong-password"), ("nobody", PASSWORD), ("", "")])
def test_a_wrong_login_says_so_without_telling_which_part(client: WebClient, staff, username, password) -> None:
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 401
    assert "Tên đăng nhập hoặc mật khẩu không đúng." in response.get_data(as_text=True)
    assert client.get("/inbox/").status_code == 302


def test_login_without_csrf_token_is_refused(client: WebClient, staff) -> None:
    response = client.post("/login", data={"username": "sales1", "password": PASSWORD}, csrf=False)
    assert response.status_code == 400
    assert client.get("/inbox/").status_code == 302  # not signed in


def test_every_form_post_needs_the_csrf_token(client: WebClient, staff) -> None:
    client.login("sales1")
    assert client.post("/logout", csrf=False).status_code == 400
    assert client.get("/inbox/").status_code == 200  # still signed in
    assert client.post("/logout").status_code == 302
    assert client.get("/inbox/").status_code == 302


def test_an_inactive_user_cannot_sign_in(client: WebClient, staff, runner: Runner) -> None:
    users.set_active(runner, "sales1", False)
    assert client.login("sales1").status_code == 401


def test_changing_the_password_ends_other_sessions(app: Flask, staff, runner: Runner) -> None:
    first, second = app.test_client(), app.test_client()
    first.login("sales1")
    assert first.get("/inbox/").status_code == 200
    users.set_password(runner, "sales1", "new-password-1")
    assert first.get("/inbox/").status_code == 302
    assert second.login("sales1", "new-password-1").status_code == 302


def test_passwords_are_stored_hashed(runner: Runner, staff) -> None:
    from runner.store.models import Account

    with runner.db.read() as s:
        stored = s.get(Account, "sales1").password_hash
    assert PASSWORD not in stored and stored.startswith(("scrypt:", "pbkdf2:"))


# --- five failed logins in a row slow the account down -------------------------------------


@pytest.mark.parametrize(
    "failures,seconds", [(0, 0), (4, 0), (5, 30), (6, 60), (7, 120), (9, 480), (10, 900), (40, 900)]
)
def test_lockout_delay(failures: int, seconds: int) -> None:
    assert users.lockout_delay(failures) == timedelta(seconds=seconds)


def test_five_failed_logins_slow_that_account_down(client: WebClient, staff, auth_clock) -> None:
    for _ in range(4):
        assert client.post("/login", data={"username": "sales1", "password": "nope"}).status_code == 401
    assert client.login("sales1").status_code == 302  # four failures cost nothing
    client.logout()
    for _ in range(5):
        assert client.post("/login", data={"username": "sales1", "password": "nope"}).status_code == 401
    slowed = client.login("sales1")  # even the right password waits now
    assert slowed.status_code == 429
    assert "thử lại sau 30 giây" in slowed.get_data(as_text=True)
    assert client.login("marketing1").status_code == 302  # other accounts are not affected
    client.logout()
    auth_clock.advance(29)
    assert client.login("sales1").status_code == 429
    auth_clock.advance(2)
    assert client.login("sales1").status_code == 302
    client.logout()
    for _ in range(5):  # a success resets the count
        client.post("/login", data={"username": "sales1", "password": "nope"})
    auth_clock.advance(31)
    assert client.post("/login", data={"username": "sales1", "password": "nope"}).status_code == 401
    assert "thử lại sau 60 giây" in client.login("sales1").get_data(as_text=True)


# --- languages and dates ---------------------------------------------------------------------


def test_english_switch_is_kept_in_the_session_and_on_the_account(client: WebClient, staff, runner) -> None:
    client.login("sales1")
    response = client.post("/lang/en", data={"next": "/inbox/"})
    assert response.status_code == 302 and response.headers["Location"] == "/inbox/"
    assert client.post("/lang/en", data={"next": "//evil.example/"}).headers["Location"] == "/"
    page = client.get("/inbox/").get_data(as_text=True)
    assert "Sign out" in page and "Đăng xuất" not in page and '<html lang="en">' in page
    assert users.get_user(runner, "sales1")["locale"] == "en"
    client.logout()
    assert "Sign in" in client.get("/login").get_data(as_text=True)  # the session remembers it
    fresh = client.application.test_client()
    fresh.login("sales1")  # a new browser: the account remembers it
    assert "Sign out" in fresh.get("/inbox/").get_data(as_text=True)


def test_dates_are_shown_in_ho_chi_minh_time(app: Flask) -> None:
    moment = datetime(2026, 11, 24, 20, 30, tzinfo=UTC)
    with app.test_request_context("/"):
        assert render_template_string("{{ m|dt }} / {{ m|day }}", m=moment) == "25/11/2026 03:30 / 25/11/2026"
        assert render_template_string("{{ m|dt }}", m=moment.isoformat()) == "25/11/2026 03:30"
        assert render_template_string("{{ m|dt }}", m=None) == ""


def test_ago_counts_from_the_runner_clock(app: Flask, runner: Runner) -> None:
    with app.test_request_context("/"):
        past = render_template_string("{{ m|ago }}", m=runner.now() - timedelta(days=3))
        future = render_template_string("{{ m|ago }}", m=runner.now() + timedelta(hours=2))
    assert "3 ngày" in past and "trước" in past
    assert "2 giờ" in future and "trước" not in future


def test_every_english_text_is_translated() -> None:
    from babel.messages import pofile

    from web.catalogs import CATALOGS

    with (CATALOGS / "en" / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        catalog = pofile.read_po(fp)
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert untranslated == []


# --- bearer tokens ----------------------------------------------------------------------------


def test_a_bearer_token_signs_in_and_a_revoked_one_does_not(client: WebClient, staff, runner: Runner) -> None:
    token = users.issue_token(runner, "sales1", label="test")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/inbox/", headers=headers).status_code == 200
    assert client.get("/inbox/", headers={"Authorization": "Bearer rt_forged"}).status_code == 302
    [row] = users.list_tokens(runner, "sales1")
    assert row["last_used_at"] is not None and token not in str(row)
    users.revoke_token(runner, row["id"])
    assert client.get("/inbox/", headers=headers).status_code == 302


# --- the role × endpoint matrix ---------------------------------------------------------------


def _endpoints(flask_app: Flask) -> dict[str, object]:
    return {rule.endpoint: rule for rule in flask_app.url_map.iter_rules() if rule.endpoint not in SKIP}


def test_every_endpoint_has_an_access_rule(app: Flask) -> None:
    registered = set(_endpoints(app))
    assert sorted(registered - set(ACCESS)) == [], "add these endpoints to ACCESS in tests/test_web_auth.py"
    assert sorted(set(ACCESS) - registered) == [], "these ACCESS lines name endpoints that no longer exist"


@pytest.fixture
def matrix_app(runner: Runner, staff) -> Flask:
    """The app with CSRF off, so that the matrix reaches the views' role checks on POST too."""
    flask_app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "RUNNER": runner,
            "RUNNER_SETTINGS": runner.settings,
            "WTF_CSRF_ENABLED": False,
        }
    )
    flask_app.test_client_class = WebClient
    return flask_app


def _url(rule) -> str:
    values = {
        arg: (999_999 if type(rule._converters[arg]).__name__ == "IntegerConverter" else "no-such-id")
        for arg in rule.arguments
    }
    return rule.build(values, append_unknown=False)[1]


@pytest.mark.parametrize("role", [*ROLES, None], ids=[*ROLES, "anonymous"])
def test_role_endpoint_matrix(matrix_app: Flask, runner: Runner, role: str | None) -> None:
    client = matrix_app.test_client()
    headers = {}
    if role is not None:
        assert client.login(f"{role}1").status_code == 302
        headers = {"Authorization": f"Bearer {users.issue_token(runner, f'{role}1')}"}
    failures = []
    # NOTE: signing out ends the session the other requests rely on, so it goes last.
    for endpoint, rule in sorted(_endpoints(matrix_app).items(), key=lambda kv: (kv[0] == "auth.logout", kv[0])):
        allowed = ACCESS.get(endpoint)
        if allowed is None:
            continue  # reported by test_every_endpoint_has_an_access_rule
        method = "GET" if "GET" in rule.methods else sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        url = _url(rule)
        status = client.open(url, method=method, headers=headers if url.startswith("/api") else {}).status_code
        if status >= 500:
            failures.append(f"{method} {url} ({endpoint}): {status}")
        elif allowed == PUBLIC:
            ok = status not in (401, 403)
        elif role is None:
            ok = status == 401 if url.startswith("/api") else status == 302
        elif allowed == ANY or role in allowed:  # type: ignore[operator]
            ok = status not in (401, 403)
        else:
            ok = status == 403
        if status < 500 and not ok:
            failures.append(
                f"{method} {url} ({endpoint}) as {role or 'anonymous'}: {status}, expected "
                f"{'allowed' if allowed in (PUBLIC, ANY) or role in allowed else 403}"
            )
    assert failures == []


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_adds_users_and_prints_tokens(sqlite_url: str, monkeypatch, capsys) -> None:
    from runner.cli import main
    from runner.settings import Settings

    monkeypatch.setenv("RUNNER_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RUNNER_CLOCK", "virtual")
    assert (
        main(
            [
                "users",
                "add",
                "lan",
                "--name",
                "Nguyễn Thị Lan",
                "--role",
                "sales",
                "--role",
                "team_leader",
                "--password",
                "mat-khau-lan",
            ]
        )
        == 0
    )
    assert main(["users", "add", "lan", "--if-missing", "--role", "sales"]) == 0
    assert main(["users", "add", "bad", "--role", "wizard", "--password", "mat-khau-123"]) == 1
    assert main(["users", "add", "short", "--role", "sales", "--password", "123"]) == 1
    capsys.readouterr()
    assert main(["users", "token", "lan"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "lan" in listing and "sales,team_leader" in listing and "1 token(s)" in listing and token not in listing
    runner = Runner(Settings.from_env({}, database_url=sqlite_url, clock="virtual"))
    assert users.verify_token(runner, token)["username"] == "lan"
    assert users.authenticate(runner, "lan", "mat-khau-lan")["full_name"] == "Nguyễn Thị Lan"
    assert users.get_user(runner, "bad") is None and users.get_user(runner, "short") is None
    runner.db.engine.dispose()
