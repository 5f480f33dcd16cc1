"""Open user tasks in bulk, built by the database itself (one INSERT ... SELECT per table), for the task
list benchmark and the tests that need many rows: 100k tasks take seconds on SQLite and PostgreSQL.

Task ``n`` (1..count) belongs to instance ``n`` of process ``bench_p{n % 3}``, customer ``KH{n % customers}``,
stage ``S{n % 4}``, is offered to group ``g{n % groups}``, assigned to ``u{n % users}`` when n % 10 == 0,
and due ``(n * 37) % 97`` minutes after START, except every 7th task (no due time): many ties and nulls.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, text

from runner.store.models import ProcessVersion

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
GROUPS, USERS, CUSTOMERS = 8, 20, 5000

_SERIES = {
    "postgresql": "SELECT g AS n FROM generate_series(1, :count) AS g",
    "sqlite": "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :count) SELECT n FROM s",
}
# NOTE: per dialect: zero-padded ids, "START + m minutes" as the column type stores it, the NULL-due rule.
_PARTS = {
    "postgresql": {
        "id": "lpad(n::text, 9, '0')",
        "when": "(CAST(:start AS timestamp) + (({m}) * interval '1 minute'))",
        "no_due": "CAST('9999-12-31 00:00:00' AS timestamp)",
        "json": "CAST({} AS json)",
    },
    "sqlite": {
        "id": "printf('%09d', n)",
        "when": "strftime('%Y-%m-%d %H:%M:%f000', :start, '+' || ({m}) || ' minutes')",
        "no_due": "'9999-12-31 00:00:00.000000'",
        "json": "{}",
    },
}


def fill(
    engine: Engine,
    count: int,
    *,
    groups: int | Sequence[str] = GROUPS,
    users: int = USERS,
    customers: int = CUSTOMERS,
) -> None:
    """Insert ``count`` running instances, each with one open user task and its candidate row (as described).

    ``groups``: how many groups ``g0``, ``g1``..., or their names (task n's is ``groups[n % len(groups)]``).
    """
    dialect = engine.dialect.name
    if isinstance(groups, int):
        group = "'g' || (n % :groups)"
    else:
        names = " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(groups))
        group, groups = f"(CASE n % :groups {names} END)", len(groups)
    parts, series = _PARTS[dialect], _SERIES[dialect]
    due = f"CASE WHEN n % 7 = 0 THEN NULL ELSE {parts['when'].format(m='(n * 37) % 97')} END"
    created = parts["when"].format(m="n / 3")
    start = START.replace(tzinfo=None).isoformat(sep=" ")
    params = {"count": count, "start": start, "groups": groups, "users": users, "customers": customers}
    with engine.begin() as conn:
        version = conn.scalar(select(ProcessVersion.id).where(ProcessVersion.process_key == "bench_tasks"))
        if version is None:
            version = conn.execute(
                insert(ProcessVersion).values(
                    process_key="bench_tasks",
                    version=1,
                    name="bench",
                    kind="bpmn",
                    content_hash="0" * 64,
                    file_name="bench.bpmn",
                    xml="",
                    spec="",
                    called=[],
                    message_starts=[],
                    timer_starts=[],
                    deployed_at=START,
                    deployed_by="bench",
                )
            ).inserted_primary_key[0]
        params["version"] = version
        obj, arr = parts["json"].format("'{}'"), parts["json"].format("'[]'")
        conn.execute(
            text(
                "INSERT INTO instances (id, process_key, version_id, business_key, status, state, data, "
                "called_versions, stages, waits, created_at, updated_at, row_version) "
                f"SELECT 'i' || {parts['id']}, 'bench_p' || (n % 3), :version, 'KH' || (n % :customers), "
                f"'running', '', {obj}, {obj}, {arr}, {obj}, {created}, {created}, 1 FROM ({series}) AS seq"
            ),
            params,
        )
        groups_json = parts["json"].format(f"'[\"' || {group} || '\"]'")
        conn.execute(
            text(
                "INSERT INTO user_tasks (id, instance_id, business_key, process_key, element_id, name, stage, "
                "candidate_groups, candidate_users, assignee, due_at, due_sort, priority, form, state, created_at) "
                f"SELECT 't' || {parts['id']}, 'i' || {parts['id']}, 'KH' || (n % :customers), "
                f"'bench_p' || (n % 3), 'task' || (n % 5), 'Task ' || n, 'S' || (n % 4), {groups_json}, {arr}, "
                f"CASE WHEN n % 10 = 0 THEN 'u' || (n % :users) END, {due}, COALESCE({due}, {parts['no_due']}), "
                f"50, {obj}, 'open', {created} FROM ({series}) AS seq"
            ),
            params,
        )
        conn.execute(
            text(
                "INSERT INTO user_task_candidates (task_id, kind, name, due_sort) "
                f"SELECT 't' || {parts['id']}, 'group', {group}, COALESCE({due}, {parts['no_due']}) "
                f"FROM ({series}) AS seq"
            ),
            params,
        )
        if dialect == "postgresql":
            for table in ("instances", "user_tasks", "user_task_candidates"):
                conn.execute(text(f"ANALYZE {table}"))
        else:
            conn.execute(text("ANALYZE"))
