"""Customers as staff and processes see them: views, stages, search, configured lists, seeding.

    with runner.db.unit() as s:
        crm.seed_lists(s)
        crm.add_staff(s, "lan", "Nguyễn Thị Lan", ["sales"])
        crm.add_customer(s, "KH0001", "Trung tâm Anh ngữ Sao Mai", phone="0912345678", owner="lan")
    with runner.db.read() as s:
        view = crm.customer_view(s, "KH0001")   # columns + tags, owner_name, teacher_name, stages...

Every function takes the caller's session and never commits: the caller's unit of work does.
Field typing lives in ``runner.crm.fields``; its public names are available here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runner.crm import reads
from runner.crm.bookings import set_availability  # noqa: F401 - part of this API
from runner.crm.fields import (  # noqa: F401 - part of this API
    CUSTOMER_COLUMNS,
    FIELD_TYPES,
    PROFILE_FACTS,
    add_extra_field,
    clean_fields,
    coerce,
    missing_fields,
    set_required_fields,
    update_fields,
)
from runner.crm.fields import json_value as _json
from runner.crm.folding import fold  # noqa: F401 - part of this API
from runner.crm.models import (
    DEFAULT_LISTS,
    ROLES,
    BadValue,
    Contract,
    Customer,
    CustomerGroup,
    CustomerSource,
    CustomerStage,
    CustomerTag,
    ExtraField,
    Missing,
    Note,
    Occupation,
    RequiredField,
    School,
    Staff,
    StopCareReason,
)
from runner.crm.reads import normalize_tag
from runner.crm.staff import ensure_staff, staff_row  # noqa: F401 - part of this API
from runner.service import accounts
from runner.store.models import User

# Which pipeline (parent stage of seed 003) each process key's stages belong to.
PIPELINES = {
    "sales": "Trong bán hàng",
    "onboarding": "Sau bán hàng",
    "renewal": "Sau bán hàng",
    "care_month": "Sau bán hàng",
}
STAGES = {
    "Trong bán hàng": ("Tiếp nhận", "Đã liên hệ", "Liên hệ lại", "Cấp Demo", "Đang chăm sóc", "Tiềm năng", "Chốt"),
    "Sau bán hàng": (
        "TIẾP NHẬN",
        "ĐÀO TẠO",
        "BÀN GIAO",
        "CHĂM SÓC ĐỊNH KỲ",
        "CHĂM SÓC TÁI KÝ",
        "CÓ VẤN ĐỀ",
        "DỪNG CHĂM SÓC",
        "KHÓA",
    ),
}
# NOTE: customer_view always has exactly these keys (templates are checked against them at deploy).
CUSTOMER_VIEW_KEYS = CUSTOMER_COLUMNS + ("tags", "owner_name", "teacher_name", "stages", "notes", "contract")
STAFF_VIEW_KEYS = ("username", "full_name", "roles", "active", "email", "phone", "zalo_user_id")
LAST_NOTES = 5


# --- views -----------------------------------------------------------------------------------


def get_customer(session: Session, customer_id: str | None, *, lock: bool = False) -> Customer:
    """The customer row; ``Missing`` names the id when there is none."""
    if not customer_id:
        raise Missing("customer: the instance has no business key (customer id)")
    row = session.get(Customer, customer_id, with_for_update=lock or None)
    if row is None:
        raise Missing(f"customer {customer_id!r} does not exist")
    return row


def add_note(
    session: Session,
    customer_id: str | None,
    text: str,
    *,
    now: datetime,
    kind: str = "discussion",
    author: str | None = None,
    instance_id: str | None = None,
) -> int:
    """Add a note (Thảo luận by default) to a customer; returns its id."""
    customer = get_customer(session, customer_id)
    note = Note(
        customer_id=customer.id, kind=kind, text=text, author=author or None, instance_id=instance_id, created_at=now
    )
    session.add(note)
    session.flush()
    return note.id


def get_staff(session: Session, username: str, *, role: str | None = None) -> Staff:
    """An active staff member (with ``role`` if given); ``Missing`` names who is missing."""
    row = staff_row(session, username)
    if row is None or not row.active:
        raise Missing(f"staff member {username!r} does not exist or is not active")
    if role is not None and role not in (row.roles or []):
        raise Missing(f"staff member {username!r} does not have the role {role!r}")
    return row


def staff_view(session: Session, username: str | None) -> dict[str, Any] | None:
    """A staff member as a plain dict (``STAFF_VIEW_KEYS``), or None."""
    row = session.get(Staff, username) if username else None
    return None if row is None else {k: getattr(row, k) for k in STAFF_VIEW_KEYS}


def tags(session: Session, customer_id: str) -> list[str]:
    """The customer's tags, oldest first."""
    return list(
        session.scalars(
            select(CustomerTag.tag)
            .where(CustomerTag.customer_id == customer_id)
            .order_by(CustomerTag.added_at, CustomerTag.tag)
        )
    )


