"""The app's shared objects, made once and bound to an app by ``create_app`` (as in Flask's tutorial).

- ``csrf``: Flask-WTF's CSRF check on every form (the API blueprint is exempt: bearer tokens);
- ``login_manager``: Flask-Login's sessions (its loaders live in ``web.auth``);
- ``babel``: Flask-Babel reading the .po catalogs (``web.catalogs``);
- ``get_runner()``: the app's ``Runner``, built on first use;
- ``start_clock_run(run_id)``: work off a clock run in the background of this process.

Blueprints take these from here, never from the ``web`` package, so nothing imports the factory back.
"""

from __future__ import annotations

import threading

from flask import current_app
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from runner import registry
from runner.crm.extension import easyedu
from runner.service.runtime import Runner
from web.catalogs import PoBabel

csrf = CSRFProtect()
login_manager = LoginManager()
babel = PoBabel()
_RUNNER_LOCK = threading.Lock()


def get_runner() -> Runner:
    """The app's runner, built on first use from ``RUNNER_SETTINGS`` (read once by ``create_app``)."""
    app = current_app
    runner = app.extensions.get("runner")
    if runner is None:
        with _RUNNER_LOCK:
            runner = app.extensions.get("runner")
            if runner is None:
                # NOTE: the web app is EasyEdu's: it names the CRM extension itself.
                settings = app.config["RUNNER_SETTINGS"]
                # The handlers come from the bpmn_runner.handlers entry points (runner.registry.installed).
                runner = Runner(settings, registry.installed(settings=settings), extensions=(easyedu(settings),))
                app.extensions["runner"] = runner
    return runner


def start_clock_run(run_id: int) -> None:
    """Work off a clock run behind the request: ``CLOCK_RUN_EXECUTOR(runner, run_id)`` if configured, else a thread.

    NOTE: a worker may take the run first, or resume it if this process dies; the run's lease
    decides who moves the clock, so starting it twice is harmless.
    """
    executor = current_app.config.get("CLOCK_RUN_EXECUTOR") or in_thread
    executor(get_runner(), run_id)


def resume_clock_run(run_id: int) -> None:
    """Start a clock run again here if nobody works on it (its executor died): a page or a poll looking at it."""
    if get_runner().stalled_clock_run() == run_id:
        start_clock_run(run_id)


def in_thread(runner: Runner, run_id: int) -> None:
    """The default executor: a daemon thread of this process moves the clock while the request answers."""
    threading.Thread(target=runner.execute_clock_run, args=(run_id,), name=f"clock-run-{run_id}", daemon=True).start()


def run_here(runner: Runner, run_id: int) -> None:
    """An executor that moves the clock before the request answers (tests that look at the result at once)."""
    runner.execute_clock_run(run_id)
