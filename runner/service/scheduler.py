"""Durable timers and the worker loop.

Due timers are rows; APScheduler only drives the ticks. Each tick fires what is due,
earliest first, each firing in its own unit of work. A timer that fell due while the
process was down is simply due at the next tick; a fired timer's row says so for good.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from runner import logs
from runner.clock import Clock, FixedClock
from runner.engine import timers
from runner.errors import Conflict, RunnerError
from runner.model import timeparse, worktime
from runner.sandbox.budget import Interrupted
from runner.service import claims, clockruns, jobs, outbox, sendwindows, workers
from runner.service.deployment import Deployed
from runner.service.unit import Core, Unit
from runner.store.database import savepoint
from runner.store.models import Incident, Instance, ProcessVersion, Timer

log = logging.getLogger(__name__)

# A clock run saves its progress (and the clock) at most this often, in seconds of wall time.
SAVE_EVERY = 0.5
# At most this many timers and jobs are worked off between two looks at the run's progress.
STEP_LIMIT = 500
Progress = Callable[[dict[str, Any]], None]


def schedule_start_timers(unit: Unit, item: Deployed) -> None:
    """A new version's timer start events replace the previous version's schedule."""
    s = unit.session
    version = s.get_one(ProcessVersion, item.version_id)
    if version.kind != "bpmn":
        return
    s.execute(
        update(Timer)
        .where(Timer.process_key == version.process_key, Timer.instance_id.is_(None), Timer.state == "waiting")
        .values(state="cancelled")
    )
    kinds = {"timeDate": "date", "timeDuration": "duration", "timeCycle": "cycle"}
    tz = unit.core.settings.tz
    for start in version.timer_starts or []:
        kind = kinds[start["kind"]]
        business = start.get("calendar") == timers.BUSINESS
        if business:
            due, left = worktime.first_due(kind, start["value"], unit.now(), timers.business_calendar(tz))
        else:
            due, left = timeparse.first_due(kind, start["value"], unit.now(), tz)
        if kind == "cycle" and left is None:
            due = _from_now_on(start["value"], due, unit.now(), tz, business)
        s.add(
            Timer(
                process_key=version.process_key,
                element_id=start["element"],
                timer_name=kind,
                due_at=due,
                state="waiting",
                value=start["value"],
            )
        )


CATCH_UP_LIMIT = 10_000  # repetitions of a past start skipped at most (a daily cycle: 27 years)


def _from_now_on(value: str, due: datetime, now: datetime, tz: tzinfo, business: bool) -> datetime:
    """An endless cycle deployed after its start date begins at its first repetition from now on.

    NOTE: a start date in the diagram (``R/2026-01-05T08:30:00/P1D``) fixes the time of day; deploying
    the diagram later must not start one instance per day missed since then. A bounded cycle (``R3/…``)
    keeps its past start: its repetitions are counted from it.
    """
    cal = timers.business_calendar(tz) if business else None
    for _ in range(CATCH_UP_LIMIT):
        if due >= now:
            break
        due = worktime.next_due(value, due, cal) if cal is not None else timeparse.next_due(value, due, tz)
    return due


def fire_claimed(core: Core, timer_id: int) -> bool:
    """Fire a timer this worker has claimed, in its own unit of work; False if it was not fired.

    Not fired: its instance is busy (another worker has it), or the timer is no longer
    waiting or no longer leased to this worker (cancelled, or fired by another worker after
    this worker's lease ran out). Its lease then stays until ``claims.release``.
    The firing runs in a SAVEPOINT: a failure rolls back to it and becomes an incident in
    the same transaction, while the timer row is still locked.
    """
    worker, postgres = core.settings.worker_id, core.db.is_postgres
    try:
        with logs.bind(), core.unit(sync=False) as unit:
            s = unit.session
            # NOTE: one round trip locks the timer and its instance (SKIP LOCKED: busy is skipped).
            row = s.execute(*claims.held_query(claims.TIMERS, timer_id, worker, postgres, with_instance=True)).first()
            if row is not None:
                timer, inst = row
            else:  # a timer start event has no instance; else the timer is busy or gone
                query, params = claims.held_query(claims.TIMERS, timer_id, worker, postgres)
                timer, inst = s.scalars(query.where(Timer.instance_id.is_(None)), params).first(), None
                if timer is None:
                    return False
            logs.annotate(instance_id=timer.instance_id, element=timer.element_id)
            try:
                with savepoint(s):
                    timer.locked_by, timer.locked_until = None, None  # NOTE: in the same UPDATE as the firing
                    _fire(unit, timer, inst)
            except Conflict:
                raise
            except Exception as exc:  # noqa: BLE001 - becomes an incident, never a hot loop
                timer.locked_by, timer.locked_until = None, None
                _record_failure(unit, timer, exc)
    except Conflict as exc:
        log.info("timer %s met a concurrent change; it stays due: %s", timer_id, exc)
        return False
    return True


def fire_next(core: Core, skip: set[int] | None = None, wall: Clock = claims.WALL) -> int | None:
    """Claim and fire the earliest due timer not in ``skip`` (one at a time); returns its id or None.

    A timer that was not fired (its instance busy) stays due and is added to ``skip``.
    """
    skip = set() if skip is None else skip
    with claims.holding(core):
        claimed = claims.claim(core, claims.TIMERS, 1, skip, wall)
        if not claimed:
            return None
        timer_id = claimed[0].id
        if not fire_claimed(core, timer_id):
            skip.add(timer_id)
            claims.release(core, claims.TIMERS, [timer_id])
    return timer_id


def _fire(unit: Unit, timer: Timer, inst: Instance | None) -> None:
    now = unit.now()
    if inst is None:
        _fire_start(unit, timer)
        return
    logs.annotate(business_key=inst.business_key)
    workflow = unit.restore(inst)
    assert timer.task_id is not None, "an instance's timer waits on a task"
    timer.state, timer.fired_at = "fired", now
    if not unit.engine.fire_timer(workflow, timer.task_id, timer.timer_name):
        timer.state = "cancelled"
        return
    unit.record(
        inst,
        "timer.fired",
        element=timer.element_id,
        details={"due": timer.due_at.isoformat(), "value": timer.value},
    )
    unit.commit(inst, workflow)


def _fire_start(unit: Unit, timer: Timer) -> None:
    """A timer start event: start an instance, and schedule the next cycle if any."""
    assert timer.process_key is not None, "a start timer names its process"
    s, tz = unit.session, unit.core.settings.tz
    timer.state, timer.fired_at = "fired", unit.now()
    unit.start(timer.process_key, None, {}, None, ("timer", timer.element_id), None)
    if timer.timer_name == "cycle":
        cycle = timeparse.parse_cycle(timer.value, tz)
        fired = s.scalars(
            select(Timer.id).where(
                Timer.process_key == timer.process_key, Timer.element_id == timer.element_id, Timer.state == "fired"
            )
        ).all()
        if cycle.repetitions is None or len(fired) < cycle.repetitions:
            if _start_calendar(s, timer) == timers.BUSINESS:
                due = worktime.next_due(timer.value, timer.due_at, timers.business_calendar(tz))
            else:
                due = timeparse.next_due(timer.value, timer.due_at, tz)
            s.add(
                Timer(
                    process_key=timer.process_key,
                    element_id=timer.element_id,
                    timer_name="cycle",
                    due_at=due,
                    state="waiting",
                    value=timer.value,
                )
            )


def _start_calendar(s: Session, timer: Timer) -> str | None:
    """The ``calendar`` of a timer start event, as the version that scheduled it has it."""
    versions = select(ProcessVersion.timer_starts).where(ProcessVersion.process_key == timer.process_key)
    for starts in s.scalars(versions.order_by(ProcessVersion.version.desc()).limit(1)):
        for start in starts or []:
            if start.get("element") == timer.element_id:
                return start.get("calendar")
    return None


def _record_failure(unit: Unit, timer: Timer, exc: Exception) -> None:
    """A failed firing: the timer waits for an admin (an incident on its instance, or on
    no instance for a timer start event)."""
    s = unit.session
    message = str(exc) or type(exc).__name__
    timer.state = "incident"
    log.warning("timer %s (%s) failed: %s", timer.id, timer.process_key or timer.instance_id, message)
    inst = s.get(Instance, timer.instance_id) if timer.instance_id else None
    element = getattr(exc, "element_id", "") or timer.element_id
    s.add(
        Incident(
            instance_id=inst.id if inst else None,
            kind="timer",
            ref=str(timer.id),
            element_id=element,
            error=message,
            tries=1,
            state="open",
            created_at=unit.now(),
        )
    )
    unit.record(inst, "incident.raised", element=element, details={"timer": timer.id, "error": message})


def next_due(core: Core, after: datetime | None = None) -> datetime | None:
    """The earliest moment a timer or a job falls due (strictly after ``after`` if given)."""
    waiting = select(Timer.due_at).where(Timer.state == "waiting")
    if after is not None:
        waiting = waiting.where(Timer.due_at > after)
    with core.db.read() as s:
        timer = s.scalars(waiting.order_by(Timer.due_at).limit(1)).first()
        job = jobs.next_due(s, after)
    found = [d for d in (timer, job) if d is not None]
    return min(found) if found else None


def run_due(
    core: Core, limit: int = 10_000, wall: Clock = claims.WALL, after_batch: Callable[[int], None] | None = None
) -> int:
    """Fire due timers and run due jobs, earliest first; returns how many were worked off.

    Each round claims a batch of due timers and one of due jobs (``claims.claim``, one
    round trip each) and works them off in due order, each in its own unit of work.
    Timers and jobs whose instance is busy (another worker has it) are released and
    skipped for the rest of this pass instead of being retried in a tight loop.
    ``after_batch`` hears how many were worked off in each round (the worker's heartbeat).
    """
    core.refresh_clock()
    skipped: dict[claims.Kind, set] = {kind: set() for kind in claims.KINDS}
    count = 0
    with claims.holding(core):
        while count < limit and not core.stopping.is_set():
            n = min(core.settings.claim_batch, limit - count)
            batch = sorted(item for kind in claims.KINDS for item in claims.claim(core, kind, n, skipped[kind], wall))
            if not batch:
                break
            done = _work_off(core, batch[:n], batch[n:], skipped)
            count += done
            if after_batch is not None:
                after_batch(done)
    return count


def _work_off(core: Core, items: list[claims.Claimed], extra: list[claims.Claimed], skipped: dict) -> int:
    """Fire claimed items in order; whatever is left unfired gets its lease back (one UPDATE per kind)."""
    done = 0
    left = list(extra)
    try:
        for at, item in enumerate(items):
            if core.stopping.is_set():
                left.extend(items[at:])
                break
            kind = claims.KINDS[item.rank]
            fired = fire_claimed(core, item.id) if kind is claims.TIMERS else jobs.run_claimed(core, item.id)
            if fired:
                done += 1
            else:
                skipped[kind].add(item.id)
                left.append(item)
    except BaseException:
        # NOTE: the item in progress rolled back. Releasing the whole batch is safe: a fired
        # row's lease is cleared already, and ``release`` only touches this worker's leases.
        left = items + extra
        raise
    finally:
        for rank, kind in enumerate(claims.KINDS):
            claims.release(core, kind, [item.id for item in left if item.rank == rank])
    return done


def advance(core: Core, delta: timedelta, requested_by: str = "", progress: Progress | None = None) -> datetime:
    """Move the virtual clock forward here and now: a clock run, executed in this process."""
    run = clockruns.request(core, delta, requested_by)
    final = execute_run(core, run["id"], progress)
    if final is None:
        raise Conflict(f"clock run {run['id']} was taken over by another process; it goes on there")
    if final["state"] == "failed":
        raise RunnerError(f"moving the clock stopped at {final['reached'].isoformat()}: {final['error']}")
    return final["reached"]


def execute_run(
    core: Core,
    run_id: int | None = None,
    progress: Progress | None = None,
    *,
    wall: Clock = clockruns.WALL,
    save_every: float = SAVE_EVERY,
) -> dict[str, Any] | None:
    """Work off the active clock run (``run_id``, or whichever is active) if nobody else holds it.

    Returns the run as it ended (done, failed, or still running when this process was asked
    to stop), or None when there was no run to take. A failure ends the run as failed with
    the clock where it got to, and is not raised: the run's row says it.
    """
    owner = f"{core.settings.worker_id}/{uuid.uuid4().hex[:8]}"  # NOTE: one lease per call, even in one thread
    claimed = clockruns.claim(core, run_id, owner, wall)
    if claimed is None:
        return None
    run = claimed
    try:
        finished = _move(core, run, owner, progress, wall, save_every)
    except Exception as exc:  # noqa: BLE001 - the run's row records it, for whoever watches it
        log.exception("clock run %s failed at %s", run.id, run.reached.isoformat())
        clockruns.finish(core, run, owner, error=str(exc) or type(exc).__name__, wall=wall)
        return clockruns.get(core, run.id)
    if finished is None:  # another executor took the run over (this one stalled past its lease)
        return None
    if not finished:
        clockruns.let_go(core, run, owner)
        return clockruns.get(core, run.id)
    clockruns.finish(core, run, owner, wall=wall)
    outbox.deliver_due(core)
    return clockruns.get(core, run.id)


def _move(
    core: Core, run: clockruns.Claimed, owner: str, progress: Progress | None, wall: Clock, every: float
) -> bool | None:
    """Step the clock to each next due moment up to the target, firing what is due there.

    True when the target is reached, False when the process is stopping, None when the
    lease was lost. Progress (the clock with it) is saved at most every ``every`` seconds.
    """
    clock = core.clock
    assert isinstance(clock, FixedClock), "clockruns.request accepts the virtual clock only"
    core.refresh_clock()
    core.catch_up(run.reached)  # NOTE: a resumed run goes on from where the dead executor saved
    stuck, saved = False, time.monotonic()
    while not core.stopping.is_set():
        # NOTE: what stays due because its instance is busy must not stop time: after a
        # pass that worked nothing off, look only at what falls due later.
        after = core.now() if stuck else None
        work = next_due(core, after=after)
        # NOTE: the clock stops at a pending message's due time too, so each message goes out
        # when it is due (its window's opening, its retry), not when the run ends.
        mail = sendwindows.next_pending(core, after=after)
        due = min((d for d in (work, mail) if d is not None), default=None)
        arrived = due is None or due > run.target
        step = run.target if arrived else due
        assert step is not None
        if step > clock.now():
            clock.set(step)
        # NOTE: a stop for a message alone has no timer or job to fire (the target always looks).
        fired = run_due(core, limit=STEP_LIMIT) if arrived or (work is not None and work <= step) else 0
        sent = outbox.deliver_due(core) if mail is not None and mail <= clock.now() else 0
        run.fired += fired
        run.reached = clock.now()
        if arrived and fired < STEP_LIMIT:
            return True
        stuck = fired == 0 and sent == 0
        if time.monotonic() - saved >= every:
            if not clockruns.save(core, run, owner, wall):
                return None
            saved = time.monotonic()
            if progress is not None:
                progress(clockruns.get(core, run.id))
    return False


def tick(core: Core, wall: Clock = claims.WALL) -> None:
    """One scheduler tick: lost workers' leases, a clock run nobody works on, timers, jobs, the outbox,
    then the heartbeat."""
    pulse = workers.Pulse(core, wall)
    error = None
    try:
        workers.release_lost(core, wall)
        if isinstance(core.clock, FixedClock) and clockruns.waiting(core) is not None:
            execute_run(core)
        run_due(core, wall=wall, after_batch=pulse)
        if not core.stopping.is_set():
            outbox.deliver_due(core)
    except Interrupted:
        # NOTE: the script's unit of work rolled back: its timer or job is due again.
        log.info("worker %s stopped a running script; its work stays due", core.settings.worker_id)
    except RunnerError as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.exception("tick failed")
    finally:
        try:
            pulse.beat(error)
        except RunnerError:
            log.exception("worker %s could not write its heartbeat", core.settings.worker_id)


def work(core: Core) -> None:
    """Run the worker until interrupted: APScheduler ticks, the database decides."""
    scheduler = BlockingScheduler(timezone=core.settings.tz)
    scheduler.add_job(
        tick,
        "interval",
        args=[core],
        seconds=core.settings.poll_seconds,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(core.settings.tz),
    )

    def stop(*_: object) -> None:
        # NOTE: SIGTERM (a service manager stopping us) ends a running script at its next
        # budget check and the tick after the item in progress; a second signal must not fail.
        core.stopping.set()
        if scheduler.running:
            scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    log.info(
        "worker %s started on %s", core.settings.worker_id, core.db.engine.url.render_as_string(hide_password=True)
    )
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()
    workers.stopped(core)
    log.info("worker %s stopped", core.settings.worker_id)
