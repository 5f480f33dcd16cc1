"""The board's kept figures (migration 0019) equal what a full count finds, whoever writes and in any order.

``board_counts`` holds customers per (pipeline, stage, owner) and ``customer_stages.overdue_from``
each customer's earliest open due; triggers keep both in the writing transaction. Here the
writes are plain SQL, as any writer's would be: instances moved to another stage (the triggers
of migration 0010 then move ``customer_stages``), customers made and given another owner,
board rows removed, tasks opened, completed, moved and deleted. On PostgreSQL two connections
write at once, and no change is lost.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import pg_schema

from bench.crm_data import OWNERS, SALES, build
from runner.crm import reads
from runner.crm.models import CustomerStage
from runner.store import schema as db

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
CUSTOMERS = 60
KEPT = "SELECT pipeline, stage, owner, n FROM board_counts WHERE n <> 0 ORDER BY 1, 2, 3"
COUNTED = (
    "SELECT s.pipeline, s.stage, coalesce(c.owner, ''), count(*) FROM customer_stages s"
    " JOIN customers c ON c.id = s.customer_id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
# the earliest open due of each customer's tasks of the pipeline's processes, as the board asked before
EARLIEST = (
    "SELECT s.customer_id, s.pipeline, s.overdue_from, (SELECT min(t.due_at) FROM user_tasks t"
    " WHERE t.business_key = s.customer_id AND t.state = 'open' AND t.process_key IN"
    " (CASE s.pipeline WHEN 'Trong bán hàng' THEN 'sales' ELSE 'onboarding' END,"
    "  CASE s.pipeline WHEN 'Trong bán hàng' THEN 'sales' ELSE 'renewal' END,"
    "  CASE s.pipeline WHEN 'Trong bán hàng' THEN 'sales' ELSE 'care_month' END))"
    " FROM customer_stages s ORDER BY 1, 2"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def company(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A small company of bench.crm_data, its instances and tasks written through the triggers."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'board.db'}"
        db.upgrade(url)
        engine = sa.create_engine(url)
        build(engine, CUSTOMERS)
        yield engine
        engine.dispose()
    else:
        with pg_schema(request.getfixturevalue("pg_base_url")) as url:
            engine = sa.create_engine(url)
            build(engine, CUSTOMERS)
            yield engine
            engine.dispose()


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)  # stored naive UTC, as runner.store.models.UTCDateTime does


def _stages(engine: sa.Engine, stages: list[str]) -> str:
    text = json.dumps(stages, ensure_ascii=False)
    return f"CAST('{text}' AS json)" if engine.dialect.name == "postgresql" else f"'{text}'"


def _move(conn: sa.Connection, customer: int, stage: int) -> None:
    """The customer's sales instance enters ``SALES[stage]`` (its stages so far, then that one)."""
    stages = _stages(conn.engine, [*SALES[:stage], SALES[stage]])
    conn.execute(sa.text(f"UPDATE instances SET stages = {stages} WHERE id = :id"), {"id": f"i-{customer}"})


def _new_customer(conn: sa.Connection, number: int, owner: str | None, stage: int) -> None:
    key = f"KH9{number:06d}"
    conn.execute(
        sa.text(
            "INSERT INTO customers (id, name, owner, extra, created_at, search_name, search_phone)"
            " VALUES (:id, :id, :owner, '{}', :at, '', '')"
        ),
        {"id": key, "owner": owner, "at": _naive(NOW)},
    )
    conn.execute(
        sa.text(
            "INSERT INTO instances (id, process_key, version_id, business_key, status, state, data, called_versions,"
            " stages, waits, created_at, updated_at, row_version) VALUES (:id, 'sales',"
            f" (SELECT min(id) FROM process_versions), :key, 'running', '', '{{}}', '{{}}',"
            f" {_stages(conn.engine, list(SALES[: stage + 1]))}, '{{}}', :at, :at, 1)"
        ),
        {"id": f"i-{key}", "key": key, "at": _naive(NOW)},
    )


def _new_task(conn: sa.Connection, number: int, customer: str, process: str, due: datetime | None) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO user_tasks (id, instance_id, business_key, process_key, element_id, name, candidate_groups,"
            " candidate_users, due_at, due_sort, priority, form, state, created_at) VALUES (:id, 'i-1', :key,"
            " :process, 'Task_x', 'x', '[]', '[]', :due, :sort, 50, '{}', 'open', :at)"
        ),
        {
            "id": f"t-{number}",
            "key": customer,
            "process": process,
            "due": None if due is None else _naive(due),
            "sort": _naive(due or NOW + timedelta(days=3650)),
            "at": _naive(NOW),
        },
    )


