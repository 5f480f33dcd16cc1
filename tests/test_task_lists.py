"""The task lists and the instance list page by keyset, in SQL, on SQLite and PostgreSQL.

Paging: following ``next_cursor`` (and back with ``prev_cursor``) yields every row of the list once, in
order, when due times tie or are missing. Plans: at 100k open tasks on PostgreSQL, every statement the
list functions run (captured as they run them) reads user_tasks, user_task_candidates and instances
through an index, never a sequential scan.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import event

from bench import harness, reads_tasks, task_rows
from runner.errors import Invalid
from runner.extension import Person
from runner.queries import keyset, metrics
from runner.queries import tasklists as inbox
from runner.registry import installed
from runner.service import accounts as users
from runner.service.runtime import Runner
from runner.store import schema
from runner.store.models import due_sort
from tests.conftest import make_runner, pg_schema

COUNT = 300
LISTED = {"user_tasks", "user_task_candidates", "instances"}


def _filled(url: str, count: int, **shape: int) -> Runner:
    runner = make_runner(url, installed())
    task_rows.fill(runner.db.engine, count, **shape)
    return runner


@pytest.fixture(params=["sqlite", "postgresql"])
def filled(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """COUNT open tasks (ties and missing due times) on each database."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    runner = _filled(url, COUNT, groups=3, users=4, customers=40)
    yield runner
    runner.db.engine.dispose()


def _walk(read: Callable[[str | None], keyset.Page]) -> tuple[list[str], list[keyset.Page]]:
    """Every row id from the first page on, following next_cursor; and the pages read."""
    pages = [read(None)]
    while pages[-1].next_cursor:
        pages.append(read(pages[-1].next_cursor))
        assert len(pages) < COUNT, "paging does not end"
    return [r["id"] for p in pages for r in p.rows], pages


def _back(read: Callable[[str | None], keyset.Page], last: keyset.Page) -> list[str]:
    """Every row id before the last page, read backward with prev_cursor, in list order."""
    ids, page = [r["id"] for r in last.rows], last
    while page.prev_cursor:
        page = read(page.prev_cursor)
        ids = [r["id"] for r in page.rows] + ids
    return ids


