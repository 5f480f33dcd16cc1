"""customer changes: who changed a customer's profile, owner, tags or fields, old and new

- ``customers.version``: bumped by every edit a person saves; an edit made on an older version
  is refused as a conflict (``runner.crm.editing``). Existing customers start at 1.
- ``customer_changes``: one row per field and edit (who, when by the runner's clock, old and
  new value, the version it made). Its one index, (customer_id, version), serves the
  customer's timeline (newest first) and the conflict check (fields changed after version N).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import runner.store.models

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NOTE: plain ALTER TABLE (no batch copy on SQLite): the triggers of 0010 name customers,
    # and a copy-and-rename of the table would break them.
    op.add_column("customers", sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "customer_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=50), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("old", sa.JSON(), nullable=True),
        sa.Column("new", sa.JSON(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("at", runner.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_customer_changes_customer_version", "customer_changes", ["customer_id", "version"])


def downgrade() -> None:
    op.drop_index("ix_customer_changes_customer_version", table_name="customer_changes")
    op.drop_table("customer_changes")
    op.execute("ALTER TABLE customers DROP COLUMN version")  # SQLite 3.35+ and PostgreSQL, no table copy
