"""Languages and dates: Vietnamese by default, English on request; times in the business zone.

Message ids are the Vietnamese texts themselves (``_("Việc của tôi")``); the English
catalog is ``web/translations/en/LC_MESSAGES/messages.po``. After adding texts, run
``make translations`` (extract and update), then fill in the new ``msgstr``. The catalogs
are read from the .po files at start-up (``web.catalogs``; no compiled .mo files to keep in step).

Jinja filters: ``dt`` (25/11/2026 14:30), ``daytime`` (25/11 14:30), ``day`` (25/11/2026),
``ago`` ("3 ngày trước" / "trong 2 giờ", against the runner's clock, virtual or real), ``vnd``
(12.900.000 ₫).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, Flask, redirect, request, session, url_for
from flask_babel import format_date, format_datetime, format_timedelta
from flask_login import current_user

from runner.model import formvalues
from runner.service import accounts as users
from runner.settings import Settings
from web.extensions import babel, get_runner
from web.navigation import safe_path

LOCALES = users.LOCALES
bp = Blueprint("i18n", __name__)


def init_app(app: Flask) -> None:
    """Flask-Babel with the locale from the session (or the user's setting), plus the filters."""
    settings: Settings = app.config["RUNNER_SETTINGS"]  # read once by create_app
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "vi")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", settings.timezone)
    babel.init_app(app, locale_selector=select_locale)
    app.add_template_filter(show_datetime, "dt")
    app.add_template_filter(show_daytime, "daytime")
    app.add_template_filter(show_date, "day")
    app.add_template_filter(show_ago, "ago")
    app.add_template_filter(formvalues.show_amount, "vnd")
    app.context_processor(lambda: {"current_locale": select_locale(), "locales": LOCALES})


def select_locale() -> str:
    """The session's language, else the signed-in user's, else Vietnamese."""
    lang = session.get("lang")
    if lang in LOCALES:
        return lang
    if current_user and current_user.is_authenticated:
        return getattr(current_user, "locale", "vi")
    return "vi"


def _moment(value: Any) -> datetime | date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # NOTE: the runner stores UTC
    return value


def show_datetime(value: Any) -> str:
    """A moment as day/month/year hour:minute in the business time zone ('' for None)."""
    moment = _moment(value)
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        return format_date(moment, "dd/MM/yyyy")
    return format_datetime(moment, "dd/MM/yyyy HH:mm")


def show_daytime(value: Any) -> str:
    """A moment soon to come as day/month hour:minute in the business time zone ('' for None)."""
    moment = _moment(value)
    if not isinstance(moment, datetime):
        return show_datetime(value)
    return format_datetime(moment, "dd/MM HH:mm")


def show_date(value: Any) -> str:
    """A date (or the business-zone date of a moment) as day/month/year."""
    moment = _moment(value)
    if moment is None:
        return ""
    if isinstance(moment, datetime):
        return format_datetime(moment, "dd/MM/yyyy")
    return format_date(moment, "dd/MM/yyyy")


def show_ago(value: Any) -> str:
    """How long ago (or how soon) a moment is, against the runner's clock."""
    moment = _moment(value)
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return format_timedelta(moment - get_runner().now(), add_direction=True, threshold=1.0)


@bp.post("/lang/<code>")
def switch(code: str):
    """Switch the UI language (kept in the session, and on the user's account)."""
    if code in LOCALES:
        session["lang"] = code
        if current_user.is_authenticated:
            users.set_locale(get_runner(), current_user.username, code)
    return redirect(safe_path(request.form.get("next"), url_for("index")))
