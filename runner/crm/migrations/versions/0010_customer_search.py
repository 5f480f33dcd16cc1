"""customer search and boards that an index serves: normalised names and phones, tags by tag, stages per customer

- ``customers.search_name`` / ``search_phone``: the name lower case without accents and the
  phone's digits (+84 as 0), what search compares (``runner.crm.folding``). On PostgreSQL the
  extensions ``pg_trgm`` and ``unaccent`` are created (in schema ``public`` unless they are
  there already): a GIN trigram index serves ``LIKE '%text%'`` on both columns, and ``unaccent``
  fills them in for the rows already there in one UPDATE. SQLite gets plain indexes and is
  filled in by Python, in batches.
- ``customer_tags``: an index on (tag, customer_id) in place of the one on tag.
- ``customer_stages``: a customer's current stage per pipeline, kept by triggers on ``instances``
  (see ``runner.crm.models.CustomerStage``), filled in from the instances already there.

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import runner.store.models
from runner.crm.folding import fold, phone_digits

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = "0011"

# NOTE: the pipelines as runner.crm.customers.PIPELINES had them when this revision was written
# (frozen here: a later change of the pipelines is a later revision that replaces the triggers).
PIPELINES = {"Trong bán hàng": ("sales",), "Sau bán hàng": ("onboarding", "renewal", "care_month")}
BATCH = 2000


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _extension_schema(name: str) -> str:
    op.execute(f"CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA public")
    return op.get_bind().scalar(
        sa.text(
            "select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace where extname = :x"
        ),
        {"x": name},
    )


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("search_name", sa.String(length=300), server_default="", nullable=False))
        batch.add_column(sa.Column("search_phone", sa.String(length=50), server_default="", nullable=False))
    if _pg():
        _fill_search_pg(_extension_schema("unaccent"))
        trgm = _extension_schema("pg_trgm")
        for column in ("search_name", "search_phone"):
            op.execute(f"CREATE INDEX ix_customers_{column} ON customers USING gin ({column} {trgm}.gin_trgm_ops)")
    else:
        _fill_search_python()
        op.create_index("ix_customers_search_name", "customers", ["search_name"])
        op.create_index("ix_customers_search_phone", "customers", ["search_phone"])
    op.drop_index("ix_customer_tags_tag", table_name="customer_tags")
    op.create_index("ix_customer_tags_tag_customer", "customer_tags", ["tag", "customer_id"])
    op.create_table(
        "customer_stages",
        sa.Column("customer_id", sa.String(length=50), nullable=False),
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=200), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("entered_at", runner.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("customer_id", "pipeline"),
    )
    op.create_index("ix_customer_stages_board", "customer_stages", ["pipeline", "stage", "entered_at", "customer_id"])
    _fill_stages()
    for statement in _pg_triggers() if _pg() else _sqlite_triggers():
        op.execute(statement)


def downgrade() -> None:
    if _pg():
        for index, _keys in enumerate(PIPELINES.values()):
            op.execute(f"DROP TRIGGER IF EXISTS crm_customer_stage_{index} ON instances")
        op.execute("DROP FUNCTION IF EXISTS crm_customer_stage()")
    else:
        for index in range(len(PIPELINES)):
            op.execute(f"DROP TRIGGER IF EXISTS crm_customer_stage_{index}_insert")
            op.execute(f"DROP TRIGGER IF EXISTS crm_customer_stage_{index}_update")
    op.drop_index("ix_customer_stages_board", table_name="customer_stages")
    op.drop_table("customer_stages")
    op.drop_index("ix_customer_tags_tag_customer", table_name="customer_tags")
    op.create_index("ix_customer_tags_tag", "customer_tags", ["tag"])
    op.drop_index("ix_customers_search_phone", table_name="customers")
    op.drop_index("ix_customers_search_name", table_name="customers")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("search_phone")
        batch.drop_column("search_name")


# --- filling in what is there ----------------------------------------------------------------------


def _fill_search_pg(unaccent: str) -> None:
    # NOTE: the same strings runner.crm.folding makes in Python (tests/test_customer_search.py
    # compares them on every Vietnamese letter): NFC first, then unaccent, lower case, spaces collapsed.
    digits = "regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g')"
    op.execute(
        "UPDATE customers SET"
        f" search_name = regexp_replace(btrim(lower({unaccent}.unaccent('{unaccent}.unaccent',"
        " normalize(name, NFC)))), '\\s+', ' ', 'g'),"
        f" search_phone = CASE WHEN {digits} LIKE '84%' AND length({digits}) >= 11"
        f" THEN '0' || substr({digits}, 3) ELSE {digits} END"
    )


def _fill_search_python() -> None:
    """Batches of customers in id order (keyset), so a large table never sits in memory at once."""
    bind = op.get_bind()
    customers = sa.table(
        "customers",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("phone", sa.String),
        sa.column("search_name", sa.String),
        sa.column("search_phone", sa.String),
    )
    after = ""
    while True:
        rows = bind.execute(
            sa.select(customers.c.id, customers.c.name, customers.c.phone)
            .where(customers.c.id > after)
            .order_by(customers.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        bind.execute(
            customers.update()
            .where(customers.c.id == sa.bindparam("b_id"))
            .values(search_name=sa.bindparam("b_name"), search_phone=sa.bindparam("b_phone")),
            [{"b_id": i, "b_name": fold(n or ""), "b_phone": phone_digits(p)} for i, n, p in rows],
        )
        after = rows[-1][0]


def _last_stage(column: str) -> str:
    return f"({column} ->> -1)" if _pg() else f"json_extract({column}, '$[#-1]')"


def _fill_stages() -> None:
    stage_of = "h.details ->> 'stage'" if _pg() else "json_extract(h.details, '$.stage')"
    for pipeline, keys in PIPELINES.items():
        listed = ", ".join(f"'{k}'" for k in keys)
        op.execute(
            sa.text(
                "INSERT INTO customer_stages (customer_id, pipeline, stage, instance_id, entered_at)"
                " SELECT p.business_key, :pipeline, p.stage, p.id, coalesce((SELECT max(h.at) FROM history h"
                "   WHERE h.business_key = p.business_key AND h.event = 'stage.entered'"
                f"   AND {stage_of} = p.stage), p.updated_at)"
                f" FROM (SELECT i.business_key, {_last_stage('i.stages')} AS stage, i.id, i.updated_at,"
                "   row_number() OVER (PARTITION BY i.business_key"
                "     ORDER BY CASE WHEN i.status = 'running' THEN 0 ELSE 1 END, i.updated_at DESC, i.id) AS n"
                "   FROM instances i JOIN customers c ON c.id = i.business_key"
                f"   WHERE i.process_key IN ({listed}) AND json_array_length(i.stages) > 0) p"
                " WHERE p.n = 1"
            ).bindparams(pipeline=pipeline)
        )


# --- keeping it in step: triggers ------------------------------------------------------------------

# The customer's instances of the pipeline that have a stage, running ones first, then the one
# changed last: its last stage is the customer's. ``entered_at`` moves only when the stage does.
# NOTE: found by ix_instances_business_key; on SQLite a unary + keeps the planner off
# ix_instances_process_key, which without statistics it would take, reading every instance.
_PICK = """
    SELECT i.business_key, {pipeline}, {last_stage}, i.id, NEW.updated_at
    FROM instances i JOIN customers c ON c.id = i.business_key
    WHERE i.business_key = NEW.business_key AND {unindexed}i.process_key IN ({keys})
      AND json_array_length(i.stages) > 0
    ORDER BY CASE WHEN i.status = 'running' THEN 0 ELSE 1 END, i.updated_at DESC, i.id
    LIMIT 1
