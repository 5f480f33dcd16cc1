"""Handler calls on reused threads (runner.service.calls): reuse, timeouts, context, concurrency."""

from __future__ import annotations

import contextvars
import threading

from runner.service.calls import CallThreads

SAFETY = 30.0  # seconds a test waits at most for something that happens at once; never reached when it passes


def test_consecutive_calls_reuse_one_thread() -> None:
    threads = CallThreads()
    first = threads.call(threading.current_thread, SAFETY)
    second = threads.call(threading.current_thread, SAFETY)
    assert first is not None and second is not None
    assert first.result is second.result is not threading.current_thread()
    assert len(threads.idle_threads()) == 1


def test_an_error_comes_back_to_the_caller() -> None:
    def fail() -> None:
        raise ValueError("boom")

    call = CallThreads().call(fail, SAFETY)
    assert call is not None and isinstance(call.error, ValueError) and call.result is None


def test_an_overrunning_call_keeps_its_thread_and_the_next_call_gets_another() -> None:
    threads = CallThreads()
    release = threading.Event()
    seen: list[threading.Thread] = []

    def hang() -> str:
        seen.append(threading.current_thread())
        release.wait(SAFETY)
        return "late"

    assert threads.call(hang, timeout=0.01, name="handler:slow") is None
    assert threads.idle_threads() == []
    after = threads.call(threading.current_thread, SAFETY)
    assert after is not None and after.result is not seen[0]
    # The overrunning thread ends once its call returns; it never serves another call.
    release.set()
    seen[0].join(SAFETY)
    assert not seen[0].is_alive()
    assert seen[0] not in threads.idle_threads()


def test_each_call_runs_in_a_copy_of_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    threads = CallThreads()
    token = var.set("caller")
    try:
        seen = threads.call(var.get, SAFETY)
        threads.call(lambda: var.set("handler"), SAFETY)
        after = threads.call(var.get, SAFETY)
    finally:
        var.reset(token)
    assert seen is not None and after is not None
    # The caller's value reaches the handler; what a handler sets stays with its call.
    assert seen.result == "caller" and after.result == "caller"
    assert var.get() == "unset"


def test_concurrent_callers_get_threads_of_their_own() -> None:
    threads = CallThreads(idle=1)
    # Both calls must be running at once to pass the barrier (it breaks if they were serialized).
    barrier = threading.Barrier(2, timeout=SAFETY)
    results: list[object] = []

    def caller() -> None:
        call = threads.call(lambda: (barrier.wait(), threading.get_ident())[1], SAFETY)
        results.append(call.result if call is not None and call.error is None else call)

    callers = [threading.Thread(target=caller) for _ in range(2)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(SAFETY)
    assert len(results) == 2 and len(set(results)) == 2 and all(isinstance(r, int) for r in results)
    assert len(threads.idle_threads()) == 1  # at most ``idle`` threads wait; the other ended
