"""The API's one blueprint (``api``, under /api), shared by its resource modules, and the document's route."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from web.api.errors import json_errors

bp = Blueprint("api", "web.api", url_prefix="/api")
json_errors(bp)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API and its extensions' operations (no token needed; built by create_app)."""
    return jsonify(current_app.extensions["openapi"])
