"""Admins make, list and revoke the keys of website and landing-page forms (``runner.crm.lead_keys``).

A new key's secret is shown once, on the answer to the form that made it; the list shows prefixes only.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from runner.crm import lead_keys
from runner.errors import Invalid
from web.auth import roles_required
from web.crm.customers.blueprint import bp
from web.extensions import get_runner


def _page(*, secret: str | None = None, form: dict[str, str] | None = None, status: int = 200):
    runner = get_runner()
    return render_template(
        "customers/lead_keys.html",
        keys=lead_keys.list_keys(runner),
        sources=lead_keys.sources(runner),
        secret=secret,
        form=form or {},
        per_minute=lead_keys.PER_MINUTE,
    ), status


@bp.get("/lead-keys")
@roles_required("admin")
def lead_keys_page():
    """Every form key (prefix, label, source, origins, dates, state) and the form to make one."""
    return _page()


@bp.post("/lead-keys")
@roles_required("admin")
def create_lead_key():
    """Make a key; the answer shows its secret once (201), or the form again with the error (422)."""
    form = {k: (request.form.get(k) or "").strip() for k in ("source", "label", "origins", "per_minute")}
    try:
        per_minute = int(form["per_minute"] or lead_keys.PER_MINUTE)
    except ValueError:
        per_minute = 0  # refused below, naming the field
    try:
        _key_id, secret = lead_keys.create_key(
            get_runner(),
            form["source"],
            form["label"],
            origins=form["origins"],
            per_minute=per_minute,
            actor=current_user.username,
        )
    except Invalid as exc:
        flash(str(exc), "error")
        return _page(form=form, status=422)
    return _page(secret=secret, status=201)


@bp.post("/lead-keys/<int:key_id>/revoke")
@roles_required("admin")
def revoke_lead_key(key_id: int):
    """Revoke a key: its forms get 401 from now on."""
    if key_id not in {k["id"] for k in lead_keys.list_keys(get_runner())}:
        abort(404)
    lead_keys.revoke_key(get_runner(), key_id)
    flash(_("Đã thu hồi khóa biểu mẫu."), "success")
    return redirect(url_for("customers.lead_keys_page"))
