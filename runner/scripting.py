"""The script engine SpiffWorkflow calls for conditions, scripts and expressions.

It replaces SpiffWorkflow's ``eval``/``exec`` environment with the restricted one in
``runner.expressions`` and carries the runner's clock and time zone, which the timer
definitions in ``runner.bpmn`` read.
"""
from __future__ import annotations

from datetime import tzinfo
from typing import Any

from SpiffWorkflow.bpmn.script_engine.python_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from runner import expressions
from runner.clock import Clock
from runner.errors import HandlerFailed


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluates expressions and scripts under the restricted rules, never with builtins."""

    def __init__(self, clock: Clock):
        super().__init__({})
        self.clock = clock

    def _context(self, context: dict, external: dict | None) -> dict[str, Any]:
        return {"now": self.clock.now, **context, **(external or {})}

    def evaluate(self, expression, context, external_context=None):
        return expressions.evaluate(expression, self._context(context, external_context))

    def execute(self, script, context, external_context=None):
        result = expressions.execute(script, self._context(context, external_context))
        hidden = {"now", *(external_context or {})}
        context.clear()
        context.update({k: v for k, v in result.items() if k not in hidden})
        return True

    def call_service(self, context, **kwargs):
        # NOTE: service tasks never run inside an engine step; the runner's jobs call handlers.
        raise HandlerFailed("service tasks are run by the runner's handler jobs")


class RestrictedScriptEngine(PythonScriptEngine):
    """SpiffWorkflow script engine bound to a clock and a time zone."""

    def __init__(self, clock: Clock, tz: tzinfo):
        super().__init__(environment=RestrictedEnvironment(clock))
        self.clock = clock
        self.tz = tz

    def validate(self, expression):
        expressions.check_expression(expression)
