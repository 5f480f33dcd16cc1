"""People on pages by their full names: ``{{ task.assignee|person }}`` shows "Nguyễn Văn Hùng", not "hung".

Usernames stay where they are identifiers (form values, addresses, the login field). A label
that is no user (``cli``, ``system``, a deleted account) is shown as it is.
"""

from __future__ import annotations

from flask import Flask, g

from runner.service import accounts
from web.extensions import get_runner


def person(username: str | None) -> str:
    """The full name of the user ``username`` (the label itself when it names no user; "" for none)."""
    if not username:
        return ""
    names: dict[str, str] | None = g.get("full_names")
    if names is None:  # NOTE: one read per request, however many people a page shows
        names = g.full_names = accounts.full_names(get_runner())
    return names.get(username) or username


def init_app(app: Flask) -> None:
    """Add the ``person`` filter."""
    app.add_template_filter(person, "person")
