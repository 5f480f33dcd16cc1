"""zalo.send and email.send through a runner: templates, deploy-time checks, render-time errors.

Delivery here is the ``log`` transport (the demo default); the real Zalo and SMTP
transports are tested against local servers in ``test_transports.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import BPMN, make_runner, with_crm

from handlers import messages
from runner.crm import customers as crm
from runner.crm.models import Customer, Staff
from runner.crm.settings import CrmSettings
from runner.errors import BadValue, DeploymentInvalid, Invalid, Missing, NotFound
from runner.queries import tasklists as inbox
from runner.registry import installed
from runner.service.runtime import Runner
from runner.settings import Settings

FIXTURES = BPMN / "messaging"
STARTS = ["2026-11-25T09:00:00+07:00", "2026-11-27T14:00:00+07:00"]
# The templates the contract names: (name, kinds).
CONTRACT_TEMPLATES = [
    ("mau_1", [messages.ZALO]),
    ("mau_2", [messages.ZALO]),
    ("mau_3", [messages.ZALO]),
    ("demo_account", [messages.ZALO, messages.EMAIL]),
    ("demo_confirmation", [messages.ZALO]),
    ("session_reminder", [messages.ZALO]),
    ("care_monthly", [messages.ZALO]),
    ("renewal_notice", [messages.ZALO]),
    ("sample_contract", [messages.EMAIL]),
    ("promotion", [messages.ZALO]),
    ("welcome_active", [messages.ZALO]),
]
# Every input parameter any template needs, as a diagram would pass them.
PARAMS = {
    "proposed_slots": STARTS,
    "teacher_name": "Trần Văn Minh",
    "session_starts": STARTS,
    "demo_at": "2026-11-20T15:30:00+07:00",
    "session_no": 2,
    "session_at": STARTS[1],
    "contract_link": "https://easyedu.vn/hop-dong-mau.pdf",
    "promotion": "Giảm 20% gói Pro 12 tháng",
}


def add_people(runner: Runner, customer_id: str = "KH0001", **fields: Any) -> None:
    """Staff and one customer, through the domain helper's API."""
    with runner.db.unit() as s:
        if s.get(Staff, "lan") is None:
            crm.add_staff(s, "lan", "Nguyễn Thị Lan", ["sales"], phone="0901234567", email="lan@easyedu.vn")
            crm.add_staff(s, "minh", "Trần Văn Minh", ["teacher"], phone="0912345678")
        values = {
            "owner": "lan",
            "teacher": "minh",
            "email": "hoamai@example.vn",
            "zalo_group_id": "g-hoamai",
            "zalo_user_id": "u-hoamai",
            "trial_link": "https://hoamai.easyedu.vn",
            "package": "Pro",
            "contract_start": "2026-11-25",
            "contract_end": "2027-11-24",
            **fields,
        }
        crm.add_customer(
            s,
            customer_id,
            "Trung tâm Anh ngữ Hoa Mai",
            now=runner.now(),
            **{k: v for k, v in values.items() if v is not None},
        )


@pytest.fixture
def messenger(runner: Runner) -> Iterator[Runner]:
    """A runner with the messaging fixtures deployed."""
    runner.deploy([FIXTURES / "schedule.bpmn", FIXTURES / "demo.bpmn"])
    yield runner


def run(runner: Runner, process: str, customer_id: str, data: dict[str, Any] | None = None) -> str:
    """Start an instance and run its handlers; its id."""
    instance_id = runner.start_instance(process, customer_id, data or {})
    runner.run_due()
    return instance_id


# --- templates ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kinds"), CONTRACT_TEMPLATES)
def test_every_contract_template_exists_checks_clean_and_renders(runner: Runner, name: str, kinds: list[str]) -> None:
    add_people(runner)
    raw = {key: "${" + key + "}" for key in PARAMS}
    with runner.db.read() as s:
        values = messages.variables(s, "KH0001", PARAMS)
    for kind in kinds:
        assert messages.check(name, kind, raw) == []
        text = messages.render_email(name, values)[1] if kind == messages.EMAIL else messages.render(name, kind, values)
        assert "Trung tâm Anh ngữ Hoa Mai" in text
        assert "{{" not in text and "{%" not in text and "None" not in text