def _customers(conn: sa.Connection) -> list[str]:
    return list(conn.scalars(sa.text("SELECT id FROM customers ORDER BY id")))


def _tasks(conn: sa.Connection) -> list[str]:
    return list(conn.scalars(sa.text("SELECT id FROM user_tasks ORDER BY id")))


def _step(conn: sa.Connection, rng: random.Random, number: int) -> None:
    """One write picked at random: what production does to a board, and a few things it might."""
    kind = rng.choice(["move", "move", "new", "owner", "unstage", "task", "done", "due", "drop", "reopen"])
    due = NOW + timedelta(hours=rng.randint(-72, 72))
    if kind == "move":
        _move(conn, rng.randint(1, CUSTOMERS), rng.randrange(len(SALES)))
    elif kind == "new":
        _new_customer(conn, number, rng.choice([*OWNERS, None]), rng.randrange(len(SALES)))
    elif kind == "owner":
        conn.execute(
            sa.text("UPDATE customers SET owner = :owner WHERE id = :id"),
            {"owner": rng.choice([*OWNERS, None]), "id": rng.choice(_customers(conn))},
        )
    elif kind == "unstage":
        conn.execute(
            sa.text("DELETE FROM customer_stages WHERE customer_id = :id AND pipeline = :p"),
            {"id": rng.choice(_customers(conn)), "p": rng.choice(["Trong bán hàng", "Sau bán hàng"])},
        )
    elif kind == "task":
        process = rng.choice(["sales", "onboarding", "care_month", "elsewhere"])
        _new_task(conn, number, rng.choice(_customers(conn)), process, rng.choice([due, due, None]))
    elif kind in ("done", "reopen"):
        conn.execute(
            sa.text("UPDATE user_tasks SET state = :state WHERE id = :id"),
            {"state": "completed" if kind == "done" else "open", "id": rng.choice(_tasks(conn))},
        )
    elif kind == "due":
        conn.execute(
            sa.text("UPDATE user_tasks SET due_at = :due WHERE id = :id"),
            {"due": _naive(due), "id": rng.choice(_tasks(conn))},
        )
    else:
        conn.execute(sa.text("DELETE FROM user_tasks WHERE id = :id"), {"id": rng.choice(_tasks(conn))})


def _kept_and_counted(conn: sa.Connection) -> tuple[list, list]:
    return [tuple(r) for r in conn.execute(sa.text(KEPT))], [tuple(r) for r in conn.execute(sa.text(COUNTED))]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_after_random_writes_the_kept_counts_and_dues_equal_a_full_count(company: sa.Engine, seed: int) -> None:
    rng = random.Random(seed)
    with company.begin() as conn:
        kept, counted = _kept_and_counted(conn)
        assert kept == counted and sum(r[3] for r in kept) == CUSTOMERS + CUSTOMERS // 3  # the backfill, too
    for number in range(150):
        with company.begin() as conn:
            _step(conn, rng, number)
    with company.begin() as conn:
        kept, counted = _kept_and_counted(conn)
        assert kept == counted
        assert all(kept_due == earliest for _, _, kept_due, earliest in conn.execute(sa.text(EARLIEST)))
        assert conn.scalar(sa.text("SELECT count(*) FROM board_counts WHERE n < 0")) == 0


def test_a_customer_made_after_their_tasks_gets_the_earliest_open_due(company: sa.Engine) -> None:
    """A task can come before the instance's first stage: the board row is made knowing it."""
    with company.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO customers (id, name, extra, created_at, search_name, search_phone)"
                " VALUES ('KH8000001', 'x', '{}', :at, '', '')"
            ),
            {"at": _naive(NOW)},
        )
        _new_task(conn, 1, "KH8000001", "sales", NOW - timedelta(days=2))
        _new_task(conn, 2, "KH8000001", "sales", NOW - timedelta(days=5))
        _new_task(conn, 3, "KH8000001", "elsewhere", NOW - timedelta(days=9))
        conn.execute(
            sa.text(
                "INSERT INTO instances (id, process_key, version_id, business_key, status, state, data,"
                " called_versions, stages, waits, created_at, updated_at, row_version) VALUES ('i-new', 'sales',"
                " (SELECT min(id) FROM process_versions), 'KH8000001', 'running', '', '{}', '{}',"
                f" {_stages(company, [SALES[0]])}, '{{}}', :at, :at, 1)"
            ),
            {"at": _naive(NOW)},
        )
        due = conn.scalar(sa.select(CustomerStage.overdue_from).where(CustomerStage.customer_id == "KH8000001"))
    assert due == NOW - timedelta(days=5)


