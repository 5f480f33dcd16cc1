"""Service-task handlers: plain functions registered by topic.

    @handler("crm.add_note")
    def add_note(params: dict, ctx: HandlerContext) -> dict:
        ctx.send("zalo", {...})          # a side effect, delivered once by the outbox
        return {"note_id": 42}          # JSON-safe; merged into the instance data

A handler that hits a passing problem raises ``Retry``; any other exception counts as
a failed try too. A topic may also check its tasks at deployment (``@check(topic)``): the
check gets each task's input parameters as written and returns reasons, which become
deployment problems naming the task. Packages add topics through the
``bpmn_runner.handlers`` entry-point group: each entry point names a callable that
receives the registry and adds to it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from importlib.metadata import entry_points
from typing import Any
from zoneinfo import ZoneInfo

from runner.settings import DEFAULT_TIMEZONE

ENTRY_POINT_GROUP = "bpmn_runner.handlers"

Handler = Callable[[dict[str, Any], "HandlerContext"], Any]
# A deploy-time check of one task's input parameters: (element id, {name: raw text}) ->
# reasons. A raw text is a literal or a ``${...}`` expression as written in the diagram;
# None stands for a value that is only known at run time (a list, map or script).
Check = Callable[[str, dict[str, "str | None"]], list[str]]


class Retry(Exception):
    """Raised by a handler when a passing problem should be tried again later."""


@dataclass
class HandlerContext:
    """What a handler knows about the step it serves."""

    instance_id: str
    business_key: str | None
    idempotency_key: str
    element_id: str
    topic: str
    attempt: int
    now: datetime
    session: Any = None  # the unit of work's SQLAlchemy session, for domain tables
    properties: dict[str, str] = field(default_factory=dict)
    outbox: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    closed: bool = False
    # The business time zone (``Settings.tz``): naive times in parameters and business dates mean it.
    tz: tzinfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    # The runner's extensions (``runner.extension.Extensions``): a topic reads its extension's settings there.
    extensions: Any = None

    def send(self, channel: str, payload: dict[str, Any], key: str = "") -> None:
        """Queue a message for the outbox; it is stored only if the step commits."""
        if self.closed:
            raise RuntimeError(f"handler for {self.topic} used its context after its timeout")
        suffix = f"/{key}" if key else f"/{len(self.outbox)}"
        self.outbox.append((channel, dict(payload), self.idempotency_key + suffix))


class Registry:
    """Topics to handler functions."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._checks: dict[str, list[Check]] = {}

    def add(self, topic: str, fn: Handler) -> Handler:
        """Register ``fn`` for ``topic``; a second, different function for a topic is an error."""
        existing = self._handlers.get(topic)
        if existing is not None and existing is not fn:
            raise ValueError(f"topic {topic!r} already has handler {existing.__module__}.{existing.__name__}")
        self._handlers[topic] = fn
        return fn

    def add_check(self, topic: str, fn: Check) -> Check:
        """Run ``fn`` at deployment on every task of ``topic``; its reasons become problems."""
        checks = self._checks.setdefault(topic, [])
        if fn not in checks:
            checks.append(fn)
        return fn

    def checks(self) -> dict[str, list[Check]]:
        """Every topic's deploy-time checks."""
        return {topic: list(fns) for topic, fns in self._checks.items()}

    def get(self, topic: str) -> Handler | None:
        """The handler of a topic, or None."""
        return self._handlers.get(topic)

    def copy(self) -> Registry:
        """A registry with the same handlers, to extend without touching this one."""
        other = Registry()
        other._handlers.update(self._handlers)
        other._checks.update(self.checks())
        return other

    def topics(self) -> set[str]:
        """Every registered topic."""
        return set(self._handlers)


registry = Registry()


def handler(topic: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``topic``."""

    def register(fn: Handler) -> Handler:
        return registry.add(topic, fn)

    return register


def check(topic: str) -> Callable[[Check], Check]:
    """Register the decorated function as a deploy-time check of ``topic``'s tasks."""

    def register(fn: Check) -> Check:
        return registry.add_check(topic, fn)

    return register


_loaded = False


def load_builtin(target: Registry) -> None:
    """Import every module of this package; their decorators fill the global registry."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    if target is not registry:
        for topic in registry.topics():
            if (found := registry.get(topic)) is not None:  # always: topics() lists registered handlers
                target.add(topic, found)
        for topic, fns in registry.checks().items():
            for fn in fns:
                target.add_check(topic, fn)


def load_plugins(target: Registry, group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Let each entry point of ``group`` register its handlers; returns the entry-point names."""
    names = []
    for ep in entry_points(group=group):
        plugin = ep.load()
        if not callable(plugin):
            raise TypeError(f"entry point {ep.name!r} of {group} must name a callable taking the registry")
        plugin(target)
        names.append(ep.name)
    return names


def load_all() -> Registry:
    """The global registry with the built-in handlers and the entry-point plugins (loaded once)."""
    global _loaded
    if not _loaded:
        load_builtin(registry)
        load_plugins(registry)
        _loaded = True
    return registry
