"""The admin pages' one blueprint (``admin``, under /admin), their top-bar link and the role labels."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app
from flask_babel import lazy_gettext as _l

from web.navigation import NavItem

bp = Blueprint("admin", "web.admin", url_prefix="/admin")
NAV = [NavItem("admin.index", _l("Quản trị"), ("admin",))]


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {
        "role_labels": current_app.extensions.get("role_labels", {}),
        "fact_labels": current_app.extensions.get("fact_labels", {}),
    }