def test_templates_name_what_the_procedures_ask_for(runner: Runner) -> None:
    add_people(runner)
    with runner.db.read() as s:
        values = messages.variables(s, "KH0001", PARAMS)
    mau_1 = messages.render("mau_1", messages.ZALO, values)
    assert "- Buổi 1: 09:00 Thứ Tư, 25/11/2026\n- Buổi 2: 14:00 Thứ Sáu, 27/11/2026" in mau_1
    assert "Trần Văn Minh" in mau_1
    mau_2 = messages.render("mau_2", messages.ZALO, values)
    assert "online.emso.vn/TrungTamAnhNguHoaMai" in mau_2 and "SĐT 0912345678" in mau_2
    reminder = messages.render("session_reminder", messages.ZALO, values)
    assert "buổi đào tạo số 2 lúc 14:00 Thứ Sáu, 27/11/2026" in reminder and "Máy tính" in reminder
    subject, body = messages.render_email("demo_account", values)
    assert subject == "[EasyEdu] Tài khoản dùng thử Easy Edu Platform - Trung tâm Anh ngữ Hoa Mai"
    assert "https://hoamai.easyedu.vn" in body and "Nguyễn Thị Lan" in body
    renewal = messages.render("renewal_notice", messages.ZALO, values)
    assert "gói Pro" in renewal and "24/11/2027" in renewal


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-11-29T19:30:00+07:00", "19:30 Chủ Nhật, 29/11/2026"),
        ("2026-11-23T08:05:00+07:00", "08:05 Thứ Hai, 23/11/2026"),
        ("2026-11-24", "24/11/2026"),
    ],
)
def test_dates_read_the_vietnamese_way(value: str, shown: str) -> None:
    assert messages.datetime_vn(value) == shown


def test_room_link_is_the_customer_name_without_marks() -> None:
    assert messages.room_link("Trung tâm Đức Trí - Cơ sở 2") == "online.emso.vn/TrungTamDucTriCoSo2"
    with pytest.raises(BadValue, match="no meeting room name"):
        messages.room_link(" - ")


def test_an_empty_value_stops_the_message_naming_the_field(runner: Runner) -> None:
    add_people(runner, package=None)
    with runner.db.read() as s:
        values = messages.variables(s, "KH0001", {"promotion": "  "})
    with pytest.raises(BadValue, match=r"renewal_notice.txt: customer.package has no value"):
        messages.render("renewal_notice", messages.ZALO, values)
    with pytest.raises(BadValue, match=r"promotion.txt: input parameter 'promotion' has no value"):
        messages.render("promotion", messages.ZALO, values)
    with pytest.raises(Missing, match="template 'mau_9' does not exist"):
        messages.render("mau_9", messages.ZALO, values)


# --- deploy-time checks ------------------------------------------------------------------------


def test_deploy_refuses_bad_templates_and_names_each_element(runner: Runner) -> None:
    with pytest.raises(DeploymentInvalid) as caught:
        runner.deploy([FIXTURES / "bad_templates.bpmn"])
    found = {(p.element_id, p.reason) for p in caught.value.problems}
    assert found == {
        (
            "no_such_template",
            "template 'mau_22' does not exist (processes/templates/mau_22.txt); did you mean 'mau_2'?",
        ),
        (
            "missing_variable",
            "template mau_1.txt uses 'proposed_slots', which is neither customer, owner, "
            "teacher nor an input parameter of this task",
        ),
        ("computed_template", "input parameter 'to' is 'everyone'; use 'group' or 'user'"),
        (
            "computed_template",
            "input parameter 'template' is '${which}'; it must be a template name (not an "
            "expression), so that the template can be checked at deployment",
        ),
        ("zalo_only_template", "input parameter 'to': 'khong-phai-email' is not an e-mail address"),
        ("zalo_only_template", "template 'mau_2' does not exist (processes/templates/mau_2.email.txt)"),
        (
            "no_template",
            "input parameter 'template' is missing or not a plain name; name a template of processes/templates",
        ),
    }
    with runner.db.read() as s, pytest.raises(NotFound):
        runner.latest_version(s, "msg_bad")  # nothing of the deployment was stored


def test_field_that_the_customer_does_not_have_is_a_deploy_problem(tmp_path: Path) -> None:
    (tmp_path / "typo.txt").write_text(
        "{{ customer.nmae }} {{ owner.fullname }} {{ teacher['phone'] }}\n", encoding="utf-8"
    )
    (tmp_path / "broken.txt").write_text("Chào {{ customer.name \n", encoding="utf-8")
    (tmp_path / "nosubject.email.txt").write_text("Chào {{ customer.name }}\n", encoding="utf-8")

    assert messages.check("typo", messages.ZALO, {}, tmp_path) == [
        "template typo.txt uses customer.nmae, which is not a field of the customer; did you mean 'customer.name'?",
        "template typo.txt uses owner.fullname, which is not a field of the owner; did you mean 'owner.full_name'?",
    ]
    [syntax] = messages.check("broken", messages.ZALO, {}, tmp_path)
    assert syntax.startswith("template broken.txt line 1: ")
    assert messages.check("nosubject", messages.EMAIL, {}, tmp_path) == [
        "e-mail template nosubject.email.txt must start with a 'Subject: ...' line"
    ]
    assert messages.check("typo", messages.ZALO, {"customer": "x"}, tmp_path)[0] == (
        "input parameter 'customer' would hide the customer's own data in the template; rename it"
    )


