"""Admin pages: deploy diagrams, processes and versions, migration (dry run, then with a progress
bar), incidents and undecided outbox messages, users and API tokens, and the virtual clock.

Only admins reach them. Every page calls the runner's public API (``Runner``,
``runner.queries.tasklists``, ``runner.service.instance_migration``, ``runner.service.outbox``,
``runner.service.accounts``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from runner.errors import Conflict, DeploymentInvalid, Invalid, NotFound, Problem
from runner.queries import tasklists as inbox
from runner.service import accounts as users
from runner.service import instance_migration as migration
from runner.service import outbox
from runner.service.deployment import MAX_FILE_BYTES
from web.auth import auth_now, roles_required
from web.edge import row_number
from web.extensions import get_runner
from web.navigation import NavItem

bp = Blueprint("admin", __name__, url_prefix="/admin")
NAV = [NavItem("admin.index", _l("Quản trị"), ("admin",))]
DEPLOYABLE = (".bpmn", ".dmn")
MAX_ID = 2**31 - 1
STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
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


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {"role_labels": current_app.extensions.get("role_labels", {})}


def _virtual() -> bool:
    return get_runner().settings.clock == "virtual"


# --- overview and the virtual clock ------------------------------------------------------------------


@bp.get("/")
@roles_required("admin")
def index():
    """Overview: counts, the clock, and (after moving the clock) what happened on the way."""
    runner = get_runner()
    processes = inbox.process_versions(runner)
    since = request.args.get("since", type=row_number)
    return render_template(
        "admin/index.html",
        now=runner.now(),
        virtual=_virtual(),
        steps=STEPS,
        processes=len([p for p in processes if p["kind"] == "bpmn"]),
        running=sum(v["running"] for p in processes for v in p["versions"]),
        incidents=len(inbox.incidents(runner)),
        undecided=len(_undecided()),
        users=len(users.list_users(runner)),
        effects=inbox.history_after(runner, since, limit=100) if since is not None else None,
    )


@bp.post("/clock/advance")
@roles_required("admin")
def advance_clock():
    """Move the virtual clock by an hour, a day or a week; everything due fires on the way."""
    step = STEPS.get(request.form.get("by", ""))
    if step is None:
        abort(400, description=_("Chọn 1 giờ, 1 ngày hoặc 1 tuần."))
    if not _virtual():
        flash(_("Chỉ chỉnh được đồng hồ khi chạy với RUNNER_CLOCK=virtual."), "error")
        return redirect(url_for("admin.index"))
    runner = get_runner()
    before = inbox.last_history_id(runner)
    now = runner.advance_clock(step)
    flash(
        _("Đồng hồ ảo đã chuyển tới %(now)s.", now=now.astimezone(runner.settings.tz).strftime("%d/%m/%Y %H:%M")),
        "success",
    )
    return redirect(url_for("admin.index", since=before))


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


# --- incidents and outbox decisions ----------------------------------------------------------------------------


def _undecided() -> list[dict[str, Any]]:
    runner = get_runner()
    return sorted(inbox.outbox(runner, state="unknown") + inbox.outbox(runner, state="failed"), key=lambda m: m["id"])


@bp.get("/incidents")
@roles_required("admin")
def incidents():
    """Open incidents with their error, outbox messages waiting for a decision, recently resolved incidents."""
    runner = get_runner()
    return render_template(
        "admin/incidents.html",
        incidents=inbox.incidents_with_instances(runner),
        messages=_undecided(),
        resolved=inbox.incidents_with_instances(runner, state="resolved")[:20],
    )


@bp.post("/incidents/<int:incident_id>/retry")
@roles_required("admin")
def retry_incident(incident_id: int):
    """Try the incident's job, timer or message again (the worker picks it up now)."""
    try:
        if incident_id > MAX_ID:
            raise NotFound(f"incident {incident_id} does not exist")
        get_runner().retry_incident(incident_id, actor=current_user.username)
    except NotFound:
        flash(_("Không có sự cố #%(id)s.", id=incident_id), "error")
    except Conflict:
        flash(_("Sự cố #%(id)s đã được xử lý trước đó.", id=incident_id), "warning")
    else:
        flash(_("Đã thử lại sự cố #%(id)s; worker sẽ chạy lại ngay.", id=incident_id), "success")
    return redirect(url_for("admin.incidents"))


@bp.post("/outbox/<int:message_id>/resolve")
@roles_required("admin")
def resolve_message(message_id: int):
    """Resend or dismiss an outbox message whose delivery is unknown or failed."""
    action = request.form.get("action", "")
    try:
        if message_id > MAX_ID:
            raise NotFound(f"outbox message {message_id} does not exist")
        outbox.resolve(get_runner(), message_id, action)
    except NotFound:
        flash(_("Không có tin nhắn #%(id)s.", id=message_id), "error")
    except Conflict:
        flash(_("Tin nhắn #%(id)s không còn chờ quyết định.", id=message_id), "warning")
    except Invalid:
        flash(_("Chọn gửi lại hoặc bỏ qua."), "error")
    else:
        flash(
            _("Sẽ gửi lại tin nhắn #%(id)s.", id=message_id)
            if action == "resend"
            else _("Đã bỏ qua tin nhắn #%(id)s.", id=message_id),
            "success",
        )
    return redirect(url_for("admin.incidents"))


# --- users, roles and API tokens ---------------------------------------------------------------------------------


def _user(username: str) -> dict[str, Any]:
    found = [u for u in users.list_users(get_runner()) if u["username"] == username]
    if not found:
        abort(404, description=_("Không có người dùng %(name)s.", name=username))
    return found[0]


