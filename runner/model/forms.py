"""Camunda ``formData`` user-task forms: definition, JSON round trip and server-side validation.

:func:`coerce` results: an absent optional field is left out (stored data stays as is); one
submitted empty (None, "", spaces) becomes None; with ``html=True`` an absent boolean is False;
read-only fields are never included; dates are ISO strings ("YYYY-MM-DD" or full date-time);
``datetime`` fields (typed ``dd/MM/yyyy HH:mm`` in the business zone ``tz``) are ISO 8601 with
that zone's offset; ``long`` fields take thousands separators, and with the property
``format=vnd`` amounts as staff type them (``runner.model.formvalues``). A ``min``/``max`` of
``now`` (date and datetime) is checked against ``now``, the runner's clock, which the caller passes.
A date or datetime field with the property ``calendar`` = ``business`` must lie in the
business calendar's working time (a datetime inside working hours, a date on a working day);
the caller passes the calendar (``calendar=``), read only when such a field is submitted.
An enum field whose property ``options`` is ``list:NAME`` takes its options from the configured
list NAME as it is now: :func:`with_lists` fills them in from a reader the caller passes (the
runner's extensions, read through the request's session) before the form is shown or checked.
Messages read "<label> <rule>" ("Số nhân viên must be at least 0"); the FormInvalid also has
``codes`` (field id -> required|readonly|type|enum|min|max|minlength|maxlength|hours|file_type|file_size|unknown).
A ``file`` field (custom type) holds the reference ``runner.uploads`` made for a stored file (``runner.model.files``);
its properties ``accept`` (pdf, image, png, jpeg) and ``max_bytes`` limit what it takes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from lxml import etree

from runner.errors import DeploymentInvalid, FormInvalid, Invalid, Problem
from runner.model import files, formvalues, worktime
from runner.model.inputs import TextInvalid, check_data, check_text, text_problem

CAMUNDA_NS = ("http://camunda.org/schema/1.0/bpmn", "http://activiti.org/bpmn")
TYPES = ("string", "long", "boolean", "date", "datetime", "enum", "file")
_MOMENTS = ("date", "datetime")
_LIMITS = {
    "min": ("long", *_MOMENTS),
    "max": ("long", *_MOMENTS),
    "minlength": ("string",),
    "maxlength": ("string",),
}
NOW = "now"  # a min/max config meaning "the runner's clock when the form is submitted"
CALENDAR = "calendar"  # the field property naming the calendar whose working time a moment must lie in
OPTIONS = "options"  # the enum field property naming the configured list of its options: list:NAME
LIST_PREFIX = "list:"
Limit = float | date | str | None
_TRUE = frozenset({"true", "on", "1", "yes"})
_FALSE = frozenset({"false", "off", "0", "no"})
_INT_RE = re.compile(r"[+-]?[0-9]{1,30}")
_DATE_RE = re.compile(r"[0-9]{4}-?[0-9]{2}-?[0-9]{2}")
_LONG_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Option:
    """One choice of an enum field."""

    id: str
    name: str


@dataclass(frozen=True)
class Field:
    """One ``camunda:formField``: type, raw default, constraints, enum options and properties."""

    id: str
    label: str
    type: str
    default: str | None = None
    required: bool = False
    readonly: bool = False
    min: Limit = None
    max: Limit = None
    minlength: int | None = None
    maxlength: int | None = None
    options: tuple[Option, ...] = ()
    props: tuple[tuple[str, str], ...] = ()

    @property
    def properties(self) -> dict[str, str]:
        """The field's ``camunda:property`` id -> value pairs."""
        return dict(self.props)

    @property
    def is_amount(self) -> bool:
        """Tell whether this long field holds money (property ``format`` = ``vnd``)."""
        return self.type == "long" and self.properties.get("format", "").lower() == "vnd"

    @property
    def option_list(self) -> str | None:
        """The configured list this enum field takes its options from (property ``options`` = ``list:NAME``)."""
        value = self.properties.get(OPTIONS, "").strip()
        if not value.startswith(LIST_PREFIX):
            return None
        return value.removeprefix(LIST_PREFIX).strip() or None

    @property
    def file_kinds(self) -> tuple[str, ...]:
        """The kinds of file (``pdf``, ``png``, ``jpeg``) a ``file`` field takes (property ``accept``)."""
        return files.accepted(self.properties.get("accept"))

    @property
    def max_bytes(self) -> int:
        """The largest file a ``file`` field takes (property ``max_bytes``, at most ``files.MAX_BYTES``)."""
        text = self.properties.get("max_bytes", "").strip()
        return min(int(text), files.MAX_BYTES) if text.isdigit() and int(text) > 0 else files.MAX_BYTES

    @property
    def calendar(self) -> str | None:
        """The calendar whose working time this date or date-time must lie in (``business``), if any."""
        return self.properties.get(CALENDAR) or None

    def default_value(self, tz: tzinfo = UTC) -> Any:
        """The typed default; expression defaults (``${...}``) are returned unevaluated."""
        if self.default is None or _is_expression(self.default):
            return self.default
        return None if _is_empty(self.default) else _convert(self, self.default, tz)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description for the web UI and the REST API."""
        return {
            "id": self.id,
            "label": self.label,
            "type": self.type,
            "default": self.default,
            "required": self.required,
            "readonly": self.readonly,
            "min": _show(self.min),
            "max": _show(self.max),
            "minlength": self.minlength,
            "maxlength": self.maxlength,
            "options": [{"id": o.id, "name": o.name} for o in self.options],
            "properties": self.properties,
        }


@dataclass(frozen=True)
class Form:
    """The ordered fields of one user task; empty when the task has no form."""

    fields: tuple[Field, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description; :func:`form_from_dict` reverses it."""
        return {"fields": [f.to_dict() for f in self.fields]}

    def field(self, id: str) -> Field:
        """The field with this id; KeyError when there is none."""
        for f in self.fields:
            if f.id == id:
                return f
        raise KeyError(f"no form field {id!r}")

    @property
    def option_lists(self) -> frozenset[str]:
        """The configured lists its enum fields name."""
        return frozenset(name for f in self.fields if (name := f.option_list))


