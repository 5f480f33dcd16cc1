"""Message templates: Jinja2 files in ``processes/templates/``, checked at deployment.

The folder is the CRM setting ``RUNNER_TEMPLATES`` (``CrmSettings.templates``), by default
``processes/templates`` under the working directory (the runner is run from the folder that
holds its processes, as ``make run`` does in the checkout); it is content deployed with the
diagrams, never read from where the code is installed. Handlers find it with ``templates_of(ctx)``.
The deploy-time checks read the same folder: ``register`` builds them from ``folder_of(registry)``,
the setting of the runner the registry was built for.

A Zalo template is ``<name>.txt``; an e-mail template is ``<name>.email.txt`` whose first
line is ``Subject: ...``. A template sees ``customer`` (the customer's fields, tags,
owner_name, teacher_name), ``owner`` and ``teacher`` (staff members, or nothing), and
every input parameter of its task. Rendering is strict: a name that is not there, or a
value that is empty, stops the message with an error naming it — never a blank in a
message that reaches a customer. ``check`` finds the same mistakes at deployment, from
the task's input parameters as written in the diagram.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from difflib import get_close_matches
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.sandbox import SandboxedEnvironment

from runner.crm import customers
from runner.crm import settings as crm_settings
from runner.errors import BadValue, Missing
from runner.windows import QUIET_HOURS

TEMPLATES = Path("processes", "templates")  # NOTE: relative: resolved against the working directory on use
ZALO, EMAIL = ".txt", ".email.txt"
RECORDS = ("customer", "owner", "teacher")
MEETING_HOST = "online.emso.vn"
# Who reads a message: a customer's message keeps to the quiet hours (RUNNER_SENDING_WINDOW).
AUDIENCES = {"customer": QUIET_HOURS, "staff": None}
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")


class Record(dict):
    """A customer or staff member as a template sees it; ``label`` names it in errors."""

    def __init__(self, label: str, values: Mapping[str, Any]):
        super().__init__(values)
        self.label = label


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class _Environment(SandboxedEnvironment):
    """A sandbox in which an empty field reads as undefined, so that using it is an error."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self._present(obj, attribute, super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self._present(obj, argument, super().getitem(obj, argument))

    def _present(self, obj: Any, key: Any, value: Any) -> Any:
        if not isinstance(obj, Record):
            return value
        where = f"{obj.label}.{key}"
        if isinstance(value, Undefined):
            return self.undefined(hint=f"{where} does not exist", obj=obj, name=str(key))
        if _blank(value):
            return self.undefined(hint=f"{where} has no value", obj=obj, name=str(key))
        return Record(where, value) if isinstance(value, Mapping) else value


def _finalize(value: Any) -> Any:
    """The last guard before text goes out: an empty value printed is an error."""
    if _blank(value):
        raise UndefinedError("a value printed by the template is empty")
    return value


def templates_of(ctx: Any) -> Path:
    """The template folder of the runner a handler's ``ctx`` comes from (``RUNNER_TEMPLATES``)."""
    return Path(crm_settings.among(ctx.extensions).templates)


def folder_of(registry: Any) -> Path:
    """The template folder of the runner a registry is built for (``RUNNER_TEMPLATES``), else the default."""
    settings = getattr(registry, "settings", None)
    if settings is None:
        return TEMPLATES
    return Path(crm_settings.CrmSettings.from_env(settings.environ).templates)


def environment(folder: Path = TEMPLATES) -> SandboxedEnvironment:
    """The Jinja2 environment over one template folder (one per folder, made on first use)."""
    return _environment(folder.absolute())


@cache
def _environment(folder: Path) -> SandboxedEnvironment:
    env = _Environment(
        loader=FileSystemLoader(str(folder)),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        finalize=_finalize,
    )
    env.filters.update(datetime_vn=datetime_vn, date_vn=date_vn, time_vn=time_vn, room_link=room_link)
    return env


# --- filters --------------------------------------------------------------------------


def _moment(value: Any) -> datetime | date:
    """An ISO 8601 string, datetime or date as a date/datetime; BadValue names the value."""
    if isinstance(value, (datetime, date)):
        return value
    try:
        text = str(value)
        return datetime.fromisoformat(text) if "T" in text or " " in text.strip() else date.fromisoformat(text)
    except ValueError as exc:
        raise BadValue(f"{value!r} is not an ISO 8601 date or date-time") from exc


