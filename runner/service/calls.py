"""Handler calls on threads kept between calls, each call bounded by a timeout.

A handler runs on a thread of its own so that its caller can stop waiting after the
handler's timeout; a thread cannot be killed, so a call that overruns keeps its thread
and the caller goes on (the unit of work rolls back whatever the handler did). Starting
a thread per call cost about as much as the rest of a no-op job, so finished threads wait
for the next call instead. Each call runs in a copy of its caller's ``contextvars``
context (so a handler's log lines carry the unit of work's fields, see runner.logs, and
what it sets stays its own), and concurrent callers get threads of their own.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

IDLE_THREADS = 4  # threads kept waiting per runner; more concurrent calls start more, which end after


class Call:
    """One call: its function, and its result or error once done."""

    __slots__ = ("fn", "name", "context", "done", "result", "error")

    def __init__(self, fn: Callable[[], Any], name: str, context: contextvars.Context):
        self.fn = fn
        self.name = name
        self.context = context
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        threading.current_thread().name = self.name
        try:
            self.result = self.context.run(self.fn)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self.error = exc
        finally:
            self.done.set()


class _Thread:
    """A daemon thread running the calls put in its inbox; None makes it end."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="handler", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (call := self.inbox.get()) is not None:
            call.run()
            del call  # NOTE: an idle thread holds nothing of its last call (its context, its session)


class CallThreads:
    """Runs calls with a timeout on reused daemon threads (``call`` is safe from any thread)."""

    def __init__(self, idle: int = IDLE_THREADS):
        self._keep = idle
        self._idle: list[_Thread] = []
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], Any], timeout: float, name: str = "handler") -> Call | None:
        """Run ``fn`` on a thread; the finished call, or None if it still runs after ``timeout`` s."""
        with self._lock:
            worker = self._idle.pop() if self._idle else _Thread()
        call = Call(fn, name, contextvars.copy_context())
        worker.inbox.put(call)
        if not call.done.wait(timeout):
            worker.inbox.put(None)  # NOTE: the thread ends once the overrunning call returns, if ever
            return None
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(worker)
                return call
        worker.inbox.put(None)
        return call

    def idle_threads(self) -> list[threading.Thread]:
        """The threads waiting for a call."""
        with self._lock:
            return [worker.thread for worker in self._idle]
