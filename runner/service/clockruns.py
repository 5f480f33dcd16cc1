"""Clock runs: a request to move the virtual clock, worked off in the background.

Moving the clock a week fires hundreds of timers and jobs, too many for one web request.
A request becomes a ``clock_runs`` row and returns at once; an executor (the worker's
tick, the web process that took the request, or ``runner clock advance`` in-process)
claims the row with a lease and moves the clock step by step (``scheduler.advance_run``),
saving how far it got. Only one run is active at a time (a unique column, not a lock), so
two clicks never add up; a click that names the time it saw (``expected``), or repeats an
idempotency key, is harmless when retried. A run whose executor died keeps its row
'running' with a lease that runs out: the next executor resumes it from ``reached``.

Leases and the run's own timestamps are wall-clock time; ``start``, ``target`` and
``reached`` are virtual time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from runner.clock import Clock, FixedClock, SystemClock
from runner.errors import Conflict, Invalid, NotFound
from runner.service.unit import Core
from runner.store.models import ClockRun, HistoryEvent

# NOTE: every cycle timer fires once per period on the way; ten years is already many firings.
MAX_STEP = timedelta(days=3653)
# How long an executor owns a run without saving progress; it saves far more often.
LEASE = timedelta(seconds=30)
WALL: Clock = SystemClock()
ACTIVE = ("queued", "running")


class RunActive(Conflict):
    """Raised when the clock is asked to move while another run is still moving it."""

    def __init__(self, message: str, run: dict[str, Any]):
        super().__init__(message)
        self.run = run


@dataclass
class Claimed:
    """A run an executor holds the lease of: where it goes, and how far it got (updated as it moves)."""

    id: int
    target: datetime
    reached: datetime
    fired: int


def as_dict(run: ClockRun) -> dict[str, Any]:
    """A run as plain data (for the API, the admin page and the CLI)."""
    span = (run.target - run.start).total_seconds()
    done = (run.reached - run.start).total_seconds()
    return {
        "id": run.id,
        "state": run.state,
        "start": run.start,
        "target": run.target,
        "reached": run.reached,
        "fired": run.fired,
        "progress": 1.0 if span <= 0 or run.state == "done" else round(min(done / span, 1.0), 4),
        "requested_by": run.requested_by,
        "error": run.error,
        "history_from": run.history_from,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
    }


def request(
    core: Core,
    delta: timedelta,
    requested_by: str,
    *,
    expected: datetime | None = None,
    key: str | None = None,
    wall: Clock = WALL,
) -> dict[str, Any]:
    """Queue a run moving the clock ``delta`` forward from the persisted clock; returns it.

    Refused with ``RunActive`` while another run is active, and with ``Conflict`` when
    ``expected`` (the time the caller saw) is not the clock's time any more. A repeated
    ``key`` returns the run it made the first time instead of a new one.
    """
    if not isinstance(core.clock, FixedClock):
        raise Conflict("the clock can only be moved with RUNNER_CLOCK=virtual")
    if not timedelta(0) <= delta <= MAX_STEP:
        raise Invalid(f"the clock moves forward by at most {MAX_STEP.days} days at a time, not {delta}")
    try:
        with core.unit() as unit:
            s = unit.session
            if key is not None:
                same = s.scalars(select(ClockRun).where(ClockRun.idempotency_key == key)).first()
                if same is not None:
                    return as_dict(same)
            running = s.scalars(select(ClockRun).where(ClockRun.active == 1)).first()
            if running is not None:
                raise RunActive(
                    f"the clock is already moving (run {running.id}, to {_iso(running.target)})", as_dict(running)
                )
            now = core.now()
            if expected is not None and expected != now:
                raise Conflict(f"the clock is at {_iso(now)}, not {_iso(expected)}: it moved meanwhile; look again")
            last = s.scalar(select(func.max(HistoryEvent.id))) or 0
            run = ClockRun(
                start=now,
                target=now + delta,
                reached=now,
                fired=0,
                state="queued",
                active=1,
                requested_by=requested_by,
                idempotency_key=key,
                history_from=last,
                created_at=wall.now(),
            )
            s.add(run)
            s.flush()
            return as_dict(run)
    except IntegrityError as exc:
        # NOTE: two requests raced past the check above; the unique ``active`` stopped the second.
        raise Conflict("the clock is already moving: another request started a run at the same time") from exc


def get(core: Core, run_id: int) -> dict[str, Any]:
    """One run, or NotFound."""
    with core.db.read() as s:
        run = s.get(ClockRun, run_id)
        if run is None:
            raise NotFound(f"clock run {run_id} does not exist")
        return as_dict(run)


def current(core: Core) -> dict[str, Any] | None:
    """The active run, else the latest one, else None."""
    with core.db.read() as s:
        run = s.scalars(select(ClockRun).order_by(ClockRun.active.is_(None), ClockRun.id.desc()).limit(1)).first()
        return as_dict(run) if run is not None else None


def waiting(core: Core, wall: Clock = WALL) -> int | None:
    """The id of the active run if nobody works on it (queued, or its executor's lease ran out)."""
    with core.db.read() as s:
        return s.scalar(select(ClockRun.id).where(ClockRun.active == 1, _free(wall.now())))


def _free(moment: datetime):
    return or_(ClockRun.state == "queued", ClockRun.lease_until.is_(None), ClockRun.lease_until < moment)


def claim(core: Core, run_id: int | None, owner: str, wall: Clock = WALL) -> Claimed | None:
    """Take the lease of the active run (``run_id``, or whichever is active); None if an executor holds it."""
    moment = wall.now()
    with core.db.unit() as s:
        query = select(ClockRun).where(ClockRun.active == 1)
        if run_id is not None:
            query = query.where(ClockRun.id == run_id)
        run = s.scalars(query.limit(1)).first()
        if run is None:
            return None
        taken = s.execute(
            update(ClockRun)
            .where(ClockRun.id == run.id, ClockRun.active == 1, _free(moment))
            .values(
                state="running",
                lease_owner=owner,
                lease_until=moment + LEASE,
                started_at=func.coalesce(ClockRun.started_at, moment),
            )
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return Claimed(run.id, run.target, run.reached, run.fired)


def save(core: Core, run: Claimed, owner: str, wall: Clock = WALL) -> bool:
    """Persist the run's progress and the clock together, renewing the lease; False if the lease was lost."""
    with core.db.unit() as s:
        core.save_clock(s)
        saved = s.execute(
            update(ClockRun)
            .where(ClockRun.id == run.id, ClockRun.active == 1, ClockRun.lease_owner == owner)
            .values(reached=run.reached, fired=run.fired, lease_until=wall.now() + LEASE)
            .execution_options(synchronize_session=False)
        )
        return saved.rowcount == 1  # type: ignore[attr-defined]


def finish(core: Core, run: Claimed, owner: str, error: str | None = None, wall: Clock = WALL) -> None:
    """End the run: done (the clock at its target) or failed (the clock where it got to); no longer active."""
    with core.db.unit() as s:
        core.save_clock(s)
        s.execute(
            update(ClockRun)
            .where(ClockRun.id == run.id, ClockRun.lease_owner == owner)
            .values(
                state="failed" if error else "done",
                active=None,
                reached=run.reached,
                fired=run.fired,
                error=error,
                lease_owner=None,
                lease_until=None,
                ended_at=wall.now(),
            )
            .execution_options(synchronize_session=False)
        )


def let_go(core: Core, run: Claimed, owner: str) -> None:
    """Give the lease back (the executor is stopping): the next executor resumes the run at once."""
    with core.db.unit() as s:
        core.save_clock(s)
        s.execute(
            update(ClockRun)
            .where(ClockRun.id == run.id, ClockRun.lease_owner == owner)
            .values(reached=run.reached, fired=run.fired, lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat()
