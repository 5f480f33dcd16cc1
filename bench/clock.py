"""The virtual clock: a week of the demo company, 30 days through the API, and the CLI's start-up.

    python -m bench.clock                              # this checkout only
    python -m bench.clock --baseline ../main           # old (a checkout of main) and new, interleaved
    python -m bench.clock --repeats 1 --api-days 7     # a quick run
    python -m bench.clock --demo var/runner.db         # copy a demo company instead of building one
    python -m bench.clock --at 2027-02-05T16:00        # start on the eve of Tết (business time)

The demo company (``runner demo``: 40 customers over four months) is built once on a SQLite
file in a temporary folder; every measurement starts from a copy of it. The company is the same on
every run: ``--at`` (default Monday 2026-12-07 09:00, business time) is where the measured runs
start; the demo is loaded on the virtual clock so that its "now" (a Thursday 16:30) is the last
one at or before ``--at`` (``--settle`` days or more before it), and the clock is then moved on to
``--at`` (not timed). Without it the
company would follow today's date and hour, and so would the figures. Each side runs in a
subprocess of its own checkout (its own Python when it has a ``.venv``), old and new
alternating which goes first, so a loaded machine weighs on both alike. Figures:

- ``advance_week``: ``Runner.advance_clock(7 days)`` on the demo copy, timed inside the process;
- ``api_30d_request`` / ``api_30d_done``: ``POST /api/clock/advance`` for 30 days through the
  Flask test client (the app's default executor: a thread of the same process), the time the
  request took and the time until the run was done (polled every 0.5 s, as a client would; the old code answers
  when it is done);
- ``cli_clock_show`` / ``cli_help``: wall time of ``runner clock show`` / ``runner --help``.

Each line is ``name: median (min–max lo–hi, IQR iqr, n N)`` in seconds (``bench.harness``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from datetime import time as clock_time
from pathlib import Path

from sqlalchemy import create_engine, insert

from bench import harness
from runner.crm import demo
from runner.crm.extension import easyedu
from runner.registry import installed
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db
from runner.store.models import ClockRow

ROOT = Path(__file__).resolve().parents[1]  # the checkout
START = "2026-12-07T09:00"  # a Monday morning, business time: the default --at

# Run inside each side's checkout: only names both the old and the new code have.
ADVANCE = """
import sys, time
from datetime import timedelta
from runner.cli import main  # noqa: F401 - the old code keeps open_runner here
try:
    from runner.commands import open_runner
except ImportError:
    from runner.cli import open_runner
from runner.settings import Settings
runner = open_runner(Settings.from_env())
started = time.perf_counter()
runner.advance_clock(timedelta(days=float(sys.argv[1])))
print(time.perf_counter() - started)
"""
API = """
import sys, time
from runner.service import accounts
from runner.settings import Settings
from web import create_app
settings = Settings.from_env()
app = create_app({"SECRET_KEY": "bench", "RUNNER_SETTINGS": settings})
client = app.test_client()
with app.app_context():
    from web.extensions import get_runner
    token = accounts.issue_token(get_runner(), "admin", label="bench")
auth = {"Authorization": f"Bearer {token}"}
started = time.perf_counter()
answer = client.post("/api/clock/advance", json={"seconds": int(float(sys.argv[1]) * 86400)}, headers=auth)
requested = time.perf_counter() - started
assert answer.status_code in (200, 202), answer.get_data(as_text=True)
if answer.status_code == 202:
    while (run := client.get(answer.headers["Location"], headers=auth).get_json())["state"] in ("queued", "running"):
        time.sleep(0.5)
    assert run["state"] == "done", run
