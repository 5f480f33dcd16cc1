"""Users, their roles and active state, password resets, the failed-login slow-down, and API tokens.

The profile (full name, e-mail, and the facts extensions keep: phone, Zalo id) is edited in
``web.admin.profiles``; the list shows who lacks a field a deployed process's message prints.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from runner.errors import Invalid, NotFound
from runner.service import accounts
from web.admin.blueprint import bp
from web.auth import auth_now, roles_required
from web.extensions import get_runner


def known_user(username: str) -> dict[str, Any]:
    """The user as the admin list shows them; 404 when there is no such user."""
    found = [u for u in accounts.list_users(get_runner()) if u["username"] == username]
    if not found:
        abort(404, description=_("Không có người dùng %(name)s.", name=username))
    return found[0]


def _offered() -> list[str]:
    """The roles to tick: the runner's (its extensions'), else those its users already have."""
    runner = get_runner()
    known = accounts.roles(runner)
    return list(known) if known else sorted({r for u in accounts.list_users(runner) for r in u["roles"]})


def facts_from_form() -> dict[str, str]:
    """The posted facts extensions keep about people (``phone``...), as typed; absent ones are left out."""
    return {
        name: (request.form.get(name) or "").strip()
        for name in accounts.person_fields(get_runner())
        if name in request.form
    }


def field_error(exc: Invalid) -> str:
    """A refused value's message, led by the label of the field it names (``phone: ...``)."""
    field, sep, _rest = str(exc).partition(":")
    labels = current_app.extensions.get("fact_labels", {})
    if sep and field in labels:
        return _("%(field)s không hợp lệ: %(reason)s", field=labels[field], reason=str(exc))
    return str(exc)


def list_page(form: dict[str, Any], error: str | None, status: int = 200):
    """The users page: the list, who would break a message template, and the form to add a user."""
    runner = get_runner()
    return render_template(
        "admin/users.html",
        users=accounts.list_users(runner),
        roles=_offered(),
        fields=accounts.person_fields(runner),
        gaps=accounts.people_gaps(runner),
        form=form,
        error=error,
    ), status


def _roles() -> list[str]:
    known = accounts.roles(get_runner())
    return [r for r in request.form.getlist("roles") if r in known or not known]


@bp.get("/users")
@roles_required("admin")
def user_list():
    """Users with their roles, state and tokens, who would break a message template, and the form to add one."""
    return list_page({}, None)


@bp.post("/users")
@roles_required("admin")
def create_user():
    """Add a user with roles and a first password."""
    form: dict[str, Any] = {k: (request.form.get(k) or "").strip() for k in ("username", "full_name", "email")}
    facts = facts_from_form()
    password = request.form.get("password") or ""
    roles = _roles()
    error = None
    if not form["username"] or not form["full_name"] or not roles:
        error = _("Cần tên đăng nhập, họ tên và ít nhất một vai trò.")
    elif len(password.strip()) < accounts.MIN_PASSWORD:  # NOTE: never an account without a password
        error = _("Mật khẩu cần ít nhất %(n)s ký tự.", n=accounts.MIN_PASSWORD)
    else:
        try:
            accounts.create_user(
                get_runner(),
                form["username"],
                form["full_name"],
                roles,
                password=password,
                email=form["email"] or None,
                facts=facts,
            )
        except Invalid as exc:
            error = field_error(exc)
    if error:
        flash(error, "error")
        return list_page({**form, **facts, "roles": roles}, error, 422)
    flash(_("Đã tạo người dùng %(name)s.", name=form["full_name"]), "success")
    return redirect(url_for("admin.user", username=form["username"]))


