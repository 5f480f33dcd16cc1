"""The seam through which a product (EasyEdu's CRM) extends the generic runner.

An extension is plain data the runner receives, ``Runner(settings, registry, extensions=(...))``;
the core never imports one. What an extension may supply:

- ``transports``: outbox channels it delivers (``"zalo"``, ``"email"``) by name;
- ``scope``: who may see which business keys (without any, everybody sees every key; with
  one, admins see all and others the keys of their open tasks, plus what the scope grants);
- ``message_senders``: the roles that may send each message by hand (others: admins only);
- ``labels``: a display label per business key (a customer's name next to each task);
- ``commands``: sub-commands it adds to the ``runner`` CLI;
- ``roles``: the groups (roles) users may be given, in display order: the lanes and candidate
  groups of its processes (with extensions, a user's roles must be among theirs; without any,
  every well-formed group name is accepted);
- ``people``: facts it keeps about a person beside the user directory (a phone), edited with the
  user on the admin pages and by ``runner users add|edit``, and the people who lack one a step needs;
- ``option_lists``: configured lists by name (``stop_reasons``), each a function that reads the
  list's (id, label) pairs as they are now through the caller's session; an enum form field
  names one with the property ``options`` = ``list:NAME`` (``runner.model.forms``).

The ``runner`` command finds extensions through the entry-point group ``bpmn_runner.extensions``:
each entry point names a callable that receives the core ``Settings`` and returns an
``Extension``. An extension reads its own variables from ``settings.environ`` (the frozen
environment the settings were read from), never from ``os.environ``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from runner.errors import BadValue, Invalid, NotFound, Problem

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import Session

    from runner.service.outbox import TransportFactory
    from runner.settings import Settings

GROUP = "bpmn_runner.extensions"


@dataclass(frozen=True)
class Person:
    """A signed-in user as the policy sees them: a username and roles."""

    username: str
    roles: frozenset[str]

    @classmethod
    def of(cls, username: str, roles: Iterable[str]) -> Person:
        """A person from a username and any iterable of roles."""
        return cls(username, frozenset(roles))

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


class Scope(Protocol):
    """Which business keys a person may see, beyond the core's rule (admins, and their own tasks' keys)."""

    def sees_all(self, person: Person) -> bool:
        """True when the person sees every business key (and instances without one)."""
        ...

    def grants(self, person: Person, column: Any) -> list[ColumnElement[bool]]:
        """SQL conditions on a business-key column: further keys the person may see."""
        ...

    @property
    def key_column(self) -> Any:
        """A column of the extension's table whose values are business keys (``visible`` asks it in one query)."""
        ...


Labels = Callable[["Session", Collection[str]], Mapping[str, str]]
Commands = Callable[[Any], None]  # gets the ``runner`` parser's sub-parsers (argparse's _SubParsersAction)
# (process key, BPMN XML, file name) of each process being deployed -> warnings per process key.
Review = Callable[["Session", Sequence[tuple[str, bytes, str]]], Mapping[str, list[Problem]]]
# A configured list as it is now: (id, label) pairs in display order, read through the caller's session.
OptionList = Callable[["Session"], Sequence[tuple[str, str]]]


@dataclass(frozen=True)
class PersonField:
    """A fact an extension keeps about a person: its key, its ``runner users`` option, a help text."""

    name: str
    option: str
    help: str = ""


@dataclass(frozen=True)
class PersonFacts:
    """An extension's facts about people: read, check and write them, and who lacks one a step needs.

    ``check`` returns the values normalised (a phone in one format), raising ``BadValue`` that
    names the field; ``write`` stores checked values (None clears one) in the caller's unit of work.
    """

    fields: tuple[PersonField, ...]
    read: Callable[[Session, str], Mapping[str, Any]]
    check: Callable[[Mapping[str, Any]], dict[str, Any]]
    write: Callable[[Session, str, Mapping[str, Any]], None]
    # Who lacks what a deployed process's step needs: dicts with username, full_name, field, ...
    gaps: Callable[[Session], list[dict[str, Any]]] | None = None
    review: Review | None = None  # the same, for processes being deployed (the deploy report)


@dataclass(frozen=True)
class Extension:
    """What one extension adds to the runner; every hook is optional."""

    name: str
    transports: Mapping[str, TransportFactory] = field(default_factory=dict)
    scope: Scope | None = None
    message_senders: Mapping[str, frozenset[str]] = field(default_factory=dict)
    labels: Labels | None = None
    commands: Commands | None = None
    roles: tuple[str, ...] = ()
    people: PersonFacts | None = None
    option_lists: Mapping[str, OptionList] = field(default_factory=dict)
    config: Any = field(default=None, repr=False)  # the extension's own settings; the core never reads them


