"""Deployments (admin) and process definitions: ``POST /api/deployments``, ``GET /api/process-definitions``."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_login import current_user

from runner.queries import tasklists as inbox
from runner.service.deployment import MAX_FILE_BYTES
from web.api.blueprint import bp
from web.api.errors import error, problem
from web.api.shapes import iso
from web.auth import roles_required
from web.extensions import get_runner

DEPLOYABLE = (".bpmn", ".dmn")


def _uploads() -> tuple[dict[str, bytes], list[dict[str, str]]]:
    """The files sent in the multipart field ``file`` by name, and what is wrong with the upload itself."""
    files: dict[str, bytes] = {}
    problems = []
    for upload in request.files.getlist("file"):
        name = (upload.filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
        data = upload.read(MAX_FILE_BYTES + 1)
        reason = (
            "the file name must end in .bpmn or .dmn"
            if not name.lower().endswith(DEPLOYABLE)
            else "the file is larger than 5 MB"
            if len(data) > MAX_FILE_BYTES
            else "two files have this name"
            if name in files
            else None
        )
        if reason:
            problems.append({"file": name, "element": "", "name": "", "message": reason})
        files[name] = data
    return files, problems


@bp.post("/deployments")
@roles_required("admin")
def create_deployment():
    """Deploy the uploaded files (multipart field ``file``, repeatable): 201 with the versions, or 422."""
    files, problems = _uploads()
    if not files:
        return error(
            422,
            "Unprocessable Entity",
            "send one or more files in the multipart field 'file'",
            errors=[{"file": "", "element": "", "name": "", "message": "no file was sent"}],
        )
    if problems:
        return error(422, "Unprocessable Entity", f"{len(problems)} problem(s); nothing was deployed", errors=problems)
    deployed = get_runner().deploy(files, actor=current_user.username)
    versions = [
        {
            "process_key": d.process_key,
            "version": d.version,
            "file": d.file_name,
            "created": d.changed,
            "warnings": [problem(w) for w in d.warnings],
            "people": [problem(w) for w in d.people],
        }
        for d in deployed
    ]
    return jsonify(versions=versions), 201 if any(d.changed for d in deployed) else 200


def _definition(process: dict[str, Any]) -> dict[str, Any]:
    """A deployed process or decision as the document's ``ProcessDefinition``."""
    return {
        "key": process["key"],
        "name": process["name"],
        "kind": process["kind"],
        "latest_version": process["latest_version"],
        "versions": [
            {
                "version": v["version"],
                "name": v["name"],
                "file": v["file_name"],
                "deployed_at": iso(v["deployed_at"]),
                "deployed_by": v["deployed_by"] or "",
                "instances": {"running": v["running"], "completed": v["completed"], "total": v["instances"]},
            }
            for v in process["versions"]
        ],
    }


@bp.get("/process-definitions")
@roles_required()
def process_definitions():
    """Deployed processes and decisions: key, latest version, versions with instance counts."""
    return jsonify(process_definitions=[_definition(p) for p in inbox.process_versions(get_runner())])
