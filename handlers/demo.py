"""Small built-in handlers: echo parameters back, and log a notice through the outbox."""

from __future__ import annotations

from typing import Any

from runner.registry import HandlerContext, Registry


def echo(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Return the parameters unchanged (useful for wiring and tests)."""
    return dict(params)


def notify(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Queue a notice on the outbox channel named by ``channel`` (default ``log``)."""
    channel = str(params.get("channel", "log"))
    ctx.send(channel, {k: v for k, v in params.items() if k != "channel"})
    return {}


def register(registry: Registry) -> None:
    """Add this module's topics to ``registry``."""
    registry.add("demo.echo", echo)
    registry.add("demo.notify", notify)
