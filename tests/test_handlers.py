"""The handler registry and the entry-point plugin group."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import handlers
from handlers import ENTRY_POINT_GROUP, HandlerContext, Registry, load_plugins


def test_builtin_topics_are_registered() -> None:
    assert {"demo.echo", "demo.notify"} <= handlers.load_all().topics()


def test_a_topic_cannot_be_taken_twice() -> None:
    reg = Registry()
    reg.add("x.y", lambda params, ctx: {})
    with pytest.raises(ValueError, match="already has handler"):
        reg.add("x.y", lambda params, ctx: {})


def test_copy_leaves_the_original_alone() -> None:
    reg = Registry()
    copy = reg.copy()
    copy.add("only.in.copy", lambda params, ctx: {})
    assert "only.in.copy" not in reg.topics()


def _install_plugin(root: Path, group: str) -> None:
    """A real installed distribution on sys.path: a module plus its entry_points.txt."""
    (root / "acme_plugin.py").write_text(
        textwrap.dedent("""
        def register(registry):
            registry.add("acme.sync", lambda params, ctx: {"synced": params["n"] + 1})
    """)
    )
    info = root / "acme_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\nacme = acme_plugin:register\n")


def test_entry_point_plugins_add_topics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = ENTRY_POINT_GROUP + "_test"
    _install_plugin(tmp_path, group)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    assert load_plugins(reg, group) == ["acme"]
    ctx = HandlerContext("i", "KH1", "i/t", "Task_1", "acme.sync", 1, None)
    assert reg.get("acme.sync")({"n": 1}, ctx) == {"synced": 2}
    sys.modules.pop("acme_plugin", None)


def test_send_after_timeout_is_refused() -> None:
    ctx = HandlerContext("i", None, "i/t", "Task_1", "t", 1, None)
    ctx.send("log", {"a": 1}, key="first")
    ctx.closed = True
    with pytest.raises(RuntimeError, match="after its timeout"):
        ctx.send("log", {"a": 2})
    assert ctx.outbox == [("log", {"a": 1}, "i/t/first")]
