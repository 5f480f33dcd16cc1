"""The handler contract: service-task topics, the functions that serve them, and what they see.

    def add_note(params: dict, ctx: HandlerContext) -> dict:
        ctx.send("zalo", {...})          # a side effect, delivered once by the outbox
        return {"note_id": 42}          # JSON-safe; merged into the instance data

    registry = Registry()
    registry.add("crm.add_note", add_note)
    runner = Runner(settings, registry)

A handler that hits a passing problem raises ``runner.errors.Retry``; any other exception
counts as a failed try too. A topic may also check its tasks at deployment
(``Registry.add_check``): the check gets each task's input parameters as written and
returns reasons, which become deployment problems naming the task.

Each runner has its own registry, built by its factory (the CLI, the web app, a test).
Packages add topics through the ``bpmn_runner.handlers`` entry-point group: each entry
point names a callable that receives a registry and adds to it (``load_entry_points``).
The runner itself knows no topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from importlib.metadata import entry_points
from typing import Any
from zoneinfo import ZoneInfo

from runner.errors import HandlerContextClosed, RegistryError
from runner.settings import DEFAULT_TIMEZONE
from runner.windows import check_class

ENTRY_POINT_GROUP = "bpmn_runner.handlers"

Handler = Callable[[dict[str, Any], "HandlerContext"], Any]
# A deploy-time check of one task's input parameters: (element id, {name: raw text}) ->
# reasons. A raw text is a literal or a ``${...}`` expression as written in the diagram;
# None stands for a value that is only known at run time (a list, map or script).
Check = Callable[[str, dict[str, "str | None"]], list[str]]


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
    # The sending window class (``runner.windows``) of each queued message that has one, by its key.
    windows: dict[str, str] = field(default_factory=dict)
    closed: bool = False
    # The business time zone (``Settings.tz``): naive times in parameters and business dates mean it.
    tz: tzinfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    # The runner's extensions (``runner.extension.Extensions``): a topic reads its extension's settings there.
    extensions: Any = None
    # The business calendar of the unit of work (``runner.model.worktime.BusinessCalendar``), read when called:
    # a handler that books or proposes times leaves out its holidays and company days off.
    calendar: Callable[[], Any] | None = None

    def send(self, channel: str, payload: dict[str, Any], key: str = "", window: str | None = None) -> None:
        """Queue a message for the outbox; it is stored only if the step commits.

        ``window``: a sending window class (``runner.windows.QUIET_HOURS``): the message then
        goes out only inside that window, e.g. a message to a customer not at night.
        """
        if self.closed:
            raise HandlerContextClosed(f"handler for {self.topic} used its context after its timeout")
        check_class(window)
        suffix = f"/{key}" if key else f"/{len(self.outbox)}"
        self.outbox.append((channel, dict(payload), self.idempotency_key + suffix))
        if window is not None:
            self.windows[self.idempotency_key + suffix] = window


class Registry:
    """Topics to handler functions, and the deploy-time checks of each topic.

    ``settings`` are the runner's (``runner.settings.Settings``) when the factory that builds the
    registry has them: a package's ``register(registry)`` reads its own settings there, e.g. the
    folder its deploy-time checks look in. None in a registry built without them.
    """

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings
        self._handlers: dict[str, Handler] = {}
        self._checks: dict[str, list[Check]] = {}

    def add(self, topic: str, fn: Handler) -> Handler:
        """Register ``fn`` for ``topic``; a second, different function for a topic is a RegistryError."""
        existing = self._handlers.get(topic)
        if existing is not None and existing is not fn:
            name = f"{existing.__module__}.{getattr(existing, '__name__', type(existing).__name__)}"
            raise RegistryError(f"topic {topic!r} already has handler {name}")
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
        other = Registry(self.settings)
        other._handlers.update(self._handlers)
        other._checks.update(self.checks())
        return other

    def topics(self) -> set[str]:
        """Every registered topic."""
        return set(self._handlers)


def load_entry_points(registry: Registry, group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Let each entry point of ``group`` register its handlers on ``registry``; the entry-point names."""
    names = []
    for ep in entry_points(group=group):
        plugin = ep.load()
        if not callable(plugin):
            raise RegistryError(f"entry point {ep.name!r} of {group} must name a callable taking the registry")
        plugin(registry)
        names.append(ep.name)
    return names


def installed(group: str = ENTRY_POINT_GROUP, settings: Any = None) -> Registry:
    """A new registry with the handlers of every installed package of ``group``: what the factories build."""
    registry = Registry(settings)
    load_entry_points(registry, group)
    return registry
