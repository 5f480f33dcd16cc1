"""Staff are reachable (issue 12): phone, Zalo id and e-mail on users, and gaps caught before the step.

A template that prints ``{{ owner.phone }}`` needs the owner's phone. The needs are read from
the diagrams and templates (``runner.crm.needs``); the round-robin skips a rep who lacks one,
and the admin users page and the deploy report list who would break which step.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.crm import contacts, gaps, needs
from runner.errors import BadValue
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service import accounts
from runner.service.runtime import Runner
from tests.scenario import START, add_customer, advance, company, complete, customer, messages, runner_at, settle, start
from tests.test_process_sales import SURVEY
from tests.webapp import PASSWORD, WebClient, add_user

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = ROOT / "processes"
TEMPLATES = PROCESSES / "templates"
KH = "KH0001"
NEW_REP = "ai"  # NOTE: before every other rep by username, so the round-robin would pick them first
OTHER_STAFF = (
    ("mai", "Lê Thị Mai", ("marketing",), "0901000001"),
    ("tuan", "Nguyễn Minh Tuấn", ("team_leader",), "0901000005"),
    ("minh", "Trần Văn Minh", ("teacher",), "0901000008"),
)


def _runner(url: str, registry: Registry, reps: tuple[tuple[str, str, tuple[str, ...], str], ...]) -> Runner:
    runner = runner_at(url, registry, START)
    company(runner, OTHER_STAFF + reps)
    add_customer(runner, KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn")
    runner.deploy([PROCESSES])
    return runner


@pytest.fixture
def r(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The company with one rep who has a phone (an) and a new one added without (ai)."""
    runner = _runner(sqlite_url, registry, (("an", "Đỗ Thị An", ("sales",), "0901000002"),))
    accounts.create_user(runner, NEW_REP, "Lý Văn Ái", ["sales"], password=PASSWORD, email="ai@easyedu.vn")
    yield runner
    runner.db.engine.dispose()


@pytest.fixture
def runner(r: Runner) -> Runner:
    """The web app's runner (``app``, ``client``) is the company's."""
    return r


