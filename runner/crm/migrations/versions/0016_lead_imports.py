"""lead imports: uploaded files, their rows and errors, and how far an import got

Reserved for issue 12 (a real working day); filled in by the change that needs it.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
