"""business calendar: working hours per weekday, public holidays and company days off

The calendar has no row until an admin (or the CRM's demo) saves one; business-time
timers then count the runner's default hours (``runner.model.worktime.default_calendar``).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import runner.store.models

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "business_calendar",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("country", sa.String(length=8), nullable=True),
        sa.Column("row_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", runner.store.models.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "calendar_days_off",
        sa.Column("calendar", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["calendar"], ["business_calendar.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("calendar", "day"),
    )


def downgrade() -> None:
    op.drop_table("calendar_days_off")
    op.drop_table("business_calendar")