@dataclass(frozen=True)
class Extensions:
    """The extensions of one runner, with their hooks combined."""

    items: tuple[Extension, ...] = ()

    def __post_init__(self) -> None:
        names = [e.name for e in self.items]
        if len(set(names)) != len(names):
            raise Invalid(f"extensions named twice: {names}")
        lists = [name for e in self.items for name in e.option_lists]
        if len(set(lists)) != len(lists):
            raise Invalid(f"option lists named twice: {sorted(n for n in set(lists) if lists.count(n) > 1)}")

    def get(self, name: str) -> Extension | None:
        """The extension called ``name``, if the runner has it."""
        return next((e for e in self.items if e.name == name), None)

    def transport(self, channel: str) -> TransportFactory | None:
        """The factory of the first extension that delivers ``channel``."""
        return next((e.transports[channel] for e in self.items if channel in e.transports), None)

    @property
    def scopes(self) -> tuple[Scope, ...]:
        """Every extension's scope."""
        return tuple(e.scope for e in self.items if e.scope is not None)

    @property
    def roles(self) -> tuple[str, ...]:
        """The groups users may be given: every extension's, in order, each once (empty: any group)."""
        return tuple(dict.fromkeys(role for e in self.items for role in e.roles))

    def message_senders(self, name: str) -> frozenset[str]:
        """The roles any extension lets send message ``name`` by hand."""
        return frozenset().union(*(e.message_senders.get(name, frozenset()) for e in self.items))

    def labels(self, s: Session, keys: Collection[str]) -> dict[str, str]:
        """Labels for business keys (the first extension that knows a key wins)."""
        found: dict[str, str] = {}
        for extension in self.items:
            if extension.labels is not None and keys:
                for key, label in extension.labels(s, keys).items():
                    found.setdefault(key, label)
        return found

    @property
    def option_lists(self) -> frozenset[str]:
        """The names of every configured list the extensions offer to enum form fields."""
        return frozenset(name for e in self.items for name in e.option_lists)

    def options(self, s: Session, name: str) -> list[tuple[str, str]]:
        """The list ``name`` as it is now, (id, label) pairs; ``NotFound`` when no extension offers it."""
        for e in self.items:
            if name in e.option_lists:
                return [(str(id), str(label)) for id, label in e.option_lists[name](s)]
        raise NotFound(f"no configured list {name!r} (known: {', '.join(sorted(self.option_lists)) or 'none'})")

    @property
    def person_fields(self) -> tuple[PersonField, ...]:
        """Every extension's facts about people, in order."""
        return tuple(f for e in self.items if e.people is not None for f in e.people.fields)

    def check_person(self, values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Person facts split per extension and normalised; ``BadValue`` names an unknown or bad field."""
        unknown = sorted(set(values) - {f.name for f in self.person_fields})
        if unknown:
            raise BadValue(f"{unknown[0]}: no extension keeps this fact about people")
        split: dict[str, dict[str, Any]] = {}
        for e in self.items:
            mine = {f.name: values[f.name] for f in (e.people.fields if e.people else ()) if f.name in values}
            if e.people is not None and mine:
                split[e.name] = e.people.check(mine)
        return split

    def write_person(self, s: Session, username: str, checked: Mapping[str, Mapping[str, Any]]) -> None:
        """Store facts ``check_person`` returned, each with its extension, in the caller's session."""
        for e in self.items:
            if e.people is not None and e.name in checked:
                e.people.write(s, username, checked[e.name])

    def read_person(self, s: Session, username: str) -> dict[str, Any]:
        """Every extension's facts about one person (None where a fact is missing)."""
        found = {f.name: None for f in self.person_fields}
        for e in self.items:
            if e.people is not None:
                found.update(e.people.read(s, username))
        return found

    def people_gaps(self, s: Session) -> list[dict[str, Any]]:
        """The people who lack a fact a deployed process's step needs (every extension's)."""
        return [gap for e in self.items if e.people and e.people.gaps for gap in e.people.gaps(s)]

    def review(self, s: Session, processes: Sequence[tuple[str, bytes, str]]) -> dict[str, list[Problem]]:
        """Warnings per process key about the people a deployment's steps would fail on."""
        found: dict[str, list[Problem]] = {}
        for e in self.items:
            if e.people is not None and e.people.review is not None:
                for key, problems in e.people.review(s, processes).items():
                    found.setdefault(key, []).extend(problems)
        return found

    def add_commands(self, sub: argparse._SubParsersAction) -> None:
        """Let each extension add its sub-commands to the ``runner`` CLI."""
        for extension in self.items:
            if extension.commands is not None:
                extension.commands(sub)


def discover(settings: Settings) -> tuple[Extension, ...]:
    """The extensions installed under the entry-point group ``bpmn_runner.extensions``, by name, given ``settings``."""
    found = []
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        made = point.load()(settings)
        if not isinstance(made, Extension):
            raise TypeError(f"entry point {point.name} ({point.value}) made {made!r}, not an Extension")
        found.append(made)
    return tuple(found)


def combined(extensions: Iterable[Extension] | Extensions = ()) -> Extensions:
    """``Extensions`` from any iterable of extensions (or the same object)."""
    return extensions if isinstance(extensions, Extensions) else Extensions(tuple(extensions))
