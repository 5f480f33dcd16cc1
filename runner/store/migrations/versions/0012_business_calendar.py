"""business calendar: working hours per weekday, public holidays and company days off

Reserved for issue 12 (a real working day); filled in by the change that needs it.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