def datetime_vn(value: Any) -> str:
    """``2026-11-25T09:00:00+07:00`` as ``09:00 Thứ Tư, 25/11/2026``.

    NOTE: shown in the offset it was written with; handlers write business-time offsets.
    """
    moment = _moment(value)
    if not isinstance(moment, datetime):
        return date_vn(moment)
    return f"{moment:%H:%M} {WEEKDAYS[moment.weekday()]}, {moment:%d/%m/%Y}"


def date_vn(value: Any) -> str:
    """A date (or date-time) as ``25/11/2026``."""
    return f"{_moment(value):%d/%m/%Y}"


def time_vn(value: Any) -> str:
    """A date-time as ``09:00``."""
    moment = _moment(value)
    if not isinstance(moment, datetime):
        raise BadValue(f"{value!r} has no time of day")
    return f"{moment:%H:%M}"


def room_link(name: Any) -> str:
    """The meeting room of a customer: the room name is the customer's name (seeds 000, 001).

    Diacritics and spaces are dropped so the link survives being typed or pasted:
    ``Trung tâm Hoa Mai`` -> ``online.emso.vn/TrungTamHoaMai``.
    """
    plain = unicodedata.normalize("NFD", str(name).replace("đ", "d").replace("Đ", "D"))
    words = "".join(c for c in plain if not unicodedata.combining(c))
    room = "".join(w[:1].upper() + w[1:] for w in "".join(c if c.isalnum() else " " for c in words).split())
    if not room:
        raise BadValue(f"customer name {name!r} gives no meeting room name")
    return f"{MEETING_HOST}/{room}"


# --- deployment checks ------------------------------------------------------------------


def file_name(name: str, kind: str) -> str:
    """The file of template ``name`` for a channel kind (ZALO or EMAIL)."""
    return f"{name}{kind}"


def known(kind: str, folder: Path = TEMPLATES) -> list[str]:
    """The template names of a kind that exist in the folder."""
    names = [p.name[: -len(kind)] for p in folder.glob(f"*{kind}")]
    return sorted(n for n in names if kind == EMAIL or not n.endswith(".email"))


def _fields() -> dict[str, frozenset[str]]:
    """The keys each record has: those of runner.crm's customer and staff views."""
    staff = frozenset(customers.STAFF_VIEW_KEYS)
    return {"customer": frozenset(customers.CUSTOMER_VIEW_KEYS), "owner": staff, "teacher": staff}


