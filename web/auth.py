"""Sign-in and sign-out, sessions (Flask-Login), CSRF (Flask-WTF) and role checks.

    @bp.get("/admin/")
    @roles_required("admin")            # signed in and holding one of the roles, else 403
    def index(): ...

    @bp.get("/inbox/")
    @roles_required()                   # any signed-in user
    def my_tasks(): ...

Browsers sign in with a session cookie. Under /api the session cookie is ignored and a
bearer token (``Authorization: Bearer rt_...``, see ``runner.service.accounts.issue_token``) is the
only credential, which is why the API blueprint can be exempt from CSRF.

Five failed logins in a row slow that account down, and twenty-one slow the client address
down (``runner.service.throttle``); the time comes from ``app.config["AUTH_CLOCK"]`` so that tests
move it instead of sleeping. The address is ``request.remote_addr``: behind a reverse proxy
that is the proxy's, unless the app is wrapped in werkzeug's ``ProxyFix`` (not done here).

The session cookie carries only the random token of a server-side session
(``runner.service.logins``); signing out or a new password deletes it, so a copied cookie dies too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import UserMixin, current_user, login_user, logout_user

from runner.service import accounts as users
from runner.service import logins
from web.extensions import csrf, get_runner, login_manager
from web.navigation import safe_path, wants_json

bp = Blueprint("auth", __name__)


class User(UserMixin):
    """The signed-in staff member, as the views see them."""

    def __init__(self, data: dict[str, Any], session_token: str = ""):
        self.username: str = data["username"]
        self.full_name: str = data["full_name"]
        self.roles: tuple[str, ...] = tuple(data["roles"])
        self.locale: str = data.get("locale") or "vi"
        self.session_token = session_token  # "" for a bearer token

    def get_id(self) -> str:
        # NOTE: a random token with a row on the server, never derived from the user's data.
        return self.session_token

    def has_role(self, *roles: str) -> bool:
        """True when the user holds any of ``roles``."""
        return bool(set(roles) & set(self.roles))


def init_app(app: Flask) -> None:
    """Sessions, CSRF on every form and the 401/403 answers (the blueprint is registered by ``create_app``)."""
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None  # the sign-in page says enough


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    if wants_json():
        return None  # NOTE: the API accepts bearer tokens only (it is exempt from CSRF)
    username = logins.session_username(get_runner(), user_id, auth_now())
    data = users.get_user(get_runner(), username) if username else None
    return User(data, user_id) if data else None


@login_manager.request_loader
def _load_token_user(req) -> User | None:
    header = req.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    data = users.verify_token(get_runner(), token.strip())
    return User(data) if data else None


@login_manager.unauthorized_handler
def _unauthorized():
    if wants_json():
        return jsonify(error="Unauthorized", detail="send 'Authorization: Bearer <token>'"), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def roles_required(*roles: str) -> Callable:
    """Only signed-in users holding one of ``roles`` (any user when none are named); else 403.

    The roles are kept on the view as ``view.roles_required`` for the navigation and tests.
    """

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if roles and not current_user.has_role(*roles):
                abort(403, description=_("Bạn không có quyền xem trang này."))
            return view(*args, **kwargs)

        wrapped.roles_required = tuple(roles)  # type: ignore[attr-defined]
        return wrapped

    return decorate


def auth_now() -> datetime:
    clock = current_app.config.get("AUTH_CLOCK")
    return clock() if clock else datetime.now(UTC)


def _safe_next(target: str | None) -> str:
    """Only local paths, so the sign-in page cannot send people to another site."""
    return safe_path(target, url_for("index"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; a wrong password and a slowed-down account get different messages."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(_safe_next(request.args.get("next")))
    username = request.form.get("username", "").strip()
    status = 200
    if request.method == "POST":
        try:
            data = users.authenticate(
                get_runner(),
                username,
                request.form.get("password", ""),
                now=auth_now(),
                address=request.remote_addr or "",
            )
        except users.LoginThrottled as exc:
            seconds = math.ceil(exc.retry_after.total_seconds())
            flash(_("Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau %(seconds)s giây.", seconds=seconds), "error")
            status = 429
        except users.BadLogin:
            flash(_("Tên đăng nhập hoặc mật khẩu không đúng."), "error")
            status = 401
        else:
            session.clear()
            login_user(User(data, logins.open_session(get_runner(), data["username"], auth_now())))
            session["lang"] = data["locale"]
            return redirect(_safe_next(request.form.get("next") or request.args.get("next")))
    return render_template(
        "auth/login.html", username=username, next=request.form.get("next") or request.args.get("next", "")
    ), status


@bp.post("/logout")
def logout():
    """Sign out (a POST, so that a link on another site cannot do it)."""
    lang = session.get("lang")
    if current_user.is_authenticated and current_user.session_token:
        logins.close_session(get_runner(), current_user.session_token)
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("Bạn đã đăng xuất."), "info")
    return redirect(url_for("auth.login"))
