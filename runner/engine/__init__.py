"""The one package that drives SpiffWorkflow's runtime.

``core.Engine`` creates workflows, runs engine steps and applies outside events;
``snapshot`` reads what an instance waits for; ``pruning`` keeps the task tree bounded.
"""

from runner.engine.core import Engine
from runner.engine.snapshot import JobView, Snapshot, TimerView, UserTaskView, props
from runner.engine.timers import calendar_from

__all__ = ["Engine", "JobView", "Snapshot", "TimerView", "UserTaskView", "calendar_from", "props"]
