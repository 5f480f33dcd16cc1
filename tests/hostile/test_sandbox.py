"""The restricted sandbox against escape attempts and budget breaches, one data row each.

Each row is ``(pattern, data, expected, fragment)``:

- ``check``: the allow-list (or a budget seen statically) refuses the text, so it never
  deploys; ``fragment`` is in the refusal;
- ``run``: the text passes the check but fails when run, with an ordinary error;
- ``budget``: the text passes the check and is stopped by its time or size budget.

Texts with a newline are scripts, the others expressions. Time budgets run on a clock that
moves one second per reading, so a breach needs no real waiting and is exact.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import pytest

from runner.errors import BudgetExceeded, ExpressionInvalid
from runner.sandbox import expressions
from runner.sandbox.budget import CHECK_EVERY, Limits

TIME = "exceeded its time budget of 2 s"
SIZE = "exceeded its size budget"
BIG = 10**10

ROWS: list[tuple[str, dict[str, Any], str, str]] = [
    # --- the interpreter's internals ----------------------------------------------------------
    ("__import__('os').system('id')", {}, "check", "call of '__import__' is not allowed"),
    ("().__class__.__bases__[0].__subclasses__()", {}, "check", "dunder attribute '__class__'"),
    ("[c for c in ().__class__.__mro__]", {}, "check", "dunder attribute '__class__'"),
    ("(1).__class__", {}, "check", "dunder attribute '__class__'"),
    ("Exception.__subclasses__()", {}, "check", "dunder attribute '__subclasses__'"),
    ("len.__self__", {}, "check", "dunder attribute '__self__'"),
    ("(lambda: 0).__globals__", {}, "check", "dunder attribute '__globals__'"),
    ("int.mro()", {}, "check", "access to attribute 'mro' is not allowed"),
    ("ValueError.mro()", {}, "check", "access to attribute 'mro' is not allowed"),
    ("x._secret", {}, "check", "private attribute '_secret'"),
    ("__builtins__", {}, "check", "name '__builtins__' is not allowed"),
    ("__builtins__['eval']('1')", {}, "check", "name '__builtins__' is not allowed"),
    ("dict(__builtins__=1)", {}, "check", "name '__builtins__' is not allowed"),
    ("object", {}, "check", "name 'object' is not allowed"),
    ("super()", {}, "check", "call of 'super' is not allowed"),
    ("classmethod(len)", {}, "check", "call of 'classmethod' is not allowed"),
    ("memoryview(b'x')", {}, "check", "call of 'memoryview' is not allowed"),
    # --- builtins that run code or read the file system --------------------------------------
    ("open('/etc/passwd').read()", {}, "check", "call of 'open' is not allowed"),
    ("eval('1')", {}, "check", "call of 'eval' is not allowed"),
    ("exec('x=1')", {}, "check", "call of 'exec' is not allowed"),
    ("compile('1','','eval')", {}, "check", "call of 'compile' is not allowed"),
    ("globals()", {}, "check", "call of 'globals' is not allowed"),
    ("vars()", {}, "check", "call of 'vars' is not allowed"),
    ("breakpoint()", {}, "check", "call of 'breakpoint' is not allowed"),
    ("exit()", {}, "check", "call of 'exit' is not allowed"),
    ("type(1)", {}, "check", "call of 'type' is not allowed"),
    ("type('X', (), {})", {}, "check", "call of 'type' is not allowed"),
    ("getattr(x, '__class__')", {}, "check", "call of 'getattr' is not allowed"),
    ("getattr(x, '__cl' + 'ass__')", {}, "check", "call of 'getattr' is not allowed"),
    ("(y := open)", {}, "check", "name 'open' is not allowed"),
    ("(lambda f=open: f)()", {}, "check", "name 'open' is not allowed"),
    ("print('x')", {}, "run", "name 'print' is not defined"),
    ("help()", {}, "run", "name 'help' is not defined"),
    ("(lambda: 0).func_globals", {}, "run", "AttributeError"),
    # --- format strings and f-strings --------------------------------------------------------
    ("'{0.__class__}'.format(1)", {}, "check", "access to attribute 'format' is not allowed"),
    ("'{x}'.format_map(d)", {}, "check", "access to attribute 'format_map' is not allowed"),
    ("str.format('{0.__class__}', 1)", {}, "check", "access to attribute 'format' is not allowed"),
    ("${ f'{x.__class__}' }", {}, "check", "dunder attribute '__class__'"),
    ("f'{x!r:{spec}}'", {"x": 1, "spec": "0.__class__"}, "run", "ValueError"),
    ("'%(a)s' % d", {"d": {"a": "ok"}}, "run-ok", "ok"),
    # --- frames, generators and tracebacks -----------------------------------------------------
    ("(x for x in [1]).gi_frame.f_back", {}, "check", "access to attribute 'gi_frame' is not allowed"),
    ("(x for x in [1]).gi_code", {}, "check", "access to attribute 'gi_code' is not allowed"),
    ("g.gi_yieldfrom", {}, "check", "access to attribute 'gi_yieldfrom' is not allowed"),
    ("e.tb_frame.f_globals", {}, "check", "access to attribute 'tb_frame' is not allowed"),
    (
        "try:\n    1 / 0\nexcept Exception as e:\n    t = e.__traceback__",
        {},
        "check",
        "dunder attribute '__traceback__'",
    ),
    (
        "try:\n    1 / 0\nexcept Exception as e:\n    t = e.with_traceback(None).tb_next",
        {},
        "check",
        "access to attribute 'tb_next' is not allowed",
    ),
    # --- statements a script may not use -------------------------------------------------------
    ("import os\n", {}, "check", "import is not allowed"),
    ("from os import path\n", {}, "check", "import is not allowed"),
    ("global x\nx = 1", {}, "check", "global statement is not allowed"),
    ("def f():\n    nonlocal y", {}, "check", "nonlocal statement is not allowed"),
    ("class A:\n    pass", {}, "check", "class definition is not allowed"),
    ("with x as y:\n    pass", {}, "check", "with statement is not allowed"),
    ("async def f():\n    pass", {}, "check", "async function is not allowed"),
    ("def g():\n    yield 1", {}, "check", "yield is not allowed"),
    ("def __init__():\n    pass", {}, "check", "name '__init__' is not allowed"),
    ("type = 3\n", {}, "check", "name 'type' is not allowed"),
    ("f = open\n", {}, "check", "name 'open' is not allowed"),
    ("x.__dict__['a'] = 1\n", {}, "check", "dunder attribute '__dict__'"),
    ("@eval\ndef f():\n    pass", {}, "check", "name 'eval' is not allowed"),
    ("@print\ndef f():\n    pass", {}, "run", "name 'print' is not defined"),
    ("match x:\n    case _:\n        pass", {}, "check", "match statement is not allowed"),
    # --- the wall clock -------------------------------------------------------------------------
    ("datetime.now()", {}, "check", "reading the wall clock ('now') is not allowed"),
    ("date.today()", {}, "check", "reading the wall clock ('today') is not allowed"),
    # --- budgets seen before anything runs -------------------------------------------------------
    ("2 ** 10 ** 10", {}, "check", "nested exponent in '2 ** 10 ** 10' is not allowed"),
    ("2 ** 1000", {}, "check", "exponent 1000 is too large"),
    ("'a' * 10 ** 10", {}, "check", "would exceed the size budget: a repetition of str"),
    ("[0] * 10 ** 10", {}, "check", "would exceed the size budget: a repetition of list"),
    ("(0,) * 10 ** 10", {}, "check", "would exceed the size budget: a repetition of tuple"),
    ("b'x' * 10 ** 10", {}, "check", "would exceed the size budget: a repetition of bytes"),
    ("1 << 10 ** 10", {}, "check", "would exceed the size budget: a shifted number"),
    ("'%010000000000d' % 1", {}, "check", "would exceed the size budget: a %-formatted field"),
    ("range(10 ** 12)", {}, "check", "range of more than 1000000 elements is not allowed"),
    ("list(range(0, 10 ** 12, 2))", {}, "check", "range of more than 1000000 elements is not allowed"),
    ("while True:\n    pass", {}, "check", "a 'while' loop whose condition is always true"),
    ("while 1:\n    x = 1\n    for i in []:\n        break", {}, "check", "a 'while' loop whose condition"),
    # --- budgets that only a run can see ---------------------------------------------------------
    ("10 ** int('100000000')", {}, "budget", f"{SIZE}: a power with about 100,000,001 digits"),
    ("a ** a", {"a": 10**6}, "budget", f"{SIZE}: a power with about"),
    ("'a' * n", {"n": BIG}, "budget", f"{SIZE}: a repetition of str"),
    ("[0] * n", {"n": BIG}, "budget", f"{SIZE}: a repetition of list"),
    ("n * 'a'", {"n": BIG}, "budget", f"{SIZE}: a repetition of str"),
    ("1 << n", {"n": BIG}, "budget", f"{SIZE}: a shifted number"),
    ("'%*d' % (n, 1)", {"n": BIG}, "budget", f"{SIZE}: a '*' width"),
    ("f'{x:>{n}}'", {"x": 1, "n": BIG}, "budget", f"{SIZE}: an f-string field"),
    ("s.ljust(n)", {"s": "a", "n": BIG}, "budget", f"{SIZE}: str.ljust"),
    ("s.center(n)", {"s": "a", "n": BIG}, "budget", f"{SIZE}: str.center"),
    ("'ab'.replace('', s)", {"s": "x" * 10**6}, "budget", f"{SIZE}: str.replace"),
    ("','.join([s] * 100)", {"s": "x" * 10**6}, "budget", f"{SIZE}: str.join"),
    ("''.join(s for _ in range(100))", {"s": "x" * 10**6}, "budget", f"{SIZE}: str.join"),
    ("'%(a)010000000000d' % {'a': 1}", {}, "budget", f"{SIZE}: a %-formatted field"),
    ("'%% *s' % ()", {}, "run-ok", "% *s"),
    ("f'{x:099999999}'", {"x": 1}, "budget", f"{SIZE}: an f-string field"),
    ("list(range(n))", {"n": 10**7}, "run", "range of more than 1000000 elements is not allowed"),
    ("list(map(list, [range(10 ** 6)] * 100))", {}, "budget", f"{SIZE}: large values adding up"),
    ("sum([[0] * 10 ** 6] * 100, [])", {}, "budget", f"{SIZE}: a concatenation of list"),
    ("sum(1 for a in range(10 ** 6) for b in range(10 ** 6))", {}, "budget", TIME),
    ("[b for a in range(10 ** 6) for b in range(10 ** 6)]", {}, "budget", TIME),
    ("sorted(range(10 ** 6), key=lambda x: x % 7)", {}, "budget", TIME),
    ("x = 0\nwhile x >= 0:\n    x += 1", {}, "budget", TIME),
    ("while True:\n    x = 1\n    if x == 2:\n        break", {}, "budget", TIME),
    (
        "while True:\n    try:\n        if x == 2:\n            break\n    except Exception:\n        pass",
        {"x": 1},
        "budget",
        TIME,
    ),
    (
        "while True:\n    try:\n        if x == 2:\n            break\n    except:\n        pass",
        {"x": 1},
        "budget",
        TIME,
    ),
    ("def f(n):\n    return f(n - 1) + f(n - 1) if n else 1\nr = f(60)", {}, "budget", TIME),
    ("s = 'x'\nfor i in range(64):\n    s = s + s", {}, "budget", f"{SIZE}: a concatenation of str"),
    ("s = 'x'\nfor i in range(64):\n    s += s", {}, "budget", f"{SIZE}: a concatenation of str"),
    ("d = {'k': 'x'}\nfor i in range(64):\n    d['k'] *= 2", {}, "budget", f"{SIZE}: a repetition of str"),
    ("l = [0] * 10 ** 6\nfor i in range(10):\n    l.extend(l)", {}, "budget", f"{SIZE}: list.extend"),
    ("x = 3\nfor i in range(64):\n    x = x * x", {}, "budget", f"{SIZE}: a product"),
    ("int('9' * 10 ** 6)", {}, "run", "ValueError"),
    ("(lambda f: f(f))(lambda f: f(f))", {}, "budget", TIME),  # or RecursionError, whichever comes first
]


class SteppingClock:
    """A monotonic clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def run(text: str, data: dict[str, Any], limits: Limits) -> Any:
    """An expression is evaluated, a (multi-line) script executed."""
    if "\n" in text:
        return expressions.execute(text, data, limits)
    return expressions.evaluate(text, data, limits)


