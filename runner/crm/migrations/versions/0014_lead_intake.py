"""lead intake: what creating a customer and starting its sales procedure need

Reserved for issue 12 (a real working day); filled in by the change that needs it.

Revision ID: 0014
Revises: 0010
"""

from __future__ import annotations

revision = "0014"
down_revision = "0010"
branch_labels = None
depends_on = "0013"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
