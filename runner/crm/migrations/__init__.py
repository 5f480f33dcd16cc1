"""The CRM's Alembic branch (label ``crm``): its tables, migrated beside the core's.

``versions/`` holds its revisions; the root (0002) depends on the core's 0001, later ones on
the core revisions they need. ``runner.store.schema`` finds the branch through the
entry point ``crm`` of the group ``bpmn_runner.schema``.
"""

from __future__ import annotations

from pathlib import Path

from runner.store.schema import Branch

BRANCH = Branch("crm", Path(__file__).resolve().parent / "versions", ("runner.crm.models",))
