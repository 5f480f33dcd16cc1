"""Conditions, scripts and gateways: ${...} and plain Python, defaults, joins, JUEL spellings."""

from __future__ import annotations

import pytest

from runner.engine.scripting import acting_as, evaluate, translate
from runner.errors import StepFailed
from runner.model.validation import validate
from tests.harness import FIXTURES, Harness


@pytest.mark.parametrize(
    "data, path",
    [
        ({"staff": 150, "region": "north"}, "big"),  # ${staff >= 100}
        ({"staff": 50, "region": "south"}, "mid"),  # plain Python: 20 <= staff < 100 and region == "south"
        ({"staff": 50, "region": "north"}, "small"),  # default flow (a manual task passes through)
    ],
)
def test_exclusive_gateway_takes_one_flow(mode, data, path):
    h = Harness("gateways.bpmn", "exclusive", mode).start(data)
    assert h.completed
    assert h.history == ["StartEvent_1", "route", path, "EndEvent_1"]


def test_condition_on_unknown_variable_fails_naming_the_gateway(mode):
    with pytest.raises(StepFailed) as caught:
        Harness("gateways.bpmn", "exclusive", mode).start({"region": "north"})
    assert (caught.value.element_id, caught.value.element_name) == ("route", "Quy mô?")
    assert "'staff' is not defined" in str(caught.value)


@pytest.mark.parametrize(
    "wants, opened",
    [
        (["email", "call"], ["email", "call"]),
        (["call"], ["call"]),
        ([], ["letter"]),
    ],
)
def test_inclusive_gateway_runs_every_true_flow_and_joins(mode, wants, opened):
    h = Harness("inclusive.bpmn", "inclusive", mode).start({"wants": wants})
    assert sorted(t.element_id for t in h.ready()) == sorted(opened)
    for element in opened:
        assert [t.element_id for t in h.ready()] != ["after"]
        h.complete(element, {element: "done"})
    assert [t.element_id for t in h.ready()] == ["after"]
    h.complete("after")
    assert h.completed
    assert h.history[:2] == ["StartEvent_1", "channels"]
    assert sorted(h.history[2 : 2 + len(opened)]) == sorted(opened)
    assert h.history[2 + len(opened) :] == ["merge", "after", "EndEvent_1"]
    assert h.data == {"wants": wants, **{e: "done" for e in opened}}


def test_parallel_split_join_then_script(mode):
    h = Harness("parallel.bpmn", "parallel", mode).start({"price": 30, "qty": 5, "customer": "ACME"})
    assert [t.element_id for t in h.ready()] == ["contract"]
    assert [j.element_id for j in h.snapshot().jobs] == ["invoice"]
    h.complete("contract", {"signed": True})
    assert not h.completed and h.ready() == []
    h.run_jobs({"billing.invoice": lambda p: {"invoice": 7}})
    assert h.completed
    assert h.history[:2] == ["StartEvent_1", "split"]
    assert sorted(h.history[2:4]) == ["contract", "invoice"]
    assert h.history[4:] == ["join", "calc", "EndEvent_1"]
    # The script's assignments are data; `del price` removes a variable.
    assert h.data == {
        "qty": 5,
        "customer": "ACME",
        "signed": True,
        "invoice": 7,
        "total": 150,
        "discount": 0.1,
        "label": "ACME: 150",
    }


@pytest.mark.parametrize(
    "data, path",
    [
        ({"paid": True, "seats": 150, "region": "north", "owner": "an"}, "vip"),
        ({"paid": True, "seats": 10, "region": "south", "owner": "an"}, "vip"),
        ({"paid": False, "seats": 10, "region": "south", "owner": None}, "lost"),
        ({"paid": False, "seats": 10, "region": "south", "owner": "an"}, "other"),
        ({"paid": True, "seats": 10, "region": "north", "owner": None}, "other"),
    ],
)
def test_juel_spellings_in_conditions(mode, data, path):
    h = Harness("juel.bpmn", "juel", mode).start(data)
    h.run_jobs({"crm.tag": lambda p: {"tagged": p}})
    assert h.completed
    assert h.history == ["StartEvent_1", "route", path, "EndEvent_1"]


def test_juel_spellings_in_input_parameters(mode):
    h = Harness("juel.bpmn", "juel", mode).start({"paid": True, "seats": 150, "region": "x", "owner": None})
    [job] = h.snapshot().jobs
    assert job.params == {"label": "a && b || !c", "big": True}  # string literals are left alone


@pytest.mark.parametrize(
    "text, python",
    [
        ("${a && b}", "a  and  b"),
        ("a || b", "a  or  b"),
        ("${!a}", "not a"),
        ("${a != b && !c}", "a != b  and   not c"),
        ("${s == 'x && y' || s == \"!\"}", "s == 'x && y'  or  s == \"!\""),
        ("${a and b}", "${a and b}"),
    ],
)
def test_translate_leaves_strings_alone(text, python):
    assert translate(text) == python


def test_juel_names_and_data_precedence():
    assert evaluate("${x == null && flag == true && other == false}", {"x": None, "flag": True, "other": False})
    assert evaluate("${true}", {"true": "data wins"}) == "data wins"


@pytest.mark.parametrize(
    "text, data, expected",
    [
        ("${amount gt 1000 and region eq 'south'}", {"amount": 1500, "region": "south"}, True),
        ("${amount le 1000 || region ne 'south'}", {"amount": 1500, "region": "south"}, False),
        ("${seats ge 10 && seats lt 20}", {"seats": 10}, True),
        ("${total div 4 mod 3}", {"total": 20}, 2.0),
        ("${empty owner}", {"owner": None}, True),
        ("${empty tags}", {"tags": []}, True),
        ("${!empty note}", {"note": ""}, False),
        ("${not empty tags && empty owner}", {"tags": ["vip"], "owner": ""}, True),
        ("${empty count}", {"count": 0}, False),  # JUEL: only null, "" and empty collections are empty
        ("${empty name == false}", {"name": "An"}, True),  # empty binds tighter than ==
        ("${note == 'a eq b'}", {"note": "a eq b"}, True),  # words inside strings stay
        ("${lt}", {"lt": 7}, 7),  # a variable named like an operator, standing alone
        ("lt < gt", {"lt": 1, "gt": 2}, True),  # plain Python never gets the word operators
    ],
)
def test_juel_word_operators(text, data, expected):
    assert evaluate(text, data) == expected


def test_current_user_is_whoever_carries_out_the_unit_of_work():
    assert evaluate("${currentUser()}", {}) is None  # a timer or a handler: nobody
    with acting_as("ketoan"):
        assert evaluate("${currentUser() == 'ketoan'}", {})
        with acting_as(None):
            assert evaluate("${currentUser()}", {}) is None
        assert evaluate("currentUser()", {}) == "ketoan"
    assert evaluate("${currentUser()}", {}) is None
    assert evaluate("${currentUser}", {"currentUser": "data wins"}) == "data wins"


def test_deployment_validation_accepts_juel_word_operators():
    xml = (
        (FIXTURES / "juel.bpmn")
        .read_text()
        .replace("${!paid &amp;&amp; owner == null}", "${not paid and empty owner and seats lt 5}")
    )
    assert "empty owner" in xml
    assert validate({"juel.bpmn": xml.encode()}, topics={"crm.tag"}) == []


def test_deployment_validation_accepts_juel_spellings():
    """What the engine runs, deployment accepts (runner.model.validation translates JUEL too)."""
    files = {"juel.bpmn": (FIXTURES / "juel.bpmn").read_bytes()}
    assert validate(files, topics={"crm.tag"}) == []
