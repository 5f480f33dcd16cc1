"""lead intake: numbered customer codes, e-mail addresses in lower case and found by an index

- ``customer_codes``: the last number given per code prefix (``KH`` -> 41 made KH0041), so
  that a new lead's code is one indexed row away, and concurrent intakes take turns on it
  (``runner.crm.intake``). It starts empty: the first intake counts past the codes already there.
- ``customers.email``: lower case (an address is one address whatever its case), with an
  index that serves the duplicate check and the search by e-mail.

Revision ID: 0014
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0010"
branch_labels = None
depends_on = "0013"


def upgrade() -> None:
    op.create_table(
        "customer_codes",
        sa.Column("prefix", sa.String(length=10), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix"),
    )
    op.execute("UPDATE customers SET email = lower(email) WHERE email <> lower(email)")
    op.create_index("ix_customers_email", "customers", ["email"])


def downgrade() -> None:
    op.drop_index("ix_customers_email", table_name="customers")
    op.drop_table("customer_codes")
