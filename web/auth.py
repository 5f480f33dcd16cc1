"""Sign-in and sign-out, sessions (Flask-Login), CSRF (Flask-WTF) and role checks.

    @bp.get("/admin/")
    @roles_required("admin")            # signed in and holding one of the roles, else 403
    def index(): ...

    @bp.get("/inbox/")
    @roles_required()                   # any signed-in user
    def my_tasks(): ...

Browsers sign in with a session cookie. Under /api the session cookie is ignored and a
bearer token (``Authorization: Bearer rt_...``, see ``runner.users.issue_token``) is the
only credential, which is why the API blueprint can be exempt from CSRF.

Five failed logins in a row slow that account down (``runner.users.lockout_delay``); the
time comes from ``app.config["AUTH_CLOCK"]`` so that tests move it instead of sleeping.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import datetime, timezone
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
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect

from runner import users
from web import get_runner, safe_path, wants_json

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
login_manager = LoginManager()


class User(UserMixin):
    """The signed-in staff member, as the views see them."""

    def __init__(self, data: dict[str, Any]):
        self.username: str = data["username"]
        self.full_name: str = data["full_name"]
        self.roles: tuple[str, ...] = tuple(data["roles"])
        self.locale: str = data.get("locale") or "vi"
        self._session_key: str = data.get("session_key", "")

    def get_id(self) -> str:
        # NOTE: the key changes with the password, so changing it signs out other sessions.
        return f"{self.username}|{self._session_key}"

    def has_role(self, *roles: str) -> bool:
        """True when the user holds any of ``roles``."""
        return bool(set(roles) & set(self.roles))


def init_app(app: Flask) -> None:
    """Sessions, CSRF on every form, the 401/403 answers and the auth blueprint."""
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None  # the sign-in page says enough


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    if wants_json():
        return None  # NOTE: the API accepts bearer tokens only (it is exempt from CSRF)
    username, _sep, key = user_id.partition("|")
    data = users.get_user(get_runner(), username)
    if data is None or data["session_key"] != key:
        return None
    return User(data)


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


def _now() -> datetime:
    clock = current_app.config.get("AUTH_CLOCK")
    return clock() if clock else datetime.now(timezone.utc)


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
            data = users.authenticate(get_runner(), username, request.form.get("password", ""), now=_now())
        except users.LoginThrottled as exc:
            seconds = math.ceil(exc.retry_after.total_seconds())
            flash(_("Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau %(seconds)s giây.", seconds=seconds),
                  "error")
            status = 429
        except users.BadLogin:
            flash(_("Tên đăng nhập hoặc mật khẩu không đúng."), "error")
            status = 401
        else:
            session.clear()
            login_user(User(data))
            session["lang"] = data["locale"]
            return redirect(_safe_next(request.form.get("next") or request.args.get("next")))
    return render_template("auth/login.html", username=username,
                           next=request.form.get("next") or request.args.get("next", "")), status


@bp.post("/logout")
def logout():
    """Sign out (a POST, so that a link on another site cannot do it)."""
    lang = session.get("lang")
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("Bạn đã đăng xuất."), "info")
    return redirect(url_for("auth.login"))
