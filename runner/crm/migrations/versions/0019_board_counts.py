"""board counts kept on write, and each customer's earliest open task due per pipeline

- ``board_counts``: customers per (pipeline, stage, owner), what a board's column counts read
  (a handful of rows, however many customers). Kept by triggers on ``customer_stages`` (a row
  made, moved to another stage, removed) and on ``customers`` (another owner), in the same
  transaction as the change, whoever writes it; filled in from the rows already there.
- ``customer_stages.overdue_from``: the earliest ``due_at`` of the customer's open user tasks
  of the pipeline's processes (NULL: none). With the index (pipeline, stage, overdue_from,
  customer_id), "customers of a stage with a task past due at ``now``" is one index range
  ending at ``now``. Kept by triggers on ``user_tasks`` and on the making of a
  ``customer_stages`` row; filled in from the open tasks already there.

NOTE: on PostgreSQL every trigger first takes a transaction advisory lock on the customer, so
two transactions changing the same customer's board rows (a stage move, a new owner, a task)
take turns, and the second reads what the first committed: no count is lost or counted under
the wrong owner. Counter rows are changed with ``n = n + delta`` (a row lock, re-read after
a concurrent writer commits), and the two rows of one move in a fixed order (by stage, then
owner), so that two moves in opposite directions cannot deadlock.

Revision ID: 0019
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import runner.store.models

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = "0018"

# NOTE: the pipelines as runner.crm.customers.PIPELINES had them when this revision was written
# (as in 0010: a later change of the pipelines is a later revision that replaces the triggers).
PIPELINES = {"Trong bán hàng": ("sales",), "Sau bán hàng": ("onboarding", "renewal", "care_month")}
KEYS = tuple(key for keys in PIPELINES.values() for key in keys)


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _quoted(keys: tuple[str, ...]) -> str:
    return ", ".join(f"'{k}'" for k in keys)


def upgrade() -> None:
    op.create_table(
        "board_counts",
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "stage", "owner"),
    )
    op.add_column("customer_stages", sa.Column("overdue_from", runner.store.models.UTCDateTime(), nullable=True))
    op.create_index(
        "ix_customer_stages_overdue", "customer_stages", ["pipeline", "stage", "overdue_from", "customer_id"]
    )
    op.execute(
        "INSERT INTO board_counts (pipeline, stage, owner, n)"
        " SELECT s.pipeline, s.stage, coalesce(c.owner, ''), count(*)"
        " FROM customer_stages s JOIN customers c ON c.id = s.customer_id"
        " GROUP BY s.pipeline, s.stage, coalesce(c.owner, '')"
    )
    plus = "" if _pg() else "+"
    for pipeline, keys in PIPELINES.items():
        op.execute(
            sa.text(
                f"UPDATE customer_stages SET overdue_from = ({_earliest('customer_stages.customer_id', keys, plus)})"
                " WHERE pipeline = :pipeline"
            ).bindparams(pipeline=pipeline)
        )
    for statement in _pg_triggers() if _pg() else _sqlite_triggers():
        op.execute(statement)


def downgrade() -> None:
    if _pg():
        op.execute("DROP TRIGGER IF EXISTS crm_board_stage ON customer_stages")
        op.execute("DROP TRIGGER IF EXISTS crm_board_stage_new ON customer_stages")
        op.execute("DROP TRIGGER IF EXISTS crm_board_owner ON customers")
        op.execute("DROP TRIGGER IF EXISTS crm_board_task ON user_tasks")
        for function in ("crm_board_stage()", "crm_board_stage_new()", "crm_board_owner()", "crm_board_task()"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
        for function in ("crm_board_add(text, text, text, integer)", "crm_board_overdue(text, text)"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
        op.execute("DROP FUNCTION IF EXISTS crm_board_lock(text)")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for index in range(len(PIPELINES)):
            for when in ("insert", "update", "delete", "stage"):
                op.execute(f"DROP TRIGGER IF EXISTS crm_board_task_{index}_{when}")
    op.drop_index("ix_customer_stages_overdue", table_name="customer_stages")
    # NOTE: not a batch (copy and rename) on SQLite: migration 0010's triggers name the table
    op.drop_column("customer_stages", "overdue_from")
    op.drop_table("board_counts")


def _earliest(customer: str, keys: tuple[str, ...] | str, unindexed: str = "") -> str:
    """The earliest due of ``customer``'s open tasks of the processes ``keys`` (a tuple, or SQL for a list)."""
    # NOTE: ix_user_tasks_business_key finds the customer's tasks (a few), whatever the table's
    # size; on SQLite a unary + (``unindexed``) keeps the planner, which has no statistics,
    # off ix_user_tasks_list_process, which would read every task of the process per row.
    listed = _quoted(keys) if isinstance(keys, tuple) else keys
    return (
        f"SELECT min(t.due_at) FROM user_tasks t WHERE t.business_key = {customer}"
        f" AND {unindexed}t.state = 'open' AND {unindexed}t.process_key IN ({listed})"
    )


# --- PostgreSQL: functions and triggers --------------------------------------------------------------