def _expected(rows: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> list[str]:
    """The model: the rows a list keeps, by (due time, tasks without one last), then id."""
    return [r["id"] for r in sorted((r for r in rows if keep(r)), key=lambda r: (due_sort(r["due_at"]), r["id"]))]


def _offered(row: dict[str, Any], user: str, groups: set[str]) -> bool:
    return not row["assignee"] and (user in row["candidate_users"] or bool(groups & set(row["candidate_groups"])))


LISTS: dict[str, tuple[Callable[..., keyset.Page], Callable[[dict[str, Any]], bool]]] = {
    "open": (lambda r, **kw: inbox.open_tasks(r, **kw), lambda row: True),
    "open, stage S1": (lambda r, **kw: inbox.open_tasks(r, stage="S1", **kw), lambda row: row["stage"] == "S1"),
    "mine": (lambda r, **kw: inbox.my_tasks(r, "u0", **kw), lambda row: row["assignee"] == "u0"),
    "group": (
        lambda r, **kw: inbox.group_tasks(r, "u1", ["g1", "g2"], **kw),
        lambda row: _offered(row, "u1", {"g1", "g2"}),
    ),
    "api, visible to u2 of g2": (
        lambda r, **kw: inbox.task_page(r, viewer=("u2", ["g2"]), **kw),
        lambda row: row["assignee"] == "u2" or _offered(row, "u2", {"g2"}),
    ),
    "api, candidate group g0": (
        lambda r, **kw: inbox.task_page(r, candidate_group="g0", **kw),
        lambda row: "g0" in row["candidate_groups"],
    ),
    "api, unassigned": (lambda r, **kw: inbox.task_page(r, unassigned=True, **kw), lambda row: not row["assignee"]),
}


@pytest.mark.parametrize("name", LISTS)
def test_pages_hold_every_row_once_in_order(filled: Runner, name: str) -> None:
    read, keep = LISTS[name]
    expected = _expected(inbox.tasks(filled), keep)
    assert len(expected) > 14, "the list should span several pages"
    ids, pages = _walk(lambda cursor: read(filled, limit=7, cursor=cursor))
    assert ids == expected
    assert all(len(p.rows) == 7 for p in pages[:-1]) and pages[0].prev_cursor is None
    assert _back(lambda cursor: read(filled, limit=7, cursor=cursor), pages[-1]) == expected


def test_due_times_tie_and_are_missing_in_the_data(filled: Runner) -> None:
    """The paging tests above would not find a tie bug without ties and NULLs to page across."""
    rows = inbox.tasks(filled)
    dues = [r["due_at"] for r in rows]
    assert dues.count(None) > 7 and len({d for d in dues if d}) < len([d for d in dues if d]) // 2


def test_instance_pages_hold_every_instance_once_newest_first(filled: Runner) -> None:
    everything = inbox.instances(filled)
    expected = [r["id"] for r in sorted(everything, key=lambda r: (r["created_at"], r["id"]), reverse=True)]
    assert len({r["created_at"] for r in everything}) < len(everything), "created_at should tie"

    def read(cursor: str | None) -> keyset.Page:
        return inbox.instance_page(filled, limit=9, cursor=cursor)

    ids, pages = _walk(read)
    assert ids == expected
    assert _back(read, pages[-1]) == expected


def test_instance_pages_keep_to_what_the_person_may_see(filled: Runner) -> None:
    """With the CRM's scope a person without tasks or grants sees no customer's instances; an admin all."""
    assert inbox.instance_page(filled, person=Person.of("nobody", ["no_such_role"])).rows == []
    assert len(inbox.instance_page(filled, person=Person.of("root", ["admin"]), limit=5).rows) == 5


@pytest.mark.parametrize(
    ("limit", "cursor", "field"),
    [("0", None, "limit"), ("201", None, "limit"), ("many", None, "limit"), (None, "not-a-cursor", "cursor")],
)
def test_bad_paging_input_names_the_field(filled: Runner, limit: str | None, cursor: str | None, field: str) -> None:
    with pytest.raises(Invalid, match=f"^{field}:"):
        inbox.task_page(filled, limit=limit, cursor=cursor)


def test_a_cursor_of_another_list_is_refused(filled: Runner) -> None:
    page = inbox.instance_page(filled, limit=3)
    with pytest.raises(Invalid, match="^cursor:"):
        inbox.task_page(filled, cursor=page.next_cursor)


# --- plans at 100k open tasks on PostgreSQL ---------------------------------------------------------


@pytest.fixture(scope="module")
def big_pg(pg_base_url: str) -> Iterator[Runner]:
    """100,000 open tasks, instances and candidate rows, built by the database in seconds."""
    with pg_schema(pg_base_url) as url:
        runner = _filled(url, 100_000)
        yield runner
        runner.db.engine.dispose()


def _statements(runner: Runner, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The SQL statements (with their parameters) that ``call`` runs on the runner's engine."""
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append((statement, parameters))

    event.listen(runner.db.engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(runner.db.engine, "before_cursor_execute", record)
    return seen


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield plan["Node Type"], plan.get("Relation Name", "")
    for child in plan.get("Plans", ()):
        yield from _scans(child)


def _plan(cur: Any, sql: str, params: Any) -> dict[str, Any]:
    """PostgreSQL's plan of a statement with its parameters, as EXPLAIN (FORMAT JSON) gives it."""
    cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
    found = cur.fetchone()[0]
    return (json.loads(found) if isinstance(found, str) else found)[0]["Plan"]


def _deep(read: Callable[[str | None], keyset.Page]) -> str:
    """A cursor far into the list (its 20th page of 50)."""
    cursor = None
    for _ in range(20):
        cursor = read(cursor).next_cursor
        assert cursor
    return cursor


PLANNED: dict[str, Callable[[Runner, str | None], Any]] = {
    "my tasks": lambda r, c: inbox.my_tasks(r, "u0", cursor=c),
    "group tasks": lambda r, c: inbox.group_tasks(r, "u1", ["g1", "g2"], cursor=c),
    "group tasks, overdue": lambda r, c: inbox.group_tasks(r, "u1", ["g1"], due="overdue", cursor=c),
    "group tasks, customer": lambda r, c: inbox.group_tasks(r, "u1", ["g1"], business_key="KH10", cursor=c),
    "all open": lambda r, c: inbox.open_tasks(r, cursor=c),
    "all open, process": lambda r, c: inbox.open_tasks(r, process_key="bench_p1", cursor=c),
    "all open, stage": lambda r, c: inbox.open_tasks(r, stage="S2", cursor=c),
    "all open, due this week": lambda r, c: inbox.open_tasks(r, due="week", cursor=c),
    "all open, customer": lambda r, c: inbox.open_tasks(r, business_key="KH7", cursor=c),
    "api, visible to a member": lambda r, c: inbox.task_page(r, viewer=("u3", ["g3", "g4"]), cursor=c),
    "api, candidate group": lambda r, c: inbox.task_page(r, candidate_group="g5", cursor=c),
    "api, assignee": lambda r, c: inbox.task_page(r, assignee="u10", cursor=c),
    "api, unassigned": lambda r, c: inbox.task_page(r, unassigned=True, cursor=c),
    "instances": lambda r, c: inbox.instance_page(r, cursor=c),
    "instances, process": lambda r, c: inbox.instance_page(r, process_key="bench_p2", cursor=c),
    "instances, running": lambda r, c: inbox.instance_page(r, status="running", cursor=c),
    "instances, admin": lambda r, c: inbox.instance_page(r, person=Person.of("root", ["admin"]), cursor=c),
    "instances, a member of g3": lambda r, c: inbox.instance_page(r, person=Person.of("u3", ["g3"]), cursor=c),
}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("name", PLANNED)
@pytest.mark.parametrize("depth", ["first page", "deep page"])
def test_no_list_reads_its_table_sequentially_at_100k(big_pg: Runner, name: str, depth: str) -> None:
    list_call = PLANNED[name]
    cursor = None
    if depth == "deep page" and "customer" not in name:
        cursor = _deep(lambda c: list_call(big_pg, c))
    statements = _statements(big_pg, lambda: list_call(big_pg, cursor))
    listed = [(sql, params) for sql, params in statements if any(table in sql for table in LISTED)]
    assert listed, "the list ran no query on its tables"
    raw = big_pg.db.engine.raw_connection()
    try:
        cur = raw.cursor()
        for sql, params in listed:
            scans = {rel for node, rel in _scans(_plan(cur, sql, params)) if node == "Seq Scan" and rel in LISTED}
            assert not scans, f"{name}: a sequential scan of {scans} in\n{sql}"
    finally:
        raw.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_filter_choices_walk_the_index_at_100k(big_pg: Runner) -> None:
    statements = _statements(big_pg, lambda: inbox.filter_options(big_pg))
    raw = big_pg.db.engine.raw_connection()
    try:
        cur = raw.cursor()
        for sql, params in statements:
            assert not {rel for node, rel in _scans(_plan(cur, sql, params)) if node == "Seq Scan" and rel in LISTED}, (
                sql
            )
    finally:
        raw.close()
    assert inbox.filter_options(big_pg)["stage"] == [(s, s) for s in ("S0", "S1", "S2", "S3")]


@pytest.mark.slow
@pytest.mark.postgres
def test_the_open_tasks_gauge_reads_no_task_row_at_100k(big_pg: Runner) -> None:
    """/metrics' open tasks per group count the candidate rows, and the tasks offered to no group by
    their partial index: user_tasks is never read sequentially (runner.queries.metrics)."""
    found = {}
    sent = _statements(big_pg, lambda: found.update(metrics.read_state(big_pg).tasks_open))
    # the two statements of that gauge (every task here is overdue: that count reads them all)
    statements = [(sql, params) for sql, params in sent if "user_task_candidates" in sql or "'[]'" in sql]
    assert len(statements) == 2, sent
    raw = big_pg.db.engine.raw_connection()
    try:
        cur = raw.cursor()
        plans = [_plan(cur, sql, params) for sql, params in statements]
        scanned = {rel for plan in plans for node, rel in _scans(plan) if node == "Seq Scan"}
    finally:
        raw.close()
    # NOTE: the candidate table holds only what the gauge counts; it is read whole by design.
    assert scanned <= {"user_task_candidates"}, scanned
    assert found == {f"g{n}": 100_000 // task_rows.GROUPS for n in range(task_rows.GROUPS)}


@pytest.mark.slow
@pytest.mark.postgres
def test_the_plan_check_sees_a_sequential_scan(big_pg: Runner) -> None:
    """The check above can fail: a filter no index serves is read sequentially."""
    raw = big_pg.db.engine.raw_connection()
    try:
        plan = _plan(raw.cursor(), "SELECT id FROM user_tasks WHERE name = %(name)s", {"name": "Task 5"})
    finally:
        raw.close()
    assert ("Seq Scan", "user_tasks") in set(_scans(plan))


# --- the web inbox and the API page the same way ---------------------------------------------------


def test_the_group_inbox_pages_with_next_and_previous_links(client, runner: Runner, staff) -> None:
    task_rows.fill(runner.db.engine, 130, groups=["sales", "marketing"], customers=30)
    client.login("sales1")
    expected = _expected(inbox.tasks(runner), lambda row: _offered(row, "sales1", {"sales"}))
    assert len(expected) > 50
    seen, path, pages = [], "/inbox/group", []
    while path:
        page = client.get(path).get_data(as_text=True)
        pages.append(page)
        seen += re.findall(r'data-task="([^"]+)"', page)
        found = re.search(r'href="([^"]+)" rel="next"', page)
        path = html.unescape(found.group(1)) if found else None
    assert seen == expected and len(pages) > 1
    assert 'rel="prev"' not in pages[0] and 'rel="prev"' in pages[-1]
    back = html.unescape(re.search(r'href="([^"]+)" rel="prev"', pages[-1]).group(1))
    assert re.findall(r'data-task="([^"]+)"', client.get(back).get_data(as_text=True)) == re.findall(
        r'data-task="([^"]+)"', pages[-2]
    )


def test_the_api_pages_with_next_cursor_and_names_a_bad_field(client, runner: Runner, staff) -> None:
    task_rows.fill(runner.db.engine, 60, groups=["sales", "marketing"], users=4, customers=30)
    auth = {"Authorization": f"Bearer {users.issue_token(runner, 'marketing1', label='test')}"}
    expected = _expected(inbox.tasks(runner), lambda row: _offered(row, "marketing1", {"marketing"}))
    seen, cursor = [], None
    while True:
        answer = client.get(
            "/api/tasks", query_string={"limit": 7, **({"cursor": cursor} if cursor else {})}, headers=auth
        )
        assert answer.status_code == 200
        seen += [t["id"] for t in answer.get_json()["tasks"]]
        cursor = answer.get_json()["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    for query, field in (({"limit": "0"}, "limit"), ({"cursor": "bogus"}, "cursor"), ({"limit": "x"}, "limit")):
        answer = client.get("/api/tasks", query_string=query, headers=auth)
        assert answer.status_code == 400 and answer.get_json()["detail"].startswith(f"{field}:"), answer.get_json()
    answer = client.get("/api/instances", query_string={"limit": 5}, headers=auth)
    assert answer.status_code == 200 and answer.get_json()["next_cursor"]


def test_the_bench_prints_a_figure_per_list_and_page() -> None:
    """Only the shape of the output: timings depend on the machine."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert reads_tasks.main(["--sizes", "1200", "--db", "sqlite", "--repeats", "1"]) == 0
    figures = harness.parse("\n".join(line for line in out.getvalue().splitlines() if not line.startswith("#")))
    assert {
        "sqlite_n1200_web_group_first_ms",
        "sqlite_n1200_web_all_deep_ms",
        "sqlite_n1200_api_instances_deep_ms",
    } <= set(figures)
    assert all(value > 0 for value in figures.values())


# --- migration 0009 fills the candidate rows from the JSON of existing tasks ------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        with pg_schema(request.getfixturevalue("pg_base_url"), upgrade=False) as url:
            yield url


def test_migration_0009_backfills_candidates_and_due_sort_and_downgrades(unmigrated_url: str) -> None:
    config = schema.alembic_config(unmigrated_url, branches=("core",))
    command.upgrade(config, "0008")
    engine = sa.create_engine(unmigrated_url)
    at = "2026-01-05 08:00:00"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO process_versions (id, process_key, version, name, kind, content_hash, file_name, xml, "
                "spec, called, message_starts, timer_starts, deployed_at, deployed_by) VALUES (1, 'p', 1, '', "
                "'bpmn', 'h', 'p.bpmn', '', '', '[]', '[]', '[]', :at, '')"
            ),
            {"at": at},
        )
        conn.execute(
            sa.text(
                "INSERT INTO instances (id, process_key, version_id, status, state, data, called_versions, stages, "
                "waits, created_at, updated_at, row_version) VALUES ('i1', 'p', 1, 'running', '', '{}', '{}', "
                "'[]', '{}', :at, :at, 1)"
            ),
            {"at": at},
        )
        for task_id, groups, users_, due, state in (
            ("a", '["sales", "marketing"]', '["lan"]', at, "open"),
            ("b", '["sales"]', "[]", None, "open"),
            ("c", '["sales"]', "[]", at, "completed"),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO user_tasks (id, instance_id, process_key, element_id, name, candidate_groups, "
                    "candidate_users, due_at, priority, form, state, created_at) VALUES (:id, 'i1', 'p', 'e', '', "
                    ":groups, :users, :due, 50, '{}', :state, :at)"
                ),
                {"id": task_id, "groups": groups, "users": users_, "due": due, "state": state, "at": at},
            )
    command.upgrade(config, "0009")
    with engine.connect() as conn:
        rows = set(conn.execute(sa.text("SELECT task_id, kind, name FROM user_task_candidates")))
        sorts = dict(conn.execute(sa.text("SELECT id, due_sort FROM user_tasks")).all())
    assert rows == {("a", "group", "sales"), ("a", "group", "marketing"), ("a", "user", "lan"), ("b", "group", "sales")}
    assert str(sorts["a"]).startswith("2026-01-05 08:00") and str(sorts["b"]).startswith("9999-12-31")
    command.downgrade(config, "0008")
    inspector = sa.inspect(engine)
    assert "user_task_candidates" not in inspector.get_table_names()
    assert "due_sort" not in {c["name"] for c in inspector.get_columns("user_tasks")}
    engine.dispose()


# --- the projection keeps the candidate rows with their open task ------------------------------------


def test_a_task_is_offered_while_open_and_its_candidate_rows_go_with_it(runner: Runner, staff) -> None:
    runner.deploy([Path(__file__).parent / "bpmn" / "web" / "lead.bpmn"])
    runner.start_instance("web_lead", "KH1")
    [task] = inbox.tasks(runner, business_key="KH1")
    with runner.db.engine.connect() as conn:
        rows = set(conn.execute(sa.text("SELECT task_id, kind, name FROM user_task_candidates")))
    assert rows == {(task["id"], "group", "sales")}
    assert [r["id"] for r in inbox.group_tasks(runner, "sales1", ["sales"]).rows] == [task["id"]]
    runner.complete_task(task["id"], {"lead_quality": "good"}, actor="sales1")
    with runner.db.engine.connect() as conn:
        left = set(conn.execute(sa.text("SELECT task_id FROM user_task_candidates WHERE task_id = :id"), task))
    assert left == set()
    assert task["id"] not in {r["id"] for r in inbox.group_tasks(runner, "sales1", ["sales"]).rows}
