"""The admin page of the business calendar (web/admin/calendar.py): hours, holidays, company days off."""

from __future__ import annotations

import pytest

from runner.service.runtime import Runner
from tests.webapp import WebClient

HOURS = {
    **{f"hours_{d}": "08:00-12:00, 13:30-17:30" for d in ("mon", "tue", "wed", "thu", "fri")},
    "hours_sat": "08:00-12:00",
    "hours_sun": "",
    "country": "VN",
}


@pytest.fixture
def admin(client: WebClient, staff) -> WebClient:
    assert client.login("admin1").status_code == 302
    return client


def test_the_page_shows_the_default_hours_and_the_lunar_holidays(admin: WebClient, runner: Runner) -> None:
    page = admin.get("/admin/calendar").get_data(as_text=True)
    assert 'value="08:00-17:30"' in page and 'value="08:00-12:00"' in page
    assert "Tết Nguyên Đán" in page or "Lunar New Year" in page
    assert 'name="csrf_token"' in page


def test_an_admin_saves_hours_and_adds_and_removes_a_day_off(admin: WebClient, runner: Runner) -> None:
    assert admin.post("/admin/calendar", data=HOURS).status_code == 302
    assert runner.business_calendar()["hours"]["mon"] == "08:00-12:00, 13:30-17:30"
    assert admin.post("/admin/calendar/days-off", data={"day": "2026-12-24", "note": "Tất niên"}).status_code == 302
    assert runner.business_calendar()["days_off"] == [{"day": "2026-12-24", "note": "Tất niên"}]
    assert "Tất niên" in admin.get("/admin/calendar").get_data(as_text=True)
    assert admin.post("/admin/calendar/days-off/2026-12-24/delete").status_code == 302
    assert runner.business_calendar()["days_off"] == []
    assert admin.post("/admin/calendar/days-off/2026-12-24/delete").status_code == 404


@pytest.mark.parametrize(
    ("path", "data", "field"),
    [
        ("/admin/calendar", {**HOURS, "hours_tue": "17:30-08:00"}, "hours.tue"),
        ("/admin/calendar", {**HOURS, "hours_wed": "8h-12h"}, "hours.wed"),
        ("/admin/calendar", {**HOURS, "country": "ZZ"}, "country"),
        ("/admin/calendar/days-off", {"day": "24/12/2026"}, "day"),
        ("/admin/calendar/days-off", {"day": "2026-12-24", "note": "x" * 201}, "note"),
        ("/admin/calendar/days-off/ngay-mai/delete", {}, "day"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_nothing_changes(
    admin: WebClient, runner: Runner, path: str, data: dict, field: str
) -> None:
    before = runner.business_calendar()
    response = admin.post(path, data=data)
    assert response.status_code == 422
    assert field in response.get_data(as_text=True)
    assert runner.business_calendar() == before


def test_only_admins_see_or_edit_the_calendar(client: WebClient, staff, runner: Runner) -> None:
    client.login("team_leader1")
    assert client.get("/admin/calendar").status_code == 403
    assert client.post("/admin/calendar", data=HOURS).status_code == 403
    assert client.post("/admin/calendar/days-off", data={"day": "2026-12-24"}).status_code == 403
    assert runner.business_calendar()["days_off"] == []


def test_a_post_without_the_csrf_token_is_refused(admin: WebClient, runner: Runner) -> None:
    assert admin.post("/admin/calendar/days-off", data={"day": "2026-12-24"}, csrf=False).status_code == 400
    assert runner.business_calendar()["days_off"] == []
