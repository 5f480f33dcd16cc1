"""Pipeline boards: a pipeline's stages as columns of customer cards."""

from __future__ import annotations

from flask import abort, render_template, request
from flask_login import current_user

from runner.crm import views
from runner.crm.customers import PIPELINES
from runner.crm.models import BadValue, Missing
from runner.queries import tasklists as inbox
from web import permissions
from web.auth import roles_required
from web.crm.customers.blueprint import bp
from web.extensions import get_runner


def board_tabs() -> list[dict[str, str]]:
    """The pipeline boards as tabs: process key, pipeline and the process's name."""
    names = inbox.process_names(get_runner())
    return [{"key": key, "pipeline": PIPELINES[key], "process_name": names.get(key, key)} for key in views.boards()]


@bp.get("/boards/")
@roles_required()
def boards():
    """The first pipeline's board (Trong bán hàng): the top bar's link."""
    return _board_page(next(iter(views.boards())))


@bp.get("/boards/<board>")
@roles_required()
def board(board: str):
    """A pipeline as columns of stages with customer cards; ``?owner=`` (or ``me``) narrows it."""
    return _board_page(board)


def _board_page(board: str):
    owner = (request.args.get("owner") or "").strip() or None
    if owner == "me":
        owner = current_user.username
    # NOTE: ``?stage=X&after=cursor`` pages one column on (keyset); the others show their first cards
    stage, after = request.args.get("stage"), request.args.get("after")
    try:
        data = views.pipeline_board(
            get_runner(),
            board,
            owner_name=owner,
            person=permissions.person(),
            after={stage: after} if stage and after else None,
        )
    except Missing:
        abort(404)
    except BadValue as exc:
        abort(400, description=str(exc))
    return render_template("customers/board.html", data=data, owner=owner, boards=board_tabs(), stage=stage)
