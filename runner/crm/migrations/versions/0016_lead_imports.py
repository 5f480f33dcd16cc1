"""lead imports: uploaded files, their rows and errors, and how far an import got

- ``lead_imports``: one uploaded CSV/XLSX file of leads, its columns as mapped to fields, its state.
- ``lead_import_rows``: each data row, its values and errors by field, and its state (invalid, pending,
  created, skipped), written with the lead it creates (``runner.crm.lead_imports``). The index on
  (import_id, state, number) finds the next pending rows and counts the progress.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import runner.store.models

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_imports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", runner.store.models.UTCDateTime(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("started_by", sa.String(length=100), nullable=True),
        sa.Column("started_at", runner.store.models.UTCDateTime(), nullable=True),
        sa.Column("finished_at", runner.store.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "lead_import_rows",
        sa.Column("import_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("customer_id", sa.String(length=50), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["import_id"], ["lead_imports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("import_id", "number"),
    )
    op.create_index("ix_lead_import_rows_state", "lead_import_rows", ["import_id", "state", "number"])


def downgrade() -> None:
    op.drop_index("ix_lead_import_rows_state", table_name="lead_import_rows")
    op.drop_table("lead_import_rows")
    op.drop_table("lead_imports")
