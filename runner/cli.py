"""The ``runner`` command: deploy, start, complete, correlate, move the clock, work."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from runner import extension, logs, registry, scrape
from runner import instance_folder as instance
from runner.clock import parse_span
from runner.errors import DeploymentInvalid, RunnerError
from runner.extension import Extension, combined
from runner.queries import tasklists as inbox
from runner.service import accounts as users
from runner.service import outbox, policy, scheduler
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db


def _json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: --data is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SystemExit("error: --data must be a JSON object")
    return value


def _print(value: Any) -> None:
    def default(obj: Any) -> str:
        return obj.isoformat() if isinstance(obj, (date, datetime)) else str(obj)

    print(json.dumps(value, ensure_ascii=False, indent=2, default=default))


def open_runner(settings: Settings):
    """The runner a command works on, with the handlers and extensions installed.

    Entry-point groups ``bpmn_runner.handlers`` (service-task topics) and ``bpmn_runner.extensions``.
    """

    return Runner(settings, registry.installed(settings=settings), extensions=extension.discover(settings))


def cmd_db(args, settings: Settings) -> None:

    db.upgrade(settings.database_url, args.branch or None)
    print(f"database at {settings.database_url} is up to date")
    if not settings.secret_key:  # neither RUNNER_SECRET_KEY nor a key file yet
        print(f"secret key created in {instance.create_secret_key(settings)} (readable by its owner only)")


def cmd_deploy(args, settings: Settings) -> None:
    for item in open_runner(settings).deploy(list(args.paths), actor=args.actor):
        state = "new version" if item.changed else "unchanged"
        print(f"{item.process_key}: version {item.version} ({state}, {item.file_name})")
        for warning in item.warnings:
            print(f"warning: {warning}", file=sys.stderr)


def _person(runner, actor: str):
    """The staff member ``--actor`` names, whose permissions then apply; None for any other label (the operator)."""

    found = users.get_user(runner, actor)
    return policy.Person.of(found["username"], found["roles"]) if found else None


def cmd_start(args, settings: Settings) -> None:
    runner = open_runner(settings)
    print(
        runner.start_instance(
            args.process_key, args.business_key, _json(args.data), args.actor, person=_person(runner, args.actor)
        )
    )


def cmd_tasks(args, settings: Settings) -> None:
    viewer = (args.user or "", args.group or []) if args.user or args.group else None
    page = inbox.task_page(
        open_runner(settings),
        viewer=viewer,
        candidate_group=args.candidate_group,
        business_key=args.customer,
        process_key=args.process,
        limit=args.limit,
        cursor=args.cursor,
    )
    _print(page.rows)
    if page.next_cursor:
        print(f"next page: --cursor {page.next_cursor}", file=sys.stderr)


def cmd_complete(args, settings: Settings) -> None:
    runner = open_runner(settings)
    person = _person(runner, args.actor)
    runner.complete_task(args.task_id, _json(args.data), args.actor, groups=person.roles if person else None)
    print(f"completed {args.task_id}")


def cmd_correlate(args, settings: Settings) -> None:
    runner = open_runner(settings)
    for instance_id in runner.correlate(
        args.message, args.business_key, _json(args.data), args.actor, person=_person(runner, args.actor)
    ):
        print(instance_id)


def cmd_clock(args, settings: Settings) -> None:
    runner = open_runner(settings)
    if args.action == "advance":
        print(runner.advance_clock(parse_span(args.span)).isoformat())
    else:
        print(runner.now().isoformat())


def cmd_run_due(args, settings: Settings) -> None:
    runner = open_runner(settings)
    print(f"ran {runner.run_due()} timer(s)/job(s), delivered {runner.deliver_outbox()} message(s)")


def cmd_worker(args, settings: Settings) -> None:

    runner = open_runner(settings)
    with scrape.serving(runner):  # RUNNER_WORKER_METRICS: the worker's own /metrics, else nothing
        scheduler.work(runner)


def cmd_instances(args, settings: Settings) -> None:
    runner = open_runner(settings)
    if args.instance_id:
        _print(inbox.instance(runner, args.instance_id))
    else:
        page = inbox.instance_page(
            runner, business_key=args.customer, process_key=args.process, limit=args.limit, cursor=args.cursor
        )
        _print(page.rows)
        if page.next_cursor:
            print(f"next page: --cursor {page.next_cursor}", file=sys.stderr)


def _paging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=50, help="rows per page (1-200, default %(default)s)")
    p.add_argument("--cursor", help="the cursor printed after the previous page")


def cmd_history(args, settings: Settings) -> None:
    _print(inbox.history(open_runner(settings), instance_id=args.instance, business_key=args.customer))


def cmd_incidents(args, settings: Settings) -> None:
    _print(inbox.incidents(open_runner(settings), state=None if args.all else "open"))


def cmd_retry(args, settings: Settings) -> None:
    open_runner(settings).retry_incident(args.incident_id, args.actor)
    print(f"incident {args.incident_id} resolved; its work is due again")


def cmd_outbox(args, settings: Settings) -> None:

    runner = open_runner(settings)
    if args.action in ("resend", "dismiss"):
        outbox.resolve(runner, args.message_id, args.action)
        print(f"outbox message {args.message_id}: {args.action}")
    else:
        _print(inbox.outbox(runner, state=args.state))


def _password(args, settings: Settings) -> str:
    """--password, else RUNNER_USER_PASSWORD, else asked twice on a terminal, else stdin's first line.

    NOTE: never empty: a user without a password is refused here and by ``runner.service.accounts``.
    """

    if args.password:
        return args.password
    if settings.environ.get("RUNNER_USER_PASSWORD"):
        return settings.environ["RUNNER_USER_PASSWORD"]
    if not sys.stdin.isatty():  # e.g. `printf '%s\n' "$PW" | runner users add ...`, kept out of `ps`
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
        if password != getpass.getpass("again: "):
            raise SystemExit("error: the passwords differ")
    if not password:
        raise SystemExit("error: no password given (--password, RUNNER_USER_PASSWORD, the terminal or stdin)")
    return password


def cmd_users(args, settings: Settings) -> None:

    runner = open_runner(settings)
    if args.action == "list":
        for u in users.list_users(runner):
            state = "" if u["active"] else " (inactive)"
            login = "password set" if u["has_password"] else "no password"
            print(
                f"{u['username']:<20} {','.join(u['roles']):<28} {login}, {u['tokens']} token(s){state}"
                f"  {u['full_name']}"
            )
        return
    if not args.username:
        raise SystemExit(f"error: runner users {args.action} needs a USERNAME")
    if args.action == "add":
        if (
            args.if_missing
            and (existing := users.get_user(runner, args.username)) is not None
            and existing["has_password"]
        ):
            print(f"user {args.username} exists")
            return
        if not args.role:
            known = ", ".join(users.roles(runner)) or "any group"
            raise SystemExit(f"error: give at least one --role ({known})")
        users.create_user(
            runner,
            args.username,
            args.name or args.username,
            args.role,
            password=_password(args, settings),
            email=args.email,
        )
        print(f"user {args.username} added ({', '.join(args.role)})")
    elif args.action == "password":
        users.set_password(runner, args.username, _password(args, settings))
        print(f"password of {args.username} changed (their sessions are ended)")
    elif args.action == "unlock":
        if args.address:
            users.unlock_address(runner, args.address)
        state = "unlocked" if users.unlock(runner, args.username) else "had no failed sign-ins"
        print(f"{args.username} {state}{f'; address {args.address} unlocked' if args.address else ''}")
    else:  # token
        print(users.issue_token(runner, args.username, label=args.label))


def build_parser(extensions: Iterable[Extension] = ()) -> argparse.ArgumentParser:
    """The argument parser (one sub-command per operation, and those of ``extensions``)."""
    parser = argparse.ArgumentParser(prog="runner", description=__doc__)
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
    p.set_defaults(fn=cmd_db)

    p = sub.add_parser("deploy", help="deploy .bpmn/.dmn files or folders")
    p.add_argument("paths", nargs="+")
    p.add_argument("--actor", default="cli")
    p.set_defaults(fn=cmd_deploy)

    p = sub.add_parser("start", help="start an instance of the latest version")
    p.add_argument("process_key")
    p.add_argument("--business-key", "--customer", dest="business_key")
    p.add_argument("--data")
    p.add_argument(
        "--actor",
        default="cli",
        help="who does it (default: %(default)s); a staff member's username applies their permissions",
    )
    p.set_defaults(fn=cmd_start)

    p = sub.add_parser("tasks", help="open user tasks, a page at a time (earliest due first)")
    p.add_argument("--user", help="only tasks this user may work on (theirs, or offered to them)")
    p.add_argument("--group", action="append", help="the user's groups (repeat); alone: tasks offered to them")
    p.add_argument("--candidate-group", help="only tasks offered to this group")
    p.add_argument("--customer")
    p.add_argument("--process")
    _paging(p)
    p.set_defaults(fn=cmd_tasks)

    p = sub.add_parser("complete", help="complete a user task")
    p.add_argument("task_id")
    p.add_argument("--data")
    p.add_argument(
        "--actor",
        default="cli",
        help="who does it (default: %(default)s); a staff member's username applies their permissions",
    )
    p.set_defaults(fn=cmd_complete)

    p = sub.add_parser("correlate", help="deliver a message by business key")
    p.add_argument("message")
    p.add_argument("--business-key", "--customer", dest="business_key")
    p.add_argument("--data")
    p.add_argument(
        "--actor",
        default="cli",
        help="who does it (default: %(default)s); a staff member's username applies their permissions",
    )
    p.set_defaults(fn=cmd_correlate)

    p = sub.add_parser("clock", help="show or advance the virtual clock (RUNNER_CLOCK=virtual)")
    p.add_argument("action", choices=["show", "advance"], nargs="?", default="show")
    p.add_argument("span", nargs="?", default="0s", help="e.g. 3d, 1h30m, 2w, PT30M")
    p.set_defaults(fn=cmd_clock)

    sub.add_parser("run-due", help="fire due timers, run due jobs, deliver the outbox once").set_defaults(
        fn=cmd_run_due
    )
    sub.add_parser("worker", help="run the scheduler/worker loop").set_defaults(fn=cmd_worker)

    p = sub.add_parser("instances", help="instances, or one instance")
    p.add_argument("instance_id", nargs="?")
    p.add_argument("--customer")
    p.add_argument("--process")
    _paging(p)
    p.set_defaults(fn=cmd_instances)

    p = sub.add_parser("history", help="history per instance or customer")
    p.add_argument("--instance")
    p.add_argument("--customer")
    p.set_defaults(fn=cmd_history)

    p = sub.add_parser("incidents", help="open incidents")
    p.add_argument("--all", action="store_true")
    p.set_defaults(fn=cmd_incidents)

    p = sub.add_parser("retry", help="retry an incident's job or timer")
    p.add_argument("incident_id", type=int)
    p.add_argument("--actor", default="cli")
    p.set_defaults(fn=cmd_retry)

    p = sub.add_parser("outbox", help="list outbox messages, or resend/dismiss one")
    p.add_argument("action", choices=["list", "resend", "dismiss"], nargs="?", default="list")
    p.add_argument("message_id", type=int, nargs="?")
    p.add_argument("--state")
    p.set_defaults(fn=cmd_outbox)

    p = sub.add_parser("users", help="web users: add, list, set a password, unlock, print a new API token")
    p.add_argument("action", choices=["add", "list", "password", "unlock", "token"])
    p.add_argument("username", nargs="?")
    p.add_argument("--name", help="full name (add)")
    p.add_argument("--role", action="append", help="a role, repeatable (add)")
    p.add_argument("--email")
    p.add_argument(
        "--password", help="else RUNNER_USER_PASSWORD, else asked twice on the terminal, else the first line of stdin"
    )
    p.add_argument("--address", help="unlock: also lift the slow-down of this client address")
    p.add_argument("--label", default="cli", help="what the token is for (token)")
    p.add_argument("--if-missing", action="store_true", help="add: do nothing when the user can sign in")
    p.set_defaults(fn=cmd_users)
    combined(extensions).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``runner`` command."""
    try:
        settings = Settings.from_env()  # NOTE: read once; the extensions read their own settings from it
        installed = extension.discover(settings)
    except RunnerError as exc:  # e.g. a malformed setting, the core's or an extension's
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    args = build_parser(installed).parse_args(argv)
    logs.configure(settings, verbose=args.verbose)  # RUNNER_LOG_FORMAT: text or json lines
    try:
        args.fn(args, settings)
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


def _one_line(text: str, limit: int = 500) -> str:
    """An error message as one line of at most ``limit`` characters (a 300-character value stays readable)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
