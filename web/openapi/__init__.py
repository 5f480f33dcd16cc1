"""The OpenAPI 3 document of the REST API (served at /api/openapi.json).

Built in code so that it sits next to the views it describes (``web.api``); the tests
validate every response the API gives against it, and schemathesis fuzzes the API from it.
``builders`` holds the building blocks, ``schemas`` the answers' schemas, ``paths`` the operations
(one function per resource family, as ``web.api`` has one module per family).

This package describes the generic operations only. An extension that adds operations under /api
describes them in a ``Part`` (``web.crm.api.OPENAPI``: the customer endpoint), built with the helpers
here (``operation``, ``path_parameter``, ``object_of``, ``ref``, ``nullable``); ``create_app`` serves
``document(*parts)``, the generic document with each part's paths, schemas and links added.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from web.openapi.builders import (
    ANY_OBJECT,
    JSON,
    STRING,
    STRINGS,
    WHEN,
    json_answer,
    nullable,
    object_of,
    operation,
    path_parameter,
    ref,
)
from web.openapi.paths import MAX_ADVANCE, paths
from web.openapi.schemas import SCHEMAS
from web.openapi_links import Links, add_links

__all__ = [
    "MAX_ADVANCE",
    "STRING",
    "STRINGS",
    "WHEN",
    "Part",
    "document",
    "nullable",
    "object_of",
    "operation",
    "path_parameter",
    "ref",
]
INFO = {
    "title": "EasyEdu BPMN runner API",
    "version": "1",
    "description": "Deploy processes, start instances, work tasks, send messages. Every call but "
    "this document needs `Authorization: Bearer <token>` (`runner users token NAME`). "
    'Errors are JSON `{"error", "detail"}`.',
}
THIS_DOCUMENT = {
    "get": {
        "summary": "This document",
        "tags": ["meta"],
        "security": [],
        "responses": {"200": {"description": "OpenAPI 3.0", "content": {JSON: {"schema": ANY_OBJECT}}}},
    }
}


@dataclass(frozen=True)
class Part:
    """An extension's share of the document: its paths (each operation with its operationId), schemas, links
    and the security schemes its operations name besides the bearer token."""

    paths: dict[str, Any]
    schemas: dict[str, Any] = field(default_factory=dict)
    links: Links = field(default_factory=dict)
    security_schemes: dict[str, Any] = field(default_factory=dict)


def document(*parts: Part) -> dict[str, Any]:
    """The OpenAPI 3.0 document of /api: the generic operations, plus each part's."""
    all_paths, schemas = paths(), dict(SCHEMAS)
    for part in parts:
        _add(part, all_paths, schemas)
    _add_extra_responses(all_paths)
    all_paths["/api/openapi.json"] = copy.deepcopy(THIS_DOCUMENT)
    add_links(all_paths, *(part.links for part in parts))
    schemes: dict[str, Any] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for part in parts:
        schemes.update(copy.deepcopy(part.security_schemes))
    return {
        "openapi": "3.0.3",
        "info": dict(INFO),
        "paths": all_paths,
        "components": {"schemas": schemas, "securitySchemes": schemes},
        "security": [{"bearer": []}],
    }


def _add(part: Part, paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Add a part's paths and schemas (copies: links are added later, in place); refuse to describe one twice."""
    for kind, mine, theirs in (("path", paths, part.paths), ("schema", schemas, part.schemas)):
        if set(mine) & set(theirs):
            raise ValueError(f"{kind}s {sorted(set(mine) & set(theirs))} are described twice")
        mine.update(copy.deepcopy(theirs))


def _add_extra_responses(paths: dict[str, Any]) -> None:
    """Turn each operation's ``responses_extra`` (code -> schema name, description) into responses."""
    for item in paths.values():
        for op in item.values():
            for code, (schema, description) in op.pop("responses_extra", {}).items():
                op["responses"][code] = json_answer(schema, description)
