"""Logging, configured in one place, and the context every line of a unit of work carries.

``configure(settings)`` is called once by the CLI (so by ``runner worker`` too) and by the web
app's factory (so under gunicorn too): human text by default, one JSON object per line with
``RUNNER_LOG_FORMAT=json``. Either way each line carries the fields bound for the unit of work
it is logged in: ``instance_id``, ``business_key``, ``element`` (and ``request_id`` in a web
request). Fields are bound where the unit of work knows them, kept in a ``ContextVar``:

    with logs.bind(instance_id=job.instance_id, element=job.element_id):
        ...                                   # every line logged here carries both
        logs.annotate(business_key=inst.business_key)   # learnt later, until the bind ends

A ``bind`` puts back what was there before when it ends, so fields never leak from one unit
of work (or one request on a reused thread) into the next. A handler runs in a thread of its
own started in a copy of the context (``runner.service.jobs``), so its lines carry them too.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Any

from runner.settings import Settings

# The fields a line may carry, in the order the text format shows them.
FIELDS = ("request_id", "instance_id", "business_key", "element")
_NONE: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("runner_log_context", default=_NONE)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that keep handlers of their own (gunicorn's do not propagate to the root): their
# handlers get this format too, so one setting decides every line a web process writes.
OWN_HANDLERS = ("gunicorn.error", "gunicorn.access")
# SpiffWorkflow logs every task state change at INFO; APScheduler every tick.
NOISY = ("spiff", "apscheduler", "alembic")  # at WARNING unless verbose: a command prints its own result


def push(**fields: Any) -> Token[Mapping[str, Any]]:
    """Add ``fields`` (None values are left out) until ``pop(token)``; ``bind`` for a block."""
    return _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})


def pop(token: Token[Mapping[str, Any]]) -> None:
    """Put back the fields as they were before the ``push`` that returned ``token``."""
    _CONTEXT.reset(token)


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (None values are left out) to every line logged until the block ends.

    Also a decorator: each call of the function binds its own fields.
    """
    token = push(**fields)
    try:
        yield
    finally:
        pop(token)


def annotate(**fields: Any) -> None:
    """Add fields learnt inside a ``bind`` block; they end with that block.

    NOTE: only inside a ``bind``: outside one the fields would outlive the unit of work.
    """
    _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (``record.context``: a dict)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.context = dict(_CONTEXT.get())
        return True


_FILTER = ContextFilter()  # NOTE: one instance, so adding it again to a handler is a no-op


class TextFormatter(logging.Formatter):
    """The human line, with the bound fields appended as ``[key=value ...]``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        fields = getattr(record, "context", None) or {}
        shown = " ".join(f"{k}={fields[k]}" for k in FIELDS if k in fields)
        return f"{line} [{shown}]" if shown else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO), level, logger, message, the bound fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "context", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    @property
    def stream(self) -> IO[str]:  # NOTE: a property, so StreamHandler.__init__'s assignment is ignored
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def formatter(settings: Settings) -> logging.Formatter:
    """The formatter ``RUNNER_LOG_FORMAT`` names."""
    return JsonFormatter() if settings.log_format == "json" else TextFormatter()


def configure(settings: Settings, *, verbose: bool = False, stream: IO[str] | None = None) -> logging.Handler:
    """Send the root logger's lines (INFO, DEBUG when ``verbose``) to stderr (or ``stream``) in the set format.

    Calling it again replaces the handler it added before (and only that one: a test
    runner's own handlers stay). Returns the handler.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "runner_handler", False)]:
        root.removeHandler(old)
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.runner_handler = True  # type: ignore[attr-defined]
    handler.addFilter(_FILTER)
    handler.setFormatter(formatter(settings))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in OWN_HANDLERS:
        for own in logging.getLogger(name).handlers:
            own.addFilter(_FILTER)
            own.setFormatter(formatter(settings))
    return handler
