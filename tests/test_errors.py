"""One error tree: every exception class of the project is a RunnerError drawn in runner/errors.py."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import runner.errors
from runner.crm.models import SlotTaken
from runner.errors import BadValue, Conflict, Invalid, Missing, NotFound, RunnerError
from runner.service import accounts, outbox

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runner", "handlers", "web")
# Deliberately BaseException: a script's ``except Exception`` must not swallow them.
OUTSIDE = {("runner/sandbox/budget.py", "Breach"), ("runner/sandbox/budget.py", "Interrupted")}
BUILTIN_BASES = {"Exception", "BaseException", "ValueError", "LookupError", "KeyError", "RuntimeError", "TypeError"}


def _sources() -> list[Path]:
    return [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in the project's packages (their modules imported)."""
    found = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        if not names:
            continue
        module = importlib.import_module(_module(path))
        for name in names:
            value = getattr(module, name, None)
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_only_the_root_subclasses_a_builtin_exception() -> None:
    outside = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                key = (path.relative_to(ROOT).as_posix(), node.name)
                if bases & BUILTIN_BASES and key not in OUTSIDE:
                    outside.append(key)
    assert outside == [("runner/errors.py", "RunnerError")]


def test_the_docstring_draws_every_class_of_the_tree() -> None:
    tree = runner.errors.__doc__ or ""
    classes = [c for c in _exception_classes() if issubclass(c, RunnerError)]
    assert len(classes) > 20
    missing = [c.__qualname__ for c in classes if f"── {c.__name__} " not in tree and c is not RunnerError]
    assert missing == []
    for cls in classes:
        if cls.__module__ not in ("runner.errors",) and cls is not RunnerError:
            assert f"── {cls.__name__}" in tree and f"({cls.__module__})" in tree, cls


@pytest.mark.parametrize(
    "cls,base",
    [
        (runner.errors.Retry, RunnerError),
        (outbox.DeliveryError, RunnerError),
        (accounts.BadLogin, Invalid),
        (accounts.LoginThrottled, RunnerError),
        (BadValue, Invalid),
        (Missing, NotFound),
        (SlotTaken, Conflict),
    ],
)
def test_the_joined_classes_keep_their_branch(cls: type, base: type) -> None:
    """The REST API maps by branch (Invalid 422, NotFound 404, Conflict 409), so statuses stay as they were."""
    assert issubclass(cls, base)
    assert not issubclass(cls, (ValueError, LookupError, RuntimeError))


def test_handlers_raise_only_classes_of_the_tree() -> None:
    bare = []
    for path in sorted((ROOT / "handlers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(call, ast.Name) and call.id in BUILTIN_BASES:
                    bare.append(f"{path.name}:{node.lineno} {call.id}")
    assert bare == []
