"""Clock-driven timer events: when they fall due, from the runner's clock (never the wall clock).

The parser in ``runner.engine.parser`` builds these definitions; ``runner.engine`` fires them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.util import PendingBpmnEvent
from SpiffWorkflow.util.task import TaskState

from runner.errors import Invalid, StepFailed, TimerInvalid
from runner.model import timeparse, worktime
from runner.model.worktime import BusinessCalendar
from runner.sandbox import expressions

BUSINESS = worktime.CALENDAR_NAMES[0]
"""The value of a timer's ``calendar`` property that makes it count working time only."""

_CALENDAR: ContextVar[Callable[[], BusinessCalendar] | None] = ContextVar("runner_calendar", default=None)


@contextmanager
def calendar_from(source: Callable[[], BusinessCalendar]) -> Iterator[None]:
    """Business-time timers computed inside the block read the calendar from ``source``.

    NOTE: the runner opens one per unit of work with a source that reads the stored calendar
    (cached by its version) at most once, and only if a business-time timer needs it.
    """
    token = _CALENDAR.set(source)
    try:
        yield
    finally:
        _CALENDAR.reset(token)


def calendar_reader(tz: tzinfo) -> Callable[[], BusinessCalendar]:
    """The current unit of work's calendar source, to call later (from a handler's thread, say)."""
    source = _CALENDAR.get()
    return source if source is not None else (lambda: worktime.default_calendar(tz))


def business_calendar(tz: tzinfo) -> BusinessCalendar:
    """The calendar of the current unit of work; the default one outside any."""
    source = _CALENDAR.get()
    return source() if source is not None else worktime.default_calendar(tz)


def calendar_name(spec) -> str | None:
    """The ``calendar`` property of an event element (``business`` or none)."""
    return ((getattr(spec, "extensions", None) or {}).get("properties") or {}).get("calendar") or None


def _in_business_time(due: datetime, cal: BusinessCalendar | None) -> datetime:
    return due if cal is None else worktime.next_working_instant(cal, due)


def _resolve(
    kind: str, value: Any, now: datetime, tz, cal: BusinessCalendar | None = None
) -> tuple[datetime, int | None]:
    if isinstance(value, datetime):
        due = value if value.tzinfo else value.replace(tzinfo=tz)
        return _in_business_time(due, cal).astimezone(UTC), None
    if isinstance(value, date):
        return _in_business_time(datetime.combine(value, time(), tz), cal).astimezone(UTC), None
    if isinstance(value, timedelta):
        due = now + value if cal is None else worktime.add_working_time(cal, now, value)
        return due.astimezone(UTC), None
    if not isinstance(value, str) or not value.strip():
        raise TimerInvalid(f"timer value {value!r} is not an ISO 8601 {kind}")
    text = value.strip()
    # NOTE: an expression may produce a date for a duration timer and vice versa.
    if kind != "cycle" and text.upper().startswith("P"):
        kind = "duration"
    elif kind != "cycle" and not text.upper().startswith(("P", "R")):
        kind = "date"
    if cal is not None:
        due, remaining = worktime.first_due(kind, text, now, cal)
        return due.astimezone(UTC), remaining
    return timeparse.first_due(kind, text, now, tz)


def schedule(kind: str, expression: str, my_task) -> dict[str, Any]:
    """The first schedule of a timer reached by ``my_task``; a bad value fails naming the element."""
    engine = my_task.workflow.top_workflow.script_engine
    now = engine.clock.now()
    value: Any = expression
    if expressions.is_wrapped(expression):
        value = engine.evaluate(my_task, expression)
    spec = my_task.task_spec
    business = calendar_name(spec) == BUSINESS
    try:
        cal = business_calendar(engine.tz) if business else None
        due, remaining = _resolve(kind, value, now, engine.tz, cal)
    except Invalid as exc:
        raise StepFailed(
            f"timer {expression!r}: {exc}",
            getattr(spec, "bpmn_id", None) or spec.name,
            getattr(spec, "bpmn_name", None) or "",
        ) from exc
    text = value if isinstance(value, str) else str(value)
    state = {"kind": kind, "value": text, "due": due.isoformat(), "remaining": remaining, "pending": 0}
    if business:
        state["calendar"] = BUSINESS
    return state