def test_the_overdue_badge_counts_up_to_its_cap(company: sa.Engine) -> None:
    """Past the cap the badge stops counting; below it, it counts every overdue customer of the stage."""
    with company.connect() as conn:
        full = dict(
            conn.execute(
                sa.text(
                    "SELECT stage, count(*) FROM customer_stages WHERE pipeline = 'Trong bán hàng'"
                    " AND overdue_from < :now GROUP BY stage"
                ),
                {"now": _naive(NOW)},
            ).all()
        )
        assert full and max(full.values()) >= 2
        for cap in (1, 2, 1000):
            counted = dict(conn.execute(reads.overdue_query("Trong bán hàng", SALES, NOW, cap=cap)).all())
            assert counted == {stage: min(full.get(stage, 0), cap) for stage in SALES}


# --- PostgreSQL: two writers at once --------------------------------------------------------------------


@pytest.fixture
def pg_company(pg_base_url: str) -> Iterator[sa.Engine]:
    with pg_schema(pg_base_url) as url:
        engine = sa.create_engine(url, pool_size=3)
        build(engine, CUSTOMERS)
        yield engine
        engine.dispose()


WAITING = sa.text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")


def _waits_for_a_lock(engine: sa.Engine, pid: int) -> None:
    """Return once the backend ``pid`` waits for a lock another transaction holds (no clock involved)."""
    with engine.connect() as watcher:
        for _ in range(20_000):
            kind = watcher.scalar(WAITING, {"pid": pid})
            if kind == "Lock":
                return
            watcher.rollback()  # a fresh snapshot of pg_stat_activity
    raise AssertionError(f"backend {pid} never waited for a lock")


def _concurrently(engine: sa.Engine, first, second) -> None:
    """``first`` in one transaction, then ``second`` in another that must wait for it, then both commit."""
    one, two = engine.connect(), engine.connect()
    try:
        pid = two.scalar(sa.text("SELECT pg_backend_pid()"))
        two.rollback()
        one.begin()
        first(one)
        failed: list[BaseException] = []

        def run_second() -> None:
            try:
                with two.begin():
                    second(two)
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread below
                failed.append(exc)

        thread = threading.Thread(target=run_second)
        thread.start()
        _waits_for_a_lock(engine, pid)
        one.commit()
        thread.join()
        assert not failed, failed
    finally:
        one.close()
        two.close()


@pytest.mark.postgres
def test_two_transactions_moving_customers_into_one_stage_both_count(pg_company: sa.Engine) -> None:
    target = len(SALES) - 1
    first = next(c for c in range(1, CUSTOMERS + 1) if c % len(SALES) != target)
    movers = [first, first + len(OWNERS) * len(SALES)]  # NOTE: one owner, so one count row for both
    before = _count(pg_company, SALES[target])
    _concurrently(pg_company, lambda c: _move(c, movers[0], target), lambda c: _move(c, movers[1], target))
    assert _count(pg_company, SALES[target]) == before + 2
    with pg_company.connect() as conn:
        kept, counted = _kept_and_counted(conn)
    assert kept == counted


@pytest.mark.postgres
def test_a_new_owner_and_a_stage_move_at_once_count_the_customer_once_under_the_new_owner(
    pg_company: sa.Engine,
) -> None:
    """Without the lock on the customer, the move would read the old owner and move a count it no longer has."""
    customer = 1
    stage = (customer + 1) % len(SALES)
    rename = sa.text("UPDATE customers SET owner = 'duc' WHERE id = 'KH0000001'")
    _concurrently(pg_company, lambda c: c.execute(rename), lambda c: _move(c, customer, stage))
    with pg_company.connect() as conn:
        kept, counted = _kept_and_counted(conn)
    assert kept == counted
    assert ("Trong bán hàng", SALES[stage], "duc") in {r[:3] for r in kept}


def _count(engine: sa.Engine, stage: str) -> int:
    with engine.connect() as conn:
        return dict(conn.execute(reads.counts_query("Trong bán hàng", [stage])).all()).get(stage, 0)