def _pipeline_keys(pipeline: str) -> str:
    """SQL for the process keys of the pipeline named by the SQL ``pipeline``, as an array's elements."""
    whens = " ".join(f"WHEN '{p}' THEN ARRAY[{_quoted(keys)}]" for p, keys in PIPELINES.items())
    return f"SELECT unnest(CASE {pipeline} {whens} END)"


def _pipeline_of(key: str) -> str:
    whens = " ".join(f"WHEN {key} IN ({_quoted(keys)}) THEN '{p}'" for p, keys in PIPELINES.items())
    return f"CASE {whens} END"


def _pg_triggers() -> list[str]:
    return [
        # NOTE: the two-key advisory locks of runner.store.leases are another key space; the
        # table's oid as seed keeps two schemas of one database (the tests') apart.
        "CREATE FUNCTION crm_board_lock(customer text) RETURNS void LANGUAGE sql AS"
        " $$ SELECT pg_advisory_xact_lock(hashtextextended(customer, 'board_counts'::regclass::oid::bigint)) $$",
        "CREATE FUNCTION crm_board_add(p text, s text, o text, delta integer) RETURNS void LANGUAGE sql AS"
        " $$ INSERT INTO board_counts (pipeline, stage, owner, n) VALUES (p, s, o, delta)"
        " ON CONFLICT (pipeline, stage, owner) DO UPDATE SET n = board_counts.n + excluded.n $$",
        # the earliest open due of a customer in a pipeline, written when it changed
        # NOTE: enable_seqscan off for these functions' own queries, as for 0010's trigger: with a
        # young table's statistics (or in one statement writing many rows) the planner would read
        # the whole table for each row; the customer's key is always the way.
        "CREATE FUNCTION crm_board_overdue(customer text, p text) RETURNS void LANGUAGE plpgsql"
        " SET enable_seqscan = off AS $$"
        " DECLARE due user_tasks.due_at%TYPE; BEGIN"
        f" due := ({_earliest('customer', _pipeline_keys('p'))});"
        " UPDATE customer_stages SET overdue_from = due"
        " WHERE customer_id = customer AND pipeline = p AND overdue_from IS DISTINCT FROM due;"
        " END $$",
        "CREATE FUNCTION crm_board_stage() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off AS $$"
        " DECLARE who text; customer text; BEGIN"
        " IF TG_OP = 'DELETE' THEN customer := OLD.customer_id; ELSE customer := NEW.customer_id; END IF;"
        " PERFORM crm_board_lock(customer);"
        " who := coalesce((SELECT c.owner FROM customers c WHERE c.id = customer), '');"
        " IF TG_OP = 'INSERT' THEN PERFORM crm_board_add(NEW.pipeline, NEW.stage, who, 1);"
        " ELSIF TG_OP = 'DELETE' THEN PERFORM crm_board_add(OLD.pipeline, OLD.stage, who, -1);"
        " ELSIF OLD.stage < NEW.stage THEN"
        "   PERFORM crm_board_add(OLD.pipeline, OLD.stage, who, -1);"
        "   PERFORM crm_board_add(NEW.pipeline, NEW.stage, who, 1);"
        " ELSE"
        "   PERFORM crm_board_add(NEW.pipeline, NEW.stage, who, 1);"
        "   PERFORM crm_board_add(OLD.pipeline, OLD.stage, who, -1);"
        " END IF; RETURN NULL; END $$",
        "CREATE TRIGGER crm_board_stage AFTER INSERT OR DELETE OR UPDATE OF stage ON customer_stages"
        " FOR EACH ROW EXECUTE FUNCTION crm_board_stage()",
        # NOTE: a row made after its customer's tasks (the instance got its first stage later)
        "CREATE FUNCTION crm_board_stage_new() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " PERFORM crm_board_lock(NEW.customer_id);"
        " PERFORM crm_board_overdue(NEW.customer_id, NEW.pipeline); RETURN NULL; END $$",
        "CREATE TRIGGER crm_board_stage_new AFTER INSERT ON customer_stages"
        " FOR EACH ROW EXECUTE FUNCTION crm_board_stage_new()",
        "CREATE FUNCTION crm_board_owner() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off AS $$"
        " DECLARE old_owner text := coalesce(OLD.owner, ''); new_owner text := coalesce(NEW.owner, '');"
        " s record; BEGIN"
        " PERFORM crm_board_lock(NEW.id);"
        " FOR s IN SELECT pipeline, stage FROM customer_stages WHERE customer_id = NEW.id ORDER BY pipeline LOOP"
        "   IF old_owner < new_owner THEN"
        "     PERFORM crm_board_add(s.pipeline, s.stage, old_owner, -1);"
        "     PERFORM crm_board_add(s.pipeline, s.stage, new_owner, 1);"
        "   ELSE"
        "     PERFORM crm_board_add(s.pipeline, s.stage, new_owner, 1);"
        "     PERFORM crm_board_add(s.pipeline, s.stage, old_owner, -1);"
        "   END IF;"
        " END LOOP; RETURN NULL; END $$",
        "CREATE TRIGGER crm_board_owner AFTER UPDATE OF owner ON customers"
        " FOR EACH ROW WHEN (OLD.owner IS DISTINCT FROM NEW.owner) EXECUTE FUNCTION crm_board_owner()",
        "CREATE FUNCTION crm_board_task() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF TG_OP <> 'INSERT' AND OLD.business_key IS NOT NULL AND OLD.process_key IN"
        f" ({_quoted(KEYS)}) THEN"
        "   PERFORM crm_board_lock(OLD.business_key);"
        f"   PERFORM crm_board_overdue(OLD.business_key, {_pipeline_of('OLD.process_key')});"
        " END IF;"
        " IF TG_OP <> 'DELETE' AND NEW.business_key IS NOT NULL AND NEW.process_key IN"
        f" ({_quoted(KEYS)}) THEN"
        "   PERFORM crm_board_lock(NEW.business_key);"
        f"   PERFORM crm_board_overdue(NEW.business_key, {_pipeline_of('NEW.process_key')});"
        " END IF; RETURN NULL; END $$",
        "CREATE TRIGGER crm_board_task AFTER INSERT OR DELETE OR UPDATE OF state, due_at, business_key, process_key"
        " ON user_tasks FOR EACH ROW EXECUTE FUNCTION crm_board_task()",
    ]


