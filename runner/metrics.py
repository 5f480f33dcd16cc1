"""The runner's process metrics (Prometheus): handler calls, task completions, web requests.

What happens in a process is counted here, with no database: handler calls per topic and
outcome, task completions, and the web app's request latency per endpoint. What the database
holds (due work, the outbox, incidents, open tasks) is read at scrape time instead, by
``runner.queries.metrics``; ``registry(settings)`` is what ``/metrics`` shows of the process side.

Why multiprocess mode: gunicorn runs several web processes and each scrape reaches one of
them, and handler calls happen in ``runner worker``, another process again. With
``PROMETHEUS_MULTIPROC_DIR`` set (for gunicorn and every worker on the host, an empty folder
at start), prometheus_client keeps each process's counters in a file of that folder, and
``/metrics`` adds up all of them: one scrape of any web process shows the whole host,
workers included, without a port per process. Without it (one process, the tests) the
counters live in this process's registry. A worker on a host with no web process serves its
own ``/metrics`` instead (``RUNNER_WORKER_METRICS``, ``runner.scrape``). NOTE: the library reads the variable itself,
when it is first imported: it must be in the environment before the process starts.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from runner.errors import Conflict, Retry, RunnerError, caused_by
from runner.settings import Settings

# Seconds: from a cached no-op handler (a millisecond) to a handler timing out (30 s).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# NOTE: the instruments of this process, in a registry of their own (not prometheus_client's
# global one, which other libraries fill too); made when the module is imported, as the
# library expects. Each has labels, so nothing is written (no file opened in multiprocess
# mode) until one is used: a wrong PROMETHEUS_MULTIPROC_DIR is then the settings' clear error.
PROCESS = CollectorRegistry(auto_describe=True)
HANDLER_CALLS = Counter(
    "runner_handler_calls",
    "Service-task handler calls, per topic and outcome (ok, retry: the handler asked for one, failed).",
    ["topic", "outcome"],
    registry=PROCESS,
)
HANDLER_SECONDS = Histogram(
    "runner_handler_seconds",
    "How long a handler call took, per topic (seconds).",
    ["topic"],
    buckets=BUCKETS,
    registry=PROCESS,
)
COMPLETIONS = Counter(
    "runner_task_completions",
    "User task completions asked for, per outcome (ok, conflict: someone else was first, refused).",
    ["outcome"],
    registry=PROCESS,
)
COMPLETION_SECONDS = Histogram(
    "runner_task_completion_seconds",
    "How long completing a user task took, its unit of work included, per outcome (seconds).",
    ["outcome"],
    buckets=BUCKETS,
    registry=PROCESS,
)
HTTP_SECONDS = Histogram(
    "runner_http_request_seconds",
    "Web requests: latency per endpoint (the Flask endpoint name, never the path), method and status.",
    ["endpoint", "method", "status"],
    buckets=BUCKETS,
    registry=PROCESS,
)


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if caused_by(exc, Retry) is not None:
        return "retry"
    return "failed"


@functools.lru_cache(maxsize=1024)
def _handler_children(topic: str) -> tuple[Any, Any]:
    """The histogram and the "ok" counter of one topic, looked up once (``labels`` takes a lock)."""
    return HANDLER_SECONDS.labels(topic), HANDLER_CALLS.labels(topic, "ok")


class _HandlerCall:
    """Times a handler call and counts its outcome (a class: it is on every job's path)."""

    __slots__ = ("started", "topic")

    def __init__(self, topic: str):
        self.topic = topic
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        seconds, ok = _handler_children(self.topic)
        seconds.observe(time.perf_counter() - self.started)
        (ok if error is None else HANDLER_CALLS.labels(self.topic, _outcome(error))).inc()


def handler_call(topic: str) -> _HandlerCall:
    """Count and time one handler call (the outcome from how the block ends): ``with handler_call(t): ...``."""
    return _HandlerCall(topic)


@contextmanager
def completion() -> Iterator[None]:
    """Count and time one task completion."""
    start = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except Conflict:
        outcome = "conflict"
        raise
    except RunnerError:
        outcome = "refused"
        raise
    except BaseException:
        outcome = "failed"
        raise
    finally:
        COMPLETION_SECONDS.labels(outcome).observe(time.perf_counter() - start)
        COMPLETIONS.labels(outcome).inc()


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    """One web request answered."""
    HTTP_SECONDS.labels(endpoint, method, str(status)).observe(seconds)


def registry(settings: Settings) -> CollectorRegistry:
    """What a scrape shows of the processes: every process's files in multiprocess mode, else this one's."""
    if not settings.metrics_dir:
        return PROCESS
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=settings.metrics_dir)
    return merged
