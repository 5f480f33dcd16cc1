"""A user's profile on their admin page: full name, e-mail, and what extensions keep (phone, Zalo id)."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _

from runner.errors import Invalid
from runner.service import accounts
from web.admin.blueprint import bp
from web.admin.users import facts_from_form, field_error, known_user, user_page
from web.auth import roles_required
from web.extensions import get_runner


@bp.post("/users/<username>/profile")
@roles_required("admin")
def set_profile(username: str):
    """Save the profile; a refused value shows the form again as typed, naming the field (422)."""
    known_user(username)  # NOTE: 404 for an unknown user before anything is read from the form
    form = {k: (request.form.get(k) or "").strip() for k in ("full_name", "email")}
    facts = facts_from_form()
    try:
        accounts.update_user(get_runner(), username, full_name=form["full_name"], email=form["email"], facts=facts)
    except Invalid as exc:
        error = field_error(exc)
        flash(error, "error")
        return user_page(username, status=422, form={**form, **facts}, error=error)
    flash(_("Đã lưu thông tin liên lạc của %(name)s.", name=form["full_name"]), "success")
    return redirect(url_for("admin.user", username=username))
