"""The HTML side of camunda:formData: fields to render, submitted values, Vietnamese messages.

``runner.model.forms`` defines and validates the form; this module only decides how each field is
shown (input type, choices, current value) and words the per-field errors for staff,
from the error codes of ``FormInvalid`` (``exc.codes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, tzinfo
from typing import Any

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from runner.errors import FormInvalid
from runner.model import files, forms, formvalues

NOT_FIELDS = ("csrf_token",)


@dataclass(frozen=True)
class FieldView:
    """One form field as the template shows it."""

    id: str
    label: str
    type: str  # string | long | boolean | date | datetime | enum | file
    widget: str  # text | textarea | number | amount | checkbox | date | datetime | select | file
    value: Any
    required: bool
    readonly: bool
    options: tuple[tuple[str, str], ...]
    error: str | None
    placeholder: str
    hint: str
    min: Any
    max: Any
    minlength: int | None
    maxlength: int | None
    rows: int
    working_time: bool = False  # the value must lie in the business calendar's working time
    accept: str = ""  # a file field: the input's accept list (".pdf,image/png,image/jpeg")
    kinds: str = ""  # a file field: the kinds it takes, as shown ("PDF, PNG, JPEG")
    max_mb: float = 0  # a file field: its size cap in MB


def _show(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _widget(field: forms.Field) -> str:
    if field.type == "string":
        wants_area = field.properties.get("rows") or (field.maxlength or 0) > 200
        return "textarea" if wants_area else "text"
    if field.is_amount:
        return "amount"  # a text input: staff type "12.900.000 đ", which a number input refuses
    widgets = {
        "long": "number",
        "boolean": "checkbox",
        "date": "date",
        "datetime": "datetime",
        "enum": "select",
        "file": "file",
    }
    return widgets[field.type]


def _placeholder(field: forms.Field) -> str:
    if "placeholder" in field.properties:
        return field.properties["placeholder"]
    if field.type == "datetime":
        return _("ngày/tháng/năm giờ:phút, ví dụ 25/12/2026 09:30")
    return _("ví dụ 12.900.000") if field.is_amount else ""


def _limit_shown(field: forms.Field, limit: Any, tz: tzinfo) -> Any:
    """A min/max for the page: ``now`` in words, a date-time in the business zone."""
    if limit == forms.NOW:
        return _("bây giờ") if field.type == "datetime" else _("hôm nay")
    if field.type == "datetime" and limit is not None:
        return formvalues.show_moment(limit, tz)
    return _show(limit)


def _shown(field: forms.Field, value: Any, tz: tzinfo = UTC) -> Any:
    """A stored or default value as the input wants it."""
    if value is None:
        return None
    if field.type == "datetime":
        return formvalues.show_moment(value, tz)  # a date-only value kept from before reads as 00:00
    if field.is_amount:
        return formvalues.show_amount(value)
    if field.type == "date":
        return str(value)[:10]
    if field.type == "boolean":
        return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "on", "1", "yes")
    return value


def field_views(
    form: forms.Form,
    data: dict[str, Any],
    submitted: MultiDict | None = None,
    errors: dict[str, str] | None = None,
    tz: tzinfo = UTC,
) -> list[FieldView]:
    """The fields with what to show: the entered values after an error, else the data, else defaults."""
    views = []
    for f in form.fields:
        default = f.default_value(tz)
        if isinstance(default, str) and default.strip().startswith(("${", "#{")):
            default = None  # an expression default is the engine's business, not the form's
        value = _shown(f, data.get(f.id, default), tz)
        if submitted is not None and not f.readonly:
            value = (f.id in submitted) if f.type == "boolean" else submitted.get(f.id, "")
        props = f.properties
        views.append(
            FieldView(
                id=f.id,
                label=f.label,
                type=f.type,
                widget=_widget(f),
                value=_shown(f, value) if f.type == "boolean" else value,
                required=f.required,
                readonly=f.readonly,
                options=tuple((o.id, o.name) for o in f.options),
                error=(errors or {}).get(f.id),
                placeholder=_placeholder(f),
                hint=props.get("hint", ""),
                min=_limit_shown(f, f.min, tz),
                max=_limit_shown(f, f.max, tz),
                minlength=f.minlength,
                maxlength=f.maxlength,
                rows=int(props["rows"]) if props.get("rows", "").isdigit() else 4,
                working_time=f.calendar is not None,
                **(_file_view(f) if f.type == "file" else {}),
            )
        )
    return views


def _file_view(field: forms.Field) -> dict[str, Any]:
    kinds = field.file_kinds
    return {
        "accept": ",".join(files.KINDS[k][2] for k in kinds) + "," + ",".join(files.KINDS[k][1] for k in kinds),
        "kinds": ", ".join(k.upper() for k in kinds),
        "max_mb": round(field.max_bytes / (1024 * 1024), 1),
    }


def submitted_values(form: MultiDict) -> dict[str, Any]:
    """The posted form without the CSRF token and buttons."""
    return {k: v for k, v in form.items() if k not in NOT_FIELDS and not k.startswith("_")}


def messages(form: forms.Form, exc: FormInvalid, tz: tzinfo = UTC) -> dict[str, str]:
    """Per-field messages in the UI language, from the codes of ``FormInvalid``."""
    codes: dict[str, str] = getattr(exc, "codes", {})
    out = {}
    for field_id, text in exc.errors.items():
        try:
            field = form.field(field_id)
        except KeyError:
            out[field_id] = text
            continue
        out[field_id] = _message(field, codes.get(field_id, ""), text, tz)
    return out


def _message(field: forms.Field, code: str, fallback: str, tz: tzinfo = UTC) -> str:
    moment_limit = code in ("min", "max") and (field.type == "datetime" or forms.NOW in (field.min, field.max))
    if moment_limit or (code == "type" and field.type == "datetime"):
        return _moment_message(field, code, tz)
    limits = {
        "min": _show(field.min),
        "max": _show(field.max),
        "minlength": field.minlength,
        "maxlength": field.maxlength,
    }
    if code == "required":
        return _("Vui lòng nhập %(label)s.", label=field.label)
    if code == "type":
        return {
            "long": _("%(label)s phải là số tiền, ví dụ 12.900.000.", label=field.label)
            if field.is_amount
            else _("%(label)s phải là số nguyên.", label=field.label),
            "date": _("%(label)s phải là một ngày hợp lệ.", label=field.label),
            "boolean": _("%(label)s phải là có hoặc không.", label=field.label),
        }.get(field.type, fallback)
    if code == "hours":
        if field.type == "date":
            return _("%(label)s phải là một ngày làm việc của công ty.", label=field.label)
        return _("%(label)s phải nằm trong giờ làm việc của công ty.", label=field.label)
    if code == "enum":
        return _("Hãy chọn một giá trị trong danh sách cho %(label)s.", label=field.label)
    if code == "file_type":
        kinds = ", ".join(k.upper() for k in field.file_kinds)
        return _("%(label)s phải là tệp %(kinds)s (kiểm tra theo nội dung tệp).", label=field.label, kinds=kinds)
    if code == "file_size":
        mb = round(field.max_bytes / (1024 * 1024), 1)
        return _("%(label)s lớn quá %(mb)s MB.", label=field.label, mb=mb)
    if code == "file_empty":
        return _("%(label)s là tệp rỗng.", label=field.label)
    if code == "min":
        return (
            _("%(label)s không được trước ngày %(limit)s.", label=field.label, limit=limits["min"])
            if field.type == "date"
            else _("%(label)s phải từ %(limit)s trở lên.", label=field.label, limit=limits["min"])
        )
    if code == "max":
        return (
            _("%(label)s không được sau ngày %(limit)s.", label=field.label, limit=limits["max"])
            if field.type == "date"
            else _("%(label)s tối đa là %(limit)s.", label=field.label, limit=limits["max"])
        )
    if code == "minlength":
        return _("%(label)s cần ít nhất %(limit)s ký tự.", label=field.label, limit=limits["minlength"])
    if code == "maxlength":
        return _("%(label)s tối đa %(limit)s ký tự.", label=field.label, limit=limits["maxlength"])
    if code == "readonly":
        return _("%(label)s chỉ được xem, không sửa được.", label=field.label)
    if code == "text":
        return _("%(label)s có ký tự không lưu được (ký tự điều khiển hoặc không hợp lệ).", label=field.label)
    return fallback


def _moment_message(field: forms.Field, code: str, tz: tzinfo) -> str:
    """The words for a date-time's type and limits, and for a date limited by ``now``."""
    label = field.label
    if code == "type":
        return _("%(label)s phải là ngày và giờ dạng ngày/tháng/năm giờ:phút (ví dụ 25/12/2026 09:30).", label=label)
    limit = field.min if code == "min" else field.max
    if limit == forms.NOW and field.type == "datetime":
        if code == "min":
            return _("%(label)s phải là thời điểm trong tương lai.", label=label)
        return _("%(label)s không được sau thời điểm hiện tại.", label=label)
    if limit == forms.NOW:
        if code == "min":
            return _("%(label)s không được trước hôm nay.", label=label)
        return _("%(label)s không được sau hôm nay.", label=label)
    shown = _limit_shown(field, limit, tz)
    if code == "min":
        return _("%(label)s không được trước %(limit)s.", label=label, limit=shown)
    return _("%(label)s không được sau %(limit)s.", label=label, limit=shown)
