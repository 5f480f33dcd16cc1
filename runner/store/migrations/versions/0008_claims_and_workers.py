"""claims and workers: due-work indexes, leases, worker heartbeats

Reserved for issue 11 (timers and jobs in batches); filled in by the change that needs it.

Revision ID: 0008
Revises: 0006
"""

from __future__ import annotations

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
