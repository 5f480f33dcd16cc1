"""EasyEdu's CRM as an extension of the runner (``runner.extension``).

``easyedu(settings)`` is what the entry point ``bpmn_runner.extensions: easyedu`` names: it
reads the CRM's own settings from the core settings' environment, and the runner then
delivers the ``zalo`` and ``email`` channels, scopes business keys to the customers a staff
member may see, shows customer names next to tasks, gives users EasyEdu's roles (``ROLES``),
offers the configured lists of seed 003 to enum form fields (``runner.crm.option_lists``),
and has a ``runner demo`` command.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runner.commands import open_runner
from runner.crm import contacts, demo, import_cli, lead_keys, option_lists, transports, views
from runner.crm.models import ROLES, Customer
from runner.crm.scope import MESSAGE_SENDERS, CustomerScope
from runner.crm.settings import NAME, CrmSettings
from runner.extension import Extension

if TYPE_CHECKING:
    from runner.settings import Settings

_CHUNK = 500  # keys per IN (...) list: far below every backend's limit on bound parameters
PAGE_MAX = 200  # customers per page of ``runner customers`` at most


def easyedu(settings: Settings | None = None, crm: CrmSettings | None = None) -> Extension:
    """The CRM extension with its settings ``crm``, by default read from ``settings.environ`` (none: the defaults)."""
    if crm is None:
        crm = CrmSettings.from_env(settings.environ if settings is not None else {})
    return Extension(
        name=NAME,
        transports={
            "zalo": lambda _settings: transports.zalo_transport(crm),
            "email": lambda _settings: transports.email_transport(crm),
        },
        scope=CustomerScope(),
        message_senders=MESSAGE_SENDERS,
        labels=customer_names,
        commands=_commands,
        roles=ROLES,
        people=contacts.person_facts(crm.templates),
        option_lists=option_lists.LISTS,
        config=crm,
    )


def customer_names(s: Session, keys: Collection[str]) -> Mapping[str, str]:
    """The name of each customer among the business keys ``keys``."""
    wanted = sorted(keys)
    names: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        names.update(
            (key, name) for key, name in s.execute(select(Customer.id, Customer.name).where(Customer.id.in_(chunk)))
        )
    return names


def _commands(sub: Any) -> None:
    """``runner demo``, ``runner customers`` and ``runner lead-keys``."""
    sub.add_parser(
        "demo", help="load the demo company (staff, logins, 40 customers) on the virtual clock"
    ).set_defaults(fn=_cmd_demo)
    p = sub.add_parser("customers", help="customers by name, phone, code or tag, a page at a time")
    p.add_argument("text", nargs="?", default="", help="part of the name (accents ignored) or phone, a code, a tag")
    p.add_argument("--tag", help="only customers with this tag")
    p.add_argument("--after", help="the previous page's next (keyset paging)")
    p.add_argument("--limit", type=_page_size, default=50, help=f"customers per page, 1-{PAGE_MAX} (default: 50)")
    p.set_defaults(fn=_cmd_customers)
    p = sub.add_parser("lead-keys", help="keys of website forms (POST /api/leads): add (shown once), list, revoke")
    p.add_argument("action", choices=["add", "list", "revoke"])
    p.add_argument("target", nargs="?", help="add: the customer source (seed 003), revoke: the key's id")
    p.add_argument("--label", help="what the key is for, e.g. the landing page (add)")
    p.add_argument("--origin", action="append", default=[], help="a web origin allowed to post, repeatable (add)")
    p.add_argument("--per-minute", type=int, default=lead_keys.PER_MINUTE, help="posts a minute at most (add)")
    p.set_defaults(fn=_cmd_lead_keys)
    import_cli.add_command(sub)


def _page_size(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= PAGE_MAX:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {PAGE_MAX}, not {value!r}")
    return int(value)


def _cmd_customers(args: Any, settings: Settings) -> None:
    """Print a page of customers and the ``--after`` of the next one as JSON."""
    runner = open_runner(settings)
    rows = views.find_customers(runner, args.text, tag=args.tag, limit=args.limit + 1, after=args.after)
    page = {"customers": rows[: args.limit], "next": rows[args.limit - 1]["id"] if len(rows) > args.limit else None}
    print(json.dumps(page, ensure_ascii=False, indent=2))


def _cmd_lead_keys(args: Any, settings: Settings) -> None:
    """Add a key (its secret printed once), list the keys (never a secret), or revoke one."""
    runner = open_runner(settings)
    if args.action == "list":
        for k in lead_keys.list_keys(runner):
            state = f"revoked {k['revoked_at']:%Y-%m-%d}" if k["revoked_at"] else "live"
            used = f"{k['last_used_at']:%Y-%m-%d %H:%M}" if k["last_used_at"] else "never used"
            print(f"{k['id']:>4} {k['prefix']}… {k['source']:<20} {state:<18} {used:<17} {k['label']}")
        return
    if not args.target:
        raise SystemExit(f"error: runner lead-keys {args.action} needs a {'SOURCE' if args.action == 'add' else 'ID'}")
    if args.action == "revoke":
        if not args.target.isdigit():
            raise SystemExit(f"error: {args.target!r} is no key id (runner lead-keys list)")
        lead_keys.revoke_key(runner, int(args.target))
        print(f"lead key {args.target} revoked")
        return
    _key_id, secret = lead_keys.create_key(
        runner, args.target, args.label or "", origins=args.origin, per_minute=args.per_minute, actor="cli"
    )
    print(secret)


def _cmd_demo(args: Any, settings: Settings) -> None:
    demo.run(open_runner(settings))
