"""runner.demo: the demo company `make run` loads, built by running the processes on the virtual clock.

The company is loaded once for the module (on a fresh SQLite file, the clock at a fixed
Monday) and the tests read it: stages of both pipelines, how the customers got there,
logins, teachers' hours, and that loading it again changes nothing. Loading takes about
20 seconds, so those tests are marked slow; the command's refusals are quick.
"""

from __future__ import annotations

import contextlib
import io
import stat
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from runner.cli import main
from runner.crm import bookings as calendar
from runner.crm import customers as crm
from runner.crm import demo
from runner.crm.demo.company import PLANS, STAFF
from runner.crm.models import ROLES, Booking, Customer
from runner.model import worktime
from runner.queries import tasklists as inbox
from runner.registry import installed
from runner.service import accounts as users
from runner.service.runtime import Runner
from runner.store import schema as db
from tests.scenario import START, TZ, runner_at

ROOT = Path(__file__).resolve().parents[1]  # the checkout
PROCESSES = ROOT / "processes"
TABLES = (
    "staff",
    "accounts",
    "customers",
    "customer_tags",
    "customer_notes",
    "orders",
    "contracts",
    "availability",
    "bookings",
    "instances",
    "history",
    "user_tasks",
    "timers",
    "jobs",
    "outbox",
    "incidents",
    "subscriptions",
    "process_versions",
    "stop_care_reasons",
    "booking_slots",
)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runner, str]]:
    """The demo company on SQLite, loaded with the default passwords; (runner, what it printed)."""
    folder = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{folder / 'runner.db'}"
    db.upgrade(url)
    runner = runner_at(url, installed(), START, instance_path=str(folder))
    runner.deploy([PROCESSES])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        demo.run(runner, env={})
    yield runner, out.getvalue()
    runner.db.engine.dispose()


@pytest.fixture
def r(loaded: tuple[Runner, str]) -> Runner:
    return loaded[0]


def customer_ids(r: Runner) -> list[str]:
    with r.db.read() as s:
        return list(s.scalars(sa.select(Customer.id).order_by(Customer.id)))


def stage_counts(r: Runner) -> dict[str, Counter]:
    """Pipeline -> stage -> customers, from runner.crm's derived current stage of each customer."""
    counts: dict[str, Counter] = {pipeline: Counter() for pipeline in crm.STAGES}
    with r.db.read() as s:
        for customer_id in customer_ids(r):
            for pipeline, stage in crm.current_stages(s, customer_id).items():
                counts[pipeline][stage] += 1
    return counts


@pytest.mark.slow
def test_every_stage_of_both_pipelines_has_customers(r: Runner) -> None:
    ids = customer_ids(r)
    assert len(ids) == len(PLANS) >= 40
    counts = stage_counts(r)
    for pipeline, stages in crm.STAGES.items():
        assert {stage: counts[pipeline][stage] for stage in stages if counts[pipeline][stage] == 0} == {}, pipeline
        assert set(counts[pipeline]) == set(stages)  # nothing outside the pipeline's columns
    assert sum(counts["Trong bán hàng"].values()) == len(ids)  # every customer came through sales
    # every post-sale customer was won in sales first
    assert sum(counts["Sau bán hàng"].values()) <= counts["Trong bán hàng"]["Chốt"]
    with r.db.read() as s:
        board = crm.board(s, "Sau bán hàng")
    assert sum(len(column) for column in board.values()) == sum(counts["Sau bán hàng"].values())


