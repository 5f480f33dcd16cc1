"""customer changes: who changed a customer's profile, owner, tags or fields, old and new

Reserved for issue 12 (a real working day); filled in by the change that needs it.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
