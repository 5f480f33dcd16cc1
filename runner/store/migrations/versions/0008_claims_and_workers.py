"""claims and workers: due-work indexes read in order, timer leases, worker heartbeats

Workers claim due timers and jobs in batches (``runner.service.claims``). The claim reads
``WHERE state = 'waiting' AND due_at <= :now ORDER BY due_at, id LIMIT :n``: over the old
``(state, due_at)`` indexes PostgreSQL sorted every row that shares one due time for each
claim. Partial indexes on ``(due_at, id)`` of the waiting (pending) rows are read in order
and the scan stops after n rows. Timers get the lease columns jobs already had, and the
``workers`` table holds each worker's heartbeat.

Revision ID: 0008
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import runner.store.models

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def _partial(state: str) -> dict[str, sa.TextClause]:
    where = sa.text(f"state = '{state}'")
    return {"postgresql_where": where, "sqlite_where": where}


LEASED = {"postgresql_where": sa.text("locked_by IS NOT NULL"), "sqlite_where": sa.text("locked_by IS NOT NULL")}


def upgrade() -> None:
    with op.batch_alter_table("timers", schema=None) as batch:
        batch.add_column(sa.Column("locked_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("locked_until", runner.store.models.UTCDateTime(), nullable=True))
        batch.drop_index("ix_timers_due")
    # claims.claim_query for timers, and scheduler.next_due
    op.create_index("ix_timers_claim", "timers", ["due_at", "id"], unique=False, **_partial("waiting"))
    # claims.release_dead: who holds leases (only leased rows are in it)
    op.create_index("ix_timers_leased", "timers", ["locked_by"], unique=False, **LEASED)
    with op.batch_alter_table("jobs", schema=None) as batch:
        batch.drop_index("ix_jobs_due")
    # claims.claim_query for jobs, and jobs.next_due
    op.create_index("ix_jobs_claim", "jobs", ["due_at", "id"], unique=False, **_partial("pending"))
    op.create_index("ix_jobs_leased", "jobs", ["locked_by"], unique=False, **LEASED)
    # outbox.claim_query
    op.create_index("ix_outbox_claim", "outbox", ["due_at", "id"], unique=False, **_partial("pending"))
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", runner.store.models.UTCDateTime(), nullable=False),
        sa.Column("last_beat_at", runner.store.models.UTCDateTime(), nullable=False),
        sa.Column("lag_seconds", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", runner.store.models.UTCDateTime(), nullable=True),
        sa.Column("items_done", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index("ix_outbox_claim", table_name="outbox", **_partial("pending"))
    op.drop_index("ix_jobs_leased", table_name="jobs", **LEASED)
    op.drop_index("ix_jobs_claim", table_name="jobs", **_partial("pending"))
    with op.batch_alter_table("jobs", schema=None) as batch:
        batch.create_index("ix_jobs_due", ["state", "due_at"], unique=False)
    op.drop_index("ix_timers_leased", table_name="timers", **LEASED)
    op.drop_index("ix_timers_claim", table_name="timers", **_partial("waiting"))
    with op.batch_alter_table("timers", schema=None) as batch:
        batch.create_index("ix_timers_due", ["state", "due_at"], unique=False)
        batch.drop_column("locked_until")
        batch.drop_column("locked_by")