def customer_view(session: Session, customer_id: str) -> dict[str, Any]:
    """Everything about a customer as JSON-safe values, keys ``CUSTOMER_VIEW_KEYS``.

    Dates are ISO strings; ``stages`` maps pipeline to current stage; ``notes`` are the last
    few discussion notes, newest first; ``contract`` is the newest contract or None.
    """
    row = get_customer(session, customer_id)
    view: dict[str, Any] = {k: _json(getattr(row, k)) for k in CUSTOMER_COLUMNS}
    view["extra"] = dict(row.extra or {})
    view["tags"] = tags(session, customer_id)
    for role in ("owner", "teacher"):
        person = session.get(Staff, getattr(row, role)) if getattr(row, role) else None
        view[f"{role}_name"] = person.full_name if person else None
    view["stages"] = current_stages(session, customer_id)
    notes = session.scalars(
        select(Note)
        .where(Note.customer_id == customer_id)
        .order_by(Note.created_at.desc(), Note.id.desc())
        .limit(LAST_NOTES)
    )
    view["notes"] = [
        {"id": n.id, "kind": n.kind, "text": n.text, "author": n.author, "created_at": _json(n.created_at)}
        for n in notes
    ]
    contract = session.scalars(
        select(Contract)
        .where(Contract.customer_id == customer_id)
        .order_by(Contract.end_date.desc(), Contract.id.desc())
        .limit(1)
    ).first()
    view["contract"] = (
        None
        if contract is None
        else {
            "id": contract.id,
            "package": contract.package,
            "start": _json(contract.start_date),
            "end": _json(contract.end_date),
            "months": contract.months,
        }
    )
    return view


# --- stages, kept per customer by the database ------------------------------------------------


def current_stages(session: Session, customer_id: str) -> dict[str, str]:
    """Pipeline name -> the customer's current stage in it (``CustomerStage``, kept from its instances)."""
    found = {pipeline: stage for _, pipeline, stage in session.execute(reads.stages_query([customer_id]))}
    return in_pipeline_order(found)


