"""zalo.*: templated Zalo messages to a customer's group or to the customer, through the outbox.

    zalo.send {template, to="group"|"user", audience="customer"|"staff", ...template variables}
        -> {last_message: template}

The message is rendered when the task runs (from the customer's data at that moment)
and queued on the ``zalo`` outbox channel; ``runner.crm.transports`` delivers it through
the Zalo Official Account API, or only records it with the ``log`` transport. A message for
the customer (``audience``, by default) waits out the quiet hours (``RUNNER_SENDING_WINDOW``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from handlers import messages
from runner.errors import BadValue, Missing
from runner.registry import HandlerContext, Registry

RECIPIENT_FIELDS = {"group": "zalo_group_id", "user": "zalo_user_id"}


def _to(value: Any) -> str:
    """The recipient kind; BadValue names the parameter."""
    to = "group" if value in (None, "") else str(value).strip()
    if to not in RECIPIENT_FIELDS:
        raise BadValue(f"input parameter 'to' is {to!r}; use 'group' (the customer's Zalo group) or 'user'")
    return to


def send(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Render a Zalo template for the instance's customer and queue it for delivery."""
    template = messages.template_name(params)
    to = _to(params.get("to"))
    values = messages.variables(ctx.session, ctx.business_key, params)
    field = RECIPIENT_FIELDS[to]
    recipient = values["customer"].get(field)
    if not recipient:
        raise Missing(
            f"customer {ctx.business_key} has no {field}: fill it in before sending "
            f"template '{template}' to the customer's Zalo {to}"
        )
    text = messages.render(template, messages.ZALO, values, messages.templates_of(ctx))
    payload = {"to": to, "recipient_id": str(recipient), "text": text, "template": template}
    ctx.send("zalo", payload, key=template, window=messages.window_of(params))
    return {"last_message": template}


def check_send(element_id: str, params: dict[str, str | None], folder: Path = messages.TEMPLATES) -> list[str]:
    """At deployment: the template exists and uses only what this task gives it."""
    reasons = []
    raw_to = params.get("to")
    if raw_to is not None and "${" not in raw_to and raw_to.strip() not in ("", *RECIPIENT_FIELDS):
        reasons.append(f"input parameter 'to' is {raw_to.strip()!r}; use 'group' or 'user'")
    audience = messages.audience_problem(params.get("audience"))
    reasons += [audience] if audience else []
    return reasons + messages.check(params.get("template"), messages.ZALO, params, folder)


def register(registry: Registry) -> None:
    """Add this module's topics to ``registry``."""
    registry.add("zalo.send", send)
    registry.add_check("zalo.send", functools.partial(check_send, folder=messages.folder_of(registry)))
