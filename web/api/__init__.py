"""The REST API under /api: JSON in and out, bearer tokens, described at /api/openapi.json.

Every answer is JSON, errors included (``{"error", "detail"}``, plus ``errors`` for
per-field or per-element problems). Task endpoints follow the inbox's rules (candidate
groups, the assignee; team leaders see every task); deployments, incidents and the clock
are for admins. The paths are a contract that integrations rely on: see ``web.openapi``.

One blueprint (``bp``, endpoints ``api.*``) shared by one module per resource family:
``deployments`` (deployments and definitions), ``instances`` (instances and messages), ``tasks``,
``incidents``, ``clock`` (the virtual clock's runs). ``blueprint`` holds ``bp`` and the document's route,
``errors`` the JSON error mapping, ``inputs`` the request readers, ``shapes`` the JSON answers.

Only generic operations live here. An extension's operations under /api sit in its own blueprint
(``web.crm.api``: the customer endpoint) that answers errors through ``json_errors`` and shapes
instances with ``instance_summary``; ``create_app`` serves the document with the extension's part.
"""

from __future__ import annotations

from web.api import clock, deployments, incidents, instances, tasks
from web.api.blueprint import bp
from web.api.errors import json_errors
from web.api.shapes import instance_summary, iso, version_numbers

ROUTES = (deployments, instances, tasks, incidents, clock)  # importing them adds their views to ``bp``

__all__ = ["ROUTES", "bp", "instance_summary", "iso", "json_errors", "version_numbers"]
