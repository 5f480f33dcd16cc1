"""Reading an API request: the JSON body, its text and object members, and query filters."""

from __future__ import annotations

from typing import Any

from flask import request

from runner.errors import Invalid
from web.api.errors import BadRequest

MAX_ID = 2**31 - 1  # NOTE: larger path ids would overflow the database's integer, not just miss
MAX_TEXT = 200


def body() -> dict[str, Any]:
    """The JSON object sent (an empty body counts as ``{}``)."""
    if not request.get_data(cache=True):
        return {}
    sent = request.get_json(force=True, silent=True)
    if not isinstance(sent, dict):
        raise BadRequest("the body must be a JSON object")
    return sent


def text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    """A stripped non-empty string member of at most ``MAX_TEXT`` characters (None when absent and optional)."""
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise Invalid(f"{name!r}: a non-empty string of at most {MAX_TEXT} characters is required")
    return value.strip()


def json_object(body: dict[str, Any], name: str) -> dict[str, Any]:
    """An object member (absent or null counts as ``{}``)."""
    value = body.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{name!r} must be a JSON object")
    return value


def query(name: str, choices: tuple[str, ...] | None = None) -> str | None:
    """A query filter: absent or empty means none; a choice must be one of ``choices``."""
    value = request.args.get(name)
    if value is None or (choices is None and not value.strip()):
        return None
    if len(value) > MAX_TEXT or (choices is not None and value not in choices):
        raise BadRequest(
            f"{name}={value[:50]!r}: "
            + (f"one of {', '.join(choices)}" if choices else f"at most {MAX_TEXT} characters")
        )
    return value.strip()


def page_limit() -> str | None:
    """A paged list's ``limit`` as sent (None when absent); an empty one is refused, as the document's integer says."""
    value = request.args.get("limit")
    if value is not None and not value.strip():
        raise BadRequest("limit: '' is not a whole number")
    return value


def flag(name: str) -> bool | None:
    """A ``true``/``false`` query filter (None when absent)."""
    value = query(name, ("true", "false"))
    return None if value is None else value == "true"
