"""The script engine SpiffWorkflow calls for conditions, scripts and expressions.

It replaces SpiffWorkflow's ``eval``/``exec`` environment with the restricted one in
``runner.sandbox.expressions`` and carries the runner's clock and time zone, which the timer
definitions in ``runner.engine.parser`` read. Expressions may use the JUEL spellings Camunda
Modeler users write: ``&&``, ``||``, ``!``, ``true``, ``false`` and ``null``; inside
``${...}`` also JUEL's word operators ``eq ne lt gt le ge div mod`` and ``empty``.

Scripts, conditions and timer expressions see two clock functions: ``now()`` (aware UTC)
and ``local_now()`` (the same moment in the business time zone, for rules such as "call
back next half-day" that depend on the local hour), and ``next_half_day()``: the start of
the next working half-day of the business calendar (a morning → 14:00 that day, an
afternoon → the next working morning; never in time off). As in Camunda, ``currentUser()`` is
the person whose action the unit of work carries out (who completed the task, started
the instance or sent the message), or None when nobody did (a timer, a handler).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, tzinfo
from typing import Any

from SpiffWorkflow.bpmn.script_engine.python_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from runner.clock import Clock
from runner.engine import timers
from runner.errors import ExpressionInvalid, HandlerFailed
from runner.model import inputs, worktime
from runner.sandbox import budget, expressions
from runner.sandbox.budget import Limits
from runner.sandbox.juel import EMPTY_NAME, translate


class _Empty:
    """JUEL's ``empty``: true for null, an empty string and an empty collection.

    NOTE: ``empty x`` becomes ``juel_empty % x``: ``%`` binds tighter than comparisons
    and ``not`` and looser than attribute access, which is where JUEL puts ``empty``.
    """

    def __mod__(self, value: Any) -> bool:
        return value is None or (isinstance(value, (str, list, tuple, dict, set)) and not value)

    def __repr__(self) -> str:
        return "empty"


_CURRENT_USER: ContextVar[str | None] = ContextVar("runner_current_user", default=None)


@contextmanager
def acting_as(user: str | None) -> Iterator[None]:
    """``currentUser()`` is ``user`` for the expressions evaluated inside the block."""
    token = _CURRENT_USER.set(user or None)
    try:
        yield
    finally:
        _CURRENT_USER.reset(token)


def current_user() -> str | None:
    """Camunda's ``currentUser()``: who carries out the current unit of work, if anyone."""
    return _CURRENT_USER.get()


JUEL_NAMES: Mapping[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    EMPTY_NAME: _Empty(),
    "currentUser": current_user,
}
# NOTE: every name an expression sees besides the instance data: data under one of these
# names would shadow it (or be shadowed), so start and message data may not use them.
CLOCK_NAMES = ("now", "local_now", "next_half_day")
RESERVED_NAMES = frozenset({*JUEL_NAMES, *CLOCK_NAMES, *expressions.SAFE_BUILTINS})


def evaluate(text: str, data: Mapping[str, Any], limits: Limits = budget.DEFAULT) -> Any:
    """Evaluate a (possibly JUEL-flavoured) expression over instance data, within ``limits``."""
    return expressions.evaluate(translate(text), {**JUEL_NAMES, **data}, limits)


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluates expressions and scripts under the restricted rules, never with builtins."""

    def __init__(self, clock: Clock, tz: tzinfo | None = None, limits: Limits = budget.DEFAULT):
        super().__init__({})
        self.clock = clock
        self.tz = tz
        self.limits = limits

    def local_now(self) -> datetime:
        """The runner's current time in the business time zone."""
        return self.clock.now().astimezone(self.tz) if self.tz is not None else self.clock.now()

    def next_half_day(self) -> datetime:
        """The start of the next working half-day after now, in the business time zone."""
        tz = self.tz if self.tz is not None else UTC
        return worktime.next_half_day(timers.business_calendar(tz), self.local_now()).astimezone(tz)

    def _context(self, context: dict, external: dict | None) -> dict[str, Any]:
        return {
            "now": self.clock.now,
            "local_now": self.local_now,
            "next_half_day": self.next_half_day,
            "currentUser": current_user,
            **context,
            **(external or {}),
        }

    def evaluate(self, expression, context, external_context=None):
        return evaluate(expression, self._context(context, external_context), self.limits)

    def execute(self, script, context, external_context=None):
        result = expressions.execute(script, self._context(context, external_context), self.limits)
        hidden = {*CLOCK_NAMES, "currentUser", *(external_context or {})}
        kept = {k: v for k, v in result.items() if k not in hidden}
        for name, value in kept.items():
            # NOTE: checked here, not at storage: the error then names the script's element
            # and the step is rolled back (an incident where a worker ran it).
            inputs.check_data(value, f"script variable {name!r}")
        context.clear()
        context.update(kept)
        return True

    def call_service(self, context, **kwargs):
        # NOTE: service tasks never run inside an engine step; the runner's jobs call handlers.
        raise HandlerFailed("service tasks are run by the runner's handler jobs")


class RestrictedScriptEngine(PythonScriptEngine):
    """SpiffWorkflow script engine bound to a clock, a time zone and the evaluation budget."""

    def __init__(self, clock: Clock, tz: tzinfo, limits: Limits = budget.DEFAULT):
        super().__init__(environment=RestrictedEnvironment(clock, tz, limits))
        self.clock = clock
        self.tz = tz
        self.limits = limits

    def validate(self, expression):
        # NOTE: SpiffWorkflow's DMN engine calls this and expects SyntaxError for input
        # entries such as '>= 7', which it then rewrites to 'input >= 7'.
        try:
            expressions.check_expression(translate(expression))
        except ExpressionInvalid as exc:
            syntax = exc.__cause__ if isinstance(exc.__cause__, SyntaxError) else None
            if syntax is not None:
                raise syntax from exc
            raise
