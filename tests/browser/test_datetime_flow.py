"""A sales rep books the demo at a real time in the survey form: typed dd/mm/yyyy hh:mm, refused in the
past of the virtual clock, and reminded an hour before the time typed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import (
    START,
    add_customer,
    advance,
    company,
    complete,
    instance_of,
    outbox,
    runner_at,
    settle,
    start,
    task,
)
from tests.test_process_sales import KH, PROCESSES, SURVEY, at, timers_scheduled
from tests.webapp import add_user


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The company at Monday 7 December 2026 09:00 (virtual clock), its lead called and reached by an."""
    r = runner_at(sqlite_url, registry, START)
    company(r)
    add_customer(r, KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn")
    r.deploy([PROCESSES])
    start(r, "sales", KH)
    complete(r, KH, "Task_verify", {"verdict": "good"}, by="an")
    complete(r, KH, "Task_call", {"call_result": "reached"}, by="an")
    add_user(r, "an", ["sales"], full_name="Đỗ Thị An")
    yield r
    r.db.engine.dispose()


def test_the_demo_is_booked_at_the_typed_local_time(live_server, page, sign_in, shot) -> None:
    runner = live_server.runner
    survey = task(runner, KH, "Task_survey")
    sign_in("an")
    page.goto(f"{live_server.url}/inbox/tasks/{survey['id']}")
    assert page.get_attribute("#f-demo_at", "placeholder") == "ngày/tháng/năm giờ:phút, ví dụ 25/12/2026 09:30"
    for field in ("business_model", "course_model", "zalo_user_id", "trial_link", "call_note"):
        page.fill(f"#f-{field}", SURVEY[field])
    page.check("#f-dedicated_department")
    page.fill("#f-staff_count", "12")
    page.fill("#f-student_count", "1.350")  # thousands as staff write them
    page.fill("#f-demo_at", "07/12/2026 08:30")  # half an hour before the virtual clock
    page.click("button:has-text('Hoàn thành')")
    error = page.locator("[data-field=demo_at] .error").inner_text()
    assert error == "Lịch hẹn Demo (ngày giờ) phải là thời điểm trong tương lai."
    assert page.locator(".field.invalid").count() == 1
    shot(page, "1-demo-in-the-past")

    page.fill("#f-demo_at", "09/12/2026 10:00")
    page.click("button:has-text('Hoàn thành')")
    assert "Đã hoàn thành" in page.locator(".flashes").inner_text()
    data = instance_of(runner, KH, "sales")["data"]
    assert (data["demo_at"], data["student_count"]) == ("2026-12-09T10:00:00+07:00", 1350)
    settle(runner)  # what a worker does: the demo account's e-mail and Zalo, then the reminder timer
    assert timers_scheduled(runner, KH, "Timer_demo_reminder") == [at(9, 9)]
    advance(runner, to=at(9, 9))
    assert outbox(runner, KH)[-1]["payload"]["template"] == "demo_confirmation"

    confirm = task(runner, KH, "Task_confirm")
    page.goto(f"{live_server.url}/inbox/tasks/{confirm['id']}")
    assert page.input_value("#f-demo_at") == "09/12/2026 10:00"  # the stored time, shown as staff typed it
    shot(page, "2-confirm-shows-the-time")
