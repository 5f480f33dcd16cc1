"""The REST API under /api: JSON in and out, bearer tokens, described at /api/openapi.json.

Every answer is JSON, errors included (``{"error", "detail"}``, plus ``errors`` for
per-field or per-element problems). Task endpoints follow the inbox's rules (candidate
groups, the assignee; team leaders see every task); deployments, incidents and the clock
are for admins. The paths are a contract that integrations rely on: see ``web.openapi``.

Only generic operations live here. An extension's operations under /api sit in its own blueprint
(``web.crm.api``: the customer endpoint) that answers errors through ``json_errors`` and shapes
instances with ``instance_summary``; ``create_app`` serves the document with the extension's part.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request
from flask_login import current_user

from runner.errors import (
    Conflict,
    DeploymentInvalid,
    Forbidden,
    FormInvalid,
    Invalid,
    NotCorrelated,
    NotFound,
    Problem,
    RunnerError,
    StepFailed,
)
from runner.queries import tasklists as inbox
from runner.service.deployment import MAX_FILE_BYTES
from runner.service.tasks import check_may_complete, is_candidate
from web import permissions
from web.auth import roles_required
from web.extensions import get_runner
from web.openapi import MAX_ADVANCE

bp = Blueprint("api", __name__, url_prefix="/api")
DEPLOYABLE = (".bpmn", ".dmn")
MAX_ID = 2**31 - 1  # NOTE: larger path ids would overflow the database's integer, not just miss
MAX_TEXT = 200
STATES = ("running", "completed")
INCIDENT_STATES = {"open": "open", "resolved": "resolved", "all": None}


# --- errors: one place that turns runner errors into HTTP answers ------------------------------------


def _error(status: int, error: str, detail: str, **extra: Any):
    return jsonify(error=error, detail=detail, **extra), status


def _runner_error(exc: RunnerError):
    """Forbidden 403, NotFound/NotCorrelated 404, Conflict 409, FormInvalid/Invalid/StepFailed 422, else 400."""
    if isinstance(exc, FormInvalid):
        return _error(422, "Unprocessable Entity", str(exc), errors=exc.errors)
    if isinstance(exc, DeploymentInvalid):
        return _error(
            422,
            "Unprocessable Entity",
            f"{len(exc.problems)} problem(s); nothing was deployed",
            errors=[_problem(p) for p in exc.problems],
        )
    for kinds, status, name in (
        ((Forbidden,), 403, "Forbidden"),
        ((NotFound, NotCorrelated), 404, "Not Found"),
        ((Conflict,), 409, "Conflict"),
        ((Invalid, StepFailed), 422, "Unprocessable Entity"),
    ):
        if isinstance(exc, kinds):
            return _error(status, name, str(exc))
    return _error(400, "Bad Request", str(exc))


def _problem(problem: Problem) -> dict[str, str]:
    """A deployment problem or warning as JSON, naming its file and element."""
    return {"file": problem.file, "element": problem.element_id, "name": problem.name, "message": problem.reason}


class _BadRequest(Invalid):
    """Raised when the request itself is malformed (not JSON, wrong types)."""


def _bad_request(exc: _BadRequest):
    return _error(400, "Bad Request", str(exc))


def json_errors(blueprint: Blueprint) -> None:
    """Answer the runner's errors raised in ``blueprint``'s views as this API does (an extension's API uses it)."""
    blueprint.register_error_handler(RunnerError, _runner_error)
    blueprint.register_error_handler(_BadRequest, _bad_request)


json_errors(bp)


def _body() -> dict[str, Any]:
    """The JSON object sent (an empty body counts as ``{}``)."""
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise Invalid(f"{name!r}: a non-empty string of at most {MAX_TEXT} characters is required")
    return value.strip()


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _BadRequest(f"{name!r} must be a JSON object")
    return value


def _query(name: str, choices: tuple[str, ...] | None = None) -> str | None:
    """A query filter: absent or empty means none; a choice must be one of ``choices``."""
    value = request.args.get(name)
    if value is None or (choices is None and not value.strip()):
        return None
    if len(value) > MAX_TEXT or (choices is not None and value not in choices):
        raise _BadRequest(
            f"{name}={value[:50]!r}: "
            + (f"one of {', '.join(choices)}" if choices else f"at most {MAX_TEXT} characters")
        )
    return value.strip()


# --- JSON shapes ---------------------------------------------------------------------------------------


def iso(value: Any) -> Any:
    """A date or datetime as ISO 8601 text; anything else as it is."""
    return value.isoformat() if isinstance(value, (datetime, date)) else value


def version_numbers() -> dict[int, int]:
    """Version row id -> version number."""
    return {v["id"]: v["version"] for p in inbox.process_versions(get_runner()) for v in p["versions"]}


def instance_summary(row: dict[str, Any], versions: dict[int, int]) -> dict[str, Any]:
    """An instance row as the document's ``InstanceSummary`` (``versions`` from ``version_numbers``)."""
    return {
        "id": row["id"],
        "process_key": row["process_key"],
        "version": versions.get(row["version_id"], 0),
        "business_key": row["business_key"],
        "state": row["status"],
        "stages": list(row["stages"] or []),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "ended_at": iso(row["ended_at"]),
    }


def _incident(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "kind",
        "element_id",
        "error",
        "tries",
        "state",
        "instance_id",
        "business_key",
        "process_key",
        "created_at",
        "resolved_at",
        "resolved_by",
    )
    return {k: iso(row.get(k)) for k in keys}


def _instance(instance_id: str) -> dict[str, Any]:
    runner = get_runner()
    row = inbox.instance(runner, instance_id)
    history = [
        {
            "id": h["id"],
            "at": iso(h["at"]),
            "event": h["event"],
            "element_id": h["element_id"],
            "actor": h["actor"],
            "details": h["details"] or {},
        }
        for h in inbox.history(runner, instance_id=instance_id)
    ]
    incidents = [
        _incident({**i, "business_key": row["business_key"], "process_key": row["process_key"]})
        for i in inbox.incidents(runner, state=None, instance_id=instance_id)
    ]
    return {
        **instance_summary(row, version_numbers()),
        "active_elements": inbox.active_elements(runner, instance_id),
        "waiting_messages": list((row["waits"] or {}).get("messages", [])),
        "data": row["data"] or {},
        "history": history,
        "incidents": incidents,
    }


def _task(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"] or "",
        "element_id": row["element_id"],
        "instance_id": row["instance_id"],
        "business_key": row["business_key"],
        "process_key": row["process_key"],
        "stage": row["stage"],
        "state": row["state"],
        "assignee": row["assignee"],
        "candidate_groups": list(row["candidate_groups"] or []),
        "candidate_users": list(row["candidate_users"] or []),
        "due": iso(row["due_at"]),
        "follow_up": iso(row["follow_up_at"]),
        "created_at": iso(row["created_at"]),
        "form": [_field(f) for f in (row["form"] or {}).get("fields", [])],
        "orphan": bool(row.get("orphan")),
    }


def _field(field: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "label", "type", "default", "required", "readonly", "min", "max", "minlength", "maxlength")
    return {
        **{k: field.get(k) for k in keys},
        "options": list(field.get("options") or []),
        "properties": dict(field.get("properties") or {}),
    }


# --- the document ----------------------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API and its extensions' operations (no token needed; built by create_app)."""
    return jsonify(current_app.extensions["openapi"])


# --- deployments and definitions (admin) ---------------------------------------------------------------------


@bp.post("/deployments")
@roles_required("admin")
def create_deployment():
    """Deploy the uploaded files (multipart field ``file``, repeatable): 201 with the versions, or 422."""
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
    if not files:
        return _error(
            422,
            "Unprocessable Entity",
            "send one or more files in the multipart field 'file'",
            errors=[{"file": "", "element": "", "name": "", "message": "no file was sent"}],
        )
    if problems:
        return _error(422, "Unprocessable Entity", f"{len(problems)} problem(s); nothing was deployed", errors=problems)
    deployed = get_runner().deploy(files, actor=current_user.username)
    versions = [
        {
            "process_key": d.process_key,
            "version": d.version,
            "file": d.file_name,
            "created": d.changed,
            "warnings": [_problem(w) for w in d.warnings],
        }
        for d in deployed
    ]
    return jsonify(versions=versions), 201 if any(d.changed for d in deployed) else 200


@bp.get("/process-definitions")
@roles_required()
def process_definitions():
    """Deployed processes and decisions: key, latest version, versions with instance counts."""
    out = [
        {
            "key": p["key"],
            "name": p["name"],
            "kind": p["kind"],
            "latest_version": p["latest_version"],
            "versions": [
                {
                    "version": v["version"],
                    "name": v["name"],
                    "file": v["file_name"],
                    "deployed_at": iso(v["deployed_at"]),
                    "deployed_by": v["deployed_by"] or "",
                    "instances": {"running": v["running"], "completed": v["completed"], "total": v["instances"]},
                }
                for v in p["versions"]
            ],
        }
        for p in inbox.process_versions(get_runner())
    ]
    return jsonify(process_definitions=out)


# --- instances ---------------------------------------------------------------------------------------------


@bp.post("/instances")
@roles_required()
def create_instance():
    """Start the latest version of a process for a customer: 201 with the instance."""
    body = _body()
    instance_id = get_runner().start_instance(
        _text(body, "process_key", required=True),
        _text(body, "business_key"),
        _object(body, "data"),
        person=permissions.person(),
    )
    return jsonify(_instance(instance_id)), 201


@bp.get("/instances")
@roles_required()
def list_instances():
    """Instances, newest first, by process key, business key and state."""
    rows = inbox.instances(
        get_runner(),
        process_key=_query("process_key"),
        business_key=_query("business_key"),
        status=_query("state", STATES),
    )
    seen = permissions.visible(r["business_key"] for r in rows)
    rows = [r for r in rows if r["business_key"] in seen]
    versions = version_numbers()
    return jsonify(instances=[instance_summary(r, versions) for r in rows])


@bp.get("/instances/<instance_id>")
@roles_required()
def get_instance(instance_id: str):
    """One instance: process key, version, state, active element ids, data and history."""
    permissions.require_instance(instance_id)
    return jsonify(_instance(instance_id))


# --- tasks: the inbox's rules ----------------------------------------------------------------------------------


def _may_see(row: dict[str, Any]) -> bool:
    user = current_user
    if user.has_role("team_leader", "admin"):
        return True
    if row["assignee"]:
        return row["assignee"] == user.username
    return is_candidate(row, user.username, user.roles)


def _is_admin() -> bool:
    """Admins act on any task (claim, complete), as Camunda's admin may: orphans are not lost."""
    return current_user.has_role("admin")


def _flag(name: str) -> bool | None:
    value = _query(name, ("true", "false"))
    return None if value is None else value == "true"


@bp.get("/tasks")
@roles_required()
def list_tasks():
    """Open tasks the caller may work on (every one for admins and team leaders), earliest due first,
    filtered by group, assignee, customer, process, unassigned and orphan."""
    group, assignee, unassigned, orphan = (
        _query("candidate_group"),
        _query("assignee"),
        _flag("unassigned"),
        _flag("orphan"),
    )
    runner = get_runner()
    rows = inbox.flag_orphans(
        runner,
        [
            r
            for r in inbox.tasks(runner, business_key=_query("business_key"), process_key=_query("process_key"))
            if _may_see(r)
        ],
    )
    if group is not None:
        rows = [r for r in rows if group in (r["candidate_groups"] or [])]
    if assignee is not None:
        rows = [r for r in rows if r["assignee"] == assignee]
    if unassigned is not None:
        rows = [r for r in rows if (not r["assignee"]) is unassigned]
    if orphan is not None:
        rows = [r for r in rows if r["orphan"] is orphan]
    return jsonify(tasks=[_task(r) for r in rows])


def _open_task(task_id: str) -> dict[str, Any]:
    """The task, if the caller may see it at all (else 404, as if it did not exist)."""
    row = inbox.task(get_runner(), task_id)
    if row["state"] == "open" and not _may_see(row) and not row["assignee"]:
        abort(403, description=f"task {task_id} is for {', '.join(row['candidate_groups'] or ['other users'])}")
    return row


@bp.post("/tasks/<task_id>/claim")
@roles_required()
def claim_task(task_id: str):
    """Claim an open task: 409 when someone else has it or it is done, 403 when not a candidate."""
    _open_task(task_id)
    try:
        get_runner().claim_task(task_id, current_user.username, current_user.roles, override=_is_admin())
    except Invalid as exc:
        abort(403, description=str(exc))
    return jsonify(_task(_flagged(task_id)))


@bp.post("/tasks/<task_id>/complete")
@roles_required()
def complete_task(task_id: str):
    """Complete a task with ``{"data": {...}}``: 422 with per-field errors, 409 when done or someone else's."""
    data = _object(_body(), "data")
    row = _open_task(task_id)
    runner = get_runner()
    if _is_admin():
        runner.complete_task(task_id, data, actor=current_user.username)
    else:
        try:
            check_may_complete(row, current_user.username, current_user.roles)
        except Invalid as exc:
            abort(403, description=str(exc))
        runner.complete_task_as(task_id, data, current_user.username, current_user.roles)
    instance = inbox.instance(runner, row["instance_id"])
    return jsonify(task=_task(_flagged(task_id)), instance=instance_summary(instance, version_numbers()))


def _flagged(task_id: str) -> dict[str, Any]:
    """One task with its orphan flag."""
    [row] = inbox.flag_orphans(get_runner(), [inbox.task(get_runner(), task_id)])
    return row


# --- messages ---------------------------------------------------------------------------------------------------


@bp.post("/messages")
@roles_required()
def send_message():
    """Deliver a message by name and business key: 200 with the instances reached or started, 404 if none."""
    body = _body()
    name = _text(body, "name", required=True)
    runner = get_runner()
    ids = runner.correlate(name, _text(body, "business_key"), _object(body, "data"), person=permissions.person())
    started = _was_started(ids[0], name)
    out = []
    for instance_id in ids:
        row = inbox.instance(runner, instance_id)
        out.append(
            {
                "id": instance_id,
                "process_key": row["process_key"],
                "business_key": row["business_key"],
                "started": started,
            }
        )
    return jsonify(instances=out)


def _was_started(instance_id: str, message: str) -> bool:
    """True when the message started the instance (``correlate`` either reaches or starts, never both)."""
    steps = inbox.history(get_runner(), instance_id=instance_id, events=["instance.started", "message.correlated"])
    last = steps[-1] if steps else None
    return bool(
        last and last["event"] == "instance.started" and (last["details"] or {}).get("trigger") == ["message", message]
    )


# --- incidents and the clock (admin) ------------------------------------------------------------------------------


@bp.get("/incidents")
@roles_required("admin")
def list_incidents():
    """Incidents, newest first: ``state`` open (default), resolved or all."""
    state = _query("state", tuple(INCIDENT_STATES)) or "open"
    return jsonify(
        incidents=[_incident(i) for i in inbox.incidents_with_instances(get_runner(), state=INCIDENT_STATES[state])]
    )


@bp.post("/incidents/<int:incident_id>/retry")
@roles_required("admin")
def retry_incident(incident_id: int):
    """Try an incident's job, timer or message again now: 404 unknown, 409 already resolved."""
    if incident_id > MAX_ID:
        raise NotFound(f"incident {incident_id} does not exist")
    runner = get_runner()
    runner.retry_incident(incident_id, actor=current_user.username)
    [row] = [i for i in inbox.incidents_with_instances(runner, state=None) if i["id"] == incident_id]
    return jsonify(incident=_incident(row))


@bp.post("/clock/advance")
@roles_required("admin")
def advance_clock():
    """Move the virtual clock ``{"seconds": N}`` forward; everything due on the way fires."""
    seconds = _body().get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_ADVANCE:
        raise Invalid(f"'seconds': a whole number from 1 to {MAX_ADVANCE}")
    runner = get_runner()
    if runner.settings.clock != "virtual":
        raise Conflict("the clock can only be moved with RUNNER_CLOCK=virtual")
    previous, before = runner.now(), inbox.last_history_id(runner)
    now = runner.advance_clock(timedelta(seconds=seconds))
    events = len(inbox.history_after(runner, before, limit=100_000))
    return jsonify(now=iso(now), previous=iso(previous), events=events)
