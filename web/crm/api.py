"""The CRM's operations under /api: ``GET /api/customers`` (search, a page at a time; ``listCustomers``),
``POST /api/customers`` (a new lead, ``runner.crm.intake``; ``createCustomer``),
``GET /api/customers/<business_key>`` (operationId ``getCustomer``, with the customer's version as its
ETag) and ``PATCH /api/customers/<business_key>`` (``updateCustomer``: a partial edit under If-Match).

A blueprint of its own beside the generic ``web.api``: bearer tokens and JSON errors as there
(``api.json_errors``), CSRF-exempt as there (``create_app`` exempts both). ``OPENAPI`` is its share of
the document served at /api/openapi.json: the path, the ``Customer`` and ``TimelineItem`` schemas, and
the links: from the customer to the generic operations, and from every answer that holds an instance
(``INSTANCE_ANSWERS``) to its customer.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for
from werkzeug.exceptions import BadRequest

from runner.crm import editing, intake, pages, views
from runner.queries import tasklists
from web import api, permissions
from web.api.errors import error
from web.api.inputs import body, query
from web.auth import roles_required
from web.extensions import get_runner
from web.openapi import STRING, STRINGS, WHEN, Part, nullable, object_of, operation, path_parameter, ref
from web.openapi.builders import body as body_of
from web.openapi.builders import query as query_parameter
from web.openapi_links import INSTANCE_ANSWERS, link_to

bp = Blueprint("crm_api", __name__, url_prefix="/api")
api.json_errors(bp)


PAGE_MAX = 200  # customers per page at most


def _limit() -> int:
    raw = request.args.get("limit")  # NOTE: not query(): an empty limit breaks the document's pattern
    if raw is None:
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= PAGE_MAX:
        raise BadRequest(f"limit={raw[:20]!r}: a whole number from 1 to {PAGE_MAX}")
    return int(raw)


@bp.get("/customers")
@roles_required()
def list_customers():
    """Customers the caller may see by name (accents ignored), phone, code or tag, in id order, a page at a time.

    ``next`` is the ``after`` of the following page (keyset paging), or null on the last one.
    """
    limit = _limit()
    rows = pages.search_customers(
        get_runner(),
        permissions.person(),
        query("q") or "",
        tag=query("tag"),
        limit=limit + 1,
        after=query("after"),
    )
    keys = ("id", "name", "phone", "owner", "owner_name", "status", "tags", "stages")
    return jsonify(
        customers=[{k: row[k] for k in keys} for row in rows[:limit]],
        next=rows[limit - 1]["id"] if len(rows) > limit else None,
    )


@bp.post("/customers")
@roles_required("marketing", "sales", "admin")
def create_customer():
    """A new lead: the customer and its sales procedure (201, ``Location``), 409 naming the duplicate, 422 by field."""
    try:
        lead = intake.create_lead(get_runner(), body(), person=permissions.person())
    except intake.DuplicateCustomer as exc:
        existing = {
            "id": exc.customer_id,
            "name": exc.name,
            "url": url_for(".get_customer", business_key=exc.customer_id),
        }
        return error(409, "Conflict", str(exc), field=exc.field, customer=existing)
    response = jsonify(
        id=lead.customer_id, name=lead.name, owner=lead.owner, owner_name=lead.owner_name, instance_id=lead.instance_id
    )
    response.headers["Location"] = url_for(".get_customer", business_key=lead.customer_id)
    return response, 201


@bp.get("/customers/<business_key>")
@roles_required()
def get_customer(business_key: str):
    """A customer's profile, current stage per pipeline, timeline (newest first) and instances."""
    permissions.require_customer(business_key)
    runner = get_runner()
    profile = pages.customer_profile(runner, business_key)  # Missing (a NotFound) when there is none
    versions = api.version_numbers()
    answer = jsonify(
        customer=profile,
        stages=profile["stages"],
        timeline=_timeline(business_key),
        instances=[api.instance_summary(r, versions) for r in tasklists.instances(runner, business_key=business_key)],
    )
    answer.headers["ETag"] = f'"{profile["version"]}"'  # what PATCH's If-Match names (see updateCustomer)
    return answer


# --- a partial edit (runner.crm.editing) -----------------------------------------------------------------


def _if_match(raw: str) -> int | None:
    """The version an edit was made on, from If-Match (``"3"``; ``*``: whatever is stored)."""
    tag = raw.strip().removeprefix("W/").strip('"')
    if tag == "*":
        return None
    if not tag.isdigit() or len(tag) > 9:
        raise BadRequest(f"If-Match: {raw[:40]!r} is not an ETag of this API (a quoted version number)")
    return int(tag)


