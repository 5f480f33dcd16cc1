"""Importing leads from a CSV or XLSX file: upload, a paged preview of every row with its errors, the import.

The import runs in batches (``runner.crm.lead_imports.run_batch``) that the preview page asks for one
after another (``POST .../step``, which answers the progress as JSON) while it shows the progress bar;
without JavaScript the same button imports one batch per click. A closed page only pauses the import:
the rows already done stay done, and opening the page again continues with the rest.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from runner.crm import lead_imports
from runner.crm.import_files import FileRejected
from runner.errors import NotFound
from web import permissions
from web.auth import roles_required
from web.extensions import get_runner
from web.navigation import NavItem

IMPORTERS = ("marketing", "sales", "admin")
PAGE = 50
FILTERS = ("invalid", "pending", "created", "skipped")
bp = Blueprint("lead_imports", "web.crm", template_folder="templates")
NAV = [NavItem("lead_imports.index", _l("Nhập khách hàng"), IMPORTERS)]


@bp.get("/customers/imports/")
@roles_required(*IMPORTERS)
def index():
    """The upload form and the latest imports."""
    return _index_page()


def _index_page(error: str | None = None, status: int = 200):
    runner = get_runner()
    limits = lead_imports.limits(runner)
    page = render_template("lead_imports/index.html", imports=lead_imports.recent(runner), limits=limits, error=error)
    return page, status


@bp.post("/customers/imports/")
@roles_required(*IMPORTERS)
def upload():
    """Read and check the uploaded file and keep it as a preview; a file that cannot be read comes back named."""
    runner = get_runner()
    limits = lead_imports.limits(runner)
    # NOTE: before the form is parsed: a body far over the cap is refused (413) without being spooled
    request.max_content_length = limits.max_bytes + 64 * 1024
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _index_page(_("Chọn một tệp CSV hoặc XLSX để nhập."), 400)
    data = upload.stream.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        message = _("Tệp %(name)s lớn hơn %(n)d byte cho phép.", name=upload.filename, n=limits.max_bytes)
        return _index_page(message, 413)
    try:
        import_id = lead_imports.preview(runner, upload.filename, data, by=current_user.username)
    except FileRejected as exc:
        return _index_page(_("Không nhập được tệp: %(detail)s", detail=str(exc)), 422)
    return redirect(url_for("lead_imports.show", import_id=import_id))


@bp.get("/customers/imports/<import_id>")
@roles_required(*IMPORTERS)
def show(import_id: str):
    """The preview: counts, columns (unknown ones named), a page of rows with their errors, the progress."""
    runner = get_runner()
    summary = _summary(import_id)
    only = request.args.get("only") if request.args.get("only") in FILTERS else None
    after = request.args.get("after", type=int) or 0
    rows, following = lead_imports.rows(runner, import_id, after=after, limit=PAGE, only=only)
    fields = [c["field"] for c in summary["columns"] if c["field"]]
    headers = {c["field"]: c["header"] for c in summary["columns"] if c["field"]}
    return render_template(
        "lead_imports/show.html",
        imp=summary,
        rows=rows,
        fields=fields,
        headers=headers,
        only=only,
        after=after,
        following=following,
        filters=FILTERS,
    )


@bp.post("/customers/imports/<import_id>/step")
@roles_required(*IMPORTERS)
def step(import_id: str):
    """Import the next batch of valid rows; JSON progress for the page's script, else back to the page."""
    runner = get_runner()
    _summary(import_id)
    lead_imports.run_batch(runner, import_id, person=permissions.person())
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        return jsonify(lead_imports.progress(runner, import_id))
    return redirect(url_for("lead_imports.show", import_id=import_id))


@bp.get("/customers/imports/<import_id>/progress")
@roles_required(*IMPORTERS)
def progress(import_id: str):
    """How far the import is (rows done of the valid ones, created, skipped), for a progress bar."""
    _summary(import_id)
    return jsonify(lead_imports.progress(get_runner(), import_id))


@bp.get("/customers/imports/<import_id>/report.csv")
@roles_required(*IMPORTERS)
def report(import_id: str):
    """Every row with its state, customer and problems, as a CSV (formulas escaped)."""
    summary = _summary(import_id)
    name = summary["filename"].rsplit(".", 1)[0] or "import"
    return Response(
        lead_imports.report_csv(get_runner(), import_id),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{_safe(name)}-report.csv"'},
    )


def _summary(import_id: str) -> dict:
    try:
        return lead_imports.summary(get_runner(), import_id[:36])
    except NotFound:
        abort(404, description=_("Không có lần nhập %(id)s.", id=import_id[:36]))


def _safe(name: str) -> str:
    """A file name for a header: letters, digits, - and _ only."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in name)[:80]
