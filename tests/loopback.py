"""A JSON-over-HTTP server on 127.0.0.1, for tests of outside services (webhooks, Zalo OA).

The test supplies ``handle(path, headers, body)``; it answers ``(status, JSON body)``
(``None`` as the body: an empty one) or ``None`` to hang up without answering.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WAIT = 60.0  # seconds to wait for the serving thread to stop

Answer = tuple[int, Any] | None
Handle = Callable[[str, Message, Any], Answer]


class _Server(ThreadingHTTPServer):
    """One thread per request, so a request a test holds does not stop the next one."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a held request's sender was killed: answering it fails, as it should


def _handler_class(handle: Handle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            answered = handle(self.path, self.headers, body)
            if answered is None:
                self.close_connection = True
                return
            status, answer = answered
            data = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            if answer is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet server
            pass

    return Handler


@contextmanager
def serve(handle: Handle, name: str) -> Iterator[str]:
    """Serve ``handle`` from a thread until the block ends; yields the base URL."""
    server = _Server(("127.0.0.1", 0), _handler_class(handle))
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)