ListReader = Callable[[str], Sequence[tuple[str, str]]]


def with_lists(form: Form, read: ListReader) -> Form:
    """The form with each list field's options as ``read`` (name -> (id, label) pairs) gives them now.

    Each list is read once; a form without list fields is returned as it is, reading nothing.
    """
    names = form.option_lists
    if not names:
        return form
    lists = {name: tuple(Option(str(id), str(label)) for id, label in read(name)) for name in sorted(names)}
    return Form(tuple(replace(f, options=lists[f.option_list]) if f.option_list else f for f in form.fields))


def with_lists_dict(form: Mapping[str, Any], read: ListReader) -> dict[str, Any]:
    """:func:`with_lists` on a stored form (:meth:`Form.to_dict`), stored form in and out."""
    # NOTE: a page of task rows mostly holds forms without a list: those are not parsed at all
    props = (f.get("properties") or {} for f in form.get("fields", ()))
    if not any(str(p.get(OPTIONS, "")).strip().startswith(LIST_PREFIX) for p in props):
        return dict(form)
    return with_lists(form_from_dict(form), read).to_dict()


class _Bad(Invalid):
    """Raised for one rejected value: a machine code and a rule text without the label (FormInvalid collects them)."""

    def __init__(self, code: str, text: str):
        super().__init__(text)
        self.code, self.text = code, text


def _children(parent: etree._Element, local: str) -> Iterator[etree._Element]:
    for child in parent:
        if isinstance(child.tag, str):
            name = etree.QName(child)
            if name.localname == local and name.namespace in CAMUNDA_NS:
                yield child


