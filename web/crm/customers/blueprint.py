"""The customer pages' one blueprint (``customers``; templates in ``web/crm/templates``) and top-bar links."""

from __future__ import annotations

from flask import Blueprint
from flask_babel import lazy_gettext as _l

from web.navigation import NavItem

# NOTE: import name web.crm, so that template_folder is web/crm/templates, beside the CRM's other pages
bp = Blueprint("customers", "web.crm", template_folder="templates")
NAV = [
    NavItem("customers.search", _l("Khách hàng")),
    NavItem("customers.boards", _l("Pipeline")),
    NavItem("customers.my_calendar", _l("Lịch của tôi")),
    NavItem("customers.lead_keys_page", _l("Khóa biểu mẫu web"), roles=("admin",)),
]