@pytest.fixture
def alone(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """A company whose only sales rep is the new one, without a phone."""
    runner = _runner(sqlite_url, registry, ())
    accounts.create_user(runner, NEW_REP, "Lý Văn Ái", ["sales"], password=PASSWORD)
    yield runner
    runner.db.engine.dispose()


def _to_demo_email(runner: Runner, rep: str) -> None:
    """The rep verifies the lead, reaches the customer and completes the survey: the demo e-mail runs next."""
    complete(runner, KH, "Task_verify", {"verdict": "good"}, by=rep)
    complete(runner, KH, "Task_call", {"call_result": "reached"}, by=rep)
    complete(runner, KH, "Task_survey", SURVEY, by=rep)
    settle(runner)


# --- what the templates need -------------------------------------------------------------------


def test_the_sales_messages_need_the_owners_phone_and_a_guarded_use_is_no_need() -> None:
    found = needs.process_needs((PROCESSES / "sales.bpmn").read_bytes(), TEMPLATES)
    phone = {(n.element_id, n.template) for n in found if n.label == "owner.phone"}
    assert phone == {
        ("Svc_email_demo", "demo_account.email.txt"),
        ("Svc_zalo_demo", "demo_account.txt"),
        ("Svc_email_sample", "sample_contract.email.txt"),
    }
    assert {n.role for n in found} == {"sales"}
    onboarding = needs.process_needs((PROCESSES / "onboarding.bpmn").read_bytes(), TEMPLATES)
    # mau_2 prints the teacher's phone only {% if teacher.phone is defined %}: a teacher without one is fine
    assert {n.label for n in onboarding} == {"teacher.full_name"}


def test_a_guard_covers_only_its_own_block(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text(
        "{% if owner.phone is defined %}{{ owner.phone }}{% else %}{{ owner.email }}{% endif %}{{ teacher['phone'] }}"
    )
    assert needs.template_needs(tmp_path / "t.txt") == {("owner", "email"), ("teacher", "phone")}


# --- phone, Zalo id and e-mail -------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["0912 345 678", "+84 912 345 678", "84912345678", "(091) 234-5678"])
def test_a_phone_is_stored_in_one_format(typed: str) -> None:
    assert contacts.normalise_phone(typed) == "+84912345678"


@pytest.mark.parametrize(
    ("field", "value"),
    [("phone", "123"), ("phone", "abc"), ("zalo_user_id", "a b"), ("email", "ai@"), ("email", "a i@x.vn")],
)
def test_a_bad_value_is_refused_naming_the_field_and_nothing_changes(r: Runner, field: str, value: str) -> None:
    before = accounts.profile(r, NEW_REP)
    with pytest.raises(BadValue, match=f"^{field}:"):
        if field == "email":
            accounts.update_user(r, NEW_REP, full_name="Tên mới", email=value)
        else:
            accounts.update_user(r, NEW_REP, full_name="Tên mới", facts={field: value})
    assert accounts.profile(r, NEW_REP) == before


def test_a_user_is_added_with_phone_and_zalo_and_edited(r: Runner) -> None:
    accounts.create_user(r, "lan", "Nguyễn Thị Lan", ["sales"], password=PASSWORD, facts={"phone": "0912 000 111"})
    assert accounts.profile(r, "lan")["phone"] == "+84912000111"
    changed = accounts.update_user(r, "lan", email="lan@easyedu.vn", facts={"zalo_user_id": "zl-lan", "phone": ""})
    assert (changed["email"], changed["zalo_user_id"], changed["phone"]) == ("lan@easyedu.vn", "zl-lan", None)
    with pytest.raises(BadValue, match="^pager: no extension"):
        accounts.update_user(r, "lan", facts={"pager": "1"})


# --- the round-robin -------------------------------------------------------------------------------


def test_a_rep_without_a_phone_is_skipped_and_the_demo_email_raises_no_incident(r: Runner) -> None:
    start(r, "sales", KH)
    assert customer(r, KH)["owner"] == "an"  # ai comes first by name, but has no phone
    _to_demo_email(r, "an")
    assert inbox.incidents(r) == []
    assert ("email", "demo_account") in messages(r, KH)


def test_with_nobody_qualified_the_assignment_step_stops_naming_the_gap_and_a_phone_fixes_it(alone: Runner) -> None:
    instance_id = start(alone, "sales", KH)
    advance(alone, hours=1)  # NOTE: as when no rep is there at all: the step's tries run out, then an incident
    [incident] = inbox.incidents(alone)
    assert incident["element_id"] == "Svc_assign"  # the first step, not the demo e-mail three steps later
    assert "Lý Văn Ái (ai) has no phone" in incident["error"] and "demo_account.email.txt" in incident["error"]
    assert customer(alone, KH)["owner"] is None
    assert [t for t in inbox.tasks(alone, business_key=KH)] == []

    accounts.update_user(alone, NEW_REP, facts={"phone": "0901 000 009"})
    alone.retry_incident(incident["id"], "admin")
    settle(alone)
    assert customer(alone, KH)["owner"] == NEW_REP
    _to_demo_email(alone, NEW_REP)
    assert inbox.incidents(alone, instance_id=instance_id) == []
    assert ("email", "demo_account") in messages(alone, KH)


# --- the admin page, the deploy report --------------------------------------------------------------


def test_the_gaps_name_the_person_the_field_the_template_and_the_step(r: Runner) -> None:
    with r.db.read() as s:
        found = gaps.gaps(s, TEMPLATES)
    assert {(g["full_name"], g["field"], g["template"], g["element_id"]) for g in found} == {
        ("Lý Văn Ái", "phone", "demo_account.email.txt", "Svc_email_demo"),
        ("Lý Văn Ái", "phone", "demo_account.txt", "Svc_zalo_demo"),
        ("Lý Văn Ái", "phone", "sample_contract.email.txt", "Svc_email_sample"),
    }
    accounts.update_user(r, NEW_REP, facts={"phone": "0901000009"})
    assert accounts.people_gaps(r) == []


def test_the_deploy_report_lists_who_would_break_a_step(r: Runner) -> None:
    [sales] = [d for d in r.deploy([PROCESSES / "sales.bpmn"]) if d.process_key == "sales"]
    assert {(p.element_id, p.file) for p in sales.people} == {
        ("Svc_email_demo", "sales.bpmn"),
        ("Svc_zalo_demo", "sales.bpmn"),
        ("Svc_email_sample", "sales.bpmn"),
    }
    assert all("Lý Văn Ái (ai) has no phone" in p.reason for p in sales.people)
    assert sales.warnings == ()  # the orphan-task warnings stay apart


@pytest.fixture
def admin(client: WebClient, r: Runner) -> WebClient:
    add_user(r, "boss", ["admin"], full_name="Quản Trị Viên")
    assert client.login("boss").status_code == 302
    return client


def test_the_admin_users_page_lists_the_rep_without_a_phone_until_it_is_filled_in(admin: WebClient) -> None:
    page = admin.get("/admin/users").get_data(as_text=True)
    assert 'data-testid="staff-gaps"' in page
    assert 'data-user="ai" data-field="phone"' in page and "demo_account.email.txt" in page
    assert "Lý Văn Ái" in page

    refused = admin.post("/admin/users/ai/profile", data={"full_name": "Lý Văn Ái", "email": "", "phone": "12"})
    assert refused.status_code == 422
    assert "Số điện thoại không hợp lệ" in refused.get_data(as_text=True)
    assert 'value="12"' in refused.get_data(as_text=True)  # the form comes back as typed

    saved = admin.post(
        "/admin/users/ai/profile",
        data={"full_name": "Lý Văn Ái", "email": "ai@easyedu.vn", "phone": "0901 000 009", "zalo_user_id": "zl-ai"},
    )
    assert saved.status_code == 302
    page = admin.get("/admin/users/ai").get_data(as_text=True)
    assert "+84901000009" in page and "zl-ai" in page
    assert 'data-testid="staff-gaps"' not in admin.get("/admin/users").get_data(as_text=True)


def test_the_profile_form_needs_csrf_and_an_admin(client: WebClient, r: Runner) -> None:
    add_user(r, "boss", ["admin"], full_name="Quản Trị Viên")
    add_user(r, "sale2", ["sales"], full_name="Người Bán")
    client.login("sale2")
    assert client.post("/admin/users/ai/profile", data={"full_name": "X", "phone": "0901000009"}).status_code == 403
    client.logout()
    client.login("boss")
    assert client.post("/admin/users/ai/profile", data={"full_name": "X"}, csrf=False).status_code == 400
    assert client.post("/admin/users/nobody/profile", data={"full_name": "X"}).status_code == 404
    assert accounts.profile(r, NEW_REP)["full_name"] == "Lý Văn Ái"


def test_adding_a_user_on_the_admin_page_takes_the_phone_and_names_a_bad_one(admin: WebClient, r: Runner) -> None:
    form = {"username": "lan", "full_name": "Nguyễn Thị Lan", "password": "long-enough", "roles": "sales"}
    refused = admin.post("/admin/users", data={**form, "phone": "99"})
    assert refused.status_code == 422 and "Số điện thoại không hợp lệ" in refused.get_data(as_text=True)
    assert accounts.profile(r, "lan") is None  # nothing stored
    assert admin.post("/admin/users", data={**form, "phone": "0912 000 111"}).status_code == 302
    assert accounts.profile(r, "lan")["phone"] == "+84912000111"


def test_the_deploy_page_shows_the_people_warnings(admin: WebClient) -> None:
    files = {"files": [(io.BytesIO((PROCESSES / "sales.bpmn").read_bytes()), "sales.bpmn")]}
    page = admin.post("/admin/deploy", data=files, content_type="multipart/form-data").get_data(as_text=True)
    assert 'data-testid="people-warnings"' in page and "Lý Văn Ái (ai) has no phone" in page


# --- the CLI ---------------------------------------------------------------------------------------


def test_runner_users_add_and_edit_take_phone_zalo_and_email(sqlite_url: str, monkeypatch, capsys) -> None:
    from runner.cli import main
    from runner.crm.extension import easyedu
    from runner.settings import Settings

    monkeypatch.setenv("RUNNER_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RUNNER_CLOCK", "virtual")
    monkeypatch.setenv("RUNNER_USER_PASSWORD", PASSWORD)
    add = ["users", "add", "lan", "--name", "Nguyễn Thị Lan", "--role", "sales"]
    assert main([*add, "--phone", "12345"]) == 1  # refused before anything is stored
    assert "error: phone: '12345' is not a valid phone number" in capsys.readouterr().err
    assert main([*add, "--phone", "0912 345 678", "--zalo", "zl-lan", "--email", "lan@easyedu.vn"]) == 0
    assert main(["users", "edit", "lan", "--phone", "+84 912 000 111", "--name", "Nguyễn Thị Lan Anh"]) == 0
    assert "phone=+84912000111" in capsys.readouterr().out
    assert main(["users", "edit", "lan", "--email", "lan@"]) == 1
    assert "error: email: 'lan@' is not an e-mail address" in capsys.readouterr().err
    assert main(["users", "edit", "lan"]) == 1  # nothing to change
    assert main(["users", "edit", "nobody", "--zalo", "zl-x"]) == 1
    runner = Runner(Settings.from_env({}, database_url=sqlite_url, clock="virtual"), extensions=(easyedu(),))
    found = accounts.profile(runner, "lan")
    assert (found["full_name"], found["email"], found["phone"], found["zalo_user_id"]) == (
        "Nguyễn Thị Lan Anh",
        "lan@easyedu.vn",
        "+84912000111",
        "zl-lan",
    )
    runner.db.engine.dispose()


def test_the_deploy_api_lists_the_people_a_step_would_fail_on(app, r: Runner) -> None:
    add_user(r, "boss", ["admin"], full_name="Quản Trị Viên")
    token = accounts.issue_token(r, "boss", label="test")
    data = {"file": [(io.BytesIO((PROCESSES / "sales.bpmn").read_bytes()), "sales.bpmn")]}
    response = app.test_client().post(
        "/api/deployments", data=data, headers={"Authorization": f"Bearer {token}"}, content_type="multipart/form-data"
    )
    assert response.status_code in (200, 201)
    [sales] = [v for v in response.get_json()["versions"] if v["process_key"] == "sales"]
    assert sorted(p["element"] for p in sales["people"]) == ["Svc_email_demo", "Svc_email_sample", "Svc_zalo_demo"]
    assert all("Lý Văn Ái (ai) has no phone" in p["message"] for p in sales["people"])


# --- a lead that comes in (runner.crm.intake) --------------------------------------------------------


def test_a_lead_is_not_given_to_a_rep_without_a_phone_and_choosing_one_names_the_gap(r: Runner) -> None:
    from runner.crm.intake import create_lead
    from runner.errors import FormInvalid

    values = {"name": "Trung tâm Hoa Mai", "phone": "0987 654 321", "source": "Facebook"}
    facts = {"business_model": "Trung tâm", "dedicated_department": "có", "staff_count": 5, "student_count": 80}
    facts["course_model"] = "Theo khóa"
    with pytest.raises(FormInvalid) as caught:
        create_lead(r, {**values, **facts, "owner": NEW_REP}, actor="mai")
    assert caught.value.errors == {
        "owner": "field 'owner': Lý Văn Ái has no phone, which demo_account.email.txt, demo_account.txt, "
        "sample_contract.email.txt print"
    }
    created = create_lead(r, {**values, **facts}, actor="mai")
    settle(r)
    assert created.owner == "an" and customer(r, created.customer_id)["owner"] == "an"
