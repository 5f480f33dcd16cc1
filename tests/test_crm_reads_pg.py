"""At 100,000 customers on PostgreSQL no CRM page reads a big table from end to end.

A company of 100k customers (bench.crm_data: instances, tasks, tags, history) is built with a
few INSERT ... SELECT generate_series. The CRM's read functions then run as the pages call them
(search of every kind, both boards with and without an owner, a column's next page, the
customer page, the task page's last messages, the admin overview's counts), every statement they
send is captured as sent, and its plan is EXPLAINed: none may hold a Seq Scan on a table that
grows with the customers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import make_runner, pg_schema

from bench.crm_data import OWNERS, build
from runner.crm import pages, reads, routines, views
from runner.queries import overview
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
CUSTOMERS = 100_000
BIG = {
    "customers",
    "customer_stages",
    "customer_tags",
    "instances",
    "user_tasks",
    "history",
    "outbox",
    "customer_notes",
}


@pytest.fixture(scope="module")
def big(pg_base_url: str) -> Iterator[Runner]:
    with pg_schema(pg_base_url) as url:
        engine = sa.create_engine(url)
        build(engine, CUSTOMERS, triggers=False)
        engine.dispose()
        runner = make_runner(url, Registry())
        yield runner
        runner.db.engine.dispose()


def _seq_scans(plan: dict[str, Any]) -> list[str]:
    found = [plan["Relation Name"]] if plan.get("Node Type") == "Seq Scan" else []
    for child in plan.get("Plans", []):
        found += _seq_scans(child)
    return found


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


def _explained(runner: Runner, read) -> list[tuple[str, list[str]]]:
    """Run ``read``, capture each SELECT it sends, and return (statement, tables scanned whole) for each."""
    return [(statement, [t for t in _seq_scans(plan) if t in BIG]) for statement, plan in _planned(runner, read)]


def _planned(runner: Runner, read) -> list[tuple[str, dict[str, Any]]]:
    """Run ``read``, capture each SELECT it sends, and return (statement, its plan) for each."""
    sent: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            sent.append((statement, parameters))

    sa.event.listen(runner.db.engine, "before_cursor_execute", capture)
    try:
        read()
    finally:
        sa.event.remove(runner.db.engine, "before_cursor_execute", capture)
    assert sent, "the read sent no query"
    found = []
    with runner.db.engine.connect() as conn:
        for statement, parameters in sent:
            [[plan]] = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).one()
            plan = plan if isinstance(plan, dict) else json.loads(plan)[0]
            found.append((statement, plan["Plan"]))
    return found


def _board_page_two(runner: Runner) -> None:
    first = views.pipeline_board(runner, "sales")
    [column] = [c for c in first["columns"] if c["stage"] == "Cấp Demo"]
    assert column["next"] and column["count"] > len(column["cards"])
    views.pipeline_board(runner, "sales", after={"Cấp Demo": column["next"]})


READS = {
    "search: everyone": lambda r: views.find_customers(r, ""),
    "search: a common name": lambda r: views.find_customers(r, "trung tam"),
    "search: a rare name": lambda r: views.find_customers(r, "phuong nam 99995"),
    "search: a name with accents": lambda r: views.find_customers(r, "Đức Trí 4"),
    "search: a phone with +84": lambda r: views.find_customers(r, "+84 900 012 345"),
    "search: part of a phone": lambda r: views.find_customers(r, "12345"),
    "search: a code": lambda r: views.find_customers(r, "KH0012345"),
    "search: a tag typed": lambda r: views.find_customers(r, "tiềm năng"),
    "search: a tag without accents": lambda r: views.find_customers(r, "cap  demo"),
    "search: a code in lower case": lambda r: views.find_customers(r, "kh0012345"),
    "search: an e-mail": lambda r: views.find_customers(r, "LienHe@TrungTam12345.edu.vn"),
    "search: an owner": lambda r: views.find_customers(r, "hung"),
    "search: a phone with dots": lambda r: views.find_customers(r, "+84  900.012.345"),
    "search: the tag filter": lambda r: views.find_customers(r, "", tag="CẤP DEMO"),
    "search: the next page": lambda r: views.find_customers(r, "trung tam", after="KH0050000"),
    "board: sales": lambda r: views.pipeline_board(r, "sales"),
    "board: after sale, one owner": lambda r: views.pipeline_board(r, "onboarding", owner_name="hung"),
    "board: a column's second page": _board_page_two,
    "customer page: profile": lambda r: pages.customer_profile(r, "KH0054321"),
    "customer page: timeline": lambda r: views.timeline(r, "KH0054321"),
    "customer page: instances": lambda r: views.instances(r, "KH0054321"),
    "customer page: bookings": lambda r: views.customer_bookings(r, "KH0054321"),
    "task page: the customer's last messages": lambda r: inbox.recent_messages(r, "KH0054321"),
    "admin overview: its counts": overview.counts,
}


@pytest.mark.parametrize("name", list(READS))
def test_no_crm_read_scans_a_big_table_at_100k_customers(big: Runner, name: str) -> None:
    scanned = [(statement, tables) for statement, tables in _explained(big, lambda: READS[name](big)) if tables]
    assert scanned == [], "\n\n".join(f"{tables}: {statement}" for statement, tables in scanned)


def test_the_reads_find_what_the_company_holds(big: Runner) -> None:
    """The plans above are of queries that answer: a page is full, counts cover the whole column."""
    assert len(views.find_customers(big, "trung tam")) == 50
    assert [r["id"] for r in views.find_customers(big, "+84 900 012 345")] == ["KH0012345"]
    assert [r["id"] for r in views.find_customers(big, "kh0012345")] == ["KH0012345"]
    assert len(views.find_customers(big, "cap  demo")) == 50
    board = views.pipeline_board(big, "sales")
    assert sum(c["count"] for c in board["columns"]) == CUSTOMERS
    assert all(len(c["cards"]) == 50 for c in board["columns"])
    # NOTE: every fifth customer is overdue, ~2,857 a stage: each badge stops at its cap
    assert all(c["overdue"] == reads.OVERDUE_CAP and c["overdue_capped"] for c in board["columns"])
    owned = views.pipeline_board(big, "sales", owner_name="hung")
    assert sum(c["count"] for c in owned["columns"]) == CUSTOMERS // len(OWNERS)
    assert [m["business_key"] for m in inbox.recent_messages(big, "KH0054321")] == ["KH0054321"]
    assert overview.counts(big).running == overview.CAP + 1  # more than the page counts


@pytest.mark.parametrize("owner", [None, "hung"])
def test_the_board_counts_read_kept_rows_and_the_badges_one_index_range(big: Runner, owner: str | None) -> None:
    """Column counts come from board_counts alone; each overdue badge from one index range, cut at the cap."""
    planned = _planned(big, lambda: views.pipeline_board(big, "sales", owner_name=owner))
    [counts] = [plan for statement, plan in planned if "board_counts" in statement]
    assert {n["Relation Name"] for n in _nodes(counts) if "Relation Name" in n} == {"board_counts"}
    [overdue] = [plan for statement, plan in planned if "overdue_from" in statement]
    on_stages = [n for n in _nodes(overdue) if n.get("Relation Name") == "customer_stages"]
    assert on_stages and all(n.get("Index Name") == "ix_customer_stages_overdue" for n in on_stages)
    limits = [n for n in _nodes(overdue) if n["Node Type"] == "Limit"]
    assert len(limits) == len(on_stages) and all(n["Plan Rows"] <= reads.OVERDUE_CAP for n in limits)


# --- seed 001's routines beside the 100k customers: a year of check-ins, feature requests -------------

ROUTINE_READS = {
    "check-in page: a day": lambda r: routines.checkin_day(r, date(2026, 6, 15)),
    "feature requests: a requester's": lambda r: routines.feature_requests(r, "hung"),
}


@pytest.fixture(scope="module")
def with_routines(big: Runner) -> Runner:
    """A year of daily check-ins (3 reps each) and 2,000 feature requests added to the big company."""
    day = "TIMESTAMP '2026-01-01 01:30' + (g * INTERVAL '1 day')"
    statements = [
        "INSERT INTO instances (id, process_key, version_id, business_key, status, state, data, called_versions,"
        " stages, waits, created_at, updated_at, row_version)"
        f" SELECT 'ci-' || g, 'checkin', (SELECT min(id) FROM process_versions), NULL, 'completed', '', '{{}}',"
        f" '{{}}', '[]', '{{}}', {day}, {day}, 1 FROM generate_series(0, 364) g",
        "INSERT INTO user_tasks (id, instance_id, business_key, process_key, element_id, name, candidate_groups,"
        " candidate_users, assignee, due_at, due_sort, priority, form, state, created_at, ended_at)"
        f" SELECT 'ci-' || g || '-' || rep, 'ci-' || g, NULL, 'checkin', 'Task_checkin', 'Check-in', '[]', '[]',"
        f" rep, {day}, {day}, 50, '{{}}', 'completed', {day}, {day}"
        " FROM generate_series(0, 364) g CROSS JOIN (VALUES ('hung'), ('linh'), ('duc')) AS reps(rep)",
        "INSERT INTO history (at, instance_id, business_key, process_key, event, element_id, actor, details)"
        f" SELECT {day}, 'ci-' || g, NULL, 'checkin', 'task.completed', 'Task_checkin', rep,"
        " json_build_object('task_id', 'ci-' || g || '-' || rep, 'data', json_build_object('today', 'Demo'))"
        " FROM generate_series(0, 364) g CROSS JOIN (VALUES ('hung'), ('linh'), ('duc')) AS reps(rep)",
        "INSERT INTO instances (id, process_key, version_id, business_key, status, state, data, called_versions,"
        " stages, waits, created_at, updated_at, row_version)"
        " SELECT 'fr-' || g, 'feature_request', (SELECT min(id) FROM process_versions), NULL, 'running', '',"
        " json_build_object('requester', (ARRAY['hung', 'linh', 'duc', 'hoa'])[1 + g % 4], 'title', 'T' || g,"
        " 'request_state', 'received'), '{}', '[]', '{}', TIMESTAMP '2026-01-01' + (g * INTERVAL '1 hour'),"
        " TIMESTAMP '2026-01-01' + (g * INTERVAL '1 hour'), 1 FROM generate_series(1, 2000) g",
    ]
    with big.db.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    with big.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE instances, user_tasks, history"))
    return big


@pytest.mark.parametrize("name", list(ROUTINE_READS))
def test_no_routine_read_scans_a_big_table(with_routines: Runner, name: str) -> None:
    read = ROUTINE_READS[name]
    scanned = [
        (statement, tables) for statement, tables in _explained(with_routines, lambda: read(with_routines)) if tables
    ]
    assert scanned == [], "\n\n".join(f"{tables}: {statement}" for statement, tables in scanned)


def test_the_routine_reads_find_what_was_added(with_routines: Runner) -> None:
    day = routines.checkin_day(with_routines, date(2026, 6, 15))
    assert {(row.rep, row.state, row.answers["today"]) for row in day} == {
        (rep, "answered", "Demo") for rep in ("duc", "hung", "linh")
    }
    mine = routines.feature_requests(with_routines, "hung")  # 500 filed: the newest page of them
    assert len(mine) == routines.REQUESTS_SHOWN and mine[0]["id"] == "fr-2000"
