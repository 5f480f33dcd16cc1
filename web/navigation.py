"""Where requests go: top-bar links, safe redirect targets, JSON-or-HTML, and the hooks to customer pages.

Generic pages link a business key to its customer page through ``customer_url``, and the task page
shows the customer beside its form through ``customer_context``. The CRM's pages (``web.crm``) fill
``app.extensions["customer_url"]`` and ``["customer_context"]`` (``create_app`` does it), so the
generic pages never name a CRM endpoint or template, and show plain keys in an app without them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, request

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 control characters


@dataclass(frozen=True)
class NavItem:
    """A link in the top bar: endpoint, label (a lazy gettext string) and who sees it (None = everyone)."""

    endpoint: str
    label: Any
    roles: tuple[str, ...] | None = None


def safe_path(target: str | None, default: str = "/") -> str:
    """A local path to redirect to, or ``default``: never another site (``//x``, ``/\\x``, ``http:``).

    Control characters are dropped first: browsers drop tabs and newlines inside a URL, so
    ``/<TAB>/evil.example`` would reach them as ``//evil.example``, and CR/LF cannot go in a header.
    """
    path = _CONTROL.sub("", target or "")
    # NOTE: browsers read a backslash as a slash, which urlsplit does not know.
    if not path.startswith("/") or "\\" in path:
        return default
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or path.startswith("//"):
        return default
    return path


def wants_json() -> bool:
    """True under /api (errors there are JSON ``{"error", "detail"}``, never HTML)."""
    return request.path == "/api" or request.path.startswith("/api/")


def customer_url(business_key: str | None) -> str | None:
    """The page of the customer ``business_key``, or None without a key or without customer pages."""
    link: Callable[[str], str] | None = current_app.extensions.get("customer_url")
    return link(business_key) if link and business_key else None


def customer_context(business_key: str | None) -> dict[str, Any]:
    """Template values for the customer beside a task (``customer``, ``customer_panel``...); {} without them."""
    context: Callable[[str | None], dict[str, Any]] | None = current_app.extensions.get("customer_context")
    return context(business_key) if context else {}
