"""Deploying diagrams, the processes and their versions, and migrating running instances between versions
(a dry run first, then the move, with JSON for the page's progress bar)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from runner.errors import DeploymentInvalid, Invalid, NotFound, Problem
from runner.queries import tasklists as inbox
from runner.service import instance_migration as migration
from runner.service.deployment import MAX_FILE_BYTES
from web.admin.blueprint import bp
from web.auth import roles_required
from web.edge import row_number
from web.extensions import get_runner

DEPLOYABLE = (".bpmn", ".dmn")
# SpiffWorkflow's spec attribute names, as the migration report shows them.
ATTRIBUTE_LABELS = {
    "name": _l("mã"),
    "bpmn_id": _l("mã"),
    "bpmn_name": _l("tên"),
    "outputs": _l("luồng ra"),
    "inputs": _l("luồng vào"),
    "extensions": _l("thuộc tính Camunda (form, nhóm, hạn…)"),
    "typename": _l("loại phần tử"),
    "lane": _l("làn"),
    "documentation": _l("mô tả"),
    "cond_task_specs": _l("điều kiện rẽ nhánh"),
    "event_definition": _l("định nghĩa sự kiện"),
}


# --- deploy ---------------------------------------------------------------------------------------------


def _uploads() -> tuple[dict[str, bytes], list[Problem]]:
    """The uploaded files by name, and what is wrong with the upload itself."""
    files: dict[str, bytes] = {}
    problems = []
    for upload in request.files.getlist("files"):
        name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
        if not name:
            continue
        data = upload.read(MAX_FILE_BYTES + 1)
        reason = (
            _("Chỉ nhận tệp .bpmn hoặc .dmn.")
            if not name.lower().endswith(DEPLOYABLE)
            else _("Tệp lớn hơn 5 MB.")
            if len(data) > MAX_FILE_BYTES
            else _("Hai tệp trùng tên.")
            if name in files
            else None
        )
        if reason:
            problems.append(Problem("", "", reason, name))
        files[name] = data
    return files, problems


@bp.route("/deploy", methods=["GET", "POST"])
@roles_required("admin")
def deploy():
    """Upload .bpmn/.dmn files: the validation report per element, or the versions created."""
    if request.method == "GET":
        return render_template("admin/deploy.html")
    files, problems = _uploads()
    if not files:
        flash(_("Chọn ít nhất một tệp .bpmn hoặc .dmn."), "error")
        return render_template("admin/deploy.html"), 422
    if not problems:
        try:
            deployed = get_runner().deploy(files, actor=current_user.username)
        except DeploymentInvalid as exc:
            problems = exc.problems
        else:
            flash(_("Đã triển khai %(n)s tệp.", n=len(files)), "success")
            return render_template("admin/deploy.html", deployed=deployed, files=sorted(files))
    flash(_("Không triển khai được: %(n)s lỗi. Chưa có gì được lưu.", n=len(problems)), "error")
    return render_template("admin/deploy.html", problems=problems, files=sorted(files)), 422


# --- processes and migration ---------------------------------------------------------------------------------


@bp.get("/processes")
@roles_required("admin")
def processes():
    """Processes and decisions with their versions and instance counts per version."""
    return render_template("admin/processes.html", processes=inbox.process_versions(get_runner()))


def _process(key: str) -> dict[str, Any]:
    found = [p for p in inbox.process_versions(get_runner()) if p["key"] == key and p["kind"] == "bpmn"]
    if not found:
        abort(404, description=_("Không có quy trình %(key)s.", key=key))
    return found[0]


@bp.get("/processes/<key>/versions/<int:version>/migration")
@roles_required("admin")
def migration_plan(key: str, version: int):
    """Dry run: which running instances of this version can move to the target, and why the others cannot."""
    process = _process(key)
    target = request.args.get("to", type=row_number)
    try:
        report = migration.dry_run(get_runner(), key, version, target)
    except NotFound as exc:
        abort(404, description=str(exc))
    except Invalid as exc:
        abort(400, description=str(exc))
    movable = [i["id"] for i in report["instances"] if i["movable"]]
    return render_template(
        "admin/migration.html",
        process=process,
        report=report,
        movable=movable,
        targets=[v["version"] for v in process["versions"] if v["version"] != version],
        attribute_labels=ATTRIBUTE_LABELS,
    )


@bp.post("/processes/<key>/versions/<int:version>/migration")
@roles_required("admin")
def migrate(key: str, version: int):
    """Move the instances named in ``ids`` to version ``to``; JSON for the progress bar, else a redirect."""
    _process(key)
    target = request.form.get("to", type=row_number)
    ids = [i for i in request.form.getlist("ids") if i][:1000]
    if target is None or not ids:
        abort(400, description=_("Thiếu phiên bản đích hoặc danh sách phiên chạy."))
    results = migration.migrate_many(get_runner(), key, ids, target, actor=current_user.username)
    moved = sum(r["ok"] for r in results)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(
            moved=moved, moved_ids=[r["id"] for r in results if r["ok"]], failed=[r for r in results if not r["ok"]]
        )
    flash(
        _(
            "Đã chuyển %(moved)s/%(total)s phiên chạy sang phiên bản %(to)s.",
            moved=moved,
            total=len(results),
            to=target,
        ),
        "success" if moved == len(results) else "warning",
    )
    for failure in [r for r in results if not r["ok"]][:10]:
        flash(failure["error"], "error")
    return redirect(url_for("admin.migration_plan", key=key, version=version, to=target))