@bp.patch("/customers/<business_key>")
@roles_required(*sorted(editing.EDITORS))
def update_customer(business_key: str):
    """Change some fields of a customer (columns, extra fields, tags, owner) made on the version If-Match names.

    200 with the customer and its new ETag; 409 naming the fields changed since (``changed``); 422 by field.
    """
    permissions.require_customer(business_key)
    if request.headers.get("If-Match") is None:
        detail = "If-Match: send the ETag of GET /api/customers/{business_key} (or * to edit whatever is stored)"
        return jsonify(error="Precondition Required", detail=detail), 428
    version = _if_match(request.headers["If-Match"])
    values = request.get_json(silent=True)
    if not isinstance(values, dict):
        raise BadRequest("the body must be a JSON object: field -> new value")
    runner = get_runner()
    try:
        editing.edit_customer(runner, business_key, values, person=permissions.person(), version=version)
    except editing.EditConflict as exc:
        changed = [{**c, "at": api.iso(c["at"])} for c in exc.fields]
        answer = jsonify(error="Conflict", detail=str(exc), changed=changed, version=exc.version)
        answer.headers["ETag"] = f'"{exc.version}"'
        return answer, 409
    profile = pages.customer_profile(runner, business_key)
    answer = jsonify(customer=profile, version=profile["version"])
    answer.headers["ETag"] = f'"{profile["version"]}"'
    return answer


def _timeline(business_key: str, limit: int = 500) -> list[dict[str, Any]]:
    """The customer's 360° timeline (``runner.crm.views.timeline``), newest first, as JSON."""
    keys = ("kind", "title", "text", "actor", "actor_name", "state", "process_key", "instance_id", "element_id")
    return [
        {
            "at": api.iso(e["at"]),
            **{k: e.get(k) for k in keys},
            "fields": [{"label": str(label), "value": api.iso(value)} for label, value in e.get("fields") or []],
        }
        for e in views.timeline(get_runner(), business_key)[:limit]
    ]


# --- its share of the OpenAPI document ----------------------------------------------------------------------

_SCHEMAS: dict[str, Any] = {
    "CustomerPage": object_of(
        {
            "customers": {
                "type": "array",
                "items": object_of(
                    {
                        "id": STRING,
                        "name": STRING,
                        "phone": nullable(STRING),
                        "owner": nullable(STRING),
                        "owner_name": nullable(STRING),
                        "status": nullable(STRING),
                        "tags": STRINGS,
                        "stages": {"type": "object", "additionalProperties": STRING},
                    }
                ),
            },
            "next": nullable(STRING),
        }
    ),
    "NewLead": {
        "type": "object",
        "description": "profile fields by name (text, or true/false and whole numbers for the facts) and configured "
        "extra fields; the configured required ones must be given. owner: a sales rep's username (none: the "
        "round-robin). The intake checks each value and names every bad one (422)",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "phone": {"type": "string", "description": "any spelling: +84 912 345 678, 0912.345.678"},
            "email": STRING,
            "owner": nullable(STRING),
            **{name: STRING for name in ("source", "business_model", "course_model", "group", "occupation", "school")},
        },
        "required": ["name"],
        "additionalProperties": True,
    },
    "CreatedCustomer": object_of(
        {"id": STRING, "name": STRING, "owner": STRING, "owner_name": STRING, "instance_id": STRING}
    ),
    "DuplicateCustomer": object_of(
        {
            "error": STRING,
            "detail": STRING,
            "field": {"type": "string", "enum": ["phone", "email"]},
            "customer": object_of({"id": STRING, "name": STRING, "url": STRING}),
        }
    ),
    "TimelineItem": object_of(
        {
            "at": WHEN,
            "kind": {"type": "string", "enum": list(views.TIMELINE_KINDS)},
            "title": STRING,
            "text": nullable(STRING),
            "actor": nullable(STRING),
            "actor_name": nullable(STRING),
            "state": nullable(STRING),
            "process_key": nullable(STRING),
            "instance_id": nullable(STRING),
            "element_id": nullable(STRING),
            "fields": {
                "type": "array",
                "items": object_of({"label": STRING, "value": {"nullable": True}}),
                "description": "what a person entered (completed tasks), or message facts",
            },
        }
    ),
    "CustomerUpdated": object_of(
        {
            "customer": {
                "type": "object",
                "additionalProperties": True,
                "required": ["id", "name", "version"],
                "properties": {"id": STRING, "name": STRING, "version": {"type": "integer"}, "tags": STRINGS},
            },
            "version": {"type": "integer", "description": "the new version; the answer's ETag names it"},
        }
    ),
    "CustomerConflict": object_of(
        {
            "error": STRING,
            "detail": STRING,
            "version": {"type": "integer", "description": "the stored version (also the answer's ETag)"},
            "changed": {
                "type": "array",
                "description": "each field changed after the version If-Match named: who, when, old and new",
                "items": object_of(
                    {
                        "field": STRING,
                        "actor": nullable(STRING),
                        "at": WHEN,
                        "old": {"nullable": True},
                        "new": {"nullable": True},
                        "version": {"type": "integer"},
                    }
                ),
            },
        }
    ),
    "Customer": object_of(
        {
            "customer": {
                "type": "object",
                "additionalProperties": True,
                "required": ["id", "name"],
                "properties": {
                    "id": STRING,
                    "name": STRING,
                    "tags": STRINGS,
                    "version": {"type": "integer", "description": "what updateCustomer's If-Match names (the ETag)"},
                },
            },
            "stages": {"type": "object", "additionalProperties": STRING, "description": "pipeline -> stage"},
            "timeline": {"type": "array", "items": ref("TimelineItem")},
            "instances": {"type": "array", "items": ref("InstanceSummary")},
        }
    ),
}

