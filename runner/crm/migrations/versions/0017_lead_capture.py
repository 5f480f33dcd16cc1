"""lead capture: per-source keys for website and landing-page forms, and the client keys that make a post idempotent

Reserved for issue 12 (a real working day); filled in by the change that needs it.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
