"""Who may read the metrics, and ``runner worker``'s own metrics endpoint.

One rule for the web app's ``/metrics`` (``web.metrics``) and the worker's: a client whose
address is in ``RUNNER_METRICS_ALLOW``, or ``Authorization: Bearer`` with an active admin's API
token (``runner.service.tokens``); 401 without a valid token, 403 for someone else's.

Why a worker may serve its own: in multiprocess mode (``runner.metrics``) a web process on the
same host already shows the worker's counts, so this is off by default. A worker on a host
with no web process has nobody to add its folder up: ``RUNNER_WORKER_METRICS=host:port`` then
serves the same answer (its process's counters, or its folder's, then the database's gauges)
at ``http://host:port/metrics``, from a thread beside the worker loop.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from runner.queries import metrics as state
from runner.service import tokens
from runner.service.unit import Core

log = logging.getLogger(__name__)

DENIED = {
    401: "send 'Authorization: Bearer <token>' with an admin's API token",
    403: "only admins may read the metrics",
}


def reader_status(core: Core, allow: Iterable[str], address: str | None, authorization: str) -> int:
    """200 when the client may read the metrics, else 401 (no valid token) or 403 (not an admin's)."""
    try:
        client = ipaddress.ip_address(address or "")
    except ValueError:
        client = None
    if client is not None and any(client in ipaddress.ip_network(net) for net in allow):
        return 200
    scheme, _sep, token = authorization.partition(" ")
    user = tokens.verify_token(core, token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if user is None:
        return 401
    return 200 if "admin" in user["roles"] else 403


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's name
        log.debug("metrics: " + format, *args)


def wsgi_app(core: Core) -> Callable[..., list[bytes]]:
    """The worker's endpoint: GET /metrics under the same rule as the web app's."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only GET /metrics here\n"]
        status = reader_status(
            core, core.settings.metrics_allow, environ.get("REMOTE_ADDR"), environ.get("HTTP_AUTHORIZATION", "")
        )
        if status != 200:
            reason = "Unauthorized" if status == 401 else "Forbidden"
            headers = [("Content-Type", "text/plain")]
            if status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="metrics"'))
            start_response(f"{status} {reason}", headers)
            return [DENIED[status].encode() + b"\n"]
        body, content_type = state.render(core)
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


@contextmanager
def serving(core: Core) -> Iterator[WSGIServer | None]:
    """Serve ``/metrics`` from a thread while the block runs, if ``RUNNER_WORKER_METRICS`` asks for it."""
    if not core.settings.worker_metrics:
        yield None
        return
    host, _sep, port = core.settings.worker_metrics.rpartition(":")
    server = make_server(host.strip("[]"), int(port), wsgi_app(core), handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("worker metrics on http://%s:%s/metrics", host, server.server_port)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