_PATHS: dict[str, Any] = {
    "/api/customers": {
        "get": operation(
            "Customers by name, phone, code or tag, in id order, a page at a time (keyset: after=next)",
            ("200", "CustomerPage", "a page of customers"),
            400,
            tag="customers",
            parameters=[
                query_parameter("q", "part of the name (accents ignored) or phone, a code or a tag"),
                query_parameter("tag", "only customers with this tag"),
                query_parameter("after", "the previous page's next"),
                query_parameter(
                    "limit", "customers per page, 1-200 (default 50)", {"type": "string", "pattern": "^[0-9]{1,3}$"}
                ),
            ],
            operationId="listCustomers",
        ),
        "post": operation(
            "A new lead: the customer (a new code) and its sales procedure, started in one unit of work",
            ("201", "CreatedCustomer", "created; Location is the customer's address"),
            400,
            404,
            tag="customers",
            requestBody=body_of(ref("NewLead")),
            responses_extra={
                "409": ("DuplicateCustomer", "the phone or e-mail belongs to this customer already; nothing stored"),
                "422": ("FormErrors", "per-field errors; nothing stored"),
            },
            operationId="createCustomer",
        ),
    },
    "/api/customers/{business_key}": {
        "get": operation(
            "A customer: profile, current stages, timeline, instances",
            ("200", "Customer", "the customer"),
            404,
            tag="customers",
            parameters=[path_parameter("business_key")],
            operationId="getCustomer",
        ),
        "patch": operation(
            "Change some of a customer's fields (columns, configured extra fields, tags; owner: team leaders "
            "and admins, whose change moves the customer's open tasks and later steps to the new owner)",
            ("200", "CustomerUpdated", "the customer as stored now"),
            400,
            404,
            tag="customers",
            parameters=[
                path_parameter("business_key"),
                {
                    "name": "If-Match",
                    "in": "header",
                    "required": True,
                    "description": "the ETag of getCustomer (the version the edit was made on), or * for any",
                    "schema": {"type": "string", "maxLength": 20},
                },
            ],
            requestBody=body_of(
                {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "field -> new value; an empty value clears a field; tags: a list or 'A, B'",
                }
            ),
            responses_extra={
                "409": ("CustomerConflict", "changed since the If-Match version; nothing stored"),
                "422": ("FormErrors", "per-field errors; nothing stored"),
                "428": ("Error", "no If-Match"),
            },
            operationId="updateCustomer",
        ),
    },
}

_LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    **{
        answer: {
            "GetCustomer": link_to("getCustomer", "the customer of the instance", business_key=f"{prefix}/business_key")
        }
        for answer, prefix in INSTANCE_ANSWERS.items()
    },
    ("getCustomer", "200"): {
        "GetCustomerInstance": link_to("getInstance", "the customer's newest instance", instance_id="/instances/0/id"),
        "ListCustomerTasks": link_to("listTasks", "the customer's open tasks", business_key="/customer/id"),
        "ListCustomerInstances": link_to("listInstances", "the customer's instances", business_key="/customer/id"),
        "SearchCustomerCode": link_to("listCustomers", "the search by this customer's code", q="/customer/id"),
    },
    ("createCustomer", "201"): {
        "GetCreatedCustomer": link_to("getCustomer", "the new customer", business_key="/id"),
        "GetLeadInstance": link_to("getInstance", "the sales procedure started for it", instance_id="/instance_id"),
    },
    ("listCustomers", "200"): {
        "GetFoundCustomer": link_to("getCustomer", "the first customer found", business_key="/customers/0/id"),
        "NextCustomers": link_to("listCustomers", "the next page", after="/next"),
    },
}

OPENAPI = Part(paths=_PATHS, schemas=_SCHEMAS, links=_LINKS)