def check(text: str) -> None:
    (expressions.check_script if "\n" in text else expressions.check_expression)(text)


@pytest.mark.parametrize(("text", "data", "expected", "fragment"), ROWS, ids=[row[0][:40] for row in ROWS])
def test_sandbox_pattern(text: str, data: dict[str, Any], expected: str, fragment: str) -> None:
    if expected == "check":
        with pytest.raises(ExpressionInvalid, match=re.escape(fragment)) as refused:
            check(text)
        assert "refused" in str(refused.value) and not isinstance(refused.value, BudgetExceeded)
        return
    check(text)
    limits = Limits(timeout=2.0, clock=SteppingClock())
    if expected == "run-ok":
        assert run(text, data, limits) == fragment
        return
    with pytest.raises(ExpressionInvalid, match=re.escape(fragment)) as failed:
        run(text, data, limits)
    assert isinstance(failed.value, BudgetExceeded) is (expected == "budget")


def test_there_are_at_least_fifty_patterns() -> None:
    assert len(ROWS) >= 50 and len({row[0] for row in ROWS}) == len(ROWS)


def test_a_time_breach_is_seen_within_a_few_checks() -> None:
    """The deadline is read once per CHECK_EVERY iterations, not on every one."""
    clock = SteppingClock()
    with pytest.raises(BudgetExceeded, match=TIME):
        expressions.execute("x = 0\nwhile x >= 0:\n    x += 1", {}, Limits(timeout=2.0, clock=clock))
    assert clock.now <= 4  # the start, then one reading per CHECK_EVERY ticks until past the deadline
    assert CHECK_EVERY > 1


