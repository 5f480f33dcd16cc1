"""gunicorn's settings for the web app: ``gunicorn -c python:web.gunicorn_conf 'web:create_app()'``.

Only what gunicorn's own process needs; the app's settings stay ``RUNNER_*`` variables:
- ``logger_class``: gunicorn's own lines (starting, listening, booting workers, errors) come in
  ``RUNNER_LOG_FORMAT`` too, from its first line on (``runner.logs.configure``, which each web
  process's factory calls again for the app's lines);
- ``child_exit``: a web process that ended is marked dead in prometheus-client's multiprocess
  folder (``PROMETHEUS_MULTIPROC_DIR``), as its documentation asks; its counts stay counted.
Other options (``--bind``, ``--workers``) are given on the command line as usual.
"""

from __future__ import annotations

from typing import Any

from gunicorn import glogging
from prometheus_client import multiprocess

from runner import logs
from runner.settings import Settings


class Logger(glogging.Logger):
    """gunicorn's logger, whose handlers then take the runner's format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        logs.configure(Settings.from_env())


logger_class = Logger


def child_exit(server: Any, worker: Any) -> None:
    """A web process ended: prometheus-client drops its live gauges (counters keep their counts)."""
    settings = Settings.from_env()
    if settings.metrics_dir:
        multiprocess.mark_process_dead(worker.pid, settings.metrics_dir)
