"""Durable timers and the worker loop.

Due timers are rows; APScheduler only drives the ticks. Each tick fires what is due,
earliest first, each firing in its own unit of work. A timer that fell due while the
process was down is simply due at the next tick; a fired timer's row says so for good.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import select, update

from runner import jobs, outbox, timeparse
from runner.errors import Conflict, RunnerError
from runner.models import Incident, Instance, Timer

if TYPE_CHECKING:
    from runner.deployment import Deployed
    from runner.runtime import Runner

log = logging.getLogger(__name__)


def schedule_start_timers(runner: "Runner", s, item: "Deployed") -> None:
    """A new version's timer start events replace the previous version's schedule."""
    from runner.models import ProcessVersion

    version = s.get(ProcessVersion, item.version_id)
    if version.kind != "bpmn":
        return
    s.execute(update(Timer).where(Timer.process_key == version.process_key, Timer.instance_id.is_(None),
                                  Timer.state == "waiting").values(state="cancelled"))
    kinds = {"timeDate": "date", "timeDuration": "duration", "timeCycle": "cycle"}
    for start in version.timer_starts or []:
        kind = kinds[start["kind"]]
        due, _ = timeparse.first_due(kind, start["value"], runner.now(), runner.settings.tz)
        s.add(Timer(process_key=version.process_key, element_id=start["element"], timer_name=kind,
                    due_at=due, state="waiting", value=start["value"]))


def _due_query(runner: "Runner", until: datetime):
    query = select(Timer).where(Timer.state == "waiting", Timer.due_at <= until).order_by(Timer.due_at).limit(1)
    return query.with_for_update(skip_locked=True) if runner.db.is_postgres else query


class _Failed(Exception):
    """Carries a failed firing out of its (rolled back) unit of work."""


def fire_next(runner: "Runner") -> int | None:
    """Fire the earliest due timer; returns its id, or None when nothing is due."""
    timer_id = None
    try:
        with runner.db.unit() as s:
            timer = s.scalars(_due_query(runner, runner.now())).first()
            if timer is None:
                return None
            timer_id = timer.id
            try:
                _fire(runner, s, timer)
            except Conflict:
                raise
            except Exception as exc:  # noqa: BLE001 - becomes an incident, never a hot loop
                raise _Failed(timer_id, exc) from exc
    except Conflict:
        log.info("timer %s met a concurrent change; it stays due", timer_id)
    except _Failed as failed:
        _record_failure(runner, *failed.args)
    return timer_id


def _fire(runner: "Runner", s, timer: Timer) -> None:
    now = runner.now()
    if timer.instance_id is None:
        _fire_start(runner, s, timer)
        return
    loaded = runner.load_for_worker(s, timer.instance_id)
    if loaded is None:
        raise Conflict(f"instance {timer.instance_id} is busy")
    inst, workflow = loaded
    timer.state, timer.fired_at = "fired", now
    if not runner.engine.fire_timer(workflow, timer.task_id, timer.timer_name):
        timer.state = "cancelled"
        return
    runner._history(s, inst, "timer.fired", element=timer.element_id,
                    details={"due": timer.due_at.isoformat(), "value": timer.value})
    runner._commit_step(s, inst, workflow)


def _fire_start(runner: "Runner", s, timer: Timer) -> None:
    """A timer start event: start an instance, and schedule the next cycle if any."""
    timer.state, timer.fired_at = "fired", runner.now()
    runner._start(s, timer.process_key, None, {}, None, ("timer", timer.element_id), None)
    if timer.timer_name == "cycle":
        cycle = timeparse.parse_cycle(timer.value, runner.settings.tz)
        fired = s.scalars(select(Timer.id).where(Timer.process_key == timer.process_key,
                                                 Timer.element_id == timer.element_id,
                                                 Timer.state == "fired")).all()
        if cycle.repetitions is None or len(fired) < cycle.repetitions:
            due = timeparse.next_due(timer.value, timer.due_at, runner.settings.tz)
            s.add(Timer(process_key=timer.process_key, element_id=timer.element_id, timer_name="cycle",
                        due_at=due, state="waiting", value=timer.value))


def _record_failure(runner: "Runner", timer_id: int, exc: Exception) -> None:
    log.warning("timer %s failed: %s", timer_id, exc)
    with runner.db.unit() as s:
        timer = s.get(Timer, timer_id)
        timer.state = "incident"
        if timer.instance_id is None:
            return
        inst = s.get(Instance, timer.instance_id)
        element = getattr(exc, "element_id", "") or timer.element_id
        s.add(Incident(instance_id=inst.id, kind="timer", ref=str(timer.id), element_id=element,
                       error=str(exc), tries=1, state="open", created_at=runner.now()))
        runner._history(s, inst, "incident.raised", element=element, details={"timer": timer.id, "error": str(exc)})


def next_due(runner: "Runner") -> datetime | None:
    """The earliest moment a timer or a job falls due."""
    with runner.db.unit() as s:
        timer = s.scalars(select(Timer.due_at).where(Timer.state == "waiting")
                          .order_by(Timer.due_at).limit(1)).first()
        job = jobs.next_due(runner, s)
    found = [d for d in (timer, job) if d is not None]
    return min(found) if found else None


def run_due(runner: "Runner", limit: int = 10_000) -> int:
    """Fire due timers and run due jobs, earliest first; returns how many ran."""
    runner._refresh_clock()
    count = 0
    while count < limit:
        first, second = (fire_next, jobs.run_next) if _timer_first(runner) else (jobs.run_next, fire_next)
        if first(runner) is None and second(runner) is None:
            break
        count += 1
    return count


def _timer_first(runner: "Runner") -> bool:
    with runner.db.unit() as s:
        timer = s.scalars(select(Timer.due_at).where(Timer.state == "waiting", Timer.due_at <= runner.now())
                          .order_by(Timer.due_at).limit(1)).first()
        job = jobs.next_due(runner, s)
    return timer is not None and (job is None or timer <= job)


def advance(runner: "Runner", delta: timedelta) -> datetime:
    """Move the virtual clock forward, firing everything due in due-time order on the way."""
    runner._refresh_clock()
    target = runner.now() + delta
    while True:
        due = next_due(runner)
        if due is None or due > target:
            break
        if due > runner.now():
            runner.clock.set(due)
            _persist_clock(runner)
        run_due(runner)
    runner.clock.set(target)
    _persist_clock(runner)
    run_due(runner)
    outbox.deliver_due(runner)
    return target


def _persist_clock(runner: "Runner") -> None:
    with runner.db.unit() as s:
        runner._save_clock(s)


def tick(runner: "Runner") -> None:
    """One scheduler tick: timers, jobs, then the outbox."""
    try:
        run_due(runner)
        outbox.deliver_due(runner)
    except RunnerError:
        log.exception("tick failed")


def work(runner: "Runner") -> None:
    """Run the worker until interrupted: APScheduler ticks, the database decides."""
    scheduler = BlockingScheduler(timezone=runner.settings.tz)
    scheduler.add_job(tick, "interval", args=[runner], seconds=runner.settings.poll_seconds,
                      max_instances=1, coalesce=True, next_run_time=datetime.now(runner.settings.tz))
    log.info("worker %s started on %s", runner.settings.worker_id, runner.db.engine.url)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("worker %s stopped", runner.settings.worker_id)
