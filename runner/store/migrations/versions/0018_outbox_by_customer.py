"""outbox by customer, and the open tasks offered to no group

``ix_outbox_business_key`` (business_key, id): a customer's newest messages (the task page's
last messages, the customer page's timeline) read backward, ``limit`` entries whatever the
outbox holds. ``ix_user_tasks_no_group``: a partial index of the open tasks offered to no
candidate group, which the open-tasks gauge counts (``runner.queries.metrics``).

Revision ID: 0018
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0013"
branch_labels = None
depends_on = None

# NOTE: literally runner.store.models.NO_GROUP_OPEN (a migration does not import the models it outlives).
NO_GROUP_OPEN = sa.text("state = 'open' AND CAST(candidate_groups AS TEXT) = '[]'")


def upgrade() -> None:
    op.create_index("ix_outbox_business_key", "outbox", ["business_key", "id"], unique=False)
    op.create_index(
        "ix_user_tasks_no_group",
        "user_tasks",
        ["id"],
        unique=False,
        postgresql_where=NO_GROUP_OPEN,
        sqlite_where=NO_GROUP_OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_user_tasks_no_group", table_name="user_tasks")
    op.drop_index("ix_outbox_business_key", table_name="outbox")