# --- handlers through the runner ----------------------------------------------------------------


def test_zalo_send_queues_the_rendered_schedule_for_the_customer_group(messenger: Runner) -> None:
    add_people(messenger)
    instance_id = run(messenger, "msg_schedule", "KH0001", {"session_starts": STARTS})

    details = inbox.instance(messenger, instance_id)
    assert details["status"] == "completed"
    assert details["data"]["last_message"] == "mau_2"
    [message] = inbox.outbox(messenger)
    assert message["channel"] == "zalo" and message["business_key"] == "KH0001"
    assert message["idempotency_key"].endswith("/mau_2")
    payload = message["payload"]
    assert (payload["to"], payload["recipient_id"], payload["template"]) == ("group", "g-hoamai", "mau_2")
    assert "- Buổi 2: 14:00 Thứ Sáu, 27/11/2026" in payload["text"]
    assert "Giáo viên phụ trách: Trần Văn Minh" in payload["text"]

    assert messenger.deliver_outbox() == 1  # the log transport: recorded, marked sent
    assert inbox.outbox(messenger)[0]["state"] == "sent"


def test_handlers_render_from_the_template_folder_the_crm_settings_name(
    sqlite_url: str, registry, tmp_path: Path
) -> None:
    """RUNNER_TEMPLATES (``CrmSettings.templates``) is the folder zalo.send and email.send render from."""
    (tmp_path / "mau_2.txt").write_text("Lịch của {{ customer.name }} (thư mục riêng)\n", encoding="utf-8")
    crm_settings = CrmSettings.from_env({"RUNNER_TEMPLATES": str(tmp_path)})
    runner = make_runner(sqlite_url, registry, extensions=with_crm(crm_settings))
    try:
        runner.deploy([FIXTURES / "schedule.bpmn"])
        add_people(runner)
        run(runner, "msg_schedule", "KH0001", {"session_starts": STARTS})
        [message] = inbox.outbox(runner)
        assert message["payload"]["text"] == "Lịch của Trung tâm Anh ngữ Hoa Mai (thư mục riêng)\n"
    finally:
        runner.db.engine.dispose()


def test_demo_goes_out_by_email_and_to_the_customer_on_zalo(messenger: Runner) -> None:
    add_people(messenger)
    instance_id = run(messenger, "msg_demo", "KH0001")

    data = inbox.instance(messenger, instance_id)["data"]
    assert (data["last_email"], data["last_message"]) == ("demo_account", "demo_account")
    email, zalo = inbox.outbox(messenger)
    assert email["channel"] == "email"
    assert email["payload"]["to"] == ["hoamai@example.vn"]
    assert email["payload"]["subject"].startswith("[EasyEdu] Tài khoản dùng thử")
    assert "https://hoamai.easyedu.vn" in email["payload"]["body"]
    assert zalo["channel"] == "zalo" and zalo["payload"]["to"] == "user"
    assert zalo["payload"]["recipient_id"] == "u-hoamai"
    assert "Em cũng đã gửi thông tin chi tiết qua email hoamai@example.vn." in zalo["payload"]["text"]


def test_missing_zalo_group_is_an_incident_naming_the_field(messenger: Runner) -> None:
    add_people(messenger, zalo_group_id=None)
    instance_id = run(messenger, "msg_schedule", "KH0001", {"session_starts": STARTS})
    for _ in range(3):
        messenger.advance_clock(timedelta(minutes=5))

    [incident] = inbox.incidents(messenger, instance_id=instance_id)
    assert incident["element_id"] == "announce" and incident["tries"] == 3
    assert "customer KH0001 has no zalo_group_id" in incident["error"]
    assert inbox.outbox(messenger) == []


def test_no_teacher_yet_fails_until_one_is_assigned_then_the_retry_sends(messenger: Runner) -> None:
    add_people(messenger, teacher=None)
    instance_id = run(messenger, "msg_schedule", "KH0001", {"session_starts": STARTS})
    for _ in range(3):
        messenger.advance_clock(timedelta(minutes=5))
    [incident] = inbox.incidents(messenger, instance_id=instance_id)
    assert "template mau_2.txt: customer KH0001 has no teacher assigned" in incident["error"]
    assert inbox.outbox(messenger) == []

    with messenger.db.unit() as s:
        s.get(Customer, "KH0001").teacher = "minh"
    messenger.retry_incident(incident["id"], actor="admin")
    messenger.run_due()

    [message] = inbox.outbox(messenger)
    assert "Trần Văn Minh" in message["payload"]["text"]
    assert inbox.instance(messenger, instance_id)["status"] == "completed"


