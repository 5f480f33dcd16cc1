"""What each ``runner`` command does (``runner.cli`` parses the arguments and imports this module
only for a command that needs the whole runner)."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import date, datetime
from typing import Any

from runner import extension, registry, scrape
from runner import instance_folder as instance
from runner.clock import parse_span
from runner.errors import BadValue
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
        for warning in (*item.warnings, *item.people):
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
    """``runner clock advance SPAN``: a clock run executed here, one progress line per saved step."""
    runner = open_runner(settings)
    if args.action != "advance":
        print(runner.now().isoformat())
        return

    def progress(run: dict[str, Any]) -> None:
        print(f"… {run['reached'].isoformat()} ({run['progress']:.0%}, {run['fired']} fired)", file=sys.stderr)

    print(runner.advance_clock(parse_span(args.span), "cli", progress).isoformat())


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


def _facts(runner: Runner, args) -> dict[str, Any]:
    """The facts about the person given as options (``--phone``...): only those given ("" clears one)."""
    given = {f.name: getattr(args, f.name, None) for f in runner.extensions.person_fields}
    return {name: value for name, value in given.items() if value is not None}


def _edit_user(runner: Runner, args) -> None:
    """``runner users edit NAME --name/--email/--phone...``: change only what is given."""
    changes: dict[str, Any] = {"facts": _facts(runner, args)}
    if args.name is not None:
        changes["full_name"] = args.name
    if args.email is not None:
        changes["email"] = args.email
    if not changes["facts"] and len(changes) == 1:
        options = ", ".join(["--name", "--email", *(f.option for f in runner.extensions.person_fields)])
        raise BadValue(f"runner users edit needs something to change ({options})")
    found = users.update_user(runner, args.username, **changes)
    shown = {k: v for k, v in found.items() if k in ("full_name", "email", *users.person_fields(runner))}
    print(f"user {args.username}: " + ", ".join(f"{k}={v or '—'}" for k, v in shown.items()))


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
            facts=_facts(runner, args),
        )
        print(f"user {args.username} added ({', '.join(args.role)})")
    elif args.action == "edit":
        _edit_user(runner, args)
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
