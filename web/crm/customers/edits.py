"""Editing a customer from the 360° page: profile, contacts, extra fields, tags and (team leaders) the owner.

The form carries the customer's version: a save made on an older one comes back (409) naming the
fields someone changed since, with their new values, and keeps what the user typed; saving again
then applies it on top. Bad values come back (422) with an error under each field.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from runner.crm import editing
from runner.crm.fields import FIELD_TYPES
from runner.crm.models import Missing
from runner.errors import Forbidden, FormInvalid
from web import permissions
from web.auth import roles_required
from web.crm.customers.blueprint import bp
from web.crm.customers.display import CONTACT_FIELDS, CRM_FIELDS, PROFILE_FACTS
from web.extensions import get_runner

FIELD_LABELS: dict[str, Any] = {
    "name": _l("Tên khách hàng"),
    **CONTACT_FIELDS,
    **{k: v for k, v in CRM_FIELDS.items() if k in FIELD_TYPES},
    **PROFILE_FACTS,
    "package": _l("Gói"),
    "contract_start": _l("Ngày bắt đầu hợp đồng"),
    "contract_end": _l("Ngày hết hạn hợp đồng"),
    "owner": _l("Phụ trách"),
    "tags": _l("Thẻ (cách nhau bằng dấu phẩy)"),
}
WIDGETS = {"text": "text", "integer": "text", "number": "text", "boolean": "select", "date": "date"}


def field_labels(options: dict[str, Any]) -> dict[str, Any]:
    """Every editable field's label: the fixed ones and the configured extra fields'."""
    return {**FIELD_LABELS, **{f["name"]: f["label"] for f in options["extra_fields"]}}


def _shown(value: Any) -> str:
    """A value as the form's input holds it (what a save compares with to find the fields typed in)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return ", ".join(value) if isinstance(value, list) else str(value)


def _fields(options: dict[str, Any], values: dict[str, Any], errors: dict[str, str]) -> list[dict[str, Any]]:
    """The form's fields in the page's order, each with its widget, shown value, choices and error."""
    types = {**FIELD_TYPES, **{f["name"]: f["data_type"] for f in options["extra_fields"]}}
    labels = field_labels(options)
    order = ["name", *CONTACT_FIELDS, *[k for k in CRM_FIELDS if k in FIELD_TYPES], *PROFILE_FACTS]
    order += [k for k in FIELD_TYPES if k not in order] + [f["name"] for f in options["extra_fields"]] + ["tags"]
    yes_no = [("true", _("Có")), ("false", _("Không"))]
    found = []
    for key in order:
        listed = options["lists"].get(key)
        data_type = types.get(key, "text")
        found.append(
            {
                "id": key,
                "label": labels.get(key, key),
                "widget": "select" if listed else WIDGETS[data_type],
                "options": [(o, o) for o in listed] if listed else yes_no if data_type == "boolean" else [],
                "numeric": data_type in ("integer", "number"),
                "required": key == "name" or key in options["required"],
                "value": _shown(values.get(key)),
                "error": errors.get(key),
            }
        )
    return found


def _form(
    customer_id: str,
    values: dict[str, Any],
    version: int,
    *,
    base: dict[str, Any] | None = None,
    errors=None,
    conflict=None,
    status=200,
):
    """The form showing ``values`` (what was typed over the stored ones), made on ``version`` and ``base``."""
    options = editing.form_options(get_runner())
    may_move = bool(permissions.person().roles & editing.OWNER_EDITORS)
    return render_template(
        "customers/edit.html",
        customer_id=customer_id,
        fields=_fields(options, values, errors or {}),
        base={k: _shown(v) for k, v in (values if base is None else base).items()},
        owner=values.get("owner"),
        owners=options["owners"],
        may_move=may_move,
        owner_error=(errors or {}).get("owner"),
        errors=errors or {},
        version=version,
        conflict=conflict,
        labels=field_labels(options),
    ), status


def _require_editor(customer_id: str) -> None:
    permissions.require_customer(customer_id)  # 404 for customers the user may not see


EDITOR_ROLES = tuple(sorted(editing.EDITORS))  # teachers and accountants read customers, never edit them


@bp.get("/customers/<customer_id>/edit")
@roles_required(*EDITOR_ROLES)
def edit(customer_id: str):
    """The edit form, filled in with the customer's current values."""
    _require_editor(customer_id)
    try:
        shown = editing.editable(get_runner(), customer_id)
    except Missing:
        abort(404)
    return _form(customer_id, shown["values"], shown["version"])


@bp.post("/customers/<customer_id>/edit")
@roles_required(*EDITOR_ROLES)
def save(customer_id: str):
    """Save the fields that changed; a conflict or a bad value comes back with everything typed kept."""
    _require_editor(customer_id)
    runner = get_runner()
    try:
        shown = editing.editable(runner, customer_id)
    except Missing:
        abort(404)
    # NOTE: only the fields typed in are sent (the form's value differs from the one it showed):
    # a field a process set meanwhile is not put back to what the form showed.
    current = {k: _shown(v) for k, v in shown["values"].items()}
    typed = {
        k: request.form[k] for k in current if k in request.form and request.form[k] != request.form.get(f"shown-{k}")
    }
    version = request.form.get("version", "")
    if not version.isdigit():
        abort(400, description="version: a whole number")
    if not typed:
        flash(_("Không có gì thay đổi."), "info")
        return redirect(url_for("customers.detail", customer_id=customer_id))
    try:
        result = editing.edit_customer(runner, customer_id, typed, person=permissions.person(), version=int(version))
    except Forbidden as exc:
        abort(403, description=str(exc))
    except FormInvalid as exc:
        values = {**shown["values"], **typed}
        return _form(customer_id, values, int(version), base=shown["values"], errors=exc.errors, status=422)
    except editing.EditConflict as exc:
        # NOTE: the fields changed since keep the stored value (named above the form, with what was typed);
        # the user's other changes stay typed in, so saving again applies them on the new version.
        theirs = {f["field"] for f in exc.fields}
        mine = {k: v for k, v in typed.items() if k not in theirs}
        conflict = [{**f, "typed": typed.get(f["field"])} for f in exc.fields]
        values = {**shown["values"], **mine}
        return _form(customer_id, values, exc.version, base=shown["values"], conflict=conflict, status=409)
    flash(_("Đã lưu %(n)d thay đổi.", n=len(result["changes"])), "success")
    return redirect(url_for("customers.detail", customer_id=customer_id, _anchor="timeline"))


def may_edit() -> bool:
    """Whether the signed-in user may edit customers they see (the 360° page shows the link)."""
    return current_user.is_authenticated and bool(permissions.person().roles & editing.EDITORS)
