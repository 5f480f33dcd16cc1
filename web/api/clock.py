"""The virtual clock (admin): ask for a clock run, then follow it.

Moving the clock fires everything due on the way, which can take minutes for a month of a
busy company: ``POST /api/clock/advance`` queues a run and answers 202 at once, with the
run's address in ``Location``; ``GET /api/clock/runs/{run_id}`` shows how far it got. One run
moves the clock at a time (a second request meanwhile is 409). A retried request is harmless
with an ``idempotency_key`` (the first run is answered again) or ``expected_now``
(409 when the clock is no longer at that time).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import jsonify, url_for
from flask_login import current_user

from runner.errors import Conflict, Invalid, NotFound
from runner.service.clockruns import RunActive
from web.api.blueprint import bp
from web.api.errors import error
from web.api.inputs import MAX_ID, body
from web.api.shapes import iso
from web.auth import roles_required
from web.extensions import get_runner, resume_clock_run, start_clock_run
from web.openapi import MAX_ADVANCE


def clock_run(run: dict[str, Any]) -> dict[str, Any]:
    """A clock run as the API answers it."""
    return {key: iso(value) for key, value in run.items() if key != "history_from"}


@bp.post("/clock/advance")
@roles_required("admin")
def advance_clock():
    """Queue a run moving the virtual clock ``{"seconds": N}`` forward: 202 with its address, 409 while one runs."""
    sent = body()
    seconds = sent.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_ADVANCE:
        raise Invalid(f"'seconds': a whole number from 1 to {MAX_ADVANCE}")
    expected = _moment(sent.get("expected_now"), "expected_now")
    key = sent.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not key):
        raise Invalid("'idempotency_key': text of 1 to 200 characters")
    runner = get_runner()
    if runner.settings.clock != "virtual":
        raise Conflict("the clock can only be moved with RUNNER_CLOCK=virtual")
    try:
        run = runner.request_clock_run(timedelta(seconds=seconds), current_user.username, expected=expected, key=key)
    except RunActive as exc:
        response, status = error(409, "Conflict", str(exc), run=clock_run(exc.run))
        response.headers["Location"] = url_for("api.get_clock_run", run_id=exc.run["id"])
        return response, status
    if run["state"] in ("queued", "running"):
        start_clock_run(run["id"])
    response = jsonify(clock_run(run))
    response.headers["Location"] = url_for("api.get_clock_run", run_id=run["id"])
    return response, 202


@bp.get("/clock/runs/<int:run_id>")
@roles_required("admin")
def get_clock_run(run_id: int):
    """One clock run: its state, how far the clock got, how many timers and jobs fired."""
    if run_id > MAX_ID:
        raise NotFound(f"clock run {run_id} does not exist")
    runner = get_runner()
    run = runner.clock_run(run_id)
    if run["state"] in ("queued", "running"):
        resume_clock_run(run_id)  # NOTE: a run whose executor died goes on here
    return jsonify(clock_run(run))


def _moment(value: Any, name: str) -> datetime | None:
    """An optional ISO 8601 moment with its offset, else 422 naming the field."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise Invalid(f"'{name}': an ISO 8601 date and time with its offset, such as 2026-12-07T09:00:00+07:00")
    return moment