def test_email_without_an_address_names_the_field(messenger: Runner) -> None:
    add_people(messenger, email=None)
    instance_id = run(messenger, "msg_demo", "KH0001")
    [job] = inbox.instance(messenger, instance_id)["jobs"]
    assert job["element_id"] == "mail_demo"
    assert "customer KH0001 has no email" in job["last_error"]


def test_transport_setting_is_checked() -> None:
    settings = CrmSettings.from_env({"RUNNER_TRANSPORTS": " zalo = zalo_oa ,email=smtp"})
    assert (settings.transport_for("zalo"), settings.transport_for("email")) == ("zalo_oa", "smtp")
    assert CrmSettings.from_env({}).transport_for("zalo") == "log"
    with pytest.raises(Invalid, match="RUNNER_TRANSPORTS item 'zalo' must look like channel=transport"):
        CrmSettings.from_env({"RUNNER_TRANSPORTS": "zalo"})
    with pytest.raises(Invalid, match="RUNNER_SMTP_STARTTLS: expected a yes/no value"):
        CrmSettings.from_env({"RUNNER_SMTP_STARTTLS": "maybe"})
    assert CrmSettings.from_env({"RUNNER_SMTP_PORT": "2525", "RUNNER_SMTP_STARTTLS": "yes"}).smtp_port == 2525
    assert CrmSettings.from_env({"RUNNER_SMTP_STARTTLS": "yes"}).smtp_starttls is True
    assert "secret" not in repr(CrmSettings(zalo_access_token="secret", smtp_password="secret"))


def test_a_topic_check_sees_raw_parameters_and_a_broken_check_is_a_problem(sqlite_url: str, registry) -> None:
    seen: list[tuple[str, dict]] = []

    def needs_text(element_id: str, params: dict) -> list[str]:
        seen.append((element_id, params))
        return [] if params.get("text") else ["input parameter 'text' is missing"]

    def broken(element_id: str, params: dict) -> list[str]:
        raise KeyError("oops")

    registry.add_check("demo.echo", needs_text)
    other = registry.copy()
    other.add_check("demo.echo", broken)
    xml = (FIXTURES / "schedule.bpmn").read_bytes().replace(b'camunda:topic="zalo.send"', b'camunda:topic="demo.echo"')
    runner = make_runner(sqlite_url, other)
    try:
        with pytest.raises(DeploymentInvalid) as caught:
            runner.deploy({"echo.bpmn": xml})
    finally:
        runner.db.engine.dispose()
    assert [(p.element_id, p.reason) for p in caught.value.problems] == [
        ("announce", "input parameter 'text' is missing"),
        ("announce", "the deploy-time check of topic 'demo.echo' failed: KeyError: 'oops'"),
    ]
    assert seen == [("announce", {"template": "mau_2", "to": "group", "session_starts": "${session_starts}"})]
    assert registry.checks()["demo.echo"] == [needs_text]  # the copy's extra check stayed in the copy


def test_deployment_checks_templates_in_the_folder_the_settings_name(sqlite_url: str, tmp_path: Path) -> None:
    """A registry built for settings whose RUNNER_TEMPLATES names a folder checks templates there, at deployment."""
    (tmp_path / "rieng.txt").write_text("Lịch của {{ customer.name }}\n", encoding="utf-8")
    diagram = (FIXTURES / "schedule.bpmn").read_bytes().replace(b">mau_2<", b">rieng<")
    settings = Settings.from_env({"RUNNER_DATABASE_URL": sqlite_url, "RUNNER_TEMPLATES": str(tmp_path)})
    crm_settings = CrmSettings.from_env(settings.environ)
    elsewhere = make_runner(sqlite_url, installed(settings=settings), extensions=with_crm(crm_settings))
    default = make_runner(sqlite_url, installed(), extensions=with_crm(CrmSettings()))
    try:
        with pytest.raises(DeploymentInvalid, match="template 'rieng' does not exist"):
            default.deploy({"schedule.bpmn": diagram})
        [deployed] = elsewhere.deploy({"schedule.bpmn": diagram})
        assert deployed.process_key == "msg_schedule"
    finally:
        elsewhere.db.engine.dispose()
        default.db.engine.dispose()
