"""staff are users: name, roles, active and e-mail move to the core's ``users``; staff.username refers to it

Every staff row's name, roles, active flag and e-mail are written to ``users`` (a user the
core's 0006 made from a sign-in row is updated, any other staff member is added), then
``staff`` keeps only the CRM's facts (phone, Zalo id, round-robin turn) and refers to
``users.username``. On a new database ``staff`` is empty and only the columns change; on one
built before the history split (issue 10) nothing about a person is lost.

Revision ID: 0007
Revises: 0002 (depends on core 0006)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0002"
branch_labels = None
depends_on = "0006"

MOVED = ("full_name", "roles", "active", "email")


def _people(name: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("username", sa.String),
        sa.column("full_name", sa.String),
        sa.column("roles", sa.JSON),
        sa.column("active", sa.Boolean),
        sa.column("email", sa.String),
    )


def _copy(source: sa.TableClause, target: sa.TableClause) -> None:
    """Write the people of ``source`` into ``target``: update the ones it has, add the others."""
    same = source.c.username == target.c.username
    op.execute(
        target.update()
        .where(target.c.username.in_(sa.select(source.c.username)))
        .values({c: sa.select(source.c[c]).where(same).scalar_subquery() for c in MOVED})
    )
    op.execute(
        target.insert().from_select(
            ["username", *MOVED],
            sa.select(source.c.username, *(source.c[c] for c in MOVED)).where(
                source.c.username.not_in(sa.select(target.c.username))
            ),
        )
    )


def upgrade() -> None:
    _copy(_people("staff"), _people("users"))
    with op.batch_alter_table("staff") as batch:
        for column in MOVED:
            batch.drop_column(column)
        batch.create_foreign_key("fk_staff_username_users", "users", ["username"], ["username"])


def downgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.drop_constraint("fk_staff_username_users", type_="foreignkey")
        batch.add_column(sa.Column("full_name", sa.String(length=200), nullable=False, server_default=""))
        batch.add_column(sa.Column("roles", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("email", sa.String(length=200), nullable=True))
    _copy(_people("users"), _people("staff"))
    with op.batch_alter_table("staff") as batch:
        for column in ("full_name", "roles", "active"):
            batch.alter_column(column, server_default=None)