def test_a_breach_leaves_the_data_untouched_and_the_next_evaluation_runs() -> None:
    data = {"items": [1, 2]}
    with pytest.raises(BudgetExceeded):
        expressions.execute(
            "items.append(3)\n" + "x = 0\nwhile x >= 0:\n    x += 1", data, Limits(timeout=2.0, clock=SteppingClock())
        )
    assert data == {"items": [1, 2]}
    assert expressions.execute("total = sum(items)", data) == {"items": [1, 2], "total": 3}


def test_the_stop_event_ends_a_running_script_without_a_budget_breach() -> None:
    """A worker asked to stop interrupts the script; the caller's unit of work rolls back."""
    from runner.sandbox.budget import Interrupted

    limits = Limits(timeout=3600.0)
    limits.stop.set()
    with pytest.raises(Interrupted):
        expressions.execute("x = 0\nwhile x >= 0:\n    x += 1", {}, limits)


def test_scripts_still_use_list_and_dict_as_types_and_constructors() -> None:
    script = "items = list(range(3))\nok = isinstance(items, list) and isinstance({}, dict)\nd = dict.fromkeys('ab', 0)"
    assert expressions.execute(script, {}) == {"items": [0, 1, 2], "ok": True, "d": {"a": 0, "b": 0}}


# --- datetime parsing inside expressions (it imports _strptime lazily) ------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("datetime.strptime(s, '%d/%m/%Y')", datetime(2026, 12, 7)),
        ("datetime.strptime(s, '%d/%m/%Y').date()", date(2026, 12, 7)),
        ("date.fromisoformat('2026-12-07')", date(2026, 12, 7)),
        ("datetime.fromisoformat('2026-12-07T08:30')", datetime(2026, 12, 7, 8, 30)),
    ],
)
def test_dates_can_be_parsed_in_expressions(text: str, expected: object) -> None:
    assert expressions.evaluate(text, {"s": "07/12/2026"}) == expected


def test_the_import_that_strptime_needs_opens_nothing_else() -> None:
    importer = expressions.SAFE_BUILTINS["__import__"]
    assert importer("_strptime").__name__ == "_strptime"
    for name, level in (("os", 0), ("sys", 0), ("_strptime", 1), ("subprocess", 0)):
        with pytest.raises(ImportError, match="is not allowed"):
            importer(name, level=level)
    with pytest.raises(ExpressionInvalid, match="call of '__import__' is not allowed"):
        expressions.evaluate("__import__('os')", {})
