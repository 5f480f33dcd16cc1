"""Finding customers and the 360° customer page, with its one write: a Thảo luận note."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from runner.crm import pages, views
from runner.crm.models import BadValue, Missing
from runner.queries import tasklists as inbox
from web import attachments, permissions
from web.auth import roles_required
from web.crm.customers.blueprint import bp
from web.crm.customers.boards import board_tabs
from web.crm.customers.display import CONTACT_FIELDS, CRM_FIELDS, LABELS, PROFILE_FACTS, clock, show_value
from web.crm.customers.edits import FIELD_LABELS, may_edit
from web.extensions import get_runner

SEARCH_LIMIT = 50


@bp.get("/customers/")
@roles_required()
def search():
    """Customers by name, phone, code or tag (all of them without a query), a page at a time (``?after=`` id)."""
    runner = get_runner()
    text = (request.args.get("q") or "").strip()[:200]
    tag = (request.args.get("tag") or "").strip() or None
    after = (request.args.get("after") or "").strip()[:50] or None
    # NOTE: one row more than the page shows says whether a next page exists (keyset: after its last id)
    rows = pages.search_customers(runner, permissions.person(), text, tag=tag, limit=SEARCH_LIMIT + 1, after=after)
    following = rows[SEARCH_LIMIT - 1]["id"] if len(rows) > SEARCH_LIMIT else None
    return render_template(
        "customers/search.html",
        rows=rows[:SEARCH_LIMIT],
        following=following,
        after=after,
        q=text,
        tag=tag,
        tags=views.known_tags(runner),
        limit=SEARCH_LIMIT,
        boards=board_tabs(),
    )


@bp.get("/customers/<customer_id>")
@roles_required()
def detail(customer_id: str):
    """Profile, stages, open tasks, one timeline, instances and bookings of a customer."""
    return _detail_page(customer_id)


@bp.post("/customers/<customer_id>/notes")
@roles_required()
def add_note(customer_id: str):
    """Add a Thảo luận note; an empty or too long note comes back with the text kept."""
    text = request.form.get("text") or ""
    permissions.require_customer(customer_id)
    try:
        views.add_note(get_runner(), customer_id, text, current_user.username)
    except Missing:
        abort(404)
    except BadValue:
        error = (
            _("Ghi chú không được để trống.")
            if not text.strip()
            else _("Ghi chú dài quá %(limit)d ký tự.", limit=views.NOTE_MAX)
            if len(text.strip()) > views.NOTE_MAX
            else _("Ghi chú chứa ký tự không lưu được (NUL hoặc ký tự lỗi).")
        )
        return _detail_page(customer_id, note=text, note_error=error, status=422)
    flash(_("Đã lưu ghi chú."), "success")
    return redirect(url_for("customers.detail", customer_id=customer_id, _anchor="timeline"))


def _detail_page(customer_id: str, *, note: str = "", note_error: str | None = None, status: int = 200):
    permissions.require_customer(customer_id)
    runner = get_runner()
    try:
        customer = pages.customer_profile(runner, customer_id)
    except Missing:
        abort(404)
    extra_labels = pages.extra_field_labels(runner)
    kind = request.args.get("kind")
    kind = kind if kind in views.TIMELINE_KINDS else None
    instances = views.instances(runner, customer_id)
    return render_template(
        "customers/detail.html",
        customer=customer,
        kind=kind,
        note=note,
        note_error=note_error,
        timeline=views.timeline(runner, customer_id, kinds=[kind] if kind else None),
        tasks=inbox.tasks(runner, business_key=customer_id),
        instances=instances,
        files=attachments.instance_files([i["id"] for i in instances]),
        bookings=views.customer_bookings(runner, customer_id),
        now=runner.now(),
        extra_labels=extra_labels,
        field_labels=FIELD_LABELS,
        may_edit=may_edit(),
        contact_fields=CONTACT_FIELDS,
        crm_fields=CRM_FIELDS,
        profile_facts=PROFILE_FACTS,
        labels=LABELS,
        clock=clock(runner.settings.tz),
        show_value=show_value(runner.settings.tz),
    ), status


def page_url(customer_id: str) -> str:
    """The 360° page of a customer (``app.extensions["customer_url"]``, for the generic pages' links)."""
    return url_for("customers.detail", customer_id=customer_id)
