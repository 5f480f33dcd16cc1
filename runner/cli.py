"""The ``runner`` command: deploy, start, complete, correlate, move the clock, work.

NOTE: start-up imports only what parsing needs: each command names the function that runs
it as ``"module:function"`` (most in ``runner.commands``), imported when it runs, and the
extensions (whose loading imports the whole runner) are loaded only for their own commands.
``runner clock show`` reads the clock row with the database driver alone (``runner.store.clockread``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from runner import logs
from runner.errors import DeploymentInvalid, RunnerError
from runner.settings import Settings
from runner.store import clockread

if TYPE_CHECKING:
    from runner.extension import Extension

Command = Callable[[Any, Settings], None]
# The entry-point group naming the commands extensions add (their names only: for ``--help``).
COMMANDS_GROUP = "bpmn_runner.commands"
CORE = frozenset(
    [
        "db",
        "deploy",
        "start",
        "tasks",
        "complete",
        "correlate",
        "clock",
        "run-due",
        "worker",
        "instances",
        "history",
        "incidents",
        "retry",
        "outbox",
        "users",
    ]
)


def _paging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=50, help="rows per page (1-200, default %(default)s)")
    p.add_argument("--cursor", help="the cursor printed after the previous page")


def build_parser(extensions: Iterable[Extension] = (), more: Iterable[str] = ()) -> argparse.ArgumentParser:
    """The argument parser (one sub-command per operation, and those of ``extensions``).

    Each command's ``fn`` is a function or ``"module:function"``, imported when the command runs.
    ``more`` names the commands of extensions not loaded (listed at the end of ``--help``).
    """
    more = sorted(more)
    epilog = f"installed extensions add: {', '.join(more)} (see `runner COMMAND --help`)" if more else None
    parser = argparse.ArgumentParser(prog="runner", description=__doc__, epilog=epilog)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["upgrade"])
    p.add_argument(
        "--branch",
        action="append",
        help="only this schema branch besides the core (repeatable; 'core' alone: no extension's tables); "
        "default: every installed branch",
    )
    p.set_defaults(fn="runner.commands:cmd_db")

    p = sub.add_parser("deploy", help="deploy .bpmn/.dmn files or folders")
    p.add_argument("paths", nargs="+")
    p.add_argument("--actor", default="cli")
    p.set_defaults(fn="runner.commands:cmd_deploy")

    p = sub.add_parser("start", help="start an instance of the latest version")
    p.add_argument("process_key")
    p.add_argument("--business-key", "--customer", dest="business_key")
    p.add_argument("--data")
    p.add_argument(
        "--actor",
        default="cli",
        help="who does it (default: %(default)s); a staff member's username applies their permissions",
    )
    p.set_defaults(fn="runner.commands:cmd_start")

    p = sub.add_parser("tasks", help="open user tasks, a page at a time (earliest due first)")
    p.add_argument("--user", help="only tasks this user may work on (theirs, or offered to them)")
    p.add_argument("--group", action="append", help="the user's groups (repeat); alone: tasks offered to them")
    p.add_argument("--candidate-group", help="only tasks offered to this group")
    p.add_argument("--customer")
    p.add_argument("--process")
    _paging(p)
    p.set_defaults(fn="runner.commands:cmd_tasks")

    p = sub.add_parser("complete", help="complete a user task")
    p.add_argument("task_id")
    p.add_argument("--data")
    p.add_argument(
        "--actor",
        default="cli",
        help="who does it (default: %(default)s); a staff member's username applies their permissions",
    )
    p.set_defaults(fn="runner.commands:cmd_complete")

    p = sub.add_parser("correlate", help="deliver a message by business key")
    p.add_argument("message")
    p.add_argument("--business-key", "--customer", dest="business_key")
    p.add_argument("--data")
    p.add_argument(
        "--actor",
        default="cli",
        help="who does it (default: %(default)s); a staff member's username applies their permissions",
    )
    p.set_defaults(fn="runner.commands:cmd_correlate")

    p = sub.add_parser("clock", help="show or advance the virtual clock (RUNNER_CLOCK=virtual)")
    p.add_argument("action", choices=["show", "advance"], nargs="?", default="show")
    p.add_argument("span", nargs="?", default="0s", help="e.g. 3d, 1h30m, 2w, PT30M")
    p.set_defaults(fn="runner.cli:cmd_clock")

    sub.add_parser("run-due", help="fire due timers, run due jobs, deliver the outbox once").set_defaults(
        fn="runner.commands:cmd_run_due"
    )
    sub.add_parser("worker", help="run the scheduler/worker loop").set_defaults(fn="runner.commands:cmd_worker")

    p = sub.add_parser("instances", help="instances, or one instance")
    p.add_argument("instance_id", nargs="?")
    p.add_argument("--customer")
    p.add_argument("--process")
    _paging(p)
    p.set_defaults(fn="runner.commands:cmd_instances")

    p = sub.add_parser("history", help="history per instance or customer")
    p.add_argument("--instance")
    p.add_argument("--customer")
    p.set_defaults(fn="runner.commands:cmd_history")

    p = sub.add_parser("incidents", help="open incidents")
    p.add_argument("--all", action="store_true")
    p.set_defaults(fn="runner.commands:cmd_incidents")

    p = sub.add_parser("retry", help="retry an incident's job or timer")
    p.add_argument("incident_id", type=int)
    p.add_argument("--actor", default="cli")
    p.set_defaults(fn="runner.commands:cmd_retry")

    p = sub.add_parser("outbox", help="list outbox messages, or resend/dismiss one")
    p.add_argument("action", choices=["list", "resend", "dismiss"], nargs="?", default="list")
    p.add_argument("message_id", type=int, nargs="?")
    p.add_argument("--state")
    p.set_defaults(fn="runner.commands:cmd_outbox")

    p = sub.add_parser("users", help="web users: add, edit, list, set a password, unlock, print a new API token")
    p.add_argument("action", choices=["add", "edit", "list", "password", "unlock", "token"])
    p.add_argument("username", nargs="?")
    p.add_argument("--name", help="full name (add, edit)")
    p.add_argument("--role", action="append", help="a role, repeatable (add)")
    p.add_argument("--email", help="e-mail address (add, edit; empty clears it)")
    for item in extensions:  # NOTE: facts an extension keeps about people (the CRM's phone and Zalo id)
        for fact in item.people.fields if item.people is not None else ():
            p.add_argument(fact.option, dest=fact.name, help=f"{fact.help} (add, edit)")
    p.add_argument(
        "--password", help="else RUNNER_USER_PASSWORD, else asked twice on the terminal, else the first line of stdin"
    )
    p.add_argument("--address", help="unlock: also lift the slow-down of this client address")
    p.add_argument("--label", default="cli", help="what the token is for (token)")
    p.add_argument("--if-missing", action="store_true", help="add: do nothing when the user can sign in")
    p.set_defaults(fn="runner.commands:cmd_users")
    for item in extensions:
        if item.commands is not None:
            item.commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``runner`` command."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        settings = Settings.from_env()  # NOTE: read once; the extensions read their own settings from it
        # NOTE: loading an extension imports the whole runner; a core command does without.
        installed = () if _core_command(argv) else _extensions().discover(settings)
    except RunnerError as exc:  # e.g. a malformed setting, the core's or an extension's
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    more = _extension_commands() if not installed and not [a for a in argv if not a.startswith("-")] else ()
    args = build_parser(installed, more).parse_args(argv)
    logs.configure(settings, verbose=args.verbose)  # RUNNER_LOG_FORMAT: text or json lines
    try:
        _function(args.fn)(args, settings)
    except DeploymentInvalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunnerError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug shows the rest
        if args.debug:
            raise
        print(
            f"error: {type(exc).__name__}: {_one_line(str(exc))} (run with --debug for the traceback)", file=sys.stderr
        )
        return 3
    return 0


def cmd_clock(args, settings: Settings) -> None:
    """``runner clock [show]`` reads the clock row and nothing else; ``advance`` needs the whole runner."""
    if args.action == "show":
        moment = datetime.now(UTC) if settings.clock != "virtual" else clockread.virtual_now(settings.database_url)
        if moment is not None:
            print(moment.isoformat())
            return
    _function("runner.commands:cmd_clock")(args, settings)


def _core_command(argv: list[str]) -> bool:
    """True when ``argv`` names a core command, or asks for the top-level help (or nothing).

    ``users add|edit`` take the options of the facts extensions keep about people (``--phone``),
    so they load the extensions, as running them does anyway.
    """
    words = [a for a in argv if not a.startswith("-")]
    return not words or (words[0] in CORE and words[:2] not in (["users", "add"], ["users", "edit"]))


def _extension_commands() -> list[str]:
    """The names of the commands installed extensions add (for the top-level help)."""
    # NOTE: importlib.metadata alone costs a third of the start-up budget: only the help needs it.
    metadata = importlib.import_module("importlib.metadata")
    return [point.name for point in metadata.entry_points(group=COMMANDS_GROUP)]


def _extensions() -> ModuleType:
    return importlib.import_module("runner.extension")


def _function(fn: Command | str) -> Command:
    """A command's function, imported from its module on first use."""
    if callable(fn):
        return fn
    module, _, name = fn.partition(":")
    found: Command = getattr(importlib.import_module(module), name)
    return found


def _one_line(text: str, limit: int = 500) -> str:
    """An error message as one line of at most ``limit`` characters (a 300-character value stays readable)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
