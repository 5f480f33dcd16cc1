"""Behaviours moved out of inline handlers for the Content-Security-Policy still work in a real browser.

The ``page`` fixture fails any test whose page had something blocked by the policy.
"""

from __future__ import annotations

from tests.webapp import add_user


def test_the_calendar_copy_select_and_confirm_work_under_the_policy(live_server, page, sign_in) -> None:
    add_user(live_server.runner, "minh", ["teacher"])
    sign_in("minh")
    page.goto(f"{live_server.url}/calendar/")
    old = page.locator("#feed-url").input_value()
    page.click("[data-copy]")  # the page's inline script (with the request's nonce)
    assert page.locator("[data-copy]").inner_text() == "Đã sao chép"
    page.locator("#feed-url").focus()  # data-select-on-focus, from /static/app.js
    assert page.evaluate(
        "() => document.getSelection().toString() || "
        "document.activeElement.selectionEnd - document.activeElement.selectionStart"
    ) not in ("", 0)
    page.once("dialog", lambda dialog: dialog.dismiss())  # data-confirm: "no" keeps the address
    page.click("form[data-confirm] button[type=submit]")
    assert page.locator("#feed-url").input_value() == old
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("form[data-confirm] button[type=submit]")
    assert page.locator("#feed-url").input_value() != old