def in_pipeline_order(stages: dict[str, str]) -> dict[str, str]:
    """Pipeline -> stage in the pipelines' order (before the sale, after it), unknown pipelines last."""
    order = list(STAGES)
    return dict(sorted(stages.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def board(session: Session, pipeline: str) -> dict[str, list[dict[str, Any]]]:
    """The whole pipeline: each stage (in order) with its customers' id, name, owner and status, by id.

    For the demo's summary and small companies; pages read one column at a time
    (``runner.crm.views.pipeline_board``).
    """
    if pipeline not in STAGES:
        raise Missing(f"pipeline {pipeline!r} does not exist; known: {', '.join(STAGES)}")
    columns: dict[str, list[dict[str, Any]]] = {stage: [] for stage in STAGES[pipeline]}
    rows = session.execute(
        select(CustomerStage.stage, Customer.id, Customer.name, Customer.owner, Customer.status)
        .join(Customer, Customer.id == CustomerStage.customer_id)
        .where(CustomerStage.pipeline == pipeline)
        .order_by(Customer.id)
    )
    for stage, customer_id, name, owner, status in rows:
        columns.setdefault(stage, []).append({"id": customer_id, "name": name, "owner": owner, "status": status})
    return columns


# --- search -------------------------------------------------------------------------------------


def search(
    session: Session,
    text: str = "",
    *,
    tag: str | None = None,
    limit: int = 50,
    where: Any = None,
    after: str | None = None,
) -> list[dict[str, Any]]:
    """Customers whose name (accents ignored), phone, code, e-mail, owner or tag matches ``text``, with ``tag``
    and ``where``.

    In id order, ``limit`` at a time, after the customer id ``after`` (``reads.search_query``).
    """
    owners: list[str] = []
    named_tags: list[str] = []
    if text.strip():
        people = [(u, n) for u, n in session.execute(select(User.username, User.full_name))]  # NOTE: a small table
        owners = reads.text_owners(text, people)
        named_tags = reads.text_tags(text, session.scalars(reads.tags_in_use_query()))
    query = reads.search_query(
        text,
        dialect=session.get_bind().dialect.name,
        tag=tag,
        where=where,
        after=after,
        limit=limit,
        owners=owners,
        tags=named_tags,
    )
    return [
        {"id": i, "name": name, "phone": phone, "owner": owner, "status": status}
        for i, name, phone, owner, status in session.execute(query)
    ]


def split_tags(value: Any) -> list[str]:
    """Tags from "A, B" or a list, normalized, without duplicates; BadValue if none or not text."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(t, str) for t in items):
        raise BadValue(f"tags: expected 'A, B' or a list of texts, got {value!r}")
    found = list(dict.fromkeys(normalize_tag(t) for t in items if t.strip()))
    if not found:
        raise BadValue("tags: no tag given")
    return found


# --- configured lists and seeding --------------------------------------------------------------------


def lists(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Every configured list of seed 003, as plain dicts."""
    groups = session.scalars(select(CustomerGroup).order_by(CustomerGroup.id)).all()
    names: dict[int | None, str] = {g.id: g.name for g in groups}
    return {
        "stop_care_reasons": [
            {"title": r.title, "description": r.description}
            for r in session.scalars(select(StopCareReason).order_by(StopCareReason.id))
        ],
        "sources": [
            {"name": r.name, "description": r.description}
            for r in session.scalars(select(CustomerSource).order_by(CustomerSource.id))
        ],
        "groups": [{"name": g.name, "parent": names.get(g.parent_id)} for g in groups],
        "occupations": [
            {"name": r.name, "description": r.description}
            for r in session.scalars(select(Occupation).order_by(Occupation.id))
        ],
        "schools": [{"name": r.name} for r in session.scalars(select(School).order_by(School.id))],
        "extra_fields": [
            {"name": f.name, "label": f.label, "data_type": f.data_type}
            for f in session.scalars(select(ExtraField).order_by(ExtraField.position, ExtraField.name))
        ],
        "required_fields": list(
            session.scalars(select(RequiredField.field).order_by(RequiredField.position, RequiredField.field))
        ),
    }


def seed_lists(session: Session) -> None:
    """Add the default Vietnamese lists (``runner.crm.models.DEFAULT_LISTS``) not configured yet; safe to repeat."""

    def absent(model, column, value) -> bool:
        return session.scalar(select(model).where(column == value)) is None

    for title, description in DEFAULT_LISTS["stop_care_reasons"]:
        if absent(StopCareReason, StopCareReason.title, title):
            session.add(StopCareReason(title=title, description=description))
    for model, key in ((CustomerSource, "sources"), (Occupation, "occupations")):
        for name, description in DEFAULT_LISTS[key]:
            if absent(model, model.name, name):
                session.add(model(name=name, description=description))
    for name in DEFAULT_LISTS["schools"]:
        if absent(School, School.name, name):
            session.add(School(name=name))
    for parent, children in DEFAULT_LISTS["groups"].items():
        top = session.scalar(select(CustomerGroup).where(CustomerGroup.name == parent))
        if top is None:
            top = CustomerGroup(name=parent)
            session.add(top)
            session.flush()
        for child in children:
            if absent(CustomerGroup, CustomerGroup.name, child):
                session.add(CustomerGroup(name=child, parent_id=top.id))
    for name, label, data_type in DEFAULT_LISTS["extra_fields"]:
        if absent(ExtraField, ExtraField.name, name):
            add_extra_field(session, name, label, data_type)
    if session.scalar(select(RequiredField.field).limit(1)) is None:
        set_required_fields(session, DEFAULT_LISTS["required_fields"])
    session.flush()


def add_staff(
    session: Session,
    username: str,
    full_name: str,
    roles: Iterable[str],
    *,
    active: bool = True,
    email: str | None = None,
    phone: str | None = None,
    zalo_user_id: str | None = None,
) -> Staff:
    """Create a staff member: a user of the runner's directory with role ids of ``ROLES``, and their staff row."""
    roles = list(roles)
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise BadValue(f"staff {username!r}: roles {unknown or roles!r} are not among {', '.join(ROLES)}")
    if session.get(User, username) is not None:
        raise BadValue(f"staff {username!r} already exists")
    accounts.add_user(session, username, full_name, roles, active=active, email=email, known=ROLES)
    row = Staff(username=username, phone=phone, zalo_user_id=zalo_user_id)
    session.add(row)
    session.flush()
    return row


def add_customer(
    session: Session,
    customer_id: str,
    name: str,
    *,
    owner: str | None = None,
    teacher: str | None = None,
    tags: Iterable[str] = (),
    now: datetime | None = None,
    tz: tzinfo | None = None,
    **fields: Any,
) -> Customer:
    """Create a customer; ``fields`` are typed and checked like a profile update (``tz``: see ``coerce``)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,50}", customer_id or ""):
        raise BadValue(f"customer id {customer_id!r}: letters, digits, '.', '_' or '-' only")
    if session.get(Customer, customer_id) is not None:
        raise BadValue(f"customer {customer_id!r} already exists")
    if coerce("name", "text", name) is None:
        raise BadValue(f"field 'name': customer {customer_id} must have a name")
    for username in (owner, teacher):
        if username:
            get_staff(session, username)
    now = now or datetime.now(UTC)
    row = Customer(id=customer_id, name=name.strip(), owner=owner, teacher=teacher, extra={}, created_at=now)
    update_fields(session, row, {"name": name, **fields}, tz)
    session.add(row)
    session.flush()
    for tag in dict.fromkeys(normalize_tag(t) for t in tags):
        session.add(CustomerTag(customer_id=customer_id, tag=tag, added_at=now))
    session.flush()
    return row
