"""The "new customer / lead" page: marketing, sales and admins enter a lead, which starts its sales procedure.

The form offers the configured required fields first, then the source, the other profile fields and
the owner (empty: the round-robin). ``runner.crm.intake.create_lead`` checks and saves; a bad field
comes back beside its input, a duplicate shows the customer who has the phone or e-mail already.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from runner.crm import intake, pages
from runner.errors import FormInvalid, NotFound
from web import permissions
from web.auth import roles_required
from web.crm.customers.blueprint import bp
from web.crm.customers.display import CONTACT_FIELDS, CRM_FIELDS, PROFILE_FACTS
from web.extensions import get_runner

LEAD_ROLES = ("marketing", "sales", "admin")
LABELS = {"name": _l("Tên khách hàng"), **CONTACT_FIELDS, **CRM_FIELDS, **PROFILE_FACTS}


@bp.get("/leads/new")
@roles_required(*LEAD_ROLES)
def new_lead():
    """The empty form; a sales rep finds themselves chosen as the owner."""
    mine = current_user.username if current_user.has_role("sales") else ""
    return _form_page({"owner": mine})


@bp.post("/leads/new")
@roles_required(*LEAD_ROLES)
def create_lead():
    """Save the lead and start its sales procedure; field errors and duplicates come back in the form."""
    values = {k: v for k, v in request.form.items() if k != "csrf_token"}
    try:
        lead = intake.create_lead(get_runner(), _typed(values), person=permissions.person())
    except FormInvalid as exc:
        return _form_page(values, errors=exc.errors, status=422)
    except intake.DuplicateCustomer as exc:
        return _form_page(values, duplicate=exc, status=409)
    except NotFound:
        # NOTE: the sales diagram is not deployed: nothing the person typed is wrong
        return _form_page(values, problem=_("Quy trình bán hàng chưa được triển khai; báo quản trị."), status=503)
    flash(_("Đã tạo khách hàng %(id)s, giao cho %(owner)s.", id=lead.customer_id, owner=lead.owner_name), "success")
    if permissions.visible([lead.customer_id]):
        return redirect(url_for("customers.detail", customer_id=lead.customer_id))
    return redirect(url_for("customers.search"))  # a rep who gave the lead to a colleague no longer sees it


def _typed(values: dict[str, str]) -> dict[str, Any]:
    """The form's values as the intake takes them: an empty input is a value not given."""
    return {k: v for k, v in values.items() if v.strip()}


def _form_page(
    values: dict[str, str],
    *,
    errors: dict[str, str] | None = None,
    duplicate: intake.DuplicateCustomer | None = None,
    problem: str | None = None,
    status: int = 200,
):
    form = pages.lead_form(get_runner())
    extra = {f["name"]: f["label"] for f in form["fields"] if f["label"]}
    fields = [
        {
            **f,
            "label": extra.get(f["name"]) or LABELS.get(f["name"], f["name"]),
            "value": values.get(f["name"], ""),
            "error": _message(f, (errors or {}).get(f["name"])),
        }
        for f in form["fields"]
    ]
    known = {f["name"] for f in fields} | {"owner"}
    return render_template(
        "customers/new_lead.html",
        fields=fields,
        owners=form["owners"],
        owner=values.get("owner", ""),
        owner_error=_message({"name": "owner", "data_type": "text"}, (errors or {}).get("owner")),
        others=[detail for field, detail in (errors or {}).items() if field not in known],
        duplicate=duplicate,
        duplicate_visible=bool(duplicate and permissions.visible([duplicate.customer_id])),
        problem=problem,
    ), status


def _message(field: dict[str, Any], detail: str | None) -> str | None:
    """What to tell staff about a field the intake refused (its detail names the rule, in English)."""
    if detail is None:
        return None
    name, data_type = field["name"], field["data_type"]
    if detail.endswith(": required"):
        return _("Bắt buộc nhập.")
    if name == "phone":
        return _("Số điện thoại không hợp lệ (VD: 0912 345 678 hoặc +84 912 345 678).")
    if name == "email":
        return _("Địa chỉ e-mail không hợp lệ.")
    if name == "owner":
        return _("Chọn một nhân viên kinh doanh đang làm việc, hoặc để trống để chia xoay vòng.")
    if "configured list" in detail:
        return _("Chọn một giá trị trong danh sách.")
    if "at most" in detail:
        return _("Dài quá mức cho phép.")
    by_type = {
        "integer": _("Nhập một số nguyên không âm."),
        "number": _("Nhập một số."),
        "boolean": _("Chọn Có hoặc Không."),
        "date": _("Nhập một ngày hợp lệ."),
    }
    return by_type.get(data_type, _("Giá trị không hợp lệ."))