@pytest.mark.slow
def test_customers_were_moved_by_the_processes_and_their_staff(r: Runner) -> None:
    roles = {u["username"]: set(u["roles"]) for u in users.list_users(r)}
    with r.db.read() as s:
        created_at = dict(s.execute(sa.select(Customer.id, Customer.created_at)).all())
    for customer_id in customer_ids(r):
        events = inbox.history(r, business_key=customer_id)
        started = events[0]
        assert (started["event"], started["process_key"], started["actor"]) == ("instance.started", "sales", "thuy")
        assert started["at"] == created_at[customer_id].replace(tzinfo=started["at"].tzinfo)
        # the stage shown is the last one the engine entered in that pipeline
        with r.db.read() as s:
            shown = crm.current_stages(s, customer_id)
        for pipeline, stage in shown.items():
            entered = [
                h["details"]["stage"]
                for h in events
                if h["event"] == "stage.entered" and crm.PIPELINES[h["process_key"]] == pipeline
            ]
            assert entered and entered[-1] == stage, (customer_id, pipeline, entered)
        # every task was completed by someone whose inbox held it
        offered = {h["details"]["task_id"]: h["details"] for h in events if h["event"] == "task.created"}
        for done in (h for h in events if h["event"] == "task.completed"):
            task = offered[done["details"]["task_id"]]
            assert done["actor"] == task["assignee"] or roles[done["actor"]] & set(task["candidate_groups"]), (
                customer_id,
                done["element_id"],
                done["actor"],
                task,
            )
    assert inbox.incidents(r) == []
    assert {m["state"] for m in inbox.outbox(r)} == {"sent"}  # through the log transport


@pytest.mark.slow
def test_customers_further_along_started_earlier(r: Runner) -> None:
    now = r.now()
    with r.db.read() as s:
        created = dict(s.execute(sa.select(Customer.id, Customer.created_at)).all())
        stages = {key: crm.current_stages(s, key) for key in created}
    age = {key: now - at.replace(tzinfo=now.tzinfo) for key, at in created.items()}
    sales = [key for key, st in stages.items() if "Sau bán hàng" not in st]
    cared = [key for key, st in stages.items() if st.get("Sau bán hàng") in ("CHĂM SÓC TÁI KÝ", "KHÓA")]
    assert max(age[k] for k in sales) < min(age[k] for k in cared)
    assert max(age.values()) > timedelta(days=100) and min(age.values()) < timedelta(hours=1)
    # so the board's "days in stage" differ: customers entered their stages on many different days
    entered = {h["at"].astimezone(TZ).date() for h in inbox.history(r, events=["stage.entered"])}
    assert len(entered) > 30


@pytest.mark.slow
def test_staff_of_every_role_sign_in_with_the_demo_passwords(r: Runner) -> None:
    secrets = demo.passwords({}, Path(r.settings.instance_path))
    for role in ROLES:
        staff = users.list_users(r, role=role)
        assert staff, role
        for user in staff:
            signed_in = users.authenticate(r, user["username"], secrets[user["username"]], now=r.now())
            assert role in signed_in["roles"]
    assert len(users.list_users(r)) >= 6
    assert len(users.list_users(r, role="sales")) >= 2 and len(users.list_users(r, role="customer_care")) >= 2
    with pytest.raises(users.BadLogin):
        users.authenticate(r, "hung", secrets["admin"], now=r.now())


def test_demo_passwords_come_from_the_environment(tmp_path: Path) -> None:
    secrets = demo.passwords({"DEMO_PASSWORD": "matkhau-demo", "DEMO_ADMIN_PASSWORD": "quantri-demo"}, tmp_path)
    assert secrets["admin"] == "quantri-demo"
    assert {secrets[u] for u in secrets if u != "admin"} == {"matkhau-demo"}


@pytest.mark.slow
def test_the_readme_lists_every_demo_login_with_its_role_and_password() -> None:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Demo company", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| `")
    ]
    listed = {name.strip(" `"): (role, password) for names, role, password in rows for name in names.split(",")}
    assert set(listed) == {username for username, _, _, _ in STAFF}
    for username, _, roles, _ in STAFF:
        role, password = listed[username]
        assert role in roles and "DEMO_" in password and "random" in password, username
    assert {role for role, _ in listed.values()} == set(ROLES)


def test_three_teachers_have_weekly_hours_and_teach_the_customers(r: Runner) -> None:
    teachers = [u["username"] for u in users.list_users(r, role="teacher")]
    assert len(teachers) == 3
    with r.db.read() as s:
        for username in teachers + [u["username"] for u in users.list_users(r, role="customer_care")]:
            assert calendar.availability(s, username), username
        taught = set(s.scalars(sa.select(Booking.teacher).where(Booking.kind == "training")))
        cared = set(s.scalars(sa.select(Booking.teacher).where(Booking.kind == "care")))
    assert len(taught) >= 2 and taught <= set(teachers)
    assert cared and cared <= {u["username"] for u in users.list_users(r, role="customer_care")}


