"""Rewrites a checked expression or script so that it runs under a ``runner.budget.Budget``.

Loops and comprehensions iterate through ``Budget.iterate``; ``while`` bodies, functions
and lambdas tick on entry; ``**``, ``*``, ``+``, ``<<`` and ``%`` (also in place), f-string
fields with a format spec and the str/list methods that grow in C go through the budget's
size estimates. A bare ``except:`` becomes ``except Exception:`` so that it cannot catch a
breach. The rewrite runs after the allow-list check, on trees that hold no dunder names,
so the script itself can never reach the ``GUARD`` global.
"""
from __future__ import annotations

import ast
import itertools
from typing import Any

from runner.budget import GROWING_METHODS

INTERNAL = "__rb"  # NOTE: dunder names are refused in scripts, so these names are the runner's own
GUARD = f"{INTERNAL}__"
TEMP_PREFIX = f"{INTERNAL}_"
GUARDED_BUILTINS = frozenset({"list", "tuple", "set", "dict", "sorted", "sum"})

_OPERATORS: dict[type, str] = {ast.Pow: "pow", ast.Mult: "mul", ast.Add: "add", ast.LShift: "lshift",
                               ast.Mod: "mod"}


def _guard(method: str) -> ast.Attribute:
    return ast.Attribute(value=ast.Name(id=GUARD, ctx=ast.Load()), attr=method, ctx=ast.Load())


def _call(method: str, *args: ast.expr, keywords: list[ast.keyword] | None = None) -> ast.Call:
    return ast.Call(func=_guard(method), args=list(args), keywords=keywords or [])


def _tick() -> ast.Expr:
    return ast.Expr(value=_call("tick"))


class _Guards(ast.NodeTransformer):
    """The rewrite itself; ``changed`` tells whether the code needs a budget at all."""

    def __init__(self) -> None:
        self.changed = False
        self._temps = itertools.count()

    def _mark(self, node: Any) -> Any:
        self.changed = True
        return node

    # --- time: loops and calls --------------------------------------------------------

    def visit_For(self, node: ast.For) -> ast.For:
        self.generic_visit(node)
        node.iter = self._mark(_call("iterate", node.iter))
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.comprehension:
        self.generic_visit(node)
        node.iter = self._mark(_call("iterate", node.iter))
        return node

    def visit_While(self, node: ast.While) -> ast.While:
        self.generic_visit(node)
        node.body.insert(0, self._mark(_tick()))
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        self.generic_visit(node)
        node.body.insert(0, self._mark(_tick()))
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.Lambda:
        self.generic_visit(node)
        # tick() returns None, so `None or body` is the body's value.
        node.body = self._mark(ast.BoolOp(op=ast.Or(), values=[_call("tick"), node.body]))
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.ExceptHandler:
        self.generic_visit(node)
        if node.type is None:  # NOTE: a bare except would catch the budget's breach
            node.type = ast.Name(id="Exception", ctx=ast.Load())
        return node

    # --- sizes: operators, methods, f-strings ------------------------------------------

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        method = _OPERATORS.get(type(node.op))
        return self._mark(_call(method, node.left, node.right)) if method else node

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        self.generic_visit(node)
        method = _OPERATORS.get(type(node.op))
        if method is None:
            return node
        self._mark(node)
        if isinstance(node.target, ast.Name):
            load = ast.Name(id=node.target.id, ctx=ast.Load())
            return ast.Assign(targets=[node.target], value=_call(method, load, node.value))
        # d[k] += v: evaluate d and k once, as the in-place form does.
        setup, load, store = self._split_target(node.target)
        return [*setup, ast.Assign(targets=[store], value=_call(method, load, node.value))]

    def _split_target(self, target: ast.expr) -> tuple[list[ast.stmt], ast.expr, ast.expr]:
        owner = self._temp()
        setup = [ast.Assign(targets=[ast.Name(id=owner, ctx=ast.Store())], value=target.value)]
        if isinstance(target, ast.Subscript):
            key = self._temp()
            setup.append(ast.Assign(targets=[ast.Name(id=key, ctx=ast.Store())], value=target.slice))
            make = lambda ctx: ast.Subscript(value=ast.Name(id=owner, ctx=ast.Load()),  # noqa: E731
                                             slice=ast.Name(id=key, ctx=ast.Load()), ctx=ctx)
        else:
            make = lambda ctx: ast.Attribute(value=ast.Name(id=owner, ctx=ast.Load()),  # noqa: E731
                                             attr=target.attr, ctx=ctx)
        return setup, make(ast.Load()), make(ast.Store())

    def _temp(self) -> str:
        return f"{TEMP_PREFIX}{next(self._temps)}"

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in GUARDED_BUILTINS:
            self.changed = True  # the builtin accounts for what it builds in the running budget
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in GROWING_METHODS:
            return self._mark(_call("method", func.value, ast.Constant(func.attr), *node.args,
                                    keywords=node.keywords))
        return node

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id in GUARDED_BUILTINS:
            self.changed = True  # map(list, ...) calls the builtin from C
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.FormattedValue:
        self.generic_visit(node)
        if node.format_spec is None:
            return node
        value = _call("formatted", node.value, ast.Constant(node.conversion), node.format_spec)
        return self._mark(ast.FormattedValue(value=value, conversion=-1, format_spec=None))


def guard(tree: ast.AST) -> bool:
    """Rewrite ``tree`` in place; True when the code needs a running budget."""
    guards = _Guards()
    guards.visit(tree)
    ast.fix_missing_locations(tree)
    return guards.changed
