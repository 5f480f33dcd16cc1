"""Rewrites a checked expression or script so that it runs under a ``runner.sandbox.budget.Budget``.

Loops and comprehensions iterate through ``Budget.iterate``; ``while`` bodies, functions
and lambdas tick on entry; ``**``, ``*``, ``+``, ``<<`` and ``%`` (also in place), f-string
fields with a format spec and the str/list methods that grow in C go through the budget's
size estimates. A bare ``except:`` becomes ``except Exception:`` so that it cannot catch a
breach. The rewrite runs after the allow-list check, on trees that hold no dunder names,
so the script itself can never reach the ``GUARD`` global.

``refusal`` is part of that check: what is bound to break a budget whatever the data
(``'a' * 10**10``, ``range(10**12)``, ``while True:`` with no way out) is refused before
anything runs, so at deploy.
"""

from __future__ import annotations

import ast
import itertools
from typing import Any

from runner.sandbox.budget import DEFAULT, GROWING_METHODS, Breach, Budget, safe_range

INTERNAL = "__rb"  # NOTE: dunder names are refused in scripts, so these names are the runner's own
GUARD = f"{INTERNAL}__"
TEMP_PREFIX = f"{INTERNAL}_"
GUARDED_BUILTINS = frozenset({"list", "tuple", "set", "dict", "sorted", "sum"})

_OPERATORS: dict[type, str] = {ast.Pow: "pow", ast.Mult: "mul", ast.Add: "add", ast.LShift: "lshift", ast.Mod: "mod"}


def _guard(method: str) -> ast.Attribute:
    return ast.Attribute(value=ast.Name(id=GUARD, ctx=ast.Load()), attr=method, ctx=ast.Load())


def _call(method: str, *args: ast.expr, keywords: list[ast.keyword] | None = None) -> ast.Call:
    return ast.Call(func=_guard(method), args=list(args), keywords=keywords or [])


def _tick() -> ast.Expr:
    return ast.Expr(value=_call("tick"))


def _subscript(owner: str, key: str, ctx: ast.expr_context) -> ast.Subscript:
    """``owner[key]`` of two temporaries."""
    return ast.Subscript(value=ast.Name(id=owner, ctx=ast.Load()), slice=ast.Name(id=key, ctx=ast.Load()), ctx=ctx)


def _attribute(owner: str, attr: str, ctx: ast.expr_context) -> ast.Attribute:
    """``owner.attr`` of a temporary."""
    return ast.Attribute(value=ast.Name(id=owner, ctx=ast.Load()), attr=attr, ctx=ctx)


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
        if method is None or _adds_a_number(node.op, node.right) or _adds_a_number(node.op, node.left):
            return node
        return self._mark(_call(method, node.left, node.right))

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        self.generic_visit(node)
        method = _OPERATORS.get(type(node.op))
        if method is None or _adds_a_number(node.op, node.value):
            return node
        self._mark(node)
        if isinstance(node.target, ast.Name):
            name = ast.Name(id=node.target.id, ctx=ast.Load())
            return ast.Assign(targets=[node.target], value=_call(method, name, node.value))
        # d[k] += v: evaluate d and k once, as the in-place form does.
        setup, load, store = self._split_target(node.target)
        return [*setup, ast.Assign(targets=[store], value=_call(method, load, node.value))]

    def _split_target(self, target: ast.Attribute | ast.Subscript) -> tuple[list[ast.stmt], ast.expr, ast.expr]:
        owner = self._temp()
        setup: list[ast.stmt] = [ast.Assign(targets=[ast.Name(id=owner, ctx=ast.Store())], value=target.value)]
        if isinstance(target, ast.Subscript):
            key = self._temp()
            setup.append(ast.Assign(targets=[ast.Name(id=key, ctx=ast.Store())], value=target.slice))
            return setup, _subscript(owner, key, ast.Load()), _subscript(owner, key, ast.Store())
        return setup, _attribute(owner, target.attr, ast.Load()), _attribute(owner, target.attr, ast.Store())

    def _temp(self) -> str:
        return f"{TEMP_PREFIX}{next(self._temps)}"

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in GUARDED_BUILTINS:
            self.changed = True  # the builtin accounts for what it builds in the running budget
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in GROWING_METHODS:
            return self._mark(_call("method", func.value, ast.Constant(func.attr), *node.args, keywords=node.keywords))
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


