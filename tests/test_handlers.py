"""The handler registry, the entry-point plugin group, and a registry per runner."""

from __future__ import annotations

import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import BPMN, make_runner

import handlers
from runner.errors import DeploymentInvalid, HandlerContextClosed, RegistryError
from runner.registry import ENTRY_POINT_GROUP, HandlerContext, Registry, installed, load_entry_points
from runner.service.runtime import Runner
from runner.settings import Settings
from runner.store import schema as db


def test_the_entry_point_group_brings_the_easyedu_topics() -> None:
    """The topics come from pyproject's entry point, not from importing the handlers package."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert found.get("easyedu") == "handlers:register"
    loaded = Registry()
    assert "easyedu" in load_entry_points(loaded, ENTRY_POINT_GROUP)
    assert {"crm.add_note", "booking.book_sessions", "email.send", "zalo.send", "demo.echo"} <= loaded.topics()
    assert {"email.send", "zalo.send"} <= set(loaded.checks())


def test_a_runner_built_from_the_entry_points_runs_crm_add_note(sqlite_url: str) -> None:
    runner = make_runner(sqlite_url, installed())
    try:
        assert runner.registry.get("crm.add_note") is handlers.crm.add_note
        assert [item.process_key for item in runner.deploy([BPMN / "loop.bpmn"])] == ["care_loop"]  # calls demo.echo
    finally:
        runner.db.engine.dispose()


def test_the_handlers_package_keeps_no_registry() -> None:
    """Registering twice on two registries leaves each with its own topics and nothing in the package."""
    first, second = Registry(), Registry()
    handlers.register(first)
    handlers.register(second)
    second.add("only.in.second", lambda params, ctx: {})
    assert "only.in.second" not in first.topics()
    assert not [name for name, value in vars(handlers).items() if isinstance(value, Registry)]


def test_each_runner_has_its_own_registry(tmp_path: Path) -> None:
    """Two runners over different registries: a topic added to one is unknown to the other."""
    urls = []
    for name in ("a", "b"):
        urls.append(f"sqlite:///{tmp_path / name}.db")
        db.upgrade(urls[-1])
    plain, extended = installed(), installed()
    extended.add("acme.sync", lambda params, ctx: {})
    one, other = make_runner(urls[0], plain), make_runner(urls[1], extended)
    try:
        assert one.registry is not other.registry
        assert "acme.sync" in other.registry.topics() and "acme.sync" not in one.registry.topics()
        assert "acme.sync" not in installed().topics()
    finally:
        one.db.engine.dispose()
        other.db.engine.dispose()


def test_a_runner_without_a_registry_knows_no_topic(sqlite_url: str) -> None:
    """Without the entry point's registry, a process calling demo.echo does not deploy."""
    runner = Runner(Settings.from_env({}, database_url=sqlite_url, clock="virtual"))
    try:
        assert runner.registry.topics() == set()
        with pytest.raises(DeploymentInvalid, match="demo.echo"):
            runner.deploy([BPMN / "loop.bpmn"])
    finally:
        runner.db.engine.dispose()


def test_a_topic_cannot_be_taken_twice() -> None:
    reg = Registry()
    reg.add("x.y", lambda params, ctx: {})
    with pytest.raises(RegistryError, match="already has handler"):
        reg.add("x.y", lambda params, ctx: {})


def test_copy_leaves_the_original_alone() -> None:
    reg = Registry()
    copy = reg.copy()
    copy.add("only.in.copy", lambda params, ctx: {})
    assert "only.in.copy" not in reg.topics()


def _install_plugin(root: Path, group: str, target: str = "acme_plugin:register") -> None:
    """A real installed distribution on sys.path: a module plus its entry_points.txt."""
    (root / "acme_plugin.py").write_text(
        textwrap.dedent("""
        NOT_CALLABLE = 42

        def register(registry):
            registry.add("acme.sync", lambda params, ctx: {"synced": params["n"] + 1})
    """)
    )
    info = root / "acme_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\nacme = {target}\n")


def test_entry_point_plugins_add_topics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = ENTRY_POINT_GROUP + "_test"
    _install_plugin(tmp_path, group)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    assert load_entry_points(reg, group) == ["acme"]
    ctx = HandlerContext("i", "KH1", "i/t", "Task_1", "acme.sync", 1, None)
    assert reg.get("acme.sync")({"n": 1}, ctx) == {"synced": 2}
    assert installed(group).topics() == {"acme.sync"}
    sys.modules.pop("acme_plugin", None)


def test_an_entry_point_that_is_not_callable_is_a_registry_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = ENTRY_POINT_GROUP + "_test"
    _install_plugin(tmp_path, group, "acme_plugin:NOT_CALLABLE")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError, match="must name a callable"):
        load_entry_points(Registry(), group)
    sys.modules.pop("acme_plugin", None)


def test_send_after_timeout_is_refused() -> None:
    ctx = HandlerContext("i", None, "i/t", "Task_1", "t", 1, None)
    ctx.send("log", {"a": 1}, key="first")
    ctx.closed = True
    with pytest.raises(HandlerContextClosed, match="after its timeout"):
        ctx.send("log", {"a": 2})
    assert ctx.outbox == [("log", {"a": 1}, "i/t/first")]
