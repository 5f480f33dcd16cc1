"""A generic BPMN runner: deploy diagrams, start and correlate instances, complete tasks, fire timers.

The public API is what ``__all__`` lists; everything else is internal to its package::

    from runner import Registry, Runner, Settings

    runner = Runner(Settings.from_env(), Registry())   # no topics, no extensions: the core alone
    runner.deploy(["processes/"])

Names load on first use (PEP 562), so ``import runner.errors`` stays as cheap as before and the
packages below never import this one back.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Runner": "runner.service.runtime",
    "Settings": "runner.settings",
    "Registry": "runner.registry",
    "HandlerContext": "runner.registry",
    "Extension": "runner.extension",
    **{
        name: "runner.errors"
        for name in (
            "RunnerError",
            "NotFound",
            "Conflict",
            "Invalid",
            "Forbidden",
            "Missing",
            "BadValue",
            "Problem",
            "DeploymentInvalid",
            "ExpressionInvalid",
            "BudgetExceeded",
            "TimerInvalid",
            "FormInvalid",
            "NotCorrelated",
            "HandlerFailed",
            "Retry",
            "RegistryError",
            "DeliveryError",
            "StepFailed",
        )
    },
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """Import a public name from its home module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
