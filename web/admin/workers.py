"""The admin page of the workers: who is alive, how far due work lags, their last error."""

from __future__ import annotations

from flask import render_template

from runner.service import workers
from web.admin.blueprint import bp
from web.auth import roles_required
from web.extensions import get_runner


@bp.get("/workers")
@roles_required("admin")
def worker_list():
    """Every worker's heartbeat, live ones first."""
    runner = get_runner()
    return render_template(
        "admin/workers.html",
        workers=workers.list_workers(runner),
        timeout=runner.settings.worker_timeout_seconds,
    )
