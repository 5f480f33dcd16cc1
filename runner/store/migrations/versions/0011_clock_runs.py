"""clock runs: the virtual clock advanced in the background

Reserved for issue 11 (a fast virtual clock); filled in by the change that needs it.

Revision ID: 0011
Revises: 0009
"""

from __future__ import annotations

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
