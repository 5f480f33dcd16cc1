"""lead capture: per-source keys for website and landing-page forms, and the client keys that make a post idempotent

- ``lead_keys``: a key of a configured customer source (``runner.crm.capture``): a SHA-256 of the
  secret (the secret itself is shown once), its prefix and label, the web origins that may post
  with it, its rate limit and the current minute's count, when it was made, last used, revoked.
- ``lead_posts``: one row per (key, client idempotency key), unique, so two posts of one form
  make one lead; it holds a hash of the body and the outcome the first post had.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import runner.store.models

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = runner.store.models.UTCDateTime
    op.create_table(
        "lead_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("origins", sa.Text(), nullable=False),
        sa.Column("per_minute", sa.Integer(), nullable=False),
        sa.Column("created_at", when(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("last_used_at", when(), nullable=True),
        sa.Column("revoked_at", when(), nullable=True),
        sa.Column("window_start", when(), nullable=True),
        sa.Column("window_posts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["customer_sources.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "lead_posts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("client_key", sa.String(length=200), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("customer_id", sa.String(length=50), nullable=True),
        sa.Column("created_at", when(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.ForeignKeyConstraint(["key_id"], ["lead_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id", "client_key", name="uq_lead_posts_client_key"),
    )


def downgrade() -> None:
    op.drop_table("lead_posts")
    op.drop_table("lead_keys")