def user_page(
    username: str, token: str | None = None, status: int = 200, form: dict[str, Any] | None = None, error: str = ""
):
    """One user's page; ``form`` and ``error`` show a refused profile edit as it was typed."""
    runner = get_runner()
    user = {**known_user(username), **(accounts.profile(runner, username) or {})}
    return render_template(
        "admin/user.html",
        user=user,
        fields=accounts.person_fields(runner),
        gaps=[g for g in accounts.people_gaps(runner) if g["username"] == username],
        form=form or user,
        error=error,
        roles=_offered(),
        new_token=token,
        tokens=accounts.list_tokens(get_runner(), username),
        now=auth_now(),
    ), status


@bp.get("/users/<username>")
@roles_required("admin")
def user(username: str):
    """One user: roles, active, password reset, API tokens."""
    return user_page(username)


@bp.post("/users/<username>/roles")
@roles_required("admin")
def set_roles(username: str):
    """Replace the user's roles (an admin keeps their own admin role)."""
    name = known_user(username)["full_name"]
    roles = _roles()
    if username == current_user.username and "admin" not in roles:
        flash(_("Bạn không thể tự bỏ vai trò quản trị của mình."), "error")
    elif not roles:
        flash(_("Chọn ít nhất một vai trò."), "error")
    else:
        accounts.set_roles(get_runner(), username, roles)
        flash(_("Đã lưu vai trò của %(name)s.", name=name), "success")
    return redirect(url_for("admin.user", username=username))


@bp.post("/users/<username>/active")
@roles_required("admin")
def set_active(username: str):
    """Activate or deactivate a user (a deactivated user cannot sign in and their tokens stop working)."""
    name = known_user(username)["full_name"]
    active = request.form.get("active") == "1"
    if username == current_user.username and not active:
        flash(_("Bạn không thể tự khóa tài khoản của mình."), "error")
    else:
        accounts.set_active(get_runner(), username, active)
        flash(_("Đã mở khóa %(name)s.", name=name) if active else _("Đã khóa %(name)s.", name=name), "success")
    return redirect(url_for("admin.user", username=username))


@bp.post("/users/<username>/password")
@roles_required("admin")
def reset_password(username: str):
    """Set a new password (the user's sessions end, except the admin's own one here)."""
    name = known_user(username)["full_name"]
    password = request.form.get("password") or ""
    try:
        accounts.set_password(get_runner(), username, password, keep_session=current_user.session_token)
    except Invalid:
        flash(_("Mật khẩu cần ít nhất %(n)s ký tự.", n=accounts.MIN_PASSWORD), "error")
    except NotFound:
        flash(_("Người dùng %(name)s đang bị khóa.", name=name), "error")
    else:
        flash(_("Đã đặt mật khẩu mới cho %(name)s.", name=name), "success")
    return redirect(url_for("admin.user", username=username))


@bp.post("/users/<username>/unlock")
@roles_required("admin")
def unlock_login(username: str):
    """Lift the user's failed-login slow-down now (e.g. when someone else's guesses keep them out)."""
    name = known_user(username)["full_name"]
    accounts.unlock(get_runner(), username)
    flash(_("%(name)s có thể đăng nhập lại ngay.", name=name), "success")
    return redirect(url_for("admin.user", username=username))


@bp.post("/users/<username>/tokens")
@roles_required("admin")
def issue_token(username: str):
    """Issue an API token; the page shows it once and never again."""
    name = known_user(username)["full_name"]
    try:
        token = accounts.issue_token(get_runner(), username, label=(request.form.get("label") or "").strip()[:200])
    except NotFound:
        flash(_("Người dùng %(name)s đang bị khóa.", name=name), "error")
        return redirect(url_for("admin.user", username=username))
    return user_page(username, token, 201)


@bp.post("/users/<username>/tokens/<int:token_id>/revoke")
@roles_required("admin")
def revoke_token(username: str, token_id: int):
    """Revoke one of the user's tokens."""
    known_user(username)
    if token_id not in {t["id"] for t in accounts.list_tokens(get_runner(), username)}:
        abort(404)
    accounts.revoke_token(get_runner(), token_id)
    flash(_("Đã thu hồi mã API."), "success")
    return redirect(url_for("admin.user", username=username))