def fire(state: dict[str, Any], repeats: bool, tz) -> None:
    """Record one firing in a timer's state; a repeating cycle moves to its next due time."""
    if not repeats or state["kind"] != "cycle":
        state["fired"] = True
        state["due"] = None
        return
    state["pending"] = state.get("pending", 0) + 1
    remaining = state.get("remaining")
    if remaining == 0:
        state["due"] = None
        return
    previous = datetime.fromisoformat(state["due"])
    if state.get("calendar") == BUSINESS:
        state["due"] = worktime.next_due(state["value"], previous, business_calendar(tz)).astimezone(UTC).isoformat()
    else:
        state["due"] = timeparse.next_due(state["value"], previous, tz).isoformat()
    if remaining is not None:
        state["remaining"] = remaining - 1


# --- timer event definitions --------------------------------------------------------


class ClockTimer:
    """Timer behaviour shared by the three kinds: due times come from the runner's clock.

    NOTE: SpiffWorkflow's own timers compare with ``datetime.now()``. Ours fire only
    when the runner marks them, so the (possibly virtual) clock and the database decide.
    State is keyed by the timer's name because an event-based gateway holds several.
    """

    kind = ""
    # Set by SpiffWorkflow's TimerEventDefinition, the other base of each concrete class.
    name: str
    expression: str

    @property
    def key(self) -> str:
        return f"timer:{self.name}"

    def timer_state(self, my_task) -> dict:
        """The timer's schedule on this task, computed from the clock on first sight."""
        state = my_task.internal_data.get(self.key)
        if state is None:
            state = schedule(self.kind, self.expression, my_task)
            my_task.internal_data[self.key] = state
        return state

    def has_fired(self, my_task):
        return bool(self.timer_state(my_task).get("fired"))

    def details(self, my_task):
        return PendingBpmnEvent(self.name, "timer", self.timer_state(my_task).get("due"))

    def reset(self, my_task):
        my_task.internal_data.pop(self.key, None)
        super().reset(my_task)  # type: ignore[misc]  # a mixin: TimerEventDefinition, next in the MRO, has it


class DateTimer(ClockTimer, TimerEventDefinition):
    """timeDate: fires at a moment."""

    kind = "date"


class DurationTimer(ClockTimer, TimerEventDefinition):
    """timeDuration: fires a duration after the event is reached."""

    kind = "duration"


class CycleTimer(ClockTimer, CycleTimerEventDefinition):
    """timeCycle on a non-interrupting boundary event: fires each repetition.

    NOTE: SpiffWorkflow never predicts the outputs of a cycle timer event (they are added
    per firing below), so only repeating events may use this class; see OnceCycleTimer.
    """

    kind = "cycle"

    def update_task(self, my_task):
        state = self.timer_state(my_task)
        while state.get("pending", 0) > 0:
            state["pending"] -= 1
            spawn_paths(my_task)


class OnceCycleTimer(ClockTimer, TimerEventDefinition):
    """timeCycle where BPMN fires once (catch, start, interrupting boundary): the first due time."""

    kind = "cycle"


def repeats(my_task) -> bool:
    """True where BPMN lets a cycle fire more than once: non-interrupting boundary events."""
    spec = my_task.task_spec
    return isinstance(spec, BoundaryEvent) and not spec.cancel_activity


def spawn_paths(my_task) -> None:
    """Start the outgoing paths of a repeating boundary event once more; the event keeps waiting."""
    for output in my_task.task_spec.outputs:
        child = my_task._add_child(output, TaskState.FUTURE)
        child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
        child.task_spec._update(child)


TIMER_CLASSES = {"timeDate": DateTimer, "timeDuration": DurationTimer, "timeCycle": CycleTimer}