def parse_form(element: etree._Element) -> Form:
    """Read the ``camunda:formData`` of a userTask element; DeploymentInvalid on bad definitions."""
    problems: list[str] = []
    fields: list[Field] = []
    for ext in element:
        if isinstance(ext.tag, str) and etree.QName(ext).localname == "extensionElements":
            for data in _children(ext, "formData"):
                fields.extend(_parse_field(node, problems) for node in _children(data, "formField"))
    ids = [f.id for f in fields]
    problems += [f"form field {i!r} is defined twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    if problems:
        where = (element.get("id", ""), element.get("name", ""))
        raise DeploymentInvalid([Problem(*where, reason) for reason in problems])
    return Form(tuple(fields))


def _parse_field(node: etree._Element, problems: list[str]) -> Field:
    fid, ftype = node.get("id", ""), node.get("type", "string")
    where = f"form field {fid!r}"
    if not fid:
        problems.append("a form field has no id")
    if ftype not in TYPES:
        problems.append(f"{where}: unsupported type {ftype!r} (use {', '.join(TYPES)})")
    options = tuple(Option(v.get("id", ""), v.get("name") or v.get("id", "")) for v in _children(node, "value"))
    # NOTE: Camunda Modeler writes a form field's property as id=...; name=... is read as well, as
    # on every other element's camunda:property.
    props = {
        p.get("id") or p.get("name", ""): p.get("value", "")
        for group in _children(node, "properties")
        for p in _children(group, "property")
    }
    field = Field(
        fid,
        node.get("label") or fid,
        ftype,
        node.get("defaultValue"),
        options=options,
        props=tuple(props.items()),
        **_constraints(node, ftype, where, problems),
    )
    if ftype in TYPES:
        _check_field(field, where, problems)
    if CALENDAR in props:
        _check_calendar(field, where, problems)
    if OPTIONS in props:
        _check_option_list(field, where, problems)
    if ftype == "file":
        _check_file(field, where, problems)
    return field


def _check_option_list(field: Field, where: str, problems: list[str]) -> None:
    """``options`` = ``list:NAME`` on an enum field with no values of its own and no default."""
    if field.option_list is None:
        shown = field.properties[OPTIONS]
        problems.append(f"{where}: property 'options' is {shown!r}; it must be 'list:NAME', NAME a configured list")
    elif field.type != "enum":
        problems.append(f"{where}: property 'options' applies to enum fields, not {field.type!r}")
    elif field.options:
        problems.append(f"{where}: takes its options from the list {field.option_list!r}; remove its own values")
    elif field.default is not None:
        problems.append(
            f"{where}: takes its options from the list {field.option_list!r}, which may change; "
            "it cannot have a default value"
        )


def _check_file(field: Field, where: str, problems: list[str]) -> None:
    try:
        field.file_kinds  # noqa: B018  # parsing it is the check
    except ValueError as exc:
        problems.append(f"{where}: property 'accept': {exc}")
    text = field.properties.get("max_bytes")
    if text is not None and not (text.strip().isdigit() and 0 < int(text) <= files.MAX_BYTES):
        problems.append(
            f"{where}: property 'max_bytes' is {text!r}; it must be a whole number of bytes up to {files.MAX_BYTES}"
        )
    if field.default is not None:
        problems.append(f"{where}: a file field has no default value")


def _check_calendar(field: Field, where: str, problems: list[str]) -> None:
    if field.calendar not in worktime.CALENDAR_NAMES:
        names = " or ".join(repr(n) for n in worktime.CALENDAR_NAMES)
        problems.append(f"{where}: property 'calendar' is {field.calendar or ''!r}; it must be {names} or absent")
    elif field.type not in _MOMENTS:
        problems.append(f"{where}: property 'calendar' applies to date and datetime fields, not {field.type!r}")


def _constraints(node: etree._Element, ftype: str, where: str, problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for validation in _children(node, "validation"):
        for c in _children(validation, "constraint"):
            name, config = c.get("name", ""), c.get("config")
            if name in ("required", "readonly"):
                out[name] = True
            elif name not in _LIMITS:
                problems.append(f"{where}: unsupported constraint {name!r}")
            elif ftype not in _LIMITS[name]:
                problems.append(f"{where}: constraint {name!r} does not apply to type {ftype!r}")
            else:
                try:
                    out[name] = _limit(name, ftype, config or "")
                except (ValueError, _Bad):
                    problems.append(f"{where}: constraint {name!r} has invalid config {config!r}")
    return out


def _limit(name: str, ftype: str, config: str) -> float | date | str:
    text = config.strip()
    if name in ("minlength", "maxlength"):
        if not _INT_RE.fullmatch(text) or int(text) < 0:
            raise ValueError(text)
        return int(text)
    if ftype in _MOMENTS and text.lower() == NOW:
        return NOW
    if ftype == "datetime":
        return datetime.fromisoformat(text)  # without an offset: wall time in the business zone
    if ftype == "date":
        parsed = _parse_date(text)
        return parsed.date() if isinstance(parsed, datetime) else parsed
    # NOTE: a long field's limits are whole numbers in the long range, as its values are
    if not _INT_RE.fullmatch(text) or not _LONG_RANGE[0] <= int(text) <= _LONG_RANGE[1]:
        raise ValueError(text)
    return int(text)


def _check_field(field: Field, where: str, problems: list[str]) -> None:
    ids = [o.id for o in field.options]
    if field.type == "enum" and not ids and OPTIONS not in field.properties:  # else _check_option_list says
        problems.append(f"{where}: enum field has no values")
    if len(set(ids)) != len(ids):
        problems.append(f"{where}: enum values repeat an id")
    for low, high in ((field.min, field.max), (field.minlength, field.maxlength)):
        if _comparable(low, high) and low > high:  # type: ignore[operator]  # same kind on both sides
            problems.append(f"{where}: lower limit {_show(low)} is above upper limit {_show(high)}")
    if field.option_list is not None:
        return  # NOTE: its options (and so any value) are known only when the list is read
    if field.default is not None and not _is_expression(field.default) and not _is_empty(field.default):
        try:
            _check_limits(field, _convert(field, field.default))
        except _Bad as bad:
            problems.append(f"{where}: default value {field.default!r} {bad.text}")


def _comparable(low: Any, high: Any) -> bool:
    """Both limits are fixed and of one kind (``now`` moves; naive and aware moments do not compare)."""
    if low is None or high is None or NOW in (low, high):
        return False
    return not isinstance(low, datetime) or (low.tzinfo is None) == (high.tzinfo is None)


def form_from_dict(d: Mapping[str, Any]) -> Form:
    """Rebuild a Form from :meth:`Form.to_dict` output (as stored per deployed version)."""
    return Form(tuple(_field_from_dict(f) for f in d.get("fields", ())))


def _field_from_dict(d: Mapping[str, Any]) -> Field:
    ftype = d["type"]

    def limit(key: str) -> Limit:
        value = d.get(key)
        if value is None or value == NOW or ftype not in _MOMENTS:
            return value
        return datetime.fromisoformat(value) if ftype == "datetime" else date.fromisoformat(value)

    return Field(
        d["id"],
        d.get("label") or d["id"],
        ftype,
        d.get("default"),
        required=bool(d.get("required")),
        readonly=bool(d.get("readonly")),
        min=limit("min"),
        max=limit("max"),
        minlength=d.get("minlength"),
        maxlength=d.get("maxlength"),
        options=tuple(Option(o["id"], o.get("name", o["id"])) for o in d.get("options", ())),
        props=tuple(dict(d.get("properties") or {}).items()),
    )


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _is_expression(text: str) -> bool:
    return text.strip().startswith(("${", "#{"))


def _show(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _to_long(value: Any, amount: bool = False) -> int:
    if amount:
        try:
            value = formvalues.parse_amount(value)
        except formvalues.ValueRefused as exc:
            raise _Bad("type", str(exc)) from None
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str):
        whole = formvalues.parse_whole(value)
        value = value if whole is None else whole
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Bad("type", "must be a whole number")
    if not _LONG_RANGE[0] <= value <= _LONG_RANGE[1]:
        raise _Bad("type", "is out of range")
    return value


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise _Bad("type", "must be true or false")


def _parse_date(value: Any) -> date:
    if isinstance(value, date):  # datetime is a date too
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text) if _DATE_RE.fullmatch(text) else datetime.fromisoformat(text)
        except ValueError:
            pass
    raise _Bad("type", "must be a date (YYYY-MM-DD) or an ISO 8601 date-time")


def _to_moment(value: Any, tz: tzinfo) -> str:
    try:
        return formvalues.store_moment(formvalues.parse_moment(value, tz), tz)
    except formvalues.ValueRefused as exc:
        raise _Bad(exc.code, str(exc)) from None


def _convert(field: Field, value: Any, tz: tzinfo = UTC) -> Any:
    if field.type == "enum":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip() in {o.id for o in field.options}:
            return value.strip()
        if field.option_list is not None:
            # NOTE: the list as it is now; a value taken off it since the task was made is refused too
            choices = ", ".join(o.id for o in field.options) or "(the list is empty)"
            raise _Bad("enum", f"is not in the configured list {field.option_list!r}; choose one of: {choices}")
        raise _Bad("enum", "must be one of: " + ", ".join(o.id for o in field.options))
    if field.type == "date":
        return _parse_date(value).isoformat()
    if field.type == "datetime":
        return _to_moment(value, tz)
    if field.type == "long":
        return _to_long(value, field.is_amount)
    if field.type == "file":
        return _to_file(field, value)
    if field.type == "string" and not isinstance(value, str):
        raise _Bad("type", "must be text")
    return _to_boolean(value) if field.type == "boolean" else str(value)


def _to_file(field: Field, value: Any) -> dict[str, Any]:
    """A reference to a file stored for this field (``runner.uploads``), within its kinds and size."""
    if not files.is_reference(value):
        raise _Bad("type", "must be an uploaded file")
    if value["type"] not in {files.KINDS[k][1] for k in field.file_kinds}:
        raise _Bad("file_type", "is not a kind of file this field takes")
    if value["size"] > field.max_bytes:
        raise _Bad("file_size", "is too large")
    return dict(value)


@dataclass(frozen=True)
class _When:
    """The submission's moment (the runner's clock; None at deployment) and the business time zone."""

    now: datetime | None = None
    tz: tzinfo = UTC
    calendar: Callable[[], worktime.BusinessCalendar] | None = None


def _check_limits(field: Field, value: Any, when: _When = _When()) -> None:
    if field.type == "string":
        if field.minlength is not None and len(value) < field.minlength:
            raise _Bad("minlength", f"must be at least {field.minlength} characters")
        if field.maxlength is not None and len(value) > field.maxlength:
            raise _Bad("maxlength", f"must be at most {field.maxlength} characters")
    elif field.type in ("long", *_MOMENTS):
        key: Any = value  # compared with min/max
        if field.type == "date":
            key = date.fromisoformat(value[:10])
        elif field.type == "datetime":
            key = datetime.fromisoformat(value)
        for code, limit, outside in (("min", field.min, key.__lt__), ("max", field.max, key.__gt__)):
            resolved = _resolve(limit, field.type, when)
            if resolved is not None and outside(resolved):
                raise _Bad(code, _limit_words(field.type, code, limit, resolved, when.tz))
        if field.calendar and when.calendar is not None:
            _check_working_time(key, when.calendar(), when.tz)


def _check_working_time(key: date | datetime, cal: worktime.BusinessCalendar, tz: tzinfo) -> None:
    """A moment inside working hours, a date on a working day; the words give that day's hours."""
    day = key.astimezone(cal.tz).date() if isinstance(key, datetime) else key
    periods = cal.periods_on(day)
    if isinstance(key, datetime) and worktime.is_working_time(cal, key):
        return
    if not isinstance(key, datetime) and periods:
        return
    shown = f"{day:%d/%m/%Y}"
    if not periods:
        raise _Bad("hours", f"must be on a working day; {shown} is not one")
    hours = ", ".join(f"{a.astimezone(tz):%H:%M}-{b.astimezone(tz):%H:%M}" for a, b in periods)
    raise _Bad("hours", f"must be in working hours; on {shown} they are {hours}")


def _resolve(limit: Limit, ftype: str, when: _When) -> Any:
    """The limit as a value to compare with; ``now`` is skipped without a clock (a default at deployment)."""
    if limit == NOW:
        if when.now is None:
            return None
        return when.now if ftype == "datetime" else when.now.astimezone(when.tz).date()
    if isinstance(limit, datetime) and limit.tzinfo is None:
        return limit.replace(tzinfo=when.tz)
    return limit


def _limit_words(ftype: str, code: str, limit: Limit, resolved: Any, tz: tzinfo) -> str:
    if limit == NOW:
        if ftype == "datetime":
            return "must be in the future" if code == "min" else "must not be in the future"
        return "must not be before today" if code == "min" else "must not be after today"
    if ftype == "long":
        return f"must be at {'least' if code == 'min' else 'most'} {resolved}"
    shown = formvalues.show_moment(resolved, tz) if ftype == "datetime" else _show(resolved)
    return f"must not be {'before' if code == 'min' else 'after'} {shown}"


def coerce(
    form: Form,
    submitted: Mapping[str, Any],
    *,
    current: Mapping[str, Any] | None = None,
    task: str = "",
    html: bool = False,
    now: datetime | None = None,
    tz: tzinfo = UTC,
    calendar: Callable[[], worktime.BusinessCalendar] | None = None,
) -> dict[str, Any]:
    """Validate and type submitted values; FormInvalid lists every wrong field at once.

    ``now`` (the runner's clock) is needed when a field's min or max is ``now``; ``tz`` is the
    business time zone that date-times without an offset are read in; ``calendar`` gives the
    business calendar a field with the property ``calendar`` is checked against.
    """
    if not form.fields:
        return _passthrough(submitted, task)
    if now is None and any(NOW in (f.min, f.max) for f in form.fields):
        raise ValueError("this form checks against the current time: pass now= from the runner's clock")
    if calendar is None and any(f.calendar for f in form.fields):
        raise ValueError("this form checks working hours: pass calendar= from the unit of work")
    when = _When(now, tz, calendar)
    result: dict[str, Any] = {}
    errors = _unstorable(submitted)
    for f in form.fields:
        if f.id in errors:
            continue
        try:
            _coerce_field(f, submitted, current or {}, html, result, when)
        except _Bad as bad:
            errors[f.id] = (bad.code, f"{f.label} {bad.text}")
    known = {f.id for f in form.fields}
    for key in submitted:
        if key not in known:
            errors[str(key)] = ("unknown", f"unknown field {str(key)!r}")
    if errors:
        raise _invalid(errors, task)
    return result


def _coerce_field(
    f: Field, submitted: Mapping[str, Any], current: Mapping[str, Any], html: bool, out: dict[str, Any], when: _When
) -> None:
    if f.readonly:
        if f.id in submitted:
            before = current[f.id] if f.id in current else f.default_value(when.tz)
            if _normalise(f, submitted[f.id], when.tz) != _normalise(f, before, when.tz):
                raise _Bad("readonly", "is read-only")
        return
    if f.id not in submitted:
        if html and f.type == "boolean":
            out[f.id] = False
        elif f.required:
            raise _Bad("required", "is required")
        return
    value = submitted[f.id]
    if _is_empty(value):
        if f.required:
            raise _Bad("required", "is required")
        out[f.id] = None
        return
    value = _convert(f, value, when.tz)
    _check_limits(f, value, when)
    out[f.id] = value


def _normalise(f: Field, value: Any, tz: tzinfo) -> Any:
    if _is_empty(value):
        return None
    try:
        return _convert(f, value, tz)
    except _Bad:
        return value


def _unstorable(submitted: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Per field: text the database or the pages cannot hold (NUL, lone surrogates, NaN, deep nesting)."""
    errors: dict[str, tuple[str, str]] = {}
    for key, value in submitted.items():
        if not isinstance(key, str):
            continue
        name = key if text_problem(key, control=True) is None else ascii(key)
        try:
            check_text(key, "the field name", control=True)
            check_data(value, name)
        except TextInvalid as exc:
            errors[name] = ("text", f"{exc.field} {exc.reason}")
    return errors


def _passthrough(submitted: Mapping[str, Any], task: str) -> dict[str, Any]:
    errors = _unstorable(submitted)
    errors.update(
        {
            str(key): ("type", f"{key!r} is not JSON-safe")
            for key, value in submitted.items()
            if str(key) not in errors and not (isinstance(key, str) and _json_safe(value))
        }
    )
    if errors:
        raise _invalid(errors, task)
    return dict(submitted)


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _invalid(errors: dict[str, tuple[str, str]], task: str) -> FormInvalid:
    exc = FormInvalid({k: text for k, (_, text) in errors.items()}, task=task)
    exc.codes = {k: code for k, (code, _) in errors.items()}
    return exc