print(requested, time.perf_counter() - started)
"""
CLI = "import sys\nfrom runner.cli import main\nsys.exit(main(sys.argv[1:]))"


@dataclass(frozen=True)
class Side:
    """One version of the code: its checkout and the Python that runs it."""

    name: str
    root: Path

    @property
    def python(self) -> str:
        own = self.root / ".venv" / "bin" / "python"
        return str(own) if own.exists() else sys.executable

    def run(self, script: str, args: list[str], env: dict[str, str]) -> str:
        """Run ``script`` in this checkout; its stdout."""
        env = {**env, "PYTHONPATH": str(self.root)}
        done = subprocess.run(
            [self.python, "-c", script, *args], cwd=self.root, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: {done.stderr.strip()[-2000:]}")
        return done.stdout


def load_moment(start: datetime, tz: tzinfo, settle: int = 0) -> datetime:
    """When to load the demo so that its "now" is the last Thursday 16:30 ``settle`` days or more before ``start``."""
    local = start.astimezone(tz) - timedelta(days=settle)
    day = local.date()
    while day.weekday() != demo.END_WEEKDAY or datetime.combine(day, demo.END_TIME, tz) > local:
        day -= timedelta(days=1)
    span = max(plan.ago for plan in demo.PLANS) + 4  # NOTE: as demo.end_moment counts it (checked below)
    load = datetime.combine(day - timedelta(days=span), clock_time(9, 0), tz)
    if demo.end_moment(load, tz).date() != day:
        raise RuntimeError(f"the demo loaded at {load} would not end on {day}: see demo.end_moment")
    return load


def build_demo(folder: Path, start: datetime, settle: int = 0) -> Path:
    """The demo company on a SQLite file in ``folder``, its virtual clock at ``start``; its path."""
    path = folder / "demo.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    settings = Settings.from_env({"RUNNER_INSTANCE_PATH": str(folder)}, database_url=url, clock="virtual")
    engine = create_engine(url)
    with engine.begin() as conn:  # NOTE: the runner takes the persisted virtual clock as it finds it
        conn.execute(insert(ClockRow).values(name="virtual", now=load_moment(start, settings.tz, settle)))
    engine.dispose()
    runner = Runner(settings, installed(settings=settings), extensions=(easyedu(settings),))
    runner.deploy([ROOT / "processes"])
    with contextlib.redirect_stdout(io.StringIO()):
        demo.run(runner, env={"DEMO_PASSWORD": "bench-password", "DEMO_ADMIN_PASSWORD": "bench-password"})
    print(f"demo_now: {runner.now().astimezone(settings.tz):%a %Y-%m-%d %H:%M}")
    if start > runner.now():
        runner.advance_clock(start - runner.now())
    print(f"start: {runner.now().astimezone(settings.tz):%a %Y-%m-%d %H:%M}")
    runner.db.engine.dispose()
    return path


def start_moment(text: str, tz: tzinfo) -> datetime:
    """``--at``: an ISO date and time, business time unless it names its offset."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def environment(folder: Path, database: Path, window: str | None = None) -> dict[str, str]:
    """The environment of one measured process (the virtual clock on a copy of the demo).

    ``window``: its RUNNER_SENDING_WINDOW (None: unset, so the default 08:00-20:00).
    """
    keep = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    return {
        **keep,
        **({"RUNNER_SENDING_WINDOW": window} if window is not None else {}),
        "RUNNER_DATABASE_URL": f"sqlite:///{database}",
        "RUNNER_CLOCK": "virtual",
        "RUNNER_INSTANCE_PATH": str(folder),
        "RUNNER_SECRET_KEY": "bench",
    }


def label(moment: datetime, tz: tzinfo) -> str:
    """A start moment in a figure's name: ``Mon20261207T0900``."""
    return f"{moment.astimezone(tz):%a%Y%m%dT%H%M}"


def companies(args: argparse.Namespace, folder: Path) -> dict[str, Path]:
    """The demo company of each start moment (or the one given by ``--demo``), by label."""
    if args.demo:
        base = folder / "demo.db"
        shutil.copyfile(args.demo, base)
        db.upgrade(f"sqlite:///{base}")
        return {"demo": base}
    tz = Settings.from_env({}).tz
    found = {}
    for text in args.at or [START]:
        moment = start_moment(text, tz)
        started = time.perf_counter()
        own = folder / label(moment, tz)
        own.mkdir()
        found[label(moment, tz)] = build_demo(own, moment, args.settle)
        print(f"demo_build_{label(moment, tz)}_s: {time.perf_counter() - started:.1f}")
    return found


