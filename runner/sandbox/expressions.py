"""Restricted Python expressions (conditions, parameters) and scripts over instance data.

Camunda Modeler writes ``${score < 9}``; process owners may also write plain ``score < 9``.
Every text is parsed and walked against an allow-list of AST node types before it is
compiled, and runs with a small set of builtins instead of Python's own.
"""

from __future__ import annotations

import _strptime  # type: ignore[import-not-found]  # noqa: F401 - private, no stub; datetime.strptime imports it through the namespace's __import__
import ast
import copy
import datetime as _dt
import functools
import sys
import textwrap
from collections.abc import Iterator, Mapping
from types import CodeType, MappingProxyType, ModuleType
from typing import Any

from runner.errors import BudgetExceeded, ExpressionInvalid
from runner.model import timeparse
from runner.sandbox import budget, guards
from runner.sandbox.budget import Breach, Limits

MAX_EXPONENT = 100

# Names that reach the interpreter's internals, the file system or the frame stack.
# NOTE: harmless builtins such as id, input or property are simply not offered, so a
# process variable may carry those names.
FORBIDDEN_NAMES = frozenset(
    {
        "open",
        "eval",
        "exec",
        "compile",
        "__import__",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "breakpoint",
        "memoryview",
        "type",
        "object",
        "super",
        "exit",
        "quit",
        "dir",
        "classmethod",
        "staticmethod",
    }
)

# Wall-clock readers: expressions must use now(), the runner's (possibly virtual) clock.
CLOCK_ATTRIBUTES = frozenset({"now", "utcnow", "today", "fromtimestamp", "utcfromtimestamp"})

# Attributes without a leading underscore that still lead to frames, code or unchecked
# attribute lookups: str.format('{0.__class__}') resolves attributes the walker never sees.
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "format",
        "format_map",
        "mro",
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "ag_frame",
        "ag_code",
        "ag_await",
        "f_back",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_code",
        "f_trace",
        "tb_frame",
        "tb_next",
    }
)

_OPERATOR_NODES = (ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop)

_EXPRESSION_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.NamedExpr,
    ast.BinOp,
    ast.UnaryOp,
    ast.Lambda,
    ast.IfExp,
    ast.Dict,
    ast.Set,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.Compare,
    ast.Call,
    ast.FormattedValue,
    ast.JoinedStr,
    ast.Constant,
    ast.Attribute,
    ast.Subscript,
    ast.Starred,
    ast.Name,
    ast.List,
    ast.Tuple,
    ast.Slice,
    ast.comprehension,
    ast.arguments,
    ast.arg,
    ast.keyword,
)

# FunctionDef can only appear in exec mode, so expressions never get it.
_STATEMENT_NODES = (
    ast.Module,
    ast.Expr,
    ast.FunctionDef,
    ast.Return,
    ast.Delete,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.For,
    ast.While,
    ast.If,
    ast.Raise,
    ast.Try,
    ast.ExceptHandler,
    ast.Assert,
    ast.Pass,
    ast.Break,
    ast.Continue,
)

_ALLOWED_NODES = _OPERATOR_NODES + _EXPRESSION_NODES + _STATEMENT_NODES

_REFUSED_LABELS: dict[type, str] = {
    ast.Import: "import",
    ast.ImportFrom: "import",
    ast.Global: "global statement",
    ast.Nonlocal: "nonlocal statement",
    ast.ClassDef: "class definition",
    ast.With: "with statement",
    ast.AsyncWith: "async with",
    ast.AsyncFor: "async for",
    ast.AsyncFunctionDef: "async function",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Match: "match statement",
    ast.TryStar: "except*",
}


