"""customer search: normalised names, phones and tags the database can index

Reserved for issue 11 (reads that stay flat); filled in by the change that needs it.

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = "0011"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
