"""``POST /api/leads``: website and landing-page forms post leads with their source's key (``runner.crm.capture``).

The key is the only credential (``X-Lead-Key: lk_…``, ``Authorization: Bearer lk_…``, or, for a plain HTML
form that cannot set headers, the form field ``lead_key``): no session, so no CSRF; a staff API token is
no lead key (401) and a lead key opens no other operation (the staff API takes ``rt_`` tokens only).

- Body: JSON, or ``application/x-www-form-urlencoded`` / ``multipart/form-data`` (a plain HTML form), at most
  ``MAX_BODY`` bytes (413). Fields: the lead fields (name, phone or e-mail, ...); others are left out.
- ``Idempotency-Key`` (header, or the field ``idempotency_key``): the same key and body answer the first
  post's reference again (200, ``Idempotent-Replayed: true``); another body 422; still being made 409.
- 201 ``{"status": "received", "reference"}`` for a new lead and for a known customer's phone or e-mail
  alike (their timeline gets a note): an anonymous visitor learns nothing about who is a customer.
- 429 with ``Retry-After`` beyond the key's posts per minute; 401 for a missing, wrong or revoked key.
- A plain HTML form may name ``thanks_url``, a page on one of the key's origins: a new or known lead then
  answers 303 to it (with ``?reference=…``), so the visitor lands on the site's thank-you page, not on
  JSON. Any other URL is 422 naming the field; errors stay JSON, as a form cannot show them.
- CORS: a key lists the web origins allowed to post with it. A post carrying an ``Origin`` the key
  does not list is refused (403); answers and preflights name an origin that a live key lists.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from flask import Blueprint, Response, abort, g, jsonify, redirect, request

from runner.crm import capture, lead_keys
from runner.errors import FormInvalid
from web import api
from web.api.errors import BadRequest, error
from web.extensions import get_runner
from web.openapi import STRING, Part, object_of, operation

bp = Blueprint("crm_leads", __name__, url_prefix="/api")
api.json_errors(bp)

MAX_BODY = 16 * 1024  # a lead form is a few hundred bytes; far below the app's RUNNER_MAX_CONTENT_LENGTH
KEY_FIELDS = ("lead_key", "idempotency_key", "thanks_url")  # credentials, client key, answer: not lead fields
THANKS_MAX = 500
URL_SAFE = ":/?#[]@!$&'()*+,;=%~"  # kept as typed: the characters with a meaning in a URL
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Lead-Key"


@bp.errorhandler(lead_keys.KeyRefused)
def _refused(exc: lead_keys.KeyRefused):
    response, status = error(401, "Unauthorized", str(exc))
    response.headers["WWW-Authenticate"] = 'Bearer realm="leads"'
    return response, status


@bp.errorhandler(lead_keys.RateLimited)
def _limited(exc: lead_keys.RateLimited):
    response, status = error(429, "Too Many Requests", str(exc))
    response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after.total_seconds())))
    return response, status


@bp.errorhandler(capture.InProgress)
def _in_progress(exc: capture.InProgress):
    response, status = error(409, "Conflict", str(exc))
    response.headers["Retry-After"] = "1"
    return response, status


@bp.after_request
def _cors(response: Response) -> Response:
    """Let a browser page of an origin that a live key lists read the answer (never a credentialed one)."""
    origin = request.headers.get("Origin")
    if origin and origin.lower() in lead_keys.allowed_origins(get_runner()):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Idempotent-Replayed, Retry-After"
    response.vary.add("Origin")
    return response


@bp.route("/leads", methods=["OPTIONS"])
def lead_preflight():
    """A browser's preflight: which methods and headers a listed origin may use."""
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "POST"
    response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


@bp.post("/leads")
def post_lead():
    """Make a lead of a website form once per idempotency key (see the module's notes)."""
    if len(request.get_data(cache=True)) > MAX_BODY:
        abort(413, description=f"a lead form is at most {MAX_BODY} bytes")
    fields = _body()
    runner = get_runner()
    key = lead_keys.use_key(runner, _secret(fields))
    origin = request.headers.get("Origin")
    if origin and origin.lower() not in key.origins:
        return error(403, "Forbidden", f"this form's key does not allow posts from {origin[:100]}")
    client_key = capture.check_client_key(_client_key(fields))
    thanks = _thanks_url(fields.get("thanks_url"), key.origins)
    values = capture.form_values(runner, {k: v for k, v in fields.items() if k not in KEY_FIELDS})
    g.lead_key = key
    outcome = capture.submit(runner, key, values, client_key)
    if thanks is not None:
        separator = "&" if urlsplit(thanks).query else "?"
        return redirect(f"{thanks}{separator}{urlencode({'reference': outcome.reference})}", code=303)
    response = jsonify(status="received", reference=outcome.reference)
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, outcome.status


