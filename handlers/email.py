"""email.*: templated e-mail to a customer, through the outbox.

    email.send {template, to=optional (default the customer's e-mail), audience="customer"|"staff",
                ...variables} -> {last_email: template}

The template ``processes/templates/<template>.email.txt`` starts with ``Subject: ...``.
The message is rendered when the task runs and queued on the ``email`` outbox channel;
``runner.crm.transports`` delivers it over SMTP, or only records it with the ``log`` transport.
A message for the customer (``audience``, by default; ``staff`` for one to colleagues) waits
out the quiet hours (``RUNNER_SENDING_WINDOW``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from handlers import messages
from runner.errors import BadValue, Missing
from runner.registry import HandlerContext, Registry


def _addresses(value: Any) -> list[str]:
    """``"a@x.vn, b@y.vn"`` or a list, as a list of addresses; BadValue names a bad one."""
    items = value if isinstance(value, list) else str(value).split(",")
    addresses = [str(a).strip() for a in items if str(a).strip()]
    for address in addresses:
        local, at, domain = address.rpartition("@")
        if not at or not local or "." not in domain or any(c.isspace() for c in address):
            raise BadValue(f"{address!r} is not an e-mail address")
    return addresses


def send(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Render an e-mail template for the instance's customer and queue it for delivery."""
    template = messages.template_name(params)
    values = messages.variables(ctx.session, ctx.business_key, params)
    if params.get("to"):
        try:
            to = _addresses(params["to"])
        except BadValue as exc:
            raise BadValue(f"input parameter 'to': {exc}") from exc
    else:
        email = values["customer"].get("email")
        if not email:
            raise Missing(
                f"customer {ctx.business_key} has no email: fill it in (or give the task a 'to' "
                f"parameter) before sending template '{template}'"
            )
        try:
            to = _addresses(email)
        except BadValue as exc:
            raise BadValue(f"customer {ctx.business_key} field email: {exc}") from exc
    subject, body = messages.render_email(template, values, messages.templates_of(ctx))
    payload = {"to": to, "subject": subject, "body": body, "template": template}
    ctx.send("email", payload, key=template, window=messages.window_of(params))
    return {"last_email": template}


def check_send(element_id: str, params: dict[str, str | None], folder: Path = messages.TEMPLATES) -> list[str]:
    """At deployment: the template exists, starts with a subject and uses only what it is given."""
    reasons = []
    raw_to = params.get("to")
    if raw_to and "${" not in raw_to:
        try:
            _addresses(raw_to)
        except BadValue as exc:
            reasons.append(f"input parameter 'to': {exc}")
    audience = messages.audience_problem(params.get("audience"))
    reasons += [audience] if audience else []
    return reasons + messages.check(params.get("template"), messages.EMAIL, params, folder)


def register(registry: Registry) -> None:
    """Add this module's topics to ``registry``."""
    registry.add("email.send", send)
    registry.add_check("email.send", functools.partial(check_send, folder=messages.folder_of(registry)))
