"""Pages show people by their full names, never by login (issue 12: "Người làm: hung" becomes the name).

One sales rep, ``hung`` (Nguyễn Văn Hùng), works a lead; every page that names a person
(task page, inbox, customer page and timeline, the instance diagram, admin pages) shows
"Nguyễn Văn Hùng", and "hung" stays only where it is an identifier (addresses, form values,
the login field of his admin page).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import START, add_customer, company, complete, runner_at, settle, start, task
from tests.webapp import WebClient, add_user

PROCESSES = Path(__file__).resolve().parents[1] / "processes"
HUNG, HUNG_NAME = "hung", "Nguyễn Văn Hùng"
BOSS, BOSS_NAME = "quantri", "Trần Thị Quản Trị"
KH = "KH0001"
STAFF = (
    (HUNG, HUNG_NAME, ("sales",), "0901000010"),
    ("tuan", "Nguyễn Minh Tuấn", ("team_leader",), "0901000005"),
    ("mai", "Lê Thị Mai", ("marketing",), "0901000001"),
)


def _text(page: str) -> str:
    """What a reader sees: the page without its tags (attribute values are identifiers, not labels)."""
    return " ".join(re.sub(r"<[^>]*>", " ", page).split())


def _bare(login: str, page: str) -> list[str]:
    """Each place where the login stands alone in the visible text, with a little context."""
    text = _text(page)
    return [text[max(0, m.start() - 30) : m.end() + 30] for m in re.finditer(rf"(?<![\w@./]){login}(?![\w@])", text)]


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """A company whose only rep is hung; his lead was verified and the call is his now."""
    r = runner_at(sqlite_url, registry, START)
    company(r, STAFF)
    add_user(r, HUNG, [])  # a sign-in account for the staff member
    add_user(r, BOSS, ["admin"], full_name=BOSS_NAME)
    add_customer(r, KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn")
    r.deploy([PROCESSES], actor=BOSS)
    start(r, "sales", KH)
    complete(r, KH, "Task_verify", {"verdict": "good"}, by=HUNG)
    settle(r)
    yield r
    r.db.engine.dispose()


def test_the_task_page_names_the_assignee_and_the_notes_author(client: WebClient, runner: Runner) -> None:
    client.login(HUNG)
    call = task(runner, KH, "Task_call")
    assert client.post(f"/customers/{KH}/notes", data={"text": "Khách hẹn gọi lại"}).status_code == 302
    page = client.get(f"/inbox/tasks/{call['id']}").get_data(as_text=True)
    assert f"Người làm: {HUNG_NAME}" in _text(page)
    assert HUNG_NAME in _text(page.split("Khách hẹn gọi lại")[0].rsplit("<li", 1)[-1])  # the note's author
    assert _bare(HUNG, page) == []


def test_the_inbox_of_all_tasks_names_the_assignee(client: WebClient, runner: Runner) -> None:
    client.login(BOSS)
    page = client.get("/inbox/all").get_data(as_text=True)
    assert HUNG_NAME in _text(page)
    assert _bare(HUNG, page) == []
    claimed = client.post(
        f"/inbox/tasks/{task(runner, KH, 'Task_call')['id']}/reassign", data={"to": HUNG, "next": "/inbox/all"}
    )
    assert claimed.status_code == 302
    assert f"cho {HUNG_NAME}" in _text(client.get("/inbox/all").get_data(as_text=True))


def test_the_customer_page_and_timeline_name_people(client: WebClient, runner: Runner) -> None:
    client.login(HUNG)
    client.post(f"/customers/{KH}/notes", data={"text": "Đã gọi, khách bận"})
    client.logout()
    client.login(BOSS)
    page = client.get(f"/customers/{KH}").get_data(as_text=True)
    text = _text(page)
    assert f"hoàn thành bởi {HUNG_NAME}" in text  # Task_verify, in the timeline
    assert text.count(HUNG_NAME) >= 3  # owner, open task's assignee, the note's author, ...
    assert _bare(HUNG, page) == []


def test_the_instance_diagram_names_who_the_task_waits_for(client: WebClient, runner: Runner) -> None:
    client.login(BOSS)
    [instance] = inbox.instances(runner, business_key=KH)
    page = client.get(f"/instances/{instance['id']}/diagram").get_data(as_text=True)
    assert HUNG_NAME in _text(page)
    assert _bare(HUNG, page) == []


def test_admin_pages_name_people_and_keep_the_login_only_as_the_login(client: WebClient, runner: Runner) -> None:
    client.login(BOSS)
    user = client.get(f"/admin/users/{HUNG}").get_data(as_text=True)
    assert f"Người dùng › {HUNG_NAME}" in _text(user)
    assert [c for c in _bare(HUNG, user) if "Tên đăng nhập" not in c] == []  # the one labelled login field
    processes = client.get("/admin/processes").get_data(as_text=True)
    assert BOSS_NAME in _text(processes) and _bare(BOSS, processes) == []  # who deployed
    roles = client.post(f"/admin/users/{HUNG}/roles", data={"roles": ["sales"]})
    assert roles.status_code == 302
    assert f"Đã lưu vai trò của {HUNG_NAME}" in _text(client.get(f"/admin/users/{HUNG}").get_data(as_text=True))
