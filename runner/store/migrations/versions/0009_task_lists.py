"""task lists: candidate groups in SQL and keyset paging indexes

``user_tasks.due_sort`` (the due time, far in the future for a task without one) is the non-null
key every task list orders by; ``user_task_candidates`` holds one row per candidate group or user
of each open task, so that a group's queue is one index range. The upgrade fills both from the
existing rows (``candidate_groups``/``candidate_users`` JSON stay: the task's own record).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import runner.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# NOTE: the values of runner.store.models.NO_DUE at the time of writing; a migration keeps its own.
NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)
BATCH = 5000

TASK_INDEXES = {
    "ix_user_tasks_list": ["state", "due_sort", "id"],
    "ix_user_tasks_list_assignee": ["assignee", "state", "due_sort", "id"],
    "ix_user_tasks_list_process": ["process_key", "state", "due_sort", "id"],
    "ix_user_tasks_list_stage": ["stage", "state", "due_sort", "id"],
}
INSTANCE_INDEXES = {
    "ix_instances_list": ["created_at", "id"],
    "ix_instances_list_process": ["process_key", "created_at", "id"],
    "ix_instances_list_status": ["status", "created_at", "id"],
}


def _names(value) -> list[str]:
    """A JSON list column's value as read back (a list, or its text on some drivers)."""
    if isinstance(value, str):
        value = json.loads(value)
    return [str(v) for v in value or []]


def upgrade() -> None:
    utc = runner.store.models.UTCDateTime()
    with op.batch_alter_table("user_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_sort", utc, nullable=True))
    tasks = sa.table(
        "user_tasks",
        sa.column("id", sa.String),
        sa.column("due_at", utc),
        sa.column("due_sort", utc),
        sa.column("state", sa.String),
        sa.column("candidate_groups", sa.JSON),
        sa.column("candidate_users", sa.JSON),
    )
    op.execute(
        tasks.update().values(due_sort=sa.func.coalesce(tasks.c.due_at, sa.literal(NO_DUE, utc)))  # one statement
    )
    with op.batch_alter_table("user_tasks", schema=None) as batch_op:
        batch_op.alter_column("due_sort", existing_type=utc, nullable=False)
        for name, columns in TASK_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)

    op.create_table(
        "user_task_candidates",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("due_sort", utc, nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["user_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "kind", "name"),
    )
    with op.batch_alter_table("user_task_candidates", schema=None) as batch_op:
        batch_op.create_index("ix_user_task_candidates_queue", ["kind", "name", "due_sort", "task_id"], unique=False)
    _backfill_candidates(tasks)

    with op.batch_alter_table("instances", schema=None) as batch_op:
        for name, columns in INSTANCE_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def _backfill_candidates(tasks) -> None:
    """One candidate row per group and user in the JSON lists of every open task, in batches."""
    bind = op.get_bind()
    candidates = sa.table(
        "user_task_candidates",
        sa.column("task_id", sa.String),
        sa.column("kind", sa.String),
        sa.column("name", sa.String),
        sa.column("due_sort", runner.store.models.UTCDateTime()),
    )
    query = (
        sa.select(tasks.c.id, tasks.c.due_sort, tasks.c.candidate_groups, tasks.c.candidate_users)
        .where(tasks.c.state == "open")
        .order_by(tasks.c.id)
    )
    after = ""
    while True:
        rows = bind.execute(query.where(tasks.c.id > after).limit(BATCH)).all()
        if not rows:
            return
        values = {
            (task_id, kind, name): due
            for task_id, due, groups, users in rows
            for kind, names in (("group", groups), ("user", users))
            for name in _names(names)
        }
        if values:
            bind.execute(
                candidates.insert(),
                [{"task_id": t, "kind": k, "name": n, "due_sort": due} for (t, k, n), due in values.items()],
            )
        after = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        for name in INSTANCE_INDEXES:
            batch_op.drop_index(name)
    with op.batch_alter_table("user_task_candidates", schema=None) as batch_op:
        batch_op.drop_index("ix_user_task_candidates_queue")
    op.drop_table("user_task_candidates")
    with op.batch_alter_table("user_tasks", schema=None) as batch_op:
        for name in TASK_INDEXES:
            batch_op.drop_index(name)
        batch_op.drop_column("due_sort")