def _thanks_url(value: Any, origins: tuple[str, ...]) -> str | None:
    """The form's thank-you page, if it names one: an http(s) URL on one of the key's origins (422 otherwise)."""
    if value in (None, "") or request.mimetype == "application/json":
        return None
    text = str(value).strip()
    parts = urlsplit(text)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    unsafe = any(ord(c) < 33 or c == "\\" for c in text)  # NOTE: a header must not carry CR/LF
    if len(text) > THANKS_MAX or unsafe or parts.scheme not in ("http", "https") or origin not in origins:
        raise FormInvalid(
            {"thanks_url": f"field 'thanks_url': a page on one of this form's origins ({', '.join(origins) or 'none'})"}
        )
    return quote(text, safe=URL_SAFE)  # NOTE: a Vietnamese path in ASCII, as a header needs


def _body() -> dict[str, Any]:
    """The posted fields: a JSON object of text, numbers and booleans, or a form's fields (the first of each)."""
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {k: request.form.get(k) for k in request.form}
    if not request.is_json:
        abort(415, description="send JSON or a form (application/x-www-form-urlencoded)")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object of lead fields")
    for name, value in body.items():
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise BadRequest(f"field {name!r}: text, a number or true/false, not {type(value).__name__}")
    return body


def _secret(fields: dict[str, Any]) -> str | None:
    """The lead key from X-Lead-Key, a bearer header, or a form field (in that order)."""
    if request.headers.get("X-Lead-Key"):
        return request.headers["X-Lead-Key"].strip()
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    value = fields.get("lead_key") if request.mimetype != "application/json" else None
    return value if isinstance(value, str) else None


def _client_key(fields: dict[str, Any]) -> str | None:
    """The Idempotency-Key header (quotes of its structured-field form taken off), else the form's field."""
    header = request.headers.get("Idempotency-Key")
    if header is not None:
        return header.strip().removeprefix('"').removesuffix('"')
    value = fields.get("idempotency_key")
    return str(value) if value not in (None, "") else None


# --- its share of the OpenAPI document ----------------------------------------------------------------------

_FORM = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": True,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 300},
        "phone": {"type": "string", "maxLength": 50, "description": "a phone number or an e-mail address is needed"},
        "email": {"type": "string", "maxLength": 200},
        "idempotency_key": {"type": "string", "maxLength": 200, "description": "instead of the header"},
        "lead_key": {"type": "string", "description": "instead of the header (a plain HTML form)"},
        "thanks_url": {
            "type": "string",
            "maxLength": THANKS_MAX,
            "description": "a plain form's thank-you page, on one of the key's origins: the answer is 303 to it",
        },
    },
    "description": "lead fields (those of the new-lead page except source and owner); other fields are left out",
}
_SCHEMAS: dict[str, Any] = {
    "LeadReceived": object_of({"status": {"type": "string", "enum": ["received"]}, "reference": STRING})
}
_POST_LEAD = operation(
    "A website or landing-page form's lead, once per Idempotency-Key (authenticated by the form's lead key)",
    ("201", "LeadReceived", "received: a new lead, or a note on the customer who has this phone or e-mail"),
    400,
    409,
    415,
    422,
    429,
    tag="leads",
    operationId="postLead",
    security=[{"leadKey": []}],
    parameters=[
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "the same key and body answer the first post's reference again (200)",
            "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x21-\\x7e]+$"},
        }
    ],
    requestBody={
        "required": True,
        "content": {
            "application/json": {"schema": _FORM},
            "application/x-www-form-urlencoded": {"schema": _FORM},
        },
    },
    responses_extra={"200": ("LeadReceived", "a replay: the first post with this Idempotency-Key")},
)
_POST_LEAD["responses"]["303"] = {
    "description": "a plain form that named thanks_url: received, see the site's thank-you page (?reference=…)",
    "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
}
_PATHS: dict[str, Any] = {"/api/leads": {"post": _POST_LEAD}}
OPENAPI = Part(
    paths=_PATHS,
    schemas=_SCHEMAS,
    security_schemes={
        "leadKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Lead-Key",
            "description": "a form's lead key (lk_…, made by an admin per customer source); also "
            "'Authorization: Bearer lk_…' or the form field lead_key. Staff tokens do not work here.",
        }
    },
)