def _add_months(moment: Any, months: int) -> _dt.date | _dt.datetime:
    """add_months(contract_end, -3): calendar-month arithmetic; ISO text is read as a date or date-time."""
    if isinstance(moment, str):
        text = moment.strip()
        moment = _dt.date.fromisoformat(text) if len(text) == 10 else _dt.datetime.fromisoformat(text)
    if not isinstance(moment, _dt.date):
        raise TypeError(f"add_months needs a date, a date-time or ISO text, not {type(moment).__name__}")
    return timeparse.add_months(moment, months)


def _import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> ModuleType:
    """The only import a restricted namespace allows: ``_strptime``, for ``datetime.strptime``.

    NOTE: C code (``datetime.strptime``) imports through the ``__import__`` of the calling
    frame's builtins. Scripts cannot name ``__import__`` (dunder names are refused), and
    what this returns is the module already imported above, never a fresh import.
    """
    if name == "_strptime" and level == 0:
        return sys.modules["_strptime"]
    raise ImportError(f"import of {name!r} is not allowed in expressions")


SAFE_BUILTINS: Mapping[str, Any] = MappingProxyType(
    {
        "abs": abs,
        "all": all,
        "any": any,
        "bool": bool,
        "dict": dict,
        "enumerate": enumerate,
        "filter": filter,
        "float": float,
        "int": int,
        "isinstance": isinstance,
        "len": len,
        "list": list,
        "map": map,
        "max": max,
        "min": min,
        "range": budget.safe_range,
        "reversed": reversed,
        "round": round,
        "set": set,
        "sorted": sorted,
        "str": str,
        "sum": sum,
        "tuple": tuple,
        "zip": zip,
        "True": True,
        "False": False,
        "None": None,
        "date": _dt.date,
        "datetime": _dt.datetime,
        "timedelta": _dt.timedelta,
        # NOTE: timedelta has no months; renewal timers need "contract end minus 3 months".
        "add_months": _add_months,
        # Scripts may use try/except and raise; without these they could only use bare except.
        "Exception": Exception,
        "ValueError": ValueError,
        "KeyError": KeyError,
        "TypeError": TypeError,
        "ZeroDivisionError": ZeroDivisionError,
        **budget.GUARDED_BUILTINS,
        "__import__": _import,
    }
)


def is_wrapped(text: str) -> bool:
    """Tell whether the whole text is one ``${...}`` or ``#{...}`` wrapper."""
    return _wrapped_body(text.strip()) is not None


def unwrap(text: str) -> str:
    """Strip whitespace and one ``${...}``/``#{...}`` wrapper enclosing the whole text."""
    stripped = text.strip()
    body = _wrapped_body(stripped)
    return stripped if body is None else body.strip()


def _wrapped_body(text: str) -> str | None:
    """Return the wrapper's inside if the first brace closes at the last character."""
    if len(text) < 3 or text[0] not in "$#" or text[1] != "{" or text[-1] != "}":
        return None
    depth, quote, escaped = 0, "", False
    for index in range(1, len(text)):
        char = text[index]
        if quote:  # braces inside string literals do not count
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:  # `${a} + ${b}` closes early: not wholly wrapped
                return text[2:-1] if index == len(text) - 1 else None
    return None


def check_expression(text: str) -> None:
    """Raise ExpressionInvalid unless the (unwrapped) expression obeys the restricted rules."""
    _compile(text, "eval")


def check_script(text: str) -> None:
    """Raise ExpressionInvalid unless the multi-line script obeys the restricted rules."""
    _compile(text, "exec")


def evaluate(text: str, data: Mapping[str, Any], limits: Limits = budget.DEFAULT) -> Any:
    """Evaluate an expression with names resolved from the instance data, within ``limits``."""
    code, guarded = _compile(text, "eval")
    namespace = _namespace(data)
    try:
        if not guarded:  # NOTE: no loop, call of a builtin or growing operator: nothing to budget
            return eval(code, namespace)  # noqa: S307 - checked by the AST allow-list
        with budget.running(limits) as running:
            namespace[guards.GUARD] = running
            return eval(code, namespace)  # noqa: S307 - checked and guarded
    except Breach as exc:
        raise _breach("expression", unwrap(text), exc) from None
    except Exception as exc:
        raise _runtime_error("expression", unwrap(text), exc) from exc


