"""board counts (reserved: filled in by the work on flat boards)

Revision ID: 0019
Revises: 0017
"""

from __future__ import annotations

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = "0018"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
