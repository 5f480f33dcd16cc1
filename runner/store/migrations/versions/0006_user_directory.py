"""users: the runner's user directory (name, roles, active, e-mail); sign-in rows refer to it

``accounts``, ``api_tokens`` and ``login_sessions`` refer to ``users.username``. A new
database has no users yet. A database built before the history split (issue 10) has its
people in the CRM's ``staff``, which these tables referred to: this revision replaces those
references (whatever table they named, it never names one) and makes a user of every
username the sign-in tables hold, named after the username until the crm branch's 0007 copies
the names, roles, active flags and e-mails over from ``staff``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SIGN_IN = ("accounts", "api_tokens", "login_sessions")
# NOTE: names the unnamed foreign keys SQLite reflects, so that batch mode can drop them
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("username"),
    )
    users = sa.table(
        "users",
        sa.column("username", sa.String),
        sa.column("full_name", sa.String),
        sa.column("roles", sa.JSON),
        sa.column("active", sa.Boolean),
    )
    known = sa.union(*(sa.select(sa.table(t, sa.column("username")).c.username) for t in SIGN_IN)).subquery()
    op.execute(
        users.insert().from_select(
            ["username", "full_name", "roles", "active"],
            sa.select(known.c.username, known.c.username, sa.literal([], sa.JSON()), sa.true()),
        )
    )
    inspector = sa.inspect(op.get_bind())
    for table in SIGN_IN:
        old = [fk for fk in inspector.get_foreign_keys(table) if fk["constrained_columns"] == ["username"]]
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            for fk in old:
                batch.drop_constraint(fk["name"] or f"fk_{table}_username_{fk['referred_table']}", type_="foreignkey")
            batch.create_foreign_key(f"fk_{table}_username_users", "users", ["username"], ["username"])


def downgrade() -> None:
    for table in SIGN_IN:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_username_users", type_="foreignkey")
    op.drop_table("users")
