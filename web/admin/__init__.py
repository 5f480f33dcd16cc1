"""Admin pages: deploy diagrams, processes and versions, migration (dry run, then with a progress
bar), incidents and undecided outbox messages, users and API tokens, and the virtual clock.

Only admins reach them. Every page calls the runner's public API (``Runner``, ``runner.queries.tasklists``,
``runner.service.instance_migration``, ``runner.service.outbox``, ``runner.service.accounts``).

One blueprint (``bp``, endpoints ``admin.*``) shared by one module per feature: ``overview`` (counts and
the virtual clock), ``processes`` (deploy, processes, migration), ``incidents`` (incidents and outbox
decisions), ``users`` (users, roles, API tokens), ``profiles`` (name, e-mail, phone, Zalo), ``workers``
(worker heartbeats), ``calendar`` (the business calendar: working hours, holidays, company days off).
``blueprint`` holds ``bp``, ``NAV`` and the role and fact labels' context processor.
"""

from __future__ import annotations

from web.admin import calendar, incidents, overview, processes, profiles, users, workers
from web.admin.blueprint import NAV, bp

# importing them adds their views to ``bp``
PAGES = (overview, processes, incidents, users, profiles, workers, calendar)

__all__ = ["NAV", "PAGES", "bp"]
