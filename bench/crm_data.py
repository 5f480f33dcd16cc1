"""A CRM of ``n`` customers built with a handful of INSERT ... SELECT statements (seconds at 100k).

    build(engine, 100_000)   # on a migrated database (SQLite or PostgreSQL), customers KH0000001...

Each customer has a Vietnamese name, a phone number, one tag, a running sales instance at one
of the sales stages (every third one also an onboarding instance), one open task (every fifth
one overdue at ``NOW``), a note, a sent message and three history rows. The instances go in through the triggers of
migration 0010 (and 0019), so the boards' ``customer_stages`` and ``board_counts`` rows are made the
way production makes them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from runner.crm.customers import STAGES
from runner.crm.folding import fold
from runner.crm.models import TAGS

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
PROCESSES = Path(__file__).resolve().parents[1] / "processes"  # the diagrams the boards take their stage order from
OWNERS = ("hung", "linh", "duc", "hoa", "ngoc")
NAMES = (
    "Trung tâm Anh ngữ Sao Mai",
    "Trung tâm Toán Đức Trí",
    "Trường Tiểu học Kim Đồng",
    "Trung tâm Kỹ năng Ánh Dương",
    "Nguyễn Văn Hùng",
    "Trung tâm Luyện thi Phương Nam",
    "Trung tâm Tiếng Nhật Hoa Anh Đào",
)
SALES = STAGES["Trong bán hàng"]
AFTER = STAGES["Sau bán hàng"]


def _numbers(dialect: str, n: int) -> str:
    """A FROM clause yielding ``i`` = 1..n."""
    if dialect == "postgresql":
        return f"generate_series(1, {n}) AS seq(i)"
    return f"(WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) SELECT i FROM seq)"


def pick(values: tuple[str, ...], index: str) -> str:
    """A SQL CASE giving ``values[index % len(values)]``."""
    whens = " ".join(f"WHEN {k} THEN '{v}'" for k, v in enumerate(values))
    return f"(CASE ({index}) % {len(values)} {whens} END)"


def _stages_json(stages: tuple[str, ...], index: str, dialect: str) -> str:
    """The JSON list of the first ``index % len + 1`` stages (what an instance has entered)."""
    whens = " ".join(
        f"WHEN {k} THEN '{json.dumps(list(stages[: k + 1]), ensure_ascii=False)}'" for k in range(len(stages))
    )
    case = f"(CASE ({index}) % {len(stages)} {whens} END)"
    return f"CAST({case} AS json)" if dialect == "postgresql" else case


def build(engine: sa.Engine, n: int, *, triggers: bool = True) -> None:
    """Fill a migrated, empty database with ``n`` customers and what the CRM pages read of them.

    With ``triggers=False`` (PostgreSQL only) the instances go in without the triggers of migrations
    0010 and 0019 (``session_replication_role = replica``, a superuser's setting) and the boards'
    rows are written a statement each: the same rows, in a fraction of the time.
    """
    quick = not triggers and engine.dialect.name == "postgresql"
    dialect = engine.dialect.name
    seq = _numbers(dialect, n)
    ts = "'2026-12-01 09:00:00'"
    kh = "'KH' || substr('0000000' || i, -7)" if dialect == "sqlite" else "'KH' || lpad(i::text, 7, '0')"
    iid = "'i-' || i" if dialect == "sqlite" else "'i-' || i::text"
    phone = "'09' || substr('00000000' || i, -8)" if dialect == "sqlite" else "'09' || lpad(i::text, 8, '0')"
    due = (
        "datetime('2026-12-07 09:00:00', CASE WHEN i % 5 = 0 THEN '-1 day' ELSE '+1 day' END)"
        if dialect == "sqlite"
        else "timestamp '2026-12-07 09:00:00' + CASE WHEN i % 5 = 0 THEN interval '-1 day' ELSE interval '1 day' END"
    )
    entered = (
        "datetime('2026-12-01 09:00:00', '-' || (i % 90) || ' days')"
        if dialect == "sqlite"
        else "timestamp '2026-12-01 09:00:00' - (i % 90) * interval '1 day'"
    )
    folded = tuple(fold(name) for name in NAMES)
    statements = [
        *(
            f"INSERT INTO users (username, full_name, roles, active) VALUES ('{u}', '{u}', '[\"sales\"]', true)"
            for u in OWNERS
        ),
        *(f"INSERT INTO staff (username) VALUES ('{u}')" for u in OWNERS),
        "INSERT INTO process_versions (process_key, version, name, kind, content_hash, file_name, xml, spec, called,"
        " message_starts, timer_starts, deployed_at, deployed_by) VALUES"
        f" ('sales', 1, 'sales', 'bpmn', 'x', 'sales.bpmn', :sales, '', '[]', '[]', '[]', {ts}, ''),"
        f" ('onboarding', 1, 'onboarding', 'bpmn', 'y', 'onboarding.bpmn', :onboarding, '', '[]', '[]', '[]',"
        f" {ts}, '')",
        "INSERT INTO customers (id, name, phone, owner, extra, created_at, search_name, search_phone)"
        f" SELECT {kh}, {pick(NAMES, 'i')} || ' ' || i, {phone}, {pick(OWNERS, 'i')},"
        f" '{{}}', {ts}, {pick(folded, 'i')} || ' ' || i, {phone} FROM {seq}",
        f"INSERT INTO customer_tags (customer_id, tag, added_at) SELECT {kh}, {pick(TAGS, 'i')}, {ts} FROM {seq}",
        "INSERT INTO instances (id, process_key, version_id, business_key, status, state, data, called_versions,"
        " stages, waits, created_at, updated_at, row_version)"
        f" SELECT {iid}, 'sales', (SELECT min(id) FROM process_versions), {kh}, 'running', '', '{{}}', '{{}}',"
        f" {_stages_json(SALES, 'i', dialect)}, '{{}}', {ts}, {entered}, 1 FROM {seq}",
        "INSERT INTO instances (id, process_key, version_id, business_key, status, state, data, called_versions,"
        " stages, waits, created_at, updated_at, row_version)"
        f" SELECT {iid} || '-o', 'onboarding', (SELECT max(id) FROM process_versions), {kh}, 'running', '', '{{}}',"
        f" '{{}}', {_stages_json(AFTER, 'i', dialect)}, '{{}}', {ts}, {entered}, 1 FROM {seq} WHERE i % 3 = 0",
        "INSERT INTO user_tasks (id, instance_id, business_key, process_key, element_id, name, candidate_groups,"
        " candidate_users, due_at, due_sort, priority, form, state, created_at)"
        f" SELECT {iid} || '-t', {iid}, {kh}, 'sales', 'Task_call', 'Gọi khách hàng', '[\"sales\"]', '[]', {due},"
        f" {due}, 50, '{{}}', 'open', {ts} FROM {seq}",
        # NOTE: the task lists and the policy read who a task is offered to here (migration 0009).
        "INSERT INTO user_task_candidates (task_id, kind, name, due_sort)"
        f" SELECT {iid} || '-t', 'group', 'sales', {due} FROM {seq}",
        "INSERT INTO customer_notes (customer_id, kind, text, author, created_at)"
        f" SELECT {kh}, 'discussion', 'Khách hẹn gọi lại sau.', {pick(OWNERS, 'i')}, {entered} FROM {seq}",
        "INSERT INTO outbox (idempotency_key, channel, instance_id, business_key, payload, state, attempts, due_at,"
        f" created_at, sent_at) SELECT {iid} || '/m', 'email', {iid}, {kh}, '{{\"subject\": \"Chào mừng\"}}',"
        f" 'sent', 1, {entered}, {entered}, {entered} FROM {seq}",
        "INSERT INTO history (at, instance_id, business_key, process_key, event, details)"
        f" SELECT {entered}, {iid}, {kh}, 'sales', e.event, '{{}}' FROM {seq}"
        " CROSS JOIN (SELECT 'instance.started' AS event UNION ALL SELECT 'stage.entered'"
        " UNION ALL SELECT 'task.completed') e",
    ]
    if quick:
        last = "i.stages ->> -1"
        pipeline = "CASE i.process_key WHEN 'sales' THEN 'Trong bán hàng' ELSE 'Sau bán hàng' END"
        statements.insert(0, "SET session_replication_role = replica")
        statements.append(
            "INSERT INTO customer_stages (customer_id, pipeline, stage, instance_id, entered_at)"
            f" SELECT i.business_key, {pipeline}, {last}, i.id, i.updated_at FROM instances i"
        )
        # NOTE: what migration 0019's triggers keep: the column counts, each customer's earliest open
        # due. Statistics first: without them the planner takes the fresh tables for empty and
        # joins them by reading one whole for each row of the other.
        statements.append("ANALYZE customers, customer_stages, user_tasks")
        statements.append(
            "INSERT INTO board_counts (pipeline, stage, owner, n)"
            " SELECT s.pipeline, s.stage, coalesce(c.owner, ''), count(*)"
            " FROM customer_stages s JOIN customers c ON c.id = s.customer_id"
            " GROUP BY s.pipeline, s.stage, coalesce(c.owner, '')"
        )
        statements.append(
            "UPDATE customer_stages s SET overdue_from = t.due_at FROM user_tasks t"
            " WHERE t.business_key = s.customer_id AND s.pipeline = 'Trong bán hàng' AND t.state = 'open'"
        )
    with engine.begin() as conn:
        diagrams = {key: (PROCESSES / f"{key}.bpmn").read_text() for key in ("sales", "onboarding")}
        for statement in statements:
            conn.execute(sa.text(statement), diagrams if ":sales" in statement else {})
        if quick:
            conn.execute(sa.text("SET session_replication_role = DEFAULT"))
    if dialect == "postgresql":
        # NOTE: what autovacuum does to a table that has grown: statistics, and the visibility
        # map that lets index-only scans skip the table
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
