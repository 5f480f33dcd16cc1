"""The runner's public API: every name of ``runner.__all__`` resolves, and builds a working core runner."""

from __future__ import annotations

import subprocess
import sys

import pytest

import runner


@pytest.mark.parametrize("name", runner.__all__)
def test_each_public_name_resolves_to_its_home(name: str) -> None:
    value = getattr(runner, name)
    assert value.__name__ == name
    assert value.__module__.startswith("runner.")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        runner.Nope  # noqa: B018


def test_the_public_api_builds_a_core_runner(tmp_path) -> None:
    settings = runner.Settings.from_env(
        {"RUNNER_DATABASE_URL": f"sqlite:///{tmp_path / 'core.db'}", "RUNNER_INSTANCE_PATH": str(tmp_path)}
    )
    from runner.store import schema

    schema.upgrade(settings.database_url, ("core",))
    core = runner.Runner(settings, runner.Registry())
    assert core.registry.topics() == set()
    with pytest.raises(runner.NotFound):
        core.start_instance("nothing_deployed")


def test_importing_an_inner_module_loads_no_runtime() -> None:
    code = "import sys, runner.errors; print('runner.service.runtime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
