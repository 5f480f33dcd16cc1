"""The virtual clock: a week of the demo company, 30 days through the API, and the CLI's start-up.

    python -m bench.clock                              # this checkout only
    python -m bench.clock --baseline ../main           # old (a checkout of main) and new, interleaved
    python -m bench.clock --repeats 1 --api-days 7     # a quick run
    python -m bench.clock --demo var/runner.db         # copy a demo company instead of building one

The demo company (``runner demo``: 40 customers over four months) is built once on a SQLite
file in a temporary folder; every measurement starts from a copy of it. Each side runs in a
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
from pathlib import Path

from bench import harness
from runner.crm import demo
from runner.crm.extension import easyedu
from runner.registry import installed
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db

ROOT = Path(__file__).resolve().parents[1]  # the checkout

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


def build_demo(folder: Path) -> Path:
    """The demo company on a SQLite file in ``folder``; its path."""
    path = folder / "demo.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    settings = Settings.from_env({"RUNNER_INSTANCE_PATH": str(folder)}, database_url=url, clock="virtual")
    runner = Runner(settings, installed(settings=settings), extensions=(easyedu(settings),))
    runner.deploy([ROOT / "processes"])
    with contextlib.redirect_stdout(io.StringIO()):
        demo.run(runner, env={"DEMO_PASSWORD": "bench-password", "DEMO_ADMIN_PASSWORD": "bench-password"})
    runner.db.engine.dispose()
    return path


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


def main(argv: list[str] | None = None) -> None:
    """Build the demo once, then measure every figure for each side, interleaved."""
    parser = argparse.ArgumentParser(prog="python -m bench.clock", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of the old code (e.g. main) to compare with")
    parser.add_argument("--repeats", type=int, default=3, help="advance repeats per side (default 3)")
    parser.add_argument("--days", type=float, default=7, help="the demo advance (default 7 days)")
    parser.add_argument("--api-days", type=float, default=30, help="the advance through the API (default 30)")
    parser.add_argument("--api-repeats", type=int, default=1, help="API repeats per side (default 1)")
    parser.add_argument("--cli-repeats", type=int, default=9, help="CLI start-ups per side (default 9)")
    parser.add_argument("--sending-window", help="RUNNER_SENDING_WINDOW of the measured runs (e.g. off)")
    parser.add_argument("--demo", type=Path, help="a SQLite file of the demo company to copy instead of building one")
    args = parser.parse_args(argv)
    sides = [Side("new", ROOT)] + ([Side("old", args.baseline.resolve())] if args.baseline else [])
    with tempfile.TemporaryDirectory(prefix="bench-clock-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        if args.demo:
            base = folder / "demo.db"
            shutil.copyfile(args.demo, base)
            db.upgrade(f"sqlite:///{base}")
        else:
            base = build_demo(folder)
            print(f"demo_build_s: {time.perf_counter() - started:.1f}")

        def fresh(side: Side) -> dict[str, str]:
            copy = folder / f"{side.name}.db"
            shutil.copyfile(base, copy)
            return environment(folder, copy, args.sending_window)

        requests: dict[str, list[float]] = {side.name: [] for side in sides}

        def advance(side: Side) -> harness.Variant:
            return lambda: float(side.run(ADVANCE, [str(args.days)], fresh(side)))

        def api(side: Side) -> harness.Variant:
            def variant() -> float:
                requested, done = (float(x) for x in side.run(API, [str(args.api_days)], fresh(side)).split())
                requests[side.name].append(requested)
                return done

            return variant

        def cli(side: Side, words: list[str]) -> harness.Variant:
            def variant() -> float:
                env = environment(folder, base, args.sending_window)
                started = time.perf_counter()
                side.run(CLI, words, env)
                return time.perf_counter() - started

            return variant

        plan = (
            (f"advance_{args.days:g}d_demo_sqlite", args.repeats, 0, advance),
            (f"api_{args.api_days:g}d_demo_sqlite_done", args.api_repeats, 0, api),
            ("cli_clock_show", args.cli_repeats, 1, lambda side: cli(side, ["clock", "show"])),
            ("cli_help", args.cli_repeats, 1, lambda side: cli(side, ["--help"])),
        )
        for name, rounds, warmup, variant in plan:
            samples = harness.interleave({side.name: variant(side) for side in sides}, rounds, warmup=warmup)
            for side in sides:
                print(harness.line(f"{name}_{side.name}_s", harness.Summary.of(samples[side.name])))
            if "old" in samples and len(sides) == 2:
                ratio = harness.paired_ratios(samples["new"], samples["old"])
                print(harness.line(f"{name}_new_to_old", ratio))
            if name.startswith("api_"):
                for side in sides:
                    summary = harness.Summary.of(requests[side.name])
                    print(harness.line(f"api_{args.api_days:g}d_demo_sqlite_request_{side.name}_s", summary))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
