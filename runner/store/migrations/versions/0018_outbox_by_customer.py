"""outbox by customer (reserved: filled in by the work on reads that stay flat)

Revision ID: 0018
Revises: 0013
"""

from __future__ import annotations

revision = "0018"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
