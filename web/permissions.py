"""The signed-in user as ``runner.service.policy`` sees them, and the 404 for customers they may not see.

Pages and the API ask here; the rules themselves live in ``runner.service.policy``, asked through
``runner.queries.visibility``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import abort
from flask_login import current_user

from runner.errors import NotFound
from runner.queries import tasklists as inbox
from runner.queries import visibility
from runner.service import policy
from web.extensions import get_runner


def person() -> policy.Person:
    """The signed-in user (a page's session or the API's bearer token)."""
    return policy.Person.of(current_user.username, current_user.roles)


def require_customer(business_key: str | None) -> None:
    """404, as for a customer that does not exist, when the user may not see this one."""
    if not visibility.may_see(get_runner(), person(), business_key):
        abort(
            404,
            description=f"customer {business_key!r} does not exist"
            if business_key
            else "instances without a customer are for admins and team leaders",
        )


def require_instance(instance_id: str) -> dict[str, Any]:
    """The instance row, if the user may see its customer (else 404 as for a missing one)."""
    try:
        row = inbox.instance(get_runner(), instance_id)
    except NotFound:
        abort(404, description=f"instance {instance_id} does not exist")
    if not visibility.may_see(get_runner(), person(), row["business_key"]):
        abort(404, description=f"instance {instance_id} does not exist")
    return row


def visible(business_keys: Iterable[str | None]) -> set[str | None]:
    """The keys among ``business_keys`` whose customers the user may see."""
    return visibility.visible(get_runner(), person(), business_keys)
