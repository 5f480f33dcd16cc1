"""The claim's plan at 100k due rows sharing one due time, on PostgreSQL: an in-order index scan.

The statements explained are the ones the worker issues (``claims.lease_statement`` for timers
and jobs, ``outbox.claim_query`` for messages, ``sendwindows``' for messages that wait for their
sending window), compiled by
SQLAlchemy for PostgreSQL with its values inlined, not SQL retyped here.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import make_runner

from runner.clock import FixedClock
from runner.registry import Registry
from runner.service import claims, outbox, sendwindows
from runner.windows import QUIET_HOURS, SendingWindow

pytestmark = [pytest.mark.postgres]

ROWS = 100_000
CHAIN = Path(__file__).parent / "bpmn" / "scheduler" / "chain.bpmn"


def plan(conn: sa.Connection, statement: sa.Executable) -> str:
    sql = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return "\n".join(conn.exec_driver_sql(f"EXPLAIN {sql}").scalars())


def test_the_claim_reads_its_index_in_order_at_100k_rows_due_at_once(pg_url: str, registry: Registry) -> None:
    runner = make_runner(pg_url, registry, worker_id="w1")
    runner.deploy([CHAIN])
    instance_id = runner.start_instance("chain", "KH1", {"first_wait": "PT1H"})
    due = runner.now()
    with runner.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into timers (process_key, element_id, timer_name, due_at, state, value) "
                "select 'chain', 'first', 'date', :due, 'waiting', '' from generate_series(1, :n)"
            ),
            {"due": due.replace(tzinfo=None), "n": ROWS},
        )
        conn.execute(
            sa.text(
                "insert into jobs (id, instance_id, element_id, topic, params, properties, state, attempts, "
                "max_attempts, timeout, due_at, created_at) select 'job-' || g, :inst, 'mark', 'demo.echo', "
                "'{}', '{}', 'pending', 0, 3, 30, :due, :due from generate_series(1, :n) g"
            ),
            {"inst": instance_id, "due": due.replace(tzinfo=None), "n": ROWS},
        )
        conn.execute(
            sa.text(
                "insert into outbox (idempotency_key, channel, payload, state, attempts, due_at, created_at) "
                "select 'key-' || g, 'log', '{}', 'pending', 0, :due, :due from generate_series(1, :n) g"
            ),
            {"due": due.replace(tzinfo=None), "n": ROWS},
        )
        conn.execute(sa.text("analyze timers; analyze jobs; analyze outbox"))
    assert isinstance(runner.clock, FixedClock)
    runner.clock.advance(timedelta(minutes=1))
    wall = runner.now()
    try:
        with runner.db.engine.connect() as conn:
            for kind, index in ((claims.TIMERS, "ix_timers_claim"), (claims.JOBS, "ix_jobs_claim")):
                text = plan(
                    conn,
                    claims.lease_statement(runner, kind, "w1", wall, 50, skip=["x"] if kind is claims.JOBS else [1]),
                )
                assert f"Index Scan using {index}" in text, text
                assert "Sort" not in text, text
                assert "Seq Scan" not in text, text
            text = plan(conn, outbox.claim_query(runner, runner.now()))
            assert "Index Scan using ix_outbox_claim" in text, text
            assert "Sort" not in text and "Seq Scan" not in text, text
        # The same statement claims 50 of the 100k, and the next claim the next 50.
        first = claims.claim(runner, claims.TIMERS, 50, wall=FixedClock(wall))
        second = claims.claim(runner, claims.TIMERS, 50, wall=FixedClock(wall))
        assert len(first) == len(second) == 50 and not {c.id for c in first} & {c.id for c in second}
    finally:
        runner.db.engine.dispose()


INDEX_SCANS = ("Index Scan using ix_outbox_", "Index Only Scan using ix_outbox_", "Bitmap Index Scan on ix_outbox_")


def test_the_sending_window_statements_read_the_claim_index_at_100k_rows(pg_url: str, registry: Registry) -> None:
    """Deferring due messages while the window is shut, and the clock run's next pending message.

    100k sent messages (history) and 100k waiting for tomorrow's opening; a few are due now.
    """
    runner = make_runner(pg_url, registry, sending_window=SendingWindow.parse("08:00-20:00"))
    now = runner.now()
    tomorrow = now + timedelta(days=1)
    with runner.db.engine.begin() as conn:
        for state, due, window, n in (
            ("sent", now, None, ROWS),
            ("pending", tomorrow, QUIET_HOURS, ROWS),
            ("pending", now, QUIET_HOURS, 10),
        ):
            conn.execute(
                sa.text(
                    "insert into outbox (idempotency_key, channel, payload, state, attempts, due_at, created_at, "
                    "send_window) select :state || '-' || :due || '-' || g, 'log', '{}', :state, 0, :due, :due, "
                    ":window from generate_series(1, :n) g"
                ),
                {"state": state, "due": due.replace(tzinfo=None), "window": window, "n": n},
            )
        conn.execute(sa.text("analyze outbox"))
    try:
        with runner.db.engine.connect() as conn:
            for statement in (
                sendwindows.defer_statement(runner, QUIET_HOURS, now, tomorrow),
                sendwindows.next_pending_query(),
                sendwindows.next_pending_query(now),
            ):
                text = plan(conn, statement)
                assert any(scan in text for scan in INDEX_SCANS), text
                assert "Seq Scan" not in text, text
    finally:
        runner.db.engine.dispose()
