"""clock runs: the virtual clock advanced in the background

A request to move the virtual clock becomes a ``clock_runs`` row that a worker (or the
process that asked) works off step by step, persisting how far it got. ``active`` is unique:
one run at a time.

Revision ID: 0011
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import runner.store.models

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clock_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("start", runner.store.models.UTCDateTime(), nullable=False),
        sa.Column("target", runner.store.models.UTCDateTime(), nullable=False),
        sa.Column("reached", runner.store.models.UTCDateTime(), nullable=False),
        sa.Column("fired", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("active", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("history_from", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", runner.store.models.UTCDateTime(), nullable=True),
        sa.Column("created_at", runner.store.models.UTCDateTime(), nullable=False),
        sa.Column("started_at", runner.store.models.UTCDateTime(), nullable=True),
        sa.Column("ended_at", runner.store.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("active"),
        sa.UniqueConstraint("idempotency_key"),
    )


def downgrade() -> None:
    op.drop_table("clock_runs")
