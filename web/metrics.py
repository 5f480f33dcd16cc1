"""``/metrics`` for Prometheus, and what every request adds to the metrics and the logs.

Who may read ``/metrics`` (the text format of ``runner.queries.metrics.render``):
- a client whose address is in ``RUNNER_METRICS_ALLOW`` (networks; empty by default), or
- ``Authorization: Bearer <token>`` with the API token of an active admin.
Anyone else gets 401 (no or an unknown token) or 403 (a token of a non-admin), never the data.
The address is ``request.remote_addr``: behind a reverse proxy that is the proxy's (see ``web.auth``).

Every request gets a request id: the client's ``X-Request-ID`` when it is a short plain token
(letters, digits, ``-_.:``, at most 128), else a new one; it is bound to the request's log lines
(``runner.logs``) and echoed in the answer's ``X-Request-ID``. Its latency is observed per endpoint
(the Flask endpoint name, ``none`` when no route matched: never the path, which holds ids).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request

from runner import logs, metrics
from runner.queries import metrics as state
from runner.scrape import DENIED, reader_status
from web.extensions import get_runner

bp = Blueprint("metrics", __name__)
log = logging.getLogger("web.request")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def init_app(app: Flask) -> None:
    """Time every request and bind its id to its log lines (before the other hooks, so refusals count too)."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)


def _start_request() -> None:
    g.request_started = time.perf_counter()
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = offered if REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
    # NOTE: a request spans several Flask hooks: bound here, put back in _end_request.
    g.request_log_token = logs.push(request_id=g.request_id)


def _finish_request(response: Response) -> Response:
    started = g.get("request_started")
    if started is None:  # a request refused before our first hook ran
        return response
    seconds = time.perf_counter() - started
    endpoint = request.endpoint or "none"
    metrics.observe_request(endpoint, request.method, response.status_code, seconds)
    response.headers[REQUEST_ID_HEADER] = g.request_id
    log.info(
        "%s %s %s %.1f ms",
        request.method,
        endpoint,
        response.status_code,
        seconds * 1000,
    )
    return response


def _end_request(exc: BaseException | None) -> None:
    token = g.pop("request_log_token", None)
    if token is not None:
        logs.pop(token)


def _check_reader() -> None:
    """Let an allowed address or an admin's token through (the rule of ``runner.scrape``); 401/403 otherwise."""
    allow = current_app.config["RUNNER_SETTINGS"].metrics_allow
    status = reader_status(get_runner(), allow, request.remote_addr, request.headers.get("Authorization", ""))
    if status != 200:
        response = jsonify(error="Unauthorized" if status == 401 else "Forbidden", detail=DENIED[status])
        response.status_code = status
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        abort(response)


@bp.get("/metrics")
def scrape() -> Response:
    """The Prometheus text format: process counters and histograms, then the database's gauges."""
    _check_reader()
    body, content_type = state.render(get_runner())
    return Response(body, content_type=content_type)
