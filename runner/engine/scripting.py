"""The script engine SpiffWorkflow calls for conditions, scripts and expressions.

It replaces SpiffWorkflow's ``eval``/``exec`` environment with the restricted one in
``runner.sandbox.expressions`` and carries the runner's clock and time zone, which the timer
definitions in ``runner.engine.parser`` read. Expressions may use the JUEL spellings Camunda
Modeler users write: ``&&``, ``||``, ``!``, ``true``, ``false`` and ``null``; inside
``${...}`` also JUEL's word operators ``eq ne lt gt le ge div mod`` and ``empty``.

Scripts, conditions and timer expressions see two clock functions: ``now()`` (aware UTC)
and ``local_now()`` (the same moment in the business time zone, for rules such as "call
back next half-day" that depend on the local hour). As in Camunda, ``currentUser()`` is
the person whose action the unit of work carries out (who completed the task, started
the instance or sent the message), or None when nobody did (a timer, a handler).
"""

from __future__ import annotations

import functools
import io
import keyword
import re
import tokenize
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, tzinfo
from typing import Any

from SpiffWorkflow.bpmn.script_engine.python_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from runner.clock import Clock
from runner.errors import ExpressionInvalid, HandlerFailed
from runner.model import inputs
from runner.sandbox import budget, expressions
from runner.sandbox.budget import Limits


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


EMPTY_NAME = "juel_empty"
JUEL_NAMES: Mapping[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    EMPTY_NAME: _Empty(),
    "currentUser": current_user,
}
# NOTE: every name an expression sees besides the instance data: data under one of these
# names would shadow it (or be shadowed), so start and message data may not use them.
RESERVED_NAMES = frozenset({*JUEL_NAMES, "now", "local_now", *expressions.SAFE_BUILTINS})
_JUEL_OPERATORS = {"&&": " and ", "||": " or ", "!": " not "}
_JUEL_WORDS = {"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">=", "div": "/", "mod": "%"}
_HAS_WORD = re.compile(rf"\b(?:{'|'.join(_JUEL_WORDS)}|empty)\b")
_OPERAND_KEYWORDS = frozenset({"True", "False", "None"})


def _ends_operand(token: tokenize.TokenInfo | None) -> bool:
    """Whether a binary operator may follow this token."""
    if token is None:
        return False
    if token.type == tokenize.NAME:
        return not keyword.iskeyword(token.string) or token.string in _OPERAND_KEYWORDS
    return token.type in (tokenize.NUMBER, tokenize.STRING) or token.string in (")", "]", "}")


def _starts_operand(token: tokenize.TokenInfo | None) -> bool:
    """Whether this token may begin an operand."""
    if token is None:
        return False
    if token.type == tokenize.NAME:
        return not keyword.iskeyword(token.string) or token.string in _OPERAND_KEYWORDS | {"not", "lambda"}
    return token.type in (tokenize.NUMBER, tokenize.STRING) or token.string in ("(", "[", "{", "-", "+", "!", "~")


@functools.lru_cache(maxsize=1024)
def translate(text: str) -> str:
    """An expression with JUEL's operators turned into Python, string literals untouched.

    ``&&``, ``||`` and ``!`` everywhere; the word operators only inside ``${...}``, and
    only where they stand as operators, so a plain Python variable may be called ``lt``.
    """
    body = expressions.unwrap(text)
    words = body != text.strip() and _HAS_WORD.search(body) is not None
    if not words and not any(op in body for op in _JUEL_OPERATORS):
        return text
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(body).readline))
    except (tokenize.TokenError, SyntaxError):
        return text  # the compiler reports the real syntax error
    starts = [0]
    for line in body.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    offset = lambda pos: starts[pos[0] - 1] + pos[1]  # noqa: E731
    edits: list[tuple[int, int, str]] = []
    for before, token, after in zip([None, *tokens], tokens, [*tokens[1:], None], strict=False):
        pair = before is not None and before.end == token.start and before.string + token.string
        if before is not None and pair in ("&&", "||") and not (edits and edits[-1][1] == offset(before.end)):
            edits.append((offset(before.start), offset(token.end), _JUEL_OPERATORS[pair]))
        elif token.string == "!":  # "!=" is one token; a lone "!" is JUEL's not
            edits.append((offset(token.start), offset(token.end), _JUEL_OPERATORS["!"]))
        elif words and token.string in _JUEL_WORDS and _ends_operand(before) and _starts_operand(after):
            edits.append((offset(token.start), offset(token.end), f" {_JUEL_WORDS[token.string]} "))
        elif words and token.string == "empty" and not _ends_operand(before) and _starts_operand(after):
            edits.append((offset(token.start), offset(token.end), f"{EMPTY_NAME} % "))
    for start, end, replacement in reversed(edits):
        body = body[:start] + replacement + body[end:]
    return body.strip()


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

    def _context(self, context: dict, external: dict | None) -> dict[str, Any]:
        return {
            "now": self.clock.now,
            "local_now": self.local_now,
            "currentUser": current_user,
            **context,
            **(external or {}),
        }

    def evaluate(self, expression, context, external_context=None):
        return evaluate(expression, self._context(context, external_context), self.limits)

    def execute(self, script, context, external_context=None):
        result = expressions.execute(script, self._context(context, external_context), self.limits)
        hidden = {"now", "local_now", "currentUser", *(external_context or {})}
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