def _adds_a_number(op: ast.operator, operand: ast.expr) -> bool:
    """``x + 1`` cannot grow a sequence (it fails for one), so it needs no size check."""
    return isinstance(op, ast.Add) and isinstance(operand, ast.Constant) and type(operand.value) in (int, float)


def guard(tree: ast.AST) -> bool:
    """Rewrite ``tree`` in place; True when the code needs a running budget."""
    guards = _Guards()
    guards.visit(tree)
    ast.fix_missing_locations(tree)
    return guards.changed


# --- budgets that can be seen before anything runs (used by the allow-list check) ------------------

_NOT_STATIC = object()
_STATIC_OPERATORS = {ast.Pow: "pow", ast.Mult: "mul", ast.Add: "add", ast.LShift: "lshift", ast.Mod: "mod"}


def refusal(node: ast.AST, statics: dict[int, Any]) -> str | None:
    """Refuse what is bound to break its budget: constant blow-ups and endless loops."""
    if isinstance(node, ast.While) and _endless(node):
        return "a 'while' loop whose condition is always true and that has no break or return is not allowed"
    if isinstance(node, ast.BinOp) and type(node.op) in _STATIC_OPERATORS:
        try:
            _static(node, statics)
        except Breach as exc:
            return f"{_shown(node)} would exceed the {exc.what}"
        except RecursionError:  # a chain of thousands of operators: the run will budget it
            return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        args = [_static(arg, statics) for arg in node.args]
        if not node.keywords and args and _NOT_STATIC not in args:
            try:
                safe_range(*args)
            except (ValueError, TypeError) as exc:
                return f"{_shown(node)}: {exc}"
    return None


def _static(node: ast.AST, statics: dict[int, Any]) -> Any:
    """The value of a constant subexpression, computed under the size budget, or _NOT_STATIC."""
    if id(node) not in statics:
        statics[id(node)] = _NOT_STATIC  # a breach below leaves the parent not static
        statics[id(node)] = _static_value(node, statics)
    return statics[id(node)]


def _static_value(node: ast.AST, statics: dict[int, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bytes)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _static(node.operand, statics)
        if isinstance(operand, (int, float)):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) <= 16:
        items = [_static(item, statics) for item in node.elts]
        if _NOT_STATIC not in items:
            return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.BinOp) and type(node.op) in _STATIC_OPERATORS:
        left, right = _static(node.left, statics), _static(node.right, statics)
        if left is not _NOT_STATIC and right is not _NOT_STATIC:
            operation = getattr(Budget(DEFAULT), _STATIC_OPERATORS[type(node.op)])
            try:
                return operation(left, right)
            except Exception:  # noqa: BLE001 - 1/0, 'a' + 1: left for the run to report
                return _NOT_STATIC
    return _NOT_STATIC


def _endless(loop: ast.While) -> bool:
    """A ``while`` whose test is a true constant and whose body can never leave it."""
    try:
        test = ast.literal_eval(loop.test)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    if not test:
        return False
    todo: list[ast.AST] = list(loop.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Break, ast.Return, ast.Raise)):
            return False
        if isinstance(node, (ast.FunctionDef, ast.Lambda, ast.For, ast.While)):
            # a break inside a nested loop leaves that loop; a nested def's return is its own
            todo.extend(
                n
                for n in ast.walk(node)
                if isinstance(n, (ast.Return, ast.Raise)) and not isinstance(node, (ast.FunctionDef, ast.Lambda))
            )
            continue
        todo.extend(ast.iter_child_nodes(node))
    return True


def _shown(node: ast.AST, limit: int = 60) -> str:
    """A refused subexpression as the author wrote it, shortened."""
    text = ast.unparse(node)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
