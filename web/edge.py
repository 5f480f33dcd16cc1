"""The web app's edge: what it refuses before a view runs, and the headers every answer carries.

A request is refused before it touches the database when
- its address is longer than ``MAX_URL_LENGTH`` characters (414);
- its body is larger than ``RUNNER_MAX_CONTENT_LENGTH`` bytes (413, Flask's ``MAX_CONTENT_LENGTH``);
- a path parameter, query parameter or form value holds text the database or the pages
  cannot hold (a NUL, a lone surrogate; control characters in path parameters), or a
  path parameter is longer than any id (400 naming the parameter);
- a JSON body nests too deeply, holds NaN/Infinity or such text (400 naming the field).

The runner checks the same again (``runner.model.inputs``), so the CLI is covered too; this
layer only makes sure hostile text never reaches a query.

Every answer carries a Content-Security-Policy (scripts only from /static or with the
request's nonce, no framing), ``X-Content-Type-Options: nosniff`` and a Referrer-Policy.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask import Flask, Response, abort, g, request

from runner.model import inputs
from runner.settings import Settings

MAX_URL_LENGTH = 4096  # NOTE: gunicorn refuses request lines over 4094 bytes by default; this matches it
# NOTE: style-src allows inline styles: the diagrams (SVG) and a few templates use style
# attributes, and styles cannot run code. Scripts need 'self' or the request's nonce.
CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}


def init_app(app: Flask, settings: Settings) -> None:
    """Limits from the settings, the request checks and the security headers."""
    # NOTE: Flask's defaults (None, False) are already in app.config; a test config that set them wins.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    for name in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        app.config[name] = bool(app.config.get(name)) or settings.cookie_secure
    app.before_request(check_request)
    app.after_request(add_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce


def csp_nonce() -> str:
    """This request's script nonce (templates put it on their inline ``<script>``)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def add_security_headers(response: Response) -> Response:
    """CSP with this request's nonce, nosniff, referrer policy, no framing."""
    response.headers.setdefault("Content-Security-Policy", CSP.format(nonce=csp_nonce()))
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def check_request() -> None:
    """Refuse a request whose address, parameters or JSON body the app cannot safely handle."""
    if len(request.full_path) > MAX_URL_LENGTH:
        abort(414, description=f"the address is longer than {MAX_URL_LENGTH} characters")
    try:
        for name, value in (request.view_args or {}).items():
            if isinstance(value, str):
                inputs.check_key(value, name)
            elif isinstance(value, int) and not 0 <= value <= inputs.MAX_ROW_NUMBER:
                abort(404)  # no row has such a number, and PostgreSQL's integer cannot even compare it
        _check_pairs(request.args.items(multi=True), "query parameter")
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            _check_pairs(request.form.items(multi=True), "form field")
            for name, upload in request.files.items(multi=True):
                inputs.check_text(
                    upload.filename or "", f"{name} (file name)", max_length=inputs.NAME_LENGTH, control=True
                )
        if request.is_json or (request.path.startswith("/api/") and request.mimetype != "multipart/form-data"):
            _check_json()
    except inputs.TextInvalid as exc:
        abort(400, description=str(exc))


def row_number(text: str) -> int:
    """``request.args.get(name, type=row_number)``: an int a row id or version can be, else ValueError (None)."""
    value = int(text)
    if not 0 <= value <= inputs.MAX_ROW_NUMBER:
        raise ValueError(f"{value} is not a row number")
    return value


def _check_pairs(pairs: Any, what: str) -> None:
    for name, value in pairs:
        inputs.check_text(name, f"{what} name {ascii(name)[:60]}", control=True)
        inputs.check_text(value, name)


def _check_json() -> None:
    """Parse the body strictly: NaN/Infinity and deep nesting are refused, every text checked."""
    raw = request.get_data(cache=True)
    if not raw:
        return
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise inputs.TextInvalid("body", f"nests deeper than {inputs.MAX_DEPTH} levels") from None
    except ValueError:
        return  # not JSON at all: the view answers that, in its own words
    if isinstance(body, dict):
        for name, value in body.items():
            inputs.check_text(name, f"body key {ascii(name)[:60]}", control=True)
            inputs.check_data(value, name)
    else:
        inputs.check_data(body, "body")


def _no_constant(name: str) -> float:
    raise inputs.TextInvalid("body", f"{name} is not a number JSON allows")