"""
_UPSERT = """
    INSERT INTO customer_stages (customer_id, pipeline, stage, instance_id, entered_at) {pick}
    ON CONFLICT (customer_id, pipeline) DO UPDATE SET
      stage = excluded.stage,
      instance_id = excluded.instance_id,
      entered_at = CASE WHEN customer_stages.stage = excluded.stage
                        THEN customer_stages.entered_at ELSE excluded.entered_at END;
"""


def _quoted(keys: tuple[str, ...]) -> str:
    return ", ".join(f"'{k}'" for k in keys)


def _pg_triggers() -> list[str]:
    pick = _PICK.format(
        pipeline="TG_ARGV[0]",
        last_stage="i.stages ->> -1",
        keys="SELECT unnest(string_to_array(TG_ARGV[1], ','))",
        unindexed="",
    )
    statements = [
        # NOTE: enable_seqscan off, for the trigger's own query only: with the statistics of a
        # young table (or in one statement that inserts many instances) the planner would read
        # the whole table for each row; the business-key index is always the way.
        "CREATE FUNCTION crm_customer_stage() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off AS $$ BEGIN"
        + _UPSERT.format(pick=pick)
        + " RETURN NULL; END $$"
    ]
    for index, (pipeline, keys) in enumerate(PIPELINES.items()):
        statements.append(
            f"CREATE TRIGGER crm_customer_stage_{index} AFTER INSERT OR UPDATE OF stages, status ON instances"
            f" FOR EACH ROW WHEN (NEW.business_key IS NOT NULL AND NEW.process_key IN ({_quoted(keys)}))"
            f" EXECUTE FUNCTION crm_customer_stage('{pipeline}', '{','.join(keys)}')"
        )
    return statements


def _sqlite_triggers() -> list[str]:
    statements = []
    for index, (pipeline, keys) in enumerate(PIPELINES.items()):
        body = _UPSERT.format(
            pick=_PICK.format(
                pipeline=f"'{pipeline}'",
                last_stage="json_extract(i.stages, '$[#-1]')",
                keys=_quoted(keys),
                unindexed="+",
            )
        )
        when = f"WHEN NEW.business_key IS NOT NULL AND NEW.process_key IN ({_quoted(keys)})"
        statements.append(
            f"CREATE TRIGGER crm_customer_stage_{index}_insert AFTER INSERT ON instances {when} BEGIN {body} END"
        )
        statements.append(
            f"CREATE TRIGGER crm_customer_stage_{index}_update AFTER UPDATE OF stages, status ON instances"
            f" {when} BEGIN {body} END"
        )
    return statements
