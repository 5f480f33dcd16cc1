"""Task lists and the instance list at growing sizes: a page should cost the same at 1k and 500k open tasks.

    python -m bench.reads_tasks --sizes 1000,10000,100000 --db both --repeats 7

For each database and size it builds N open tasks (``bench.task_rows``: bulk SQL), then times the
first page and a deep page (the 20th, through its cursor) of every list: the web inbox pages through
Flask's test client (signed in), the REST API (bearer token), and the functions the CLI calls.
Repeats are interleaved (``bench.harness``, shuffled per round) across databases, sizes and lists, so
a noisy machine slows all of them alike; each line is the median in milliseconds with its spread.
"""

from __future__ import annotations

import argparse
import functools
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import harness, task_rows
from runner import extension, registry
from runner.extension import combined
from runner.queries import tasklists as inbox
from runner.service import accounts, tokens
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from web import create_app

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "bench-password-1"
DEEP = 20  # the deep page: the 20th
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@contextmanager
def _database(kind: str, pg_url: str, folder: Path) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / f'{uuid.uuid4().hex[:8]}.db'}"
        db.upgrade(url)
        yield url
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    url = sa.make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    try:
        db.upgrade(rendered)
        yield rendered
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


class Site:
    """One database of ``size`` open tasks, with its runner, web app, signed-in clients and API token."""

    def __init__(self, url: str, size: int):
        settings = Settings.from_env({}, database_url=url, clock="virtual")
        self.runner = Runner(settings, registry.installed(settings=settings), extensions=extension.discover(settings))
        roles = [r for r in combined(self.runner.extensions).roles if r not in ("admin", "team_leader")] or ["g"]
        self.groups = roles
        task_rows.fill(self.runner.db.engine, size, groups=roles)
        accounts.create_user(self.runner, "u0", "U0", [roles[0]], password=PASSWORD)
        accounts.create_user(self.runner, "member", "Member", roles[1:3] or roles[:1], password=PASSWORD)
        accounts.create_user(self.runner, "boss", "Boss", ["admin"], password=PASSWORD)
        self.token = tokens.issue_token(self.runner, "boss", label="bench")
        self.app = create_app({"TESTING": True, "SECRET_KEY": "bench", "RUNNER": self.runner})
        self.clients = {name: self._signed_in(name) for name in ("u0", "member", "boss")}

    def _signed_in(self, username: str):
        client = self.app.test_client()
        page = client.get("/login").get_data(as_text=True)
        found = _CSRF.search(page)
        data = {"username": username, "password": PASSWORD, "csrf_token": found.group(1) if found else ""}
        answer = client.post("/login", data=data)
        if answer.status_code not in (302, 303):
            raise SystemExit(f"bench: cannot sign in as {username} ({answer.status_code})")
        return client

    def lists(self) -> dict[str, Callable[[str | None], str | None]]:
        """Each list: read one page at a cursor (None: the first), return the next page's cursor."""
        member_roles = self.groups[1:3] or self.groups[:1]

        def web(user: str, path: str) -> Callable[[str | None], str | None]:
            def read(cursor: str | None) -> str | None:
                answer = self.clients[user].get(path, query_string={"cursor": cursor} if cursor else None)
                assert answer.status_code == 200, (path, answer.status_code)
                found = re.search(r'href="[^"]*cursor=([^"&]+)[^"]*" rel="next"', answer.get_data(as_text=True))
                return found.group(1) if found else None

            return read

        def api(path: str, **params: str) -> Callable[[str | None], str | None]:
            auth = {"Authorization": f"Bearer {self.token}"}

            def read(cursor: str | None) -> str | None:
                query = {**params, **({"cursor": cursor} if cursor else {})}
                answer = self.clients["boss"].get(path, query_string=query, headers=auth)
                assert answer.status_code == 200, (path, answer.status_code, answer.get_data(as_text=True)[:200])
                return answer.get_json()["next_cursor"]

            return read

        def cli(call: Callable[..., Any]) -> Callable[[str | None], str | None]:
            return lambda cursor: call(cursor=cursor).next_cursor

        return {
            "web_mine": web("u0", "/inbox/"),
            "web_group": web("member", "/inbox/group"),
            "web_all": web("boss", "/inbox/all"),
            "api_tasks_group": api("/api/tasks", candidate_group=self.groups[0]),
            "api_instances": api("/api/instances"),
            "cli_tasks_group": cli(lambda **kw: inbox.task_page(self.runner, viewer=("member", member_roles), **kw)),
            "cli_instances": cli(lambda **kw: inbox.instance_page(self.runner, **kw)),
        }


def _deep_cursor(read: Callable[[str | None], str | None]) -> str | None:
    cursor = None
    for _ in range(DEEP - 1):
        cursor = read(cursor)
        if cursor is None:
            return None
    return cursor


def run(kinds: list[str], sizes: list[int], repeats: int, pg_url: str) -> dict[str, list[float]]:
    """Timings in ms by figure name, the repeats interleaved (shuffled) over databases, sizes and lists."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-reads-")))
        variants: dict[str, harness.Variant] = {}
        for kind in kinds:
            for size in sizes:
                url = stack.enter_context(_database(kind, pg_url, folder))
                started = time.perf_counter()
                site = Site(url, size)
                stack.callback(site.runner.db.engine.dispose)
                print(f"# built {kind} n={size} in {time.perf_counter() - started:.1f} s", flush=True)
                for name, read in site.lists().items():
                    variants[f"{kind}_n{size}_{name}_first"] = harness.timed(functools.partial(read, None))
                    deep = _deep_cursor(read)
                    if deep is not None:
                        variants[f"{kind}_n{size}_{name}_deep"] = harness.timed(functools.partial(read, deep))
        return harness.interleave(variants, repeats, shuffle=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reads_tasks", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="open tasks per database, comma-separated")
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.sizes.split(",") if part.strip()]
    if not sizes or min(sizes) < 1 or args.repeats < 1:
        parser.error("--sizes needs positive numbers and --repeats at least 1")
    kinds = {"sqlite": ["sqlite"], "pg": ["postgresql"], "both": ["sqlite", "postgresql"]}[args.db]
    for text in harness.report(run(kinds, sizes, args.repeats, args.pg_url), unit="ms", digits=2):
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