def execute(script: str, data: Mapping[str, Any], limits: Limits = budget.DEFAULT) -> dict[str, Any]:
    """Run a script within ``limits``; return a new data dict: old data plus top-level assignments."""
    code, guarded = _compile(script, "exec")
    # A deep copy keeps the caller's data untouched when the script fails halfway.
    namespace = _namespace(copy.deepcopy(dict(data)))
    try:
        if not guarded:
            exec(code, namespace)  # noqa: S102 - checked by the AST allow-list
        else:
            with budget.running(limits) as running:
                namespace[guards.GUARD] = running
                exec(code, namespace)  # noqa: S102 - checked and guarded
    except Breach as exc:
        raise _breach("script", _source(script, "exec"), exc) from None
    except Exception as exc:
        raise _runtime_error("script", _source(script, "exec"), exc) from exc
    return {
        key: value
        for key, value in namespace.items()
        if key != "__builtins__" and not key.startswith(guards.INTERNAL) and not _is_leftover(value)
    }


def _breach(kind: str, text: str, exc: Breach) -> BudgetExceeded:
    """A budget breach names what ran and which budget it broke."""
    return BudgetExceeded(f"{kind} {_shorten(text)!r} exceeded its {exc.what}", exc.what)


def _namespace(data: Mapping[str, Any]) -> dict[str, Any]:
    """Build globals: data as global names so lambdas and comprehensions see them too."""
    namespace = dict(data)
    namespace["__builtins__"] = dict(SAFE_BUILTINS)
    return namespace


def _is_leftover(value: Any) -> bool:
    """Tell whether a script variable cannot be stored as instance data."""
    return callable(value) or isinstance(value, (ModuleType, Iterator))


def _runtime_error(kind: str, text: str, exc: Exception) -> ExpressionInvalid:
    """Translate an exception raised while running an expression or script."""
    shown = _shorten(text)
    if isinstance(exc, NameError) and not isinstance(exc, UnboundLocalError):
        name = getattr(exc, "name", None) or str(exc)
        return ExpressionInvalid(f"name {name!r} is not defined in the instance data (in {kind} {shown!r})")
    return ExpressionInvalid(f"{kind} {shown!r} failed: {type(exc).__name__}: {exc}")


