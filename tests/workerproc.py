"""A worker as a separate OS process, for the crash and many-worker tests.

    python tests/workerproc.py run|deliver|loop [--seconds S]

Settings come from the environment like a real worker's (``RUNNER_DATABASE_URL``,
``RUNNER_CLOCK``, ``RUNNER_WEBHOOK_URL``). The test handlers below are registered on
top of the built-in ones; ``WORKER_RAW_DIR`` names a directory where each handler call
appends one line (its idempotency key) to a per-process file, before anything commits,
so that a test can count raw invocations, committed or not.

- ``run``: one ``scheduler.run_due`` pass; ``deliver``: one ``outbox.deliver_due`` pass;
- ``work``: ``scheduler.work`` as ``runner worker`` runs it, with this file's handlers;
- ``loop``: ``run_due`` until the database shows all work done, or ``--seconds`` pass
  (exit code 3). Prints one JSON line with what this process did.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text  # noqa: E402

from runner.crm.extension import easyedu  # noqa: E402
from runner.registry import HandlerContext, Registry, installed  # noqa: E402
from runner.service import (
    outbox,
    scheduler,  # noqa: E402
)
from runner.service.runtime import Runner  # noqa: E402
from runner.settings import Settings  # noqa: E402
from runner.store.models import Instance, Job, Timer  # noqa: E402

BLOCKED = "HANDLER-BLOCKED"
PLAIN_CHANNEL = "plainpost"


def _note_call(ctx: HandlerContext) -> None:
    """One raw line per handler call, flushed before the handler goes on."""
    folder = os.environ.get("WORKER_RAW_DIR")
    if folder:
        with open(Path(folder) / f"raw-{os.getpid()}.log", "a", encoding="utf-8") as fh:
            fh.write(f"{ctx.topic} {ctx.idempotency_key}\n")


_CALLS: list[str] = []


def count_once(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Record the call in a domain table (committed with the step) and in the raw file.

    With ``WORKER_BLOCK_AT=N`` the process's Nth call prints BLOCKED and hangs until killed.
    """
    _note_call(ctx)
    _CALLS.append(ctx.idempotency_key)
    if os.environ.get("WORKER_BLOCK_AT") == str(len(_CALLS)):
        print(BLOCKED, ctx.idempotency_key, flush=True)
        threading.Event().wait()
    ctx.session.execute(
        text("insert into invocations (job_key, element_id, pid) values (:k, :e, :p)"),
        {"k": ctx.idempotency_key, "e": ctx.element_id, "p": os.getpid()},
    )
    return {f"{ctx.element_id}_by": os.getpid()}


def send_and_wait(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Queue a welcome message; with ``WORKER_BLOCK_IN_HANDLER=1`` then hang until killed."""
    _note_call(ctx)
    ctx.send("webhook", {"text": "welcome", "instance": ctx.instance_id})
    if os.environ.get("WORKER_BLOCK_IN_HANDLER") == "1":
        print(BLOCKED, flush=True)
        threading.Event().wait()
    return {"welcomed": True}


def note_call(params: dict[str, Any], ctx: HandlerContext) -> dict[str, Any]:
    """Only record the call (a test then knows the step after it is running)."""
    _note_call(ctx)
    return {}


def make_registry() -> Registry:
    """The installed handlers (the entry-point group) plus this file's test handlers."""
    registry = installed()
    registry.add("count.once", count_once)
    registry.add("worker.send_and_wait", send_and_wait)
    registry.add("worker.note", note_call)
    return registry


class PlainPostTransport:
    """POSTs without an Idempotency-Key: the receiver cannot drop a repeat."""

    idempotent = False

    def __init__(self, url: str):
        self.url = url

    def send(self, envelope: outbox.Envelope) -> None:
        body = json.dumps({"key": envelope.idempotency_key, "payload": envelope.payload}).encode()
        request = urllib.request.Request(
            f"{self.url}/plain", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        except OSError as exc:
            raise outbox.DeliveryError(f"cannot post to {self.url}: {exc}", transient=False) from exc


def register_plain_channel() -> None:
    """Make ``plainpost`` deliverable through the non-idempotent transport."""
    outbox.register_transport(PLAIN_CHANNEL, lambda settings: PlainPostTransport(settings.webhook_url))


def all_done(runner: Runner) -> bool:
    """No running instance, no pending job, no waiting timer."""
    with runner.db.read() as s:
        running = s.scalar(select(func.count()).select_from(Instance).where(Instance.status == "running"))
        pending = s.scalar(select(func.count()).select_from(Job).where(Job.state == "pending"))
        waiting = s.scalar(select(func.count()).select_from(Timer).where(Timer.state == "waiting"))
    return running == 0 and pending == 0 and waiting == 0


def loop(runner: Runner, seconds: float, idle: float = 0.05) -> dict[str, Any]:
    """Work until everything is done or the deadline passes."""
    deadline = time.monotonic() + seconds
    ran = passes = 0
    while time.monotonic() < deadline:
        count = scheduler.run_due(runner)
        ran, passes = ran + count, passes + 1
        if count == 0:
            if all_done(runner):
                return {"pid": os.getpid(), "ran": ran, "passes": passes, "done": True}
            time.sleep(idle)  # an idle worker polls, as the APScheduler tick would
    return {"pid": os.getpid(), "ran": ran, "passes": passes, "done": False}


def main(argv: list[str] | None = None) -> int:
    """Run one worker mode against the database named by the environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["run", "deliver", "loop", "work"])
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    register_plain_channel()
    settings = Settings.from_env()
    runner = Runner(settings, registry=make_registry(), extensions=(easyedu(settings),))
    try:
        if args.mode == "work":
            scheduler.work(runner)
            return 0
        if args.mode == "run":
            report: dict[str, Any] = {"pid": os.getpid(), "ran": scheduler.run_due(runner)}
        elif args.mode == "deliver":
            report = {"pid": os.getpid(), "sent": outbox.deliver_due(runner)}
        else:
            report = loop(runner, args.seconds)
    finally:
        runner.db.engine.dispose()
    print(json.dumps(report), flush=True)
    return 0 if report.get("done", True) else 3


if __name__ == "__main__":
    sys.exit(main())
