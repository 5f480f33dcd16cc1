"""Claiming due timers and jobs in batches: one round trip leases up to n rows to a worker.

A claim is a short transaction of one statement: it picks the earliest due rows that no
one holds (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers never pick the same
row and never wait on each other) and writes the worker's lease on them (``locked_by``,
``locked_until``), returning their ids. The worker then fires each row in its own unit of
work, which locks the row again and goes on only while the row is still waiting and still
leased to it, clearing the lease in the same commit as the firing. So:

- one item's failure or rollback never touches another's committed work;
- an item whose instance is busy is left as it is and released at the end of the batch
  (``release``), not retried in a loop;
- a worker killed mid-batch leaves leases that run out after ``job_lease_seconds``, or at
  once when its heartbeat goes stale (``runner.service.workers.release_lost``); the row
  never changed state, so the next claimer fires it, once. A late firing by a worker
  whose lease ran out finds the row leased to someone else (or fired) and skips it.

Leases are in wall-clock time (an injectable ``Clock``), not the runner's: the virtual
clock stands still between advances, and a lease must still run out.

The claim reads a partial index on ``(due_at, id)`` of the waiting rows (``ix_timers_claim``,
``ix_jobs_claim``): ``ORDER BY due_at, id LIMIT n`` walks it in order and stops after n
entries, however many rows share one due time (``tests/test_claims_pg.py`` checks the plan).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import CursorResult, Select, Update, bindparam, or_, select, union, update

from runner.clock import Clock, SystemClock
from runner.service.unit import Core
from runner.store.models import Instance, Job, Timer

log = logging.getLogger(__name__)

WALL = SystemClock()


# A statement and its bound parameters.
Held = tuple[Select, dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    """A table of due work: its model and the state its claimable rows are in."""

    name: str
    model: type[Timer] | type[Job]
    state: str


TIMERS = Kind("timer", Timer, "waiting")
JOBS = Kind("job", Job, "pending")
KINDS = (TIMERS, JOBS)


@dataclass(frozen=True, order=True)
class Claimed:
    """One leased row, sortable in firing order (due time; a timer before a job due alike)."""

    due_at: datetime
    rank: int  # 0 timer, 1 job
    id: Any


def claim_query(kind: Kind, now: datetime, wall_now: datetime, n: int, skip: Collection[Any] = ()) -> Select:
    """The ids of up to ``n`` due rows that no live lease holds, earliest first."""
    model = kind.model
    query = select(model.id).where(
        model.state == kind.state,
        model.due_at <= now,
        or_(model.locked_until.is_(None), model.locked_until < wall_now),
    )
    if skip:
        query = query.where(model.id.not_in(list(skip)))
    return query.order_by(model.due_at, model.id).limit(n)


def lease_statement(
    core: Core, kind: Kind, worker: str, wall_now: datetime, n: int, skip: Collection[Any] = ()
) -> Update:
    """The claim as the worker issues it: one UPDATE that leases the picked rows, RETURNING them."""
    model = kind.model
    picked = claim_query(kind, core.now(), wall_now, n, skip)
    if core.db.is_postgres:
        # NOTE: SKIP LOCKED: rows another worker is claiming or firing right now are not waited for.
        picked = picked.with_for_update(skip_locked=True)
    until = wall_now + timedelta(seconds=core.settings.job_lease_seconds)
    return (
        update(model)
        .where(model.id.in_(picked.scalar_subquery()))
        .values(locked_by=worker, locked_until=until)
        .returning(model.id, model.due_at)
        .execution_options(synchronize_session=False)
    )


def claim(core: Core, kind: Kind, n: int, skip: Collection[Any] = (), wall: Clock = WALL) -> list[Claimed]:
    """Lease up to ``n`` due rows of ``kind`` to this worker, in one short transaction."""
    if n <= 0:
        return []
    rank = KINDS.index(kind)
    wall_now = wall.now()
    if not core.db.is_postgres:
        # NOTE: a SQLite write transaction takes the one writer lock of the whole database;
        # an idle worker's empty claims would take it twice a pass. A read (the same index)
        # finds out first whether anything is due at all.
        with core.db.read() as s:
            if s.execute(claim_query(kind, core.now(), wall_now, 1, skip)).first() is None:
                return []
    statement = lease_statement(core, kind, core.settings.worker_id, wall_now, n, skip)
    with core.db.unit() as s:
        rows = s.execute(statement).all()
    return sorted(Claimed(due, rank, row_id) for row_id, due in rows)


def release(core: Core, kind: Kind, ids: Sequence[Any]) -> int:
    """Give back this worker's leases on ``ids`` (left unfired: busy, or the pass stopped)."""
    if not ids:
        return 0
    model = kind.model
    with core.db.unit() as s:
        result = cast(
            CursorResult[Any],
            s.execute(
                update(model)
                .where(model.id.in_(list(ids)), model.locked_by == core.settings.worker_id)
                .values(locked_by=None, locked_until=None)
                .execution_options(synchronize_session=False)
            ),
        )
    return result.rowcount


@contextmanager
def holding(core: Core) -> Iterator[None]:
    """A pass of claims: first free dead workers' leases, then hold this worker's lock throughout."""
    release_dead(core)
    with core.worker_locks.holding(core.settings.worker_id):
        yield


def release_dead(core: Core) -> int:
    """Release the leases of workers that no longer run (their lock is free); returns how many."""
    me = core.settings.worker_id
    holders = union(*(select(kind.model.locked_by).where(kind.model.locked_by.is_not(None)) for kind in KINDS))
    with core.db.read() as s:
        others = [h for h in s.scalars(select(holders.subquery().c[0]).distinct()) if h != me]
        dead = [h for h in others if core.worker_locks.gone(s, h)]
    return release_workers(core, dead)


def release_workers(core: Core, workers: Collection[str]) -> int:
    """Give back every lease ``workers`` hold (they died, or stopped heartbeating)."""
    if not workers:
        return 0
    count = 0
    with core.db.unit() as s:
        for kind in KINDS:
            model = kind.model
            result = s.execute(
                update(model)
                .where(model.locked_by.in_(list(workers)))
                .values(locked_by=None, locked_until=None)
                .execution_options(synchronize_session=False)
            )
            count += cast(CursorResult[Any], result).rowcount
    if count:
        log.warning("released %s lease(s) of worker(s) gone: %s", count, ", ".join(sorted(workers)))
    return count


def held_query(kind: Kind, row_id: Any, worker: str, postgres: bool, *, with_instance: bool = False) -> Held:
    """The row of a claimed item (with its instance), locked, if still waiting and leased to ``worker``.

    Returned as a statement and its parameters: ``session.execute(*held_query(...))``.
    """
    return _held(kind, postgres, with_instance), {"b_row": row_id, "b_worker": worker}


@cache
def _held(kind: Kind, postgres: bool, with_instance: bool) -> Select:
    """``held_query``'s statement with its row and worker as bound parameters, built once per shape.

    NOTE: every fired timer and run job reads its row with it; building the WHERE clause
    anew each time was a measurable part of a unit of work (see bench.unit_work).
    """
    model = kind.model
    query = select(model, Instance).join(Instance, model.instance_id == Instance.id) if with_instance else select(model)
    query = query.where(
        model.id == bindparam("b_row"), model.state == kind.state, model.locked_by == bindparam("b_worker")
    )
    # NOTE: SKIP LOCKED: a row some other unit of work holds (its instance running a step,
    # the row being cancelled) is busy, not waited for.
    return query.with_for_update(skip_locked=True) if postgres else query
