"""An admin moves the virtual clock a week: the request only queues a clock run, the page follows
it (buttons disabled, reloading itself) until the run is done and shows what fired on the way."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

CHAIN = Path(__file__).resolve().parent.parent / "bpmn" / "scheduler" / "chain.bpmn"


def test_admin_moves_the_clock_a_week_in_the_background(live_server, page, sign_in, shot, staff) -> None:
    runner = live_server.runner  # the app's default executor: a thread of the server moves the clock
    runner.deploy([CHAIN])
    runner.start_instance("chain", "A", {"first_wait": "PT30M"})
    runner.start_instance("chain", "B", {"first_wait": "PT1H"})
    before = runner.now()

    sign_in("admin1")
    page.goto(live_server.url + "/admin/")
    page.click("button:has-text('+1 tuần')")
    assert "Đồng hồ ảo đang chuyển tới" in page.locator(".flashes").inner_text()
    shot(page, "1-queued-or-moving")
    # NOTE: the page reloads itself every 2 s while the run moves; the list appears once it is done.
    page.wait_for_selector("ul.timeline.effects", timeout=60_000)
    assert page.locator("ul.timeline.effects").inner_text().count("timer.fired") == 4
    assert page.locator("button:has-text('+1 ngày')").is_enabled()
    assert runner.now() == before + timedelta(weeks=1)
    shot(page, "2-done")
