"""login_sessions (server-side web sessions) and login_throttles (failed logins per account and address)

The failure counts move out of ``accounts`` (``failed_logins``, ``locked_until``) into
``login_throttles``, which also counts client addresses and usernames that do not exist.
Counts start afresh: a wait lasts 15 minutes at most, so nothing worth keeping is lost.
Sessions issued before this revision carried no server-side token, so everyone signs in again.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import runner.store.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("created_at", runner.store.models.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", runner.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["username"], ["staff.username"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("login_sessions") as batch:
        batch.create_index(batch.f("ix_login_sessions_username"), ["username"], unique=False)
    op.create_table(
        "login_throttles",
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", runner.store.models.UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", runner.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "digest"),
    )
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("failed_logins")
        batch.drop_column("locked_until")


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", runner.store.models.UTCDateTime(), nullable=True))
    op.drop_table("login_throttles")
    with op.batch_alter_table("login_sessions") as batch:
        batch.drop_index(batch.f("ix_login_sessions_username"))
    op.drop_table("login_sessions")