def _offered() -> list[str]:
    """The roles to tick: the runner's (its extensions'), else those its users already have."""
    runner = get_runner()
    known = users.roles(runner)
    return list(known) if known else sorted({r for u in users.list_users(runner) for r in u["roles"]})


def _roles() -> list[str]:
    known = users.roles(get_runner())
    return [r for r in request.form.getlist("roles") if r in known or not known]


@bp.get("/users")
@roles_required("admin")
def user_list():
    """Users with their roles, state and tokens, and the form to add one."""
    return render_template(
        "admin/users.html", users=users.list_users(get_runner()), roles=_offered(), form={}, error=None
    )


@bp.post("/users")
@roles_required("admin")
def create_user():
    """Add a user with roles and a first password."""
    form = {k: (request.form.get(k) or "").strip() for k in ("username", "full_name", "email")}
    password = request.form.get("password") or ""
    roles = _roles()
    error = None
    if not form["username"] or not form["full_name"] or not roles:
        error = _("Cần tên đăng nhập, họ tên và ít nhất một vai trò.")
    elif len(password.strip()) < users.MIN_PASSWORD:  # NOTE: never an account without a password
        error = _("Mật khẩu cần ít nhất %(n)s ký tự.", n=users.MIN_PASSWORD)
    else:
        try:
            users.create_user(
                get_runner(), form["username"], form["full_name"], roles, password=password, email=form["email"] or None
            )
        except Invalid as exc:
            error = str(exc)
    if error:
        flash(error, "error")
        return render_template(
            "admin/users.html",
            users=users.list_users(get_runner()),
            roles=_offered(),
            form={**form, "roles": roles},
            error=error,
        ), 422
    flash(_("Đã tạo người dùng %(name)s.", name=form["username"]), "success")
    return redirect(url_for("admin.user", username=form["username"]))


def _user_page(username: str, token: str | None = None, status: int = 200):
    return render_template(
        "admin/user.html",
        user=_user(username),
        roles=_offered(),
        new_token=token,
        tokens=users.list_tokens(get_runner(), username),
        now=auth_now(),
    ), status


@bp.get("/users/<username>")
@roles_required("admin")
def user(username: str):
    """One user: roles, active, password reset, API tokens."""
    return _user_page(username)


@bp.post("/users/<username>/roles")
@roles_required("admin")
def set_roles(username: str):
    """Replace the user's roles (an admin keeps their own admin role)."""
    _user(username)
    roles = _roles()
    if username == current_user.username and "admin" not in roles:
        flash(_("Bạn không thể tự bỏ vai trò quản trị của mình."), "error")
    elif not roles:
        flash(_("Chọn ít nhất một vai trò."), "error")
    else:
        users.set_roles(get_runner(), username, roles)
        flash(_("Đã lưu vai trò của %(name)s.", name=username), "success")
    return redirect(url_for("admin.user", username=username))


@bp.post("/users/<username>/active")
@roles_required("admin")
def set_active(username: str):
    """Activate or deactivate a user (a deactivated user cannot sign in and their tokens stop working)."""
    _user(username)
    active = request.form.get("active") == "1"
    if username == current_user.username and not active:
        flash(_("Bạn không thể tự khóa tài khoản của mình."), "error")
    else:
        users.set_active(get_runner(), username, active)
        flash(_("Đã mở khóa %(name)s.", name=username) if active else _("Đã khóa %(name)s.", name=username), "success")
    return redirect(url_for("admin.user", username=username))


@bp.post("/users/<username>/password")
@roles_required("admin")
def reset_password(username: str):
    """Set a new password (the user's sessions end, except the admin's own one here)."""
    _user(username)
    password = request.form.get("password") or ""
    try:
        users.set_password(get_runner(), username, password, keep_session=current_user.session_token)
    except Invalid:
        flash(_("Mật khẩu cần ít nhất %(n)s ký tự.", n=users.MIN_PASSWORD), "error")
    except NotFound:
        flash(_("Người dùng %(name)s đang bị khóa.", name=username), "error")
    else:
        flash(_("Đã đặt mật khẩu mới cho %(name)s.", name=username), "success")
    return redirect(url_for("admin.user", username=username))


@bp.post("/users/<username>/unlock")
@roles_required("admin")
def unlock_login(username: str):
    """Lift the user's failed-login slow-down now (e.g. when someone else's guesses keep them out)."""
    _user(username)
    users.unlock(get_runner(), username)
    flash(_("%(name)s có thể đăng nhập lại ngay.", name=username), "success")
    return redirect(url_for("admin.user", username=username))


@bp.post("/users/<username>/tokens")
@roles_required("admin")
def issue_token(username: str):
    """Issue an API token; the page shows it once and never again."""
    _user(username)
    try:
        token = users.issue_token(get_runner(), username, label=(request.form.get("label") or "").strip()[:200])
    except NotFound:
        flash(_("Người dùng %(name)s đang bị khóa.", name=username), "error")
        return redirect(url_for("admin.user", username=username))
    return _user_page(username, token, 201)


@bp.post("/users/<username>/tokens/<int:token_id>/revoke")
@roles_required("admin")
def revoke_token(username: str, token_id: int):
    """Revoke one of the user's tokens."""
    _user(username)
    if token_id not in {t["id"] for t in users.list_tokens(get_runner(), username)}:
        abort(404)
    users.revoke_token(get_runner(), token_id)
    flash(_("Đã thu hồi mã API."), "success")
    return redirect(url_for("admin.user", username=username))
