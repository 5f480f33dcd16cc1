"""Building blocks of the OpenAPI document: schema shorthands, parameters, bodies and operations.

An extension's ``Part`` is built with them too (``web.crm.api``: ``operation``, ``path_parameter``,
``object_of``, ``ref``, ``nullable`` and the common schemas).
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    """A reference to a schema of ``components.schemas``."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, allowing null."""
    return {**schema, "nullable": True}


def object_of(properties: dict[str, Any], required: tuple[str, ...] | None = None, **extra: Any) -> dict[str, Any]:
    """An object schema; every property is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        **extra,
    }


def list_of(key: str, item: str) -> dict[str, Any]:
    """An object whose one member ``key`` lists ``item`` schemas."""
    return object_of({key: {"type": "array", "items": ref(item)}})


STRING = {"type": "string"}
TEXT = {"type": "string", "minLength": 1, "maxLength": 200}
FILTER = {"type": "string", "maxLength": 200}
WHEN = {"type": "string", "format": "date-time"}
ANY_OBJECT = {"type": "object", "additionalProperties": True}
STRINGS = {"type": "array", "items": STRING}
FLAG = {"type": "string", "enum": ["true", "false"]}


def json_answer(schema: str, description: str) -> dict[str, Any]:
    """A JSON response of the named schema."""
    return {"description": description, "content": {JSON: {"schema": ref(schema)}}}


def _errors(*codes: int) -> dict[str, Any]:
    """The error responses: ``codes``, those every call may get, and the default."""
    texts = {
        400: "malformed request",
        401: "no or bad bearer token",
        403: "the user's roles do not allow it",
        404: "not found",
        409: "conflict with the current state",
        422: "the request was understood but rejected",
        413: "the body is larger than RUNNER_MAX_CONTENT_LENGTH",
        414: "the address is too long",
        415: "the body is of a type the operation does not take",
        429: "too many requests; wait the Retry-After seconds",
    }
    # NOTE: the web edge (web/edge.py) answers 414 to any request and 413 to any body before a view runs
    out = {str(code): json_answer("Error", texts[code]) for code in (401, 403, 414, *codes)}
    out["default"] = json_answer("Error", "any other error")
    return out


def query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """An optional query parameter (a free-text filter unless ``schema`` says otherwise)."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description if schema else description + " (empty: no filter)",
        "schema": schema or FILTER,
    }


def path_parameter(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A path parameter (non-empty text unless ``schema`` says otherwise)."""
    return {"name": name, "in": "path", "required": True, "schema": schema or TEXT}


def body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    """A JSON request body."""
    return {"required": required, "content": {JSON: {"schema": schema}}}


def operation(summary: str, ok: tuple[str, str, str], *errors: int, tag: str, **extra: Any) -> dict[str, Any]:
    """An operation answering ``ok`` (code, schema, description) or the error ``errors`` (413 too with a body)."""
    code, schema, description = ok
    errors += (413,) if "requestBody" in extra else ()
    return {
        "summary": summary,
        "tags": [tag],
        "responses": {code: json_answer(schema, description), **_errors(*errors)},
        **extra,
    }


ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
DATA = {"type": "object", "additionalProperties": True, "nullable": True, "description": "null: no data"}
