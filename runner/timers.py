"""When a timer event falls due, computed from the runner's clock (never the wall clock)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from runner import expressions, timeparse
from runner.errors import TimerInvalid


def _resolve(kind: str, value: Any, now: datetime, tz) -> tuple[datetime, int | None]:
    if isinstance(value, datetime):
        due = value if value.tzinfo else value.replace(tzinfo=tz)
        return due.astimezone(timezone.utc), None
    if isinstance(value, date):
        return datetime.combine(value, time(), tz).astimezone(timezone.utc), None
    if isinstance(value, timedelta):
        return now + value, None
    if not isinstance(value, str) or not value.strip():
        raise TimerInvalid(f"timer value {value!r} is not an ISO 8601 {kind}")
    text = value.strip()
    # NOTE: an expression may produce a date for a duration timer and vice versa.
    if kind != "cycle" and text.upper().startswith("P"):
        kind = "duration"
    elif kind != "cycle" and not text.upper().startswith(("P", "R")):
        kind = "date"
    return timeparse.first_due(kind, text, now, tz)


def schedule(kind: str, expression: str, my_task) -> dict[str, Any]:
    """The first schedule of a timer reached by ``my_task``."""
    engine = my_task.workflow.top_workflow.script_engine
    now = engine.clock.now()
    value: Any = expression
    if expressions.is_wrapped(expression):
        value = engine.evaluate(my_task, expression)
    due, remaining = _resolve(kind, value, now, engine.tz)
    text = value if isinstance(value, str) else str(value)
    return {"kind": kind, "value": text, "due": due.isoformat(), "remaining": remaining, "pending": 0}


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
    state["due"] = timeparse.next_due(state["value"], previous, tz).isoformat()
    if remaining is not None:
        state["remaining"] = remaining - 1
