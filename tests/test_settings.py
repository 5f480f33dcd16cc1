"""Settings: read once from the environment into one frozen object; data paths from the instance folder."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from runner import extension
from runner.queries import tasklists
from runner.registry import HandlerContext, Registry
from runner.service.runtime import Runner
from runner.settings import Settings

CHECKOUT = Path(__file__).resolve().parents[1]
SERVICE = CHECKOUT / "tests" / "bpmn" / "jobs" / "service.bpmn"
ENVIRONMENT_READS = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _environment_reads(path: Path) -> list[str]:
    """Every ``os.environ``/``os.getenv`` (or ``from os import environ``) in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_READS:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{path.relative_to(CHECKOUT)}:{node.lineno} os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [
                f"{path.relative_to(CHECKOUT)}:{node.lineno} {a.name}"
                for a in node.names
                if a.name in ENVIRONMENT_READS
            ]
    return found


def test_only_the_settings_module_reads_the_environment() -> None:
    sources = [p for folder in ("runner", "web", "handlers") for p in sorted((CHECKOUT / folder).rglob("*.py"))]
    # Extensions (the CRM's Zalo, SMTP and template settings) read ``settings.environ``, the mapping they are given.
    allowed = CHECKOUT / "runner" / "settings.py"
    assert _environment_reads(allowed)  # the scan finds what it looks for
    assert [read for p in sources if p != allowed for read in _environment_reads(p)] == []


def test_the_crm_reads_its_settings_from_the_core_settings_environment() -> None:
    """The extension entry point gets the core ``Settings``; the CRM's settings come from its ``environ``."""
    settings = Settings.from_env({"RUNNER_TRANSPORTS": "zalo=zalo_oa", "RUNNER_TEMPLATES": "elsewhere"})
    (crm,) = extension.discover(settings)
    assert crm.config.transport_for("zalo") == "zalo_oa" and crm.config.templates == "elsewhere"
    assert extension.discover(Settings.from_env({}))[0].config.transport_for("zalo") == "log"


def test_data_paths_hang_on_the_instance_folder_not_on_the_code(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    default = Settings.from_env({})
    assert default.instance_path == str(tmp_path / "var")  # the working directory's, made absolute
    assert default.database_url == f"sqlite:///{tmp_path / 'var' / 'runner.db'}"
    moved = Settings.from_env({"RUNNER_INSTANCE_PATH": "site"})
    assert (moved.instance_path, moved.database_url) == (
        str(tmp_path / "site"),
        f"sqlite:///{tmp_path / 'site' / 'runner.db'}",
    )
    monkeypatch.chdir(CHECKOUT)
    assert Settings.from_env({}, instance_path=str(tmp_path / "site")).instance_path == moved.instance_path
    given = Settings.from_env({"RUNNER_INSTANCE_PATH": "site", "RUNNER_DATABASE_URL": "sqlite:///elsewhere.db"})
    assert given.database_url == "sqlite:///elsewhere.db"  # an explicit database wins


def test_settings_are_frozen_with_the_environment_they_were_read_from() -> None:
    env = {"DEMO_PASSWORD": "mat-khau", "RUNNER_TIMEZONE": "UTC"}
    settings = Settings.from_env(env)
    env["DEMO_PASSWORD"] = "changed later"
    assert settings.environ["DEMO_PASSWORD"] == "mat-khau" and settings.timezone == "UTC"
    with pytest.raises(TypeError):
        settings.environ["DEMO_PASSWORD"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.timezone = "Asia/Ho_Chi_Minh"  # type: ignore[misc]
    assert "mat-khau" not in repr(settings)  # the environment may hold secrets: never printed


def test_handlers_get_the_business_zone_of_the_runner_settings(sqlite_url: str, registry: Registry) -> None:
    def probe(params: dict, ctx: HandlerContext) -> dict:
        return {"zone": str(ctx.tz), "day": ctx.now.astimezone(ctx.tz).date().isoformat()}

    registry.add("test.work", probe)
    settings = Settings.from_env({}, database_url=sqlite_url, clock="virtual", timezone="America/Sao_Paulo")
    runner = Runner(settings, registry=registry)
    runner.deploy([SERVICE])
    instance_id = runner.start_instance("jobs_service", "KH1", {"customer": "KH1"})
    runner.run_due()
    data = tasklists.instance(runner, instance_id)["data"]
    assert data["zone"] == "America/Sao_Paulo"
    assert data["day"] == runner.now().astimezone(settings.tz).date().isoformat()
    runner.db.engine.dispose()