# --- SQLite: one writer at a time, so plain triggers ---------------------------------------------------

_ADD = (
    "INSERT INTO board_counts (pipeline, stage, owner, n) VALUES ({pipeline}, {stage},"
    " coalesce((SELECT owner FROM customers WHERE id = {customer}), ''), {delta})"
    " ON CONFLICT (pipeline, stage, owner) DO UPDATE SET n = n + excluded.n;"
)
_SQLITE_TRIGGERS = ("crm_board_stage_insert", "crm_board_stage_update", "crm_board_stage_delete", "crm_board_owner")


def _sqlite_triggers() -> list[str]:
    new = {"pipeline": "NEW.pipeline", "stage": "NEW.stage", "customer": "NEW.customer_id"}
    old = {"pipeline": "OLD.pipeline", "stage": "OLD.stage", "customer": "OLD.customer_id"}
    statements = [
        f"CREATE TRIGGER crm_board_stage_insert AFTER INSERT ON customer_stages BEGIN {_ADD.format(**new, delta=1)}"
        " END",
        "CREATE TRIGGER crm_board_stage_update AFTER UPDATE OF stage ON customer_stages"
        f" WHEN OLD.stage IS NOT NEW.stage BEGIN {_ADD.format(**old, delta=-1)} {_ADD.format(**new, delta=1)} END",
        f"CREATE TRIGGER crm_board_stage_delete AFTER DELETE ON customer_stages BEGIN {_ADD.format(**old, delta=-1)}"
        " END",
        "CREATE TRIGGER crm_board_owner AFTER UPDATE OF owner ON customers WHEN OLD.owner IS NOT NEW.owner BEGIN"
        " UPDATE board_counts SET n = n - 1 WHERE owner = coalesce(OLD.owner, '')"
        "   AND (pipeline, stage) IN (SELECT pipeline, stage FROM customer_stages WHERE customer_id = NEW.id);"
        " INSERT INTO board_counts (pipeline, stage, owner, n)"
        "   SELECT pipeline, stage, coalesce(NEW.owner, ''), 1 FROM customer_stages WHERE customer_id = NEW.id"
        "   ON CONFLICT (pipeline, stage, owner) DO UPDATE SET n = n + 1;"
        " END",
    ]
    for index, (pipeline, keys) in enumerate(PIPELINES.items()):
        recompute = (
            f"UPDATE customer_stages SET overdue_from = ({_earliest('{key}', keys, '+')})"
            f" WHERE customer_id = {{key}} AND pipeline = '{pipeline}';"
        )
        mine = "{row}.business_key IS NOT NULL AND {row}.process_key IN (" + _quoted(keys) + ")"
        statements += [
            f"CREATE TRIGGER crm_board_task_{index}_insert AFTER INSERT ON user_tasks"
            f" WHEN {mine.format(row='NEW')} BEGIN {recompute.format(key='NEW.business_key')} END",
            f"CREATE TRIGGER crm_board_task_{index}_delete AFTER DELETE ON user_tasks"
            f" WHEN {mine.format(row='OLD')} BEGIN {recompute.format(key='OLD.business_key')} END",
            f"CREATE TRIGGER crm_board_task_{index}_update"
            " AFTER UPDATE OF state, due_at, business_key, process_key ON user_tasks"
            f" WHEN {mine.format(row='OLD')} OR {mine.format(row='NEW')} BEGIN"
            f" {recompute.format(key='OLD.business_key')} {recompute.format(key='NEW.business_key')} END",
            f"CREATE TRIGGER crm_board_task_{index}_stage AFTER INSERT ON customer_stages"
            f" WHEN NEW.pipeline = '{pipeline}' BEGIN {recompute.format(key='NEW.customer_id')} END",
        ]
    return statements
