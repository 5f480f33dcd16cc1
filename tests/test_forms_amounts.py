"""Amounts as staff type them (``format=vnd`` on a long field) and as they are shown: 12.900.000 ₫."""

from __future__ import annotations

import pytest
from lxml import etree

from runner.errors import FormInvalid
from runner.model import forms, formvalues

FORM_XML = """<bpmn:userTask xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Task_contract">
  <bpmn:extensionElements><camunda:formData>
    <camunda:formField id="amount" label="Giá trị đơn hàng (VNĐ)" type="long">
      <camunda:properties><camunda:property id="format" value="vnd" /></camunda:properties>
      <camunda:validation><camunda:constraint name="required" /><camunda:constraint name="min" config="1" />
      </camunda:validation></camunda:formField>
    <camunda:formField id="staff_count" label="Số lượng nhân sự" type="long" />
  </camunda:formData></bpmn:extensionElements>
</bpmn:userTask>"""


def form() -> forms.Form:
    return forms.parse_form(etree.fromstring(FORM_XML))


@pytest.mark.parametrize(
    ("typed", "amount"),
    [
        ("12900000", 12_900_000),
        ("12.900.000", 12_900_000),
        ("12,900,000 đ", 12_900_000),
        ("12 900 000 VNĐ", 12_900_000),
        ("12.900.000₫", 12_900_000),
        ("12.900.000 đồng", 12_900_000),
        ("12.9tr", 12_900_000),
        ("12,9 triệu", 12_900_000),
        ("13 Triệu", 13_000_000),
        ("500k", 500_000),
        ("1,5 tỷ", 1_500_000_000),
        (12_900_000, 12_900_000),
        (12_900_000.0, 12_900_000),
    ],
)
def test_an_amount_is_read_as_staff_type_it(typed: object, amount: int) -> None:
    assert formvalues.parse_amount(typed) == amount
    assert forms.coerce(form(), {"amount": typed}) == {"amount": amount}


@pytest.mark.parametrize(
    "typed", ["12.90.000", "12,9", "12.9", "1.2345678tr", "mười triệu", "12.900.000 USD", "-", True, 12.5, "0"]
)
def test_an_amount_that_is_not_whole_dong_is_refused_naming_the_field(typed: object) -> None:
    with pytest.raises(FormInvalid) as refused:
        forms.coerce(form(), {"amount": typed})
    assert list(refused.value.errors) == ["amount"]
    assert refused.value.errors["amount"].startswith("Giá trị đơn hàng (VNĐ) must be")


@pytest.mark.parametrize(
    ("typed", "count"), [("1.000", 1000), ("1,000", 1000), ("25", 25), ("-3", -3), ("1 000 000", 1_000_000)]
)
def test_every_long_field_takes_thousands_separators(typed: str, count: int) -> None:
    assert forms.coerce(form(), {"amount": 1, "staff_count": typed})["staff_count"] == count


@pytest.mark.parametrize("typed", ["4.2", "4,25", "1.00", "12tr", "1e3"])
def test_a_plain_long_field_still_refuses_fractions_and_units(typed: str) -> None:
    with pytest.raises(FormInvalid, match="Số lượng nhân sự must be a whole number"):
        forms.coerce(form(), {"amount": 1, "staff_count": typed})


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(12_900_000, "12.900.000 ₫"), (0, "0 ₫"), (950, "950 ₫"), (1_500_000_000, "1.500.000.000 ₫"), (-5000, "-5.000 ₫")],
)
def test_an_amount_is_shown_with_vietnamese_separators(amount: int, shown: str) -> None:
    assert formvalues.show_amount(amount) == shown
    assert formvalues.parse_amount(shown) == amount or amount < 0  # what is shown reads back


def test_the_format_property_marks_only_long_fields_as_money() -> None:
    assert form().field("amount").is_amount and not form().field("staff_count").is_amount
    assert formvalues.show_amount(None) == "" and formvalues.show_amount("abc") == "abc"
