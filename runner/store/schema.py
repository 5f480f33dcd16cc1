"""Schema migrations (Alembic), run from the CLI, ``make run`` and the tests.

The history has one branch per owner of tables: ``core`` (the runner's own tables, in
``runner/store/migrations/versions``) and one per installed extension, found through the
entry-point group ``bpmn_runner.schema`` (each names a ``Branch``; EasyEdu's CRM is ``crm``).

    schema.upgrade(url)                      # every installed branch: what the product runs
    schema.upgrade(url, branches=("core",))  # the runner's tables only, no extension's
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
GROUP = "bpmn_runner.schema"


@dataclass(frozen=True)
class Branch:
    """One Alembic branch: its label, its versions folder and the modules that define its tables."""

    label: str
    versions: Path
    models: tuple[str, ...]


CORE = Branch("core", MIGRATIONS / "versions", ("runner.store.models",))


def installed() -> dict[str, Branch]:
    """The core branch and every extension's, by label."""
    found = {CORE.label: CORE}
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        branch = point.load()
        if not isinstance(branch, Branch):
            raise TypeError(f"entry point {point.name} ({point.value}) is {branch!r}, not a Branch")
        found[branch.label] = branch
    return found


def branches_of(labels: Iterable[str] | None = None) -> list[Branch]:
    """The branches called ``labels`` (None: every installed one), the core always first."""
    known = installed()
    wanted = list(known) if labels is None else [CORE.label, *(x for x in labels if x != CORE.label)]
    missing = [x for x in wanted if x not in known]
    if missing:
        raise LookupError(f"schema branches {missing} are not installed; known: {', '.join(known)}")
    return [known[x] for x in wanted]


def alembic_config(url: str, branches: Iterable[str] | None = None) -> Config:
    """An Alembic config for the migrations of ``branches`` (None: every installed one) against ``url``."""
    chosen = branches_of(branches)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(b.versions) for b in chosen))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["models"] = [m for b in chosen for m in b.models]
    return config


def upgrade(url: str, branches: Iterable[str] | None = None) -> None:
    """Bring the database at ``url`` to the newest schema of ``branches`` (None: every installed one)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url, branches), "heads")