def _shorten(text: str, limit: int = 120) -> str:
    """Keep error messages readable for long scripts."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _source(text: str, mode: str) -> str:
    """Expressions lose their wrapper; scripts lose the indentation of the BPMN XML."""
    return unwrap(text) if mode == "eval" else textwrap.dedent(text).strip()


@functools.lru_cache(maxsize=1024)
def _compile(text: str, mode: str) -> tuple[CodeType, bool]:
    """Parse, check, guard and compile once per distinct text; True when it needs a budget."""
    kind = "expression" if mode == "eval" else "script"
    source = _source(text, mode)
    try:
        tree = ast.parse(source, mode=mode)
        _check_tree(tree, kind, source)
        guarded = guards.guard(tree)
        # NOTE: ast.parse with a str mode is typed as returning ast.mod, which compile accepts at run time.
        return compile(tree, f"<{kind}>", mode), guarded  # type: ignore[call-overload]
    except SyntaxError as exc:
        where = f" at line {exc.lineno}, column {exc.offset}" if exc.lineno else ""
        raise ExpressionInvalid(f"syntax error in {kind} {_shorten(source)!r}{where}: {exc.msg}") from exc
    except (RecursionError, MemoryError, ValueError) as exc:  # deep nesting, null bytes
        raise ExpressionInvalid(f"{kind} {_shorten(source)!r} cannot be compiled: {exc}") from exc


def _check_tree(tree: ast.AST, kind: str, source: str) -> None:
    """Walk every node and raise one ExpressionInvalid listing all refusals in source order."""
    problems: list[tuple[int, int, str]] = []
    reported: set[int] = set()  # nodes already covered by a message about their parent
    statics: dict[int, Any] = {}  # constant values found so far, by node
    for node in ast.walk(tree):  # iterative, so long chains cannot exhaust the stack
        reason = _refusal(node, reported) or guards.refusal(node, statics)
        if reason:
            problems.append((*_position(node), reason))
    if problems:
        details = "; ".join(
            f"{reason} (line {line}, column {column})" for line, column, reason in sorted(set(problems))
        )
        raise ExpressionInvalid(f"{kind} {_shorten(source)!r} refused: {details}")


def _position(node: ast.AST) -> tuple[int, int]:
    """Line and 1-based column; an attribute points at its name, not at its object."""
    if isinstance(node, ast.Attribute) and node.end_lineno and node.end_col_offset:
        return node.end_lineno, node.end_col_offset - len(node.attr) + 1
    return getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1


def _refusal(node: ast.AST, reported: set[int]) -> str | None:
    """Return why this node is refused, or None when it is allowed."""
    if id(node) in reported:
        return None
    if not isinstance(node, _ALLOWED_NODES):
        # `import os` is one refusal, not one more for its alias node.
        reported.update(id(inner) for inner in ast.walk(node) if not isinstance(inner, _ALLOWED_NODES))
        label = _REFUSED_LABELS.get(type(node), f"{type(node).__name__} syntax")
        return f"{label} is not allowed"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and _bad_name(node.func.id):
        reported.add(id(node.func))  # one message per call, not two
        return f"call of {node.func.id!r} is not allowed"
    if isinstance(node, ast.Name):
        return f"name {node.id!r} is not allowed" if _bad_name(node.id) else None
    if isinstance(node, ast.Attribute):
        return _attribute_refusal(node.attr)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _power_refusal(node)
    declared = _declared_name(node)
    if declared is not None and _bad_name(declared):
        return f"name {declared!r} is not allowed"
    return None


def _bad_name(name: str) -> bool:
    """Tell whether a variable name is forbidden."""
    return name.startswith("__") or name in FORBIDDEN_NAMES


def _declared_name(node: ast.AST) -> str | None:
    """Names introduced by def, parameters, keywords and except-as."""
    if isinstance(node, (ast.FunctionDef, ast.ExceptHandler)):
        return node.name
    if isinstance(node, ast.arg):
        return node.arg
    if isinstance(node, ast.keyword):
        return node.arg
    return None


def _attribute_refusal(attr: str) -> str | None:
    """Refuse private and dunder attributes and the few public ones that escape."""
    if attr.startswith("__"):
        return f"access to dunder attribute {attr!r} is not allowed"
    if attr.startswith("_"):
        return f"access to private attribute {attr!r} is not allowed"
    if attr in ("format", "format_map"):
        return f"access to attribute {attr!r} is not allowed (use an f-string instead)"
    if attr in FORBIDDEN_ATTRIBUTES:
        return f"access to attribute {attr!r} is not allowed"
    if attr in CLOCK_ATTRIBUTES:
        return f"reading the wall clock ({attr!r}) is not allowed; use now(), the runner's clock"
    return None


def _power_refusal(node: ast.BinOp) -> str | None:
    """Refuse literal exponents that would take the interpreter minutes and gigabytes."""
    right = node.right
    if isinstance(right, ast.BinOp) and isinstance(right.op, ast.Pow):
        return f"nested exponent in {ast.unparse(node)!r} is not allowed"
    if (
        isinstance(right, ast.Constant)
        and isinstance(right.value, (int, float))
        and not isinstance(right.value, bool)
        and right.value > MAX_EXPONENT
    ):
        return f"exponent {right.value!r} is too large (the limit is {MAX_EXPONENT})"
    return None
