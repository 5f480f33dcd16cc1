"""Worker health: each ``runner worker`` writes a heartbeat row every tick; a silent one is lost.

The row says who the worker is (its ``Settings.worker_id``, host and pid), when it started
and last beat (wall-clock time, the leases' clock), how far the oldest due timer or job
lags behind its due time (runner time), its last error and how many items it worked off.
Any worker that sees another's beat older than ``worker_timeout_seconds`` marks it lost
and releases its leases (a hung worker that still holds its lock included): its timers
and jobs come back without waiting for their leases to run out.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from runner.clock import Clock
from runner.service import claims
from runner.service.unit import Core
from runner.store.models import Worker

log = logging.getLogger(__name__)


def oldest_due(core: Core) -> datetime | None:
    """The due time of the oldest due timer or job (each read off its claim index's first entry)."""
    now = core.now()
    with core.db.read() as s:
        found = [
            s.scalar(
                select(func.min(kind.model.due_at)).where(kind.model.state == kind.state, kind.model.due_at <= now)
            )
            for kind in claims.KINDS
        ]
    due = [d for d in found if d is not None]
    return min(due) if due else None


def beat(core: Core, wall: Clock = claims.WALL, *, done: int = 0, error: str | None = None) -> None:
    """Write this worker's heartbeat: now, the lag of due work, ``done`` more items, an error if any."""
    oldest = oldest_due(core)
    lag = max((core.now() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    at = wall.now()
    with core.db.unit() as s:
        row = s.get(Worker, core.settings.worker_id)
        if row is None:
            row = Worker(
                id=core.settings.worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=at,
                items_done=0,
            )
            s.add(row)
        row.last_beat_at, row.lag_seconds, row.state = at, lag, "running"
        row.items_done = (row.items_done or 0) + done
        if error is not None:
            row.last_error, row.last_error_at = error[:2000], at


class Pulse:
    """A tick's heartbeats: after each batch once ``poll_seconds`` passed, and at the tick's end.

    NOTE: a worker draining a long backlog in one tick must not look silent to the others.
    """

    def __init__(self, core: Core, wall: Clock = claims.WALL):
        self.core, self.wall = core, wall
        self.unsent = 0
        self.last = wall.now()

    def __call__(self, done: int) -> None:
        """After a batch of ``done`` items: beat if the last beat is ``poll_seconds`` old."""
        self.unsent += done
        if self.wall.now() - self.last >= timedelta(seconds=self.core.settings.poll_seconds):
            self.beat()

    def beat(self, error: str | None = None) -> None:
        """Beat now, with the items done since the last beat."""
        beat(self.core, self.wall, done=self.unsent, error=error)
        self.unsent, self.last = 0, self.wall.now()


def stopped(core: Core, wall: Clock = claims.WALL) -> None:
    """Mark this worker stopped (a clean shutdown: nothing of it to release)."""
    with core.db.unit() as s:
        s.execute(
            update(Worker).where(Worker.id == core.settings.worker_id).values(state="stopped", last_beat_at=wall.now())
        )


def release_lost(core: Core, wall: Clock = claims.WALL) -> list[str]:
    """Mark workers silent past the timeout lost and release their leases; returns their ids."""
    limit = wall.now() - timedelta(seconds=core.settings.worker_timeout_seconds)
    with core.db.unit() as s:
        lost = list(
            s.scalars(
                select(Worker.id).where(
                    Worker.state == "running", Worker.last_beat_at < limit, Worker.id != core.settings.worker_id
                )
            )
        )
        if lost:
            s.execute(update(Worker).where(Worker.id.in_(lost)).values(state="lost"))
    if lost:
        log.warning("worker(s) %s stopped heartbeating; releasing their leases", ", ".join(lost))
        claims.release_workers(core, lost)
    return lost


def list_workers(core: Core, wall: Clock = claims.WALL) -> list[dict[str, Any]]:
    """Every worker row, live ones first, with the leases each holds and whether it is overdue."""
    limit = wall.now() - timedelta(seconds=core.settings.worker_timeout_seconds)
    with core.db.read() as s:
        leases: dict[str | None, int] = {}
        for kind in claims.KINDS:
            model = kind.model
            counted = (
                select(model.locked_by, func.count()).where(model.locked_by.is_not(None)).group_by(model.locked_by)
            )
            for holder, n in s.execute(counted):
                leases[holder] = leases.get(holder, 0) + n
        rows = s.scalars(select(Worker).order_by(Worker.state != "running", Worker.last_beat_at.desc())).all()
        return [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "state": "silent" if w.state == "running" and w.last_beat_at < limit else w.state,
                "started_at": w.started_at,
                "last_beat_at": w.last_beat_at,
                "lag_seconds": w.lag_seconds,
                "last_error": w.last_error,
                "last_error_at": w.last_error_at,
                "items_done": w.items_done,
                "leases": leases.get(w.id, 0),
            }
            for w in rows
        ]
