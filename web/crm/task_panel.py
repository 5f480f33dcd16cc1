"""The customer beside a task's form: the CRM's part of the inbox's task page.

``create_app`` puts ``task_context`` in ``app.extensions["customer_context"]``; the task page
includes ``customers/_task_panel.html`` with the values it returns.
"""

from __future__ import annotations

from typing import Any

from runner.crm import pages
from runner.crm.models import Missing
from web.crm.customers.display import PROFILE_FACTS
from web.extensions import get_runner

PANEL = "customers/_task_panel.html"


def task_context(business_key: str | None) -> dict[str, Any]:
    """The customer's profile (None when the key has none), its order and contract, the panel's template and labels."""
    customer, payment = None, None
    if business_key:
        try:
            customer = pages.customer_profile(get_runner(), business_key)
            payment = pages.payment_facts(get_runner(), business_key)
        except Missing:
            customer = None
    return {"customer": customer, "payment": payment, "customer_panel": PANEL, "profile_labels": PROFILE_FACTS}
