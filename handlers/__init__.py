"""EasyEdu's service-task handlers: the topics its procedures call (crm.*, booking.*, email.*, zalo.*, demo.*).

The handler contract (``HandlerContext``, ``Registry``, ``Retry``) is the runner's:
``runner.registry`` and ``runner.errors``. This package keeps no registry of its own:
each module has a ``register(registry)`` that adds its topics and deploy-time checks to
the registry it is given, and ``register`` below calls them all. pyproject.toml declares
it in the ``bpmn_runner.handlers`` entry-point group, so every factory that builds its
registry from that group (the CLI, the web app) gets these topics.
"""

from __future__ import annotations

from handlers import booking, crm, demo, email, zalo
from runner.registry import Registry

MODULES = (crm, booking, email, zalo, demo)


def register(registry: Registry) -> None:
    """Add every EasyEdu topic and its deploy-time checks to ``registry``."""
    for module in MODULES:
        module.register(registry)