def test_the_company_business_calendar_is_seeded_and_no_lead_was_reassigned_out_of_hours(r: Runner) -> None:
    cal = r.business_calendar()
    assert (cal["hours"]["mon"], cal["hours"]["sat"], cal["hours"]["sun"], cal["country"]) == (
        "08:00-17:30",
        "08:00-12:00",
        "",
        "VN",
    )
    # NOTE: a business-time timer may fall due as working time runs out (17:30), never later.
    value = worktime.default_calendar(r.settings.tz)
    for h in inbox.history(r, events=["timer.fired"]):
        if h["element_id"] == "Timer_60":
            minute_before = h["at"] - timedelta(minutes=1)
            assert worktime.is_working_time(value, minute_before), h


@pytest.mark.slow
def test_the_summary_lists_every_stage_and_the_logins(loaded: tuple[Runner, str]) -> None:
    r, printed = loaded
    counts = stage_counts(r)
    for pipeline, stages in crm.STAGES.items():
        assert f"{pipeline}:" in printed
        for stage in stages:
            assert f"  {stage:<18} {counts[pipeline][stage]:>2}" in printed
    for username, password in demo.passwords({}, Path(r.settings.instance_path)).items():
        assert f"  {username:<7} {password:<16}" in printed


def snapshot(r: Runner) -> dict[str, object]:
    with r.db.read() as s:
        counts = {t: s.scalar(sa.text(f"select count(*) from {t}")) for t in TABLES}
        counts["history_last"] = s.scalar(sa.text("select max(id) from history"))
        counts["clock"] = s.scalar(sa.text("select now from clock where name = 'virtual'"))
    return counts


@pytest.mark.slow
def test_loading_it_again_changes_nothing(r: Runner, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(r)
    demo.run(r, env={})
    assert snapshot(r) == before
    assert f"already has {before['customers']} customers" in capsys.readouterr().out


# --- the `runner demo` command refuses what would go wrong ---------------------------------------


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("RUNNER_DATABASE_URL", url)
    monkeypatch.setenv("RUNNER_CLOCK", "virtual")
    monkeypatch.delenv("RUNNER_TRANSPORTS", raising=False)
    assert main(["db", "upgrade"]) == 0
    return url


def _customers(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        count = conn.scalar(sa.text("select count(*) from customers"))
    engine.dispose()
    return count


def test_runner_demo_needs_the_processes_deployed(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 1
    assert "runner deploy processes" in capsys.readouterr().err
    assert _customers(env) == 0


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("RUNNER_TRANSPORTS", "zalo=zalo_oa", "RUNNER_TRANSPORTS sends zalo for real"),
        ("RUNNER_CLOCK", "system", "RUNNER_CLOCK=virtual"),
    ],
)
def test_runner_demo_refuses_real_messages_and_the_real_clock(
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    assert main(["deploy", str(PROCESSES)]) == 0
    monkeypatch.setenv(variable, value)
    assert main(["demo"]) == 1
    assert message in capsys.readouterr().err
    assert _customers(env) == 0


def test_without_the_settings_each_installation_gets_its_own_random_demo_passwords(tmp_path: Path) -> None:
    first = demo.passwords({}, tmp_path / "a")
    assert demo.passwords({}, tmp_path / "a") == first  # kept: the summary prints what was set
    second = demo.passwords({}, tmp_path / "b")
    assert first["admin"] != second["admin"] and first["hung"] != second["hung"]
    assert first["admin"] != first["hung"] and len(first["hung"]) >= 12
    assert stat.S_IMODE((tmp_path / "a" / demo.PASSWORD_FILE).stat().st_mode) == 0o600


def test_no_demo_password_is_written_in_the_code() -> None:
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "runner" / "crm" / "demo").glob("*.py"))
    assert "easyedu123" not in code and "admin123" not in code
    assert "admin123" not in (ROOT / "Makefile").read_text(encoding="utf-8")
