"""Files attached on a task's ``file`` form fields: stored when the form is posted, served to who may see the customer.

The task page posts ``multipart/form-data``; :func:`store_posted` keeps each file in the
instance folder (``runner.uploads``: type by magic number, size cap) before the form is
completed, and the field's value becomes the stored file's reference. A file is served only
from the folder of an instance the user may see, as an attachment, with its stored type.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, send_file
from werkzeug.datastructures import MultiDict

from runner import uploads
from runner.errors import FormInvalid, Missing
from runner.model import forms
from web import permissions
from web.auth import roles_required
from web.extensions import get_runner

bp = Blueprint("attachments", __name__)


def store_posted(task: dict[str, Any], files: MultiDict) -> dict[str, Any]:
    """Store the files posted for the task's file fields; field id -> reference. FormInvalid names each bad one."""
    form = forms.form_from_dict(task["form"]) if task.get("form") else forms.Form(())
    runner = get_runner()
    refs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    codes: dict[str, str] = {}
    for field in form.fields:
        posted = files.get(field.id)
        if field.type != "file" or field.readonly or posted is None or not posted.filename:
            continue
        try:
            data = posted.stream.read(field.max_bytes + 1)  # NOTE: one byte more tells "too large", not the rest
        finally:
            posted.close()  # a large upload is spooled to a temporary file: let it go at once
        try:
            refs[field.id] = uploads.store(
                runner.settings.instance_path,
                task["instance_id"],
                field.id,
                posted.filename,
                data,
                label=field.label,
                kinds=field.file_kinds,
                max_bytes=field.max_bytes,
                now=runner.now(),
            )
        except FormInvalid as exc:
            errors.update(exc.errors)
            codes.update(exc.codes)
    if errors:
        refused = FormInvalid(errors, task=task.get("element_id", ""))
        refused.codes = codes
        raise refused
    return refs


def instance_files(instance_ids: list[str]) -> list[dict[str, Any]]:
    """The files stored for these instances (each with its ``instance_id``), oldest first."""
    path = get_runner().settings.instance_path
    return [{**ref, "instance_id": i} for i in instance_ids for ref in uploads.listing(path, i)]


@bp.get("/instances/<instance_id>/files/<file_id>")
@roles_required()
def download(instance_id: str, file_id: str):
    """One attached file, for a user who may see the instance's customer (404 otherwise)."""
    permissions.require_instance(instance_id)
    try:
        path, ref = uploads.find(get_runner().settings.instance_path, instance_id, file_id)
    except Missing:
        abort(404)
    response = send_file(path, mimetype=ref["type"], as_attachment=True, download_name=ref["name"], max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response
