"""Customer field values: typing per field, configured extra fields and required fields.

A profile update names fields by their column name (or a configured extra field's code
name); each value is typed by the field's data type, and a wrong one raises ``BadValue``
naming the field. Nothing here commits: the caller's unit of work does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, tzinfo
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runner.crm.models import (
    DATA_TYPES,
    BadValue,
    Customer,
    CustomerGroup,
    CustomerSource,
    ExtraField,
    Occupation,
    RequiredField,
    School,
)
from runner.model.inputs import text_problem

# Data type of every customer column a profile update may set (owner/teacher have their own steps).
FIELD_TYPES = {
    "name": "text",
    "phone": "text",
    "email": "text",
    "zalo_user_id": "text",
    "zalo_group_id": "text",
    "status": "text",
    "business_model": "text",
    "dedicated_department": "boolean",
    "staff_count": "integer",
    "student_count": "integer",
    "course_model": "text",
    "source": "text",
    "group": "text",
    "occupation": "text",
    "school": "text",
    "contract_start": "date",
    "contract_end": "date",
    "package": "text",
    "trial_link": "text",
}
PROFILE_FACTS = ("business_model", "dedicated_department", "staff_count", "student_count", "course_model")
LISTED: dict[str, type[CustomerSource] | type[CustomerGroup] | type[Occupation] | type[School]] = {
    "source": CustomerSource,
    "group": CustomerGroup,
    "occupation": Occupation,
    "school": School,
}
CUSTOMER_COLUMNS = tuple(c.key for c in Customer.__table__.columns)


def json_value(value: Any) -> Any:
    """Dates and date-times as ISO strings, everything else as it is."""
    return value.isoformat() if isinstance(value, (date, datetime)) else value


_TRUE = {"true", "yes", "có", "co", "1"}
_FALSE = {"false", "no", "không", "khong", "0"}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__} {value!r}")
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value.strip()


def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise TypeError(f"expected a whole number, got {value!r}")


def _number(value: Any) -> float | int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return float(value) if re.search(r"[.eE]", value) else int(value)
        except ValueError:
            pass
    raise TypeError(f"expected a number, got {value!r}")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().casefold() in _TRUE | _FALSE:
        return value.strip().casefold() in _TRUE
    raise TypeError(f"expected true/false (có/không), got {value!r}")


def _date(value: Any, tz: tzinfo | None = None) -> date:
    """A date; a moment with an offset counts by its day in ``tz`` (None: the day as written)."""
    if isinstance(value, datetime):
        return value.astimezone(tz).date() if value.tzinfo and tz else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            text = value.strip()
            return _date(datetime.fromisoformat(text), tz) if "T" in text else date.fromisoformat(text)
        except ValueError:
            pass
    raise TypeError(f"expected a date (YYYY-MM-DD), got {value!r}")


_COERCE = {"text": _text, "integer": _integer, "number": _number, "boolean": _boolean, "date": _date}


def coerce(field: str, data_type: str, value: Any, tz: tzinfo | None = None) -> Any:
    """``value`` as a value of ``data_type``; None/"" clear the field; BadValue names the field.

    ``tz`` is the business time zone: a date-time given for a date counts by its day there.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    convert = partial(_date, tz=tz) if data_type == "date" else _COERCE[data_type]
    try:
        return convert(value)
    except (TypeError, ValueError) as exc:
        raise BadValue(f"field {field!r}: {exc}") from None


def _check_length(field: str, value: Any) -> None:
    """Text longer than its column would fail at the database (PostgreSQL), after the step ran."""
    length = getattr(Customer.__table__.c[field].type, "length", None)
    if isinstance(value, str) and length is not None and len(value) > length:
        raise BadValue(f"field {field!r}: at most {length} characters, got {len(value)}")


def _check_value(session: Session, field: str, value: Any) -> None:
    """Rules beyond the type: names, e-mails, counts, and membership of configured lists."""
    if value is None:
        return
    if field == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise BadValue(f"field 'email': {value!r} is not an e-mail address")
    if field == "phone" and not re.fullmatch(r"\+?[\d .-]{8,20}", value):
        raise BadValue(f"field 'phone': {value!r} is not a phone number")
    if field in ("staff_count", "student_count") and value < 0:
        raise BadValue(f"field {field!r}: must not be negative, got {value}")
    model = LISTED.get(field)
    if (
        model is not None
        and session.scalar(select(model.id).limit(1)) is not None
        and session.scalar(select(model.id).where(model.name == value)) is None
    ):
        known = ", ".join(session.scalars(select(model.name).order_by(model.name)))
        raise BadValue(f"field {field!r}: {value!r} is not in the configured list ({known})")


def clean_fields(
    session: Session, values: dict[str, Any], tz: tzinfo | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split and type profile values into (columns, extra fields); BadValue names the first bad field.

    NOTE: an empty value (None, "") means "not given" and is left out: a step whose form
    field stayed blank must not erase what the record already holds.
    """
    extra_types = dict(session.execute(select(ExtraField.name, ExtraField.data_type)).all())
    columns: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for field, raw in values.items():
        if field in FIELD_TYPES:
            value = coerce(field, FIELD_TYPES[field], raw, tz)
            _check_length(field, value)
            _check_value(session, field, value)
            target = columns
        elif field in extra_types:
            value = json_value(coerce(field, extra_types[field], raw, tz))
            target = extra
        else:
            known = ", ".join([*FIELD_TYPES, *extra_types])
            raise BadValue(f"field {field!r} is not a customer field or a configured extra field ({known})")
        if value is not None:
            target[field] = value
    return columns, extra


def update_fields(session: Session, customer: Customer, values: dict[str, Any], tz: tzinfo | None = None) -> None:
    """Validate and store profile values (columns and extra fields) on ``customer`` (``tz``: see ``coerce``)."""
    columns, extra = clean_fields(session, values, tz)
    for field, value in columns.items():
        setattr(customer, field, value)
    if extra:
        customer.extra = {**(customer.extra or {}), **extra}


def missing_fields(session: Session, customer: Customer) -> list[str]:
    """The configured required fields that are still empty, in their configured order."""
    missing = []
    for field in session.scalars(select(RequiredField.field).order_by(RequiredField.position, RequiredField.field)):
        value = getattr(customer, field) if field in FIELD_TYPES else (customer.extra or {}).get(field)
        if value is None or value == "":
            missing.append(field)
    return missing


# --- configuration ----------------------------------------------------------------------------------


def add_extra_field(session: Session, name: str, label: str, data_type: str) -> None:
    """Configure an extra customer field of one of ``DATA_TYPES``."""
    if data_type not in DATA_TYPES:
        raise BadValue(f"extra field {name!r}: data type {data_type!r} is not one of {', '.join(DATA_TYPES)}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in CUSTOMER_COLUMNS:
        raise BadValue(f"extra field {name!r}: needs a new lower-case code name (letters, digits, _)")
    position = len(session.scalars(select(ExtraField.name)).all())
    session.add(ExtraField(name=name, label=label, data_type=data_type, position=position))
    session.flush()


def set_required_fields(session: Session, fields: Iterable[str]) -> None:
    """Replace the list of required customer fields (columns or configured extra fields)."""
    fields = list(dict.fromkeys(fields))
    known = set(FIELD_TYPES) | set(session.scalars(select(ExtraField.name)))
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise BadValue(f"required fields: {', '.join(map(repr, unknown))} are not customer fields")
    for row in session.scalars(select(RequiredField)):
        session.delete(row)
    session.flush()
    session.add_all(RequiredField(field=f, position=i) for i, f in enumerate(fields))
    session.flush()