def _record_uses(ast: nodes.Template) -> Iterator[tuple[str, str]]:
    """(record, field) for every ``customer.x`` / ``customer['x']`` in a template."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node.node, nodes.Name) and node.node.name in RECORDS:
            if isinstance(node, nodes.Getattr):
                yield node.node.name, node.attr
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                yield node.node.name, node.arg.value


def check(name: str | None, kind: str, params: Mapping[str, str | None], folder: Path = TEMPLATES) -> list[str]:
    """Why template ``name`` cannot be rendered for a task with these input parameters ([] if it can)."""
    if name is None:
        return [f"input parameter 'template' is missing or not a plain name; name a template of {folder.as_posix()}"]
    name = name.strip()
    if not name or "${" in name or "#{" in name:
        return [
            f"input parameter 'template' is {name!r}; it must be a template name (not an expression), "
            "so that the template can be checked at deployment"
        ]
    env = environment(folder)
    path = file_name(name, kind)
    try:
        source = env.loader.get_source(env, path)[0]
        ast = env.parse(source)
    except TemplateNotFound:
        close = get_close_matches(name, known(kind, folder), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return [f"template '{name}' does not exist ({folder.as_posix()}/{path}){hint}"]
    except TemplateSyntaxError as exc:
        return [f"template {path} line {exc.lineno}: {exc.message}"]
    reasons = [
        f"input parameter '{p}' would hide the {p}'s own data in the template; rename it"
        for p in params
        if p in RECORDS
    ]
    available = set(RECORDS) | set(params) | set(env.globals)
    for var in sorted(meta.find_undeclared_variables(ast) - available):
        reasons.append(
            f"template {path} uses '{var}', which is neither customer, owner, teacher nor an "
            "input parameter of this task"
        )
    fields = _fields()
    for record, attr in sorted(set(_record_uses(ast))):
        if attr not in fields[record]:
            close = get_close_matches(attr, sorted(fields[record]), n=1)
            hint = f"; did you mean '{record}.{close[0]}'?" if close else ""
            reasons.append(f"template {path} uses {record}.{attr}, which is not a field of the {record}{hint}")
    if kind == EMAIL and not source.lstrip().startswith("Subject:"):
        reasons.append(f"e-mail template {path} must start with a 'Subject: ...' line")
    return reasons


# --- rendering ------------------------------------------------------------------------------


def audience_problem(raw: Any) -> str | None:
    """Why an ``audience`` input parameter is wrong (None if it is fine or an expression)."""
    if raw is None or "${" in str(raw) or str(raw).strip() in ("", *AUDIENCES):
        return None
    return f"input parameter 'audience' is {str(raw).strip()!r}; use 'customer' (the default) or 'staff'"


def window_of(params: Mapping[str, Any]) -> str | None:
    """The sending window of a task's message: a customer's waits out the quiet hours, staff's does not.

    NOTE: customer-facing unless the diagram says ``audience=staff``: the safe default for a
    message that might reach a customer at night.
    """
    raw = params.get("audience")
    audience = "customer" if raw in (None, "") else str(raw).strip()
    if audience not in AUDIENCES:
        raise BadValue(f"input parameter 'audience' is {audience!r}; use 'customer' or 'staff'")
    return AUDIENCES[audience]


def template_name(params: Mapping[str, Any]) -> str:
    """The task's ``template`` input parameter; BadValue when it is missing."""
    template = str(params.get("template") or "").strip()
    if not template:
        raise BadValue("input parameter 'template' is missing")
    return template


def variables(session: Any, customer_id: str | None, params: Mapping[str, Any]) -> dict[str, Any]:
    """What a template of a task sees: the customer, its owner and teacher, and the parameters."""
    if not customer_id:
        raise Missing("the instance has no business key, so there is no customer to write to")
    customer = customers.customer_view(session, customer_id)
    found: dict[str, Any] = {"customer": Record("customer", customer)}
    for role in ("owner", "teacher"):
        username = customer.get(role)
        staff = customers.staff_view(session, username)
        if username and staff is None:
            raise Missing(f"customer {customer_id} field {role}: staff member {username!r} does not exist")
        found[role] = (
            Record(role, staff)
            if staff
            else StrictUndefined(hint=f"customer {customer_id} has no {role} assigned", name=role)
        )
    for key, value in params.items():
        if key in RECORDS:
            raise BadValue(f"input parameter {key!r} would hide the {key}'s own data in the template; rename it")
        empty = _blank(value) or value == []
        found[key] = StrictUndefined(hint=f"input parameter {key!r} has no value", name=key) if empty else value
    return found


def render(name: str, kind: str, values: Mapping[str, Any], folder: Path = TEMPLATES) -> str:
    """The text of a template; Missing if it does not exist, BadValue for a missing value."""
    path = file_name(name, kind)
    env = environment(folder)
    try:
        return env.get_template(path).render(values).strip() + "\n"
    except TemplateNotFound as exc:
        raise Missing(f"template '{name}' does not exist ({folder.as_posix()}/{path})") from exc
    except UndefinedError as exc:
        raise BadValue(f"template {path}: {exc.message}") from exc
    except TemplateSyntaxError as exc:
        raise BadValue(f"template {path} line {exc.lineno}: {exc.message}") from exc


def render_email(name: str, values: Mapping[str, Any], folder: Path = TEMPLATES) -> tuple[str, str]:
    """(subject, body) of an e-mail template."""
    text = render(name, EMAIL, values, folder)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise BadValue(f"e-mail template {file_name(name, EMAIL)} must start with a 'Subject: ...' line")
    subject = first[len("Subject:") :].strip()
    if not subject:
        raise BadValue(f"e-mail template {file_name(name, EMAIL)} renders an empty subject")
    return subject, body.strip() + "\n"