def main(argv: list[str] | None = None) -> None:
    """Build the demo once per start moment, then measure every figure for each side and moment, interleaved."""
    parser = argparse.ArgumentParser(prog="python -m bench.clock", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of the old code (e.g. main) to compare with")
    parser.add_argument("--repeats", type=int, default=3, help="advance repeats per side (default 3)")
    parser.add_argument("--days", type=float, default=7, help="the demo advance (default 7 days)")
    parser.add_argument("--api-days", type=float, default=30, help="the advance through the API (default 30)")
    parser.add_argument("--api-repeats", type=int, default=1, help="API repeats per side (default 1)")
    parser.add_argument("--cli-repeats", type=int, default=9, help="CLI start-ups per side (default 9)")
    parser.add_argument("--sending-window", help="RUNNER_SENDING_WINDOW of the measured runs (e.g. off)")
    parser.add_argument("--demo", type=Path, help="a SQLite file of the demo company to copy instead of building one")
    parser.add_argument(
        "--at",
        action="append",
        help=f"where the measured runs start, business time (default {START}); repeat it to interleave several",
    )
    parser.add_argument(
        "--settle", type=int, default=0, help="days at least between the demo's now and --at (default 0), moved untimed"
    )
    args = parser.parse_args(argv)
    sides = [Side("new", ROOT)] + ([Side("old", args.baseline.resolve())] if args.baseline else [])
    with tempfile.TemporaryDirectory(prefix="bench-clock-") as tmp:
        measure(args, sides, Path(tmp), companies(args, Path(tmp)))


def measure(args: argparse.Namespace, sides: list[Side], folder: Path, bases: dict[str, Path]) -> None:
    """Every figure, for each side on each company, interleaved; one line per figure, side and company."""
    runs = {(side, name): base for side in sides for name, base in bases.items()}

    def key(side: Side, name: str) -> str:
        return side.name if len(bases) == 1 else f"{name}_{side.name}"

    def fresh(side: Side, name: str) -> dict[str, str]:
        copy = folder / f"{key(side, name)}.db"
        shutil.copyfile(runs[side, name], copy)
        return environment(folder, copy, args.sending_window)

    requests: dict[str, list[float]] = {key(*run): [] for run in runs}

    def advance(side: Side, name: str) -> harness.Variant:
        return lambda: float(side.run(ADVANCE, [str(args.days)], fresh(side, name)))

    def api(side: Side, name: str) -> harness.Variant:
        def variant() -> float:
            requested, done = (float(x) for x in side.run(API, [str(args.api_days)], fresh(side, name)).split())
            requests[key(side, name)].append(requested)
            return done

        return variant

    def cli(side: Side, name: str, words: list[str]) -> harness.Variant:
        def variant() -> float:
            env = environment(folder, runs[side, name], args.sending_window)
            started = time.perf_counter()
            side.run(CLI, words, env)
            return time.perf_counter() - started

        return variant

    first = next(iter(bases))  # NOTE: start-up does not depend on the company: measured on one
    plan = (
        (f"advance_{args.days:g}d_demo_sqlite", args.repeats, 0, list(runs), advance),
        (f"api_{args.api_days:g}d_demo_sqlite_done", args.api_repeats, 0, list(runs), api),
        ("cli_clock_show", args.cli_repeats, 1, [(s, first) for s in sides], lambda s, n: cli(s, n, ["clock", "show"])),
        ("cli_help", args.cli_repeats, 1, [(s, first) for s in sides], lambda s, n: cli(s, n, ["--help"])),
    )
    for figure, rounds, warmup, which, variant in plan:
        samples = harness.interleave({key(*run): variant(*run) for run in which}, rounds, warmup=warmup)
        for run in which:
            print(harness.line(f"{figure}_{key(*run)}_s", harness.Summary.of(samples[key(*run)])))
        if len(sides) == 2:
            for name in dict.fromkeys(name for _, name in which):
                ratio = harness.paired_ratios(samples[key(sides[0], name)], samples[key(sides[1], name)])
                print(harness.line(f"{figure}_{key(sides[0], name)}_to_old", ratio))
        if figure.startswith("api_"):
            for run in which:
                summary = harness.Summary.of(requests[key(*run)])
                print(harness.line(f"api_{args.api_days:g}d_demo_sqlite_request_{key(*run)}_s", summary))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
