"""Restricted expressions and scripts: evaluation, unwrapping and refused escapes."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from runner.errors import ExpressionInvalid
from runner.sandbox.expressions import (
    check_expression,
    evaluate,
    execute,
    is_wrapped,
    unwrap,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${a}", "a"),
        ("  ${ a + 1 }  ", "a + 1"),
        ("#{score < 9}", "score < 9"),
        ("score < 9", "score < 9"),
        ("  plain  ", "plain"),
        ("${a} + ${b}", "${a} + ${b}"),
        ("${ {'k': 1}['k'] }", "{'k': 1}['k']"),
        ("${ name == '}' }", "name == '}'"),
        ("${a", "${a"),
        ("{a}", "{a}"),
    ],
)
def test_unwrap(text: str, expected: str) -> None:
    assert unwrap(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("${a}", True), (" #{a} ", True), ("a", False), ("${a} + ${b}", False), ("$a", False)],
)
def test_is_wrapped(text: str, expected: bool) -> None:
    assert is_wrapped(text) is expected


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("${a + 1}", {"a": 1}, 2),
        ("a < 9", {"a": 3}, True),
        ("${score < 9}", {"score": 12}, False),
        ("${customer_name}", {"customer_name": "Lan"}, "Lan"),
        ("${status == 'approved'}", {"status": "approved"}, True),
        ("status in ('new', 'open')", {"status": "closed"}, False),
        ("${name.upper().startswith('L')}", {"name": "lan"}, True),
        ("f'{name}-{n:03d}'", {"name": "a", "n": 7}, "a-007"),
        ("[x * 2 for x in items if x > limit]", {"items": [1, 5, 9], "limit": 4}, [10, 18]),
        ("sorted(items, key=lambda x: -x)[0]", {"items": [3, 8, 1]}, 8),
        ("sum(range(5)) + len(items)", {"items": [1]}, 11),
        ("2 ** 10", {}, 1024),
        ("due + timedelta(days=1)", {"due": date(2026, 1, 31)}, date(2026, 2, 1)),
        ("order['total'] > 100 and not vip", {"order": {"total": 150}, "vip": False}, True),
    ],
)
def test_evaluate(text: str, data: dict, expected: object) -> None:
    assert evaluate(text, data) == expected


def test_unknown_variable_names_the_variable() -> None:
    with pytest.raises(ExpressionInvalid, match="name 'missing' is not defined in the instance data"):
        evaluate("${missing > 1}", {"a": 1})


@pytest.mark.parametrize(
    ("text", "data", "fragment"),
    [
        ("1 / a", {"a": 0}, "ZeroDivisionError: division by zero"),
        ("a + 'x'", {"a": 1}, "TypeError"),
        ("list(range(n))", {"n": 10**7}, "range of more than 1000000 elements is not allowed"),
    ],
)
def test_runtime_errors_become_expression_invalid(text: str, data: dict, fragment: str) -> None:
    with pytest.raises(ExpressionInvalid, match=fragment) as info:
        evaluate(text, data)
    assert info.value.__cause__ is not None
    assert repr(text) in str(info.value)


def test_syntax_error_has_position() -> None:
    with pytest.raises(ExpressionInvalid, match=r"syntax error .* at line 1, column \d+"):
        check_expression("${a +}")


def test_script_updates_data_and_drops_leftovers() -> None:
    data = {"a": 1, "items": [1, 2]}
    script = """
        def double(x):
            return x * 2
        b = double(a)
        items.append(3)
        total = sum(items)
        squares = map(double, items)
        try:
            ratio = 1 / 0
        except ZeroDivisionError:
            ratio = None
        """
    result = execute(script, data)
    assert result == {"a": 1, "items": [1, 2, 3], "b": 2, "total": 6, "ratio": None}
    assert data == {"a": 1, "items": [1, 2]}, "the caller's data must stay untouched"


def test_script_can_raise_a_readable_error() -> None:
    with pytest.raises(ExpressionInvalid, match="ValueError: amount must be positive"):
        execute("if amount <= 0:\n    raise ValueError('amount must be positive')", {"amount": 0})


def test_script_unknown_variable() -> None:
    with pytest.raises(ExpressionInvalid, match="name 'nope' is not defined in the instance data"):
        execute("x = nope + 1", {})


# NOTE: the escape patterns are data rows of tests/hostile/test_sandbox.py.


def test_every_refusal_is_listed_in_source_order() -> None:
    with pytest.raises(ExpressionInvalid) as info:
        check_expression("eval(x) + open(y)._z")
    message = str(info.value)
    assert message.index("'eval'") < message.index("'open'") < message.index("'_z'")


def test_null_bytes_are_a_syntax_error_without_position() -> None:
    with pytest.raises(ExpressionInvalid, match=re.escape("syntax error in expression '\\x00': ")):
        check_expression("\x00")


def test_statements_are_not_expressions() -> None:
    with pytest.raises(ExpressionInvalid, match="syntax error"):
        check_expression("import os")


def test_scripts_keep_working_when_indented_by_the_xml() -> None:
    assert execute("\n    x = 1\n    y = x + 1\n", {}) == {"x": 1, "y": 2}


def test_huge_chain_is_reported_not_crashed() -> None:
    text = "+".join(["1"] * 5000)
    try:
        assert evaluate(text, {}) == 5000
    except ExpressionInvalid as exc:  # acceptable: refused, not a crash
        assert "cannot be compiled" in str(exc)


def test_data_cannot_replace_the_builtins() -> None:
    assert evaluate("len(a)", {"a": [1], "__builtins__": {"len": lambda _: 99}}) == 1


def test_helpers_are_not_returned_as_data() -> None:
    result = execute("d = date(2026, 1, 1) + timedelta(days=1)\nf = len", {})
    assert result == {"d": date(2026, 1, 2)}
    assert "timedelta" not in result and isinstance(result["d"] - result["d"], timedelta)


@pytest.mark.parametrize("text", ["datetime.now()", "date.today()", "datetime.utcnow()", "datetime.fromtimestamp(0)"])
def test_wall_clock_reads_are_refused(text: str) -> None:
    with pytest.raises(ExpressionInvalid, match="use now\\(\\), the runner's clock"):
        check_expression(text)


@pytest.mark.parametrize("name", ["id", "input", "property"])
def test_harmless_builtin_names_are_free_for_process_variables(name: str) -> None:
    assert evaluate(f"${{{name} + 1}}", {name: 41}) == 42
    with pytest.raises(ExpressionInvalid, match="not defined"):
        evaluate(name, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("add_months(date(2027, 5, 31), -3)", date(2027, 2, 28)),
        ("add_months('2028-05-31', -3)", date(2028, 2, 29)),
        ("add_months('2026-11-30', 3)", date(2027, 2, 28)),
        ("add_months(date.fromisoformat(end), -3) == date(2027, 1, 15)", True),
    ],
)
def test_add_months_moves_by_calendar_months(text: str, expected: object) -> None:
    assert evaluate(text, {"end": "2027-04-15"}) == expected


def test_add_months_keeps_the_time_and_zone_of_a_datetime() -> None:
    result = evaluate("add_months('2026-01-31T09:00:00+07:00', 1)", {})
    assert result.isoformat() == "2026-02-28T09:00:00+07:00"


@pytest.mark.parametrize(
    ("text", "fragment"), [("add_months(5, 1)", "needs a date"), ("add_months('2026-01-01', 1.5)", "whole number")]
)
def test_add_months_refuses_wrong_arguments(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionInvalid, match=fragment):
        evaluate(text, {})
