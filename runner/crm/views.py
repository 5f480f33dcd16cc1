"""Read queries behind the customer pages: the 360° timeline, boards per pipeline, bookings.

    views = customer_views
    views.timeline(runner, "KH0001")              # notes, messages, tasks done, timers, incidents, stages
    views.pipeline_board(runner, "sales")         # one column per stage, in the diagram's order
    views.staff_bookings(runner, "minh", start, end)

Everything returns plain dicts (the web app never touches the tables). The one write here,
``add_note``, is the Thảo luận note a staff member types on the customer page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runner.crm import customers as crm
from runner.crm import editing, reads
from runner.crm.models import BadValue, Booking, Customer, CustomerStage, CustomerTag, Missing, Note, Staff
from runner.model import inputs
from runner.model.document import BPMN_NS, BPMNDI_NS, camunda_iter, owner, parse
from runner.store.models import HistoryEvent, Instance, OutboxMessage, ProcessVersion, UserTask

if TYPE_CHECKING:
    from runner.service.policy import Person
    from runner.service.runtime import Runner

NOTE_MAX = 5000
BOARD_CARDS = 50  # cards per board column and page
TIMELINE_MAX = 500  # newest entries of a customer's timeline
# History events that belong on a customer's timeline, and the kind each is shown as.
TIMELINE_EVENTS = {
    "task.completed": "task",
    "timer.fired": "timer",
    "incident.raised": "incident",
    "incident.resolved": "incident",
    "stage.entered": "stage",
    "instance.started": "instance",
    "instance.completed": "instance",
}
TIMELINE_KINDS = ("note", "message", "task", "timer", "incident", "stage", "instance", "change")
_DC_BOUNDS = "{http://www.omg.org/spec/DD/20100524/DC}Bounds"
_ELEMENT_NAMES: dict[str, dict[str, str]] = {}  # content hash -> element id -> name (versions never change)
_DIAGRAM_STAGES: dict[str, list[str]] = {}  # content hash -> the diagram's stages, left to right


# --- boards: which processes, which stages ----------------------------------------------------


def boards() -> dict[str, tuple[str, ...]]:
    """Board key (the pipeline's first process key) -> the process keys whose stages it shows."""
    found: dict[str, list[str]] = {}
    by_pipeline: dict[str, str] = {}
    for key, pipeline in crm.PIPELINES.items():
        board = by_pipeline.setdefault(pipeline, key)
        found.setdefault(board, []).append(key)
    return {board: tuple(keys) for board, keys in found.items()}


def diagram_stages(xml: str | bytes) -> list[str]:
    """The ``stage`` property values of a BPMN file, left to right as drawn.

    A stage's place is the leftmost shape carrying it; stages on elements without a shape
    follow in document order.
    """
    root = parse(xml.encode() if isinstance(xml, str) else xml)
    left = {}
    for shape in root.iter(f"{{{BPMNDI_NS}}}BPMNShape"):
        bounds = shape.find(_DC_BOUNDS)
        if bounds is not None and bounds.get("x") is not None:
            left[shape.get("bpmnElement")] = float(bounds.get("x"))
    places: dict[str, tuple[float, int]] = {}
    for index, prop in enumerate(camunda_iter(root, "property")):
        value = (prop.get("value") or "").strip()
        if prop.get("name") != "stage" or not value:
            continue
        place = (left.get(owner(prop).get("id"), float("inf")), index)
        places[value] = min(places.get(value, place), place)
    return sorted(places, key=places.__getitem__)


def _stage_order(s: Session, process_keys: Iterable[str]) -> list[str]:
    """The stages of the newest deployed version of each process, the first process's first."""
    order: list[str] = []
    for key in process_keys:
        newest = s.execute(
            select(ProcessVersion.id, ProcessVersion.content_hash)
            .where(ProcessVersion.process_key == key, ProcessVersion.kind == "bpmn")
            .order_by(ProcessVersion.version.desc())
            .limit(1)
        ).first()
        if newest is None:
            continue
        version_id, digest = newest
        if digest not in _DIAGRAM_STAGES:  # NOTE: a version never changes: parsed once per process
            xml = s.scalar(select(ProcessVersion.xml).where(ProcessVersion.id == version_id))
            _DIAGRAM_STAGES[digest] = diagram_stages(xml) if xml else []
        for stage in _DIAGRAM_STAGES[digest]:
            if stage not in order:
                order.append(stage)
    return order


def pipeline_board(
    runner: Runner,
    board: str,
    *,
    owner_name: str | None = None,
    person: Person | None = None,
    limit: int = BOARD_CARDS,
    after: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A pipeline's board: columns (stage, cards, count, overdue, next) in the diagram's stage order.

    A card is a customer in that stage: id, name, owner, owner_name, status, days in the stage
    and its overdue open tasks. A column shows its ``limit`` customers longest in the stage,
    after the cursor ``after[stage]`` (``next`` is the cursor of the following page, or None);
    ``count`` counts the whole column, ``overdue`` its customers with a task past due up to
    ``reads.OVERDUE_CAP`` (``overdue_capped``: there may be more). ``owner_name`` narrows to one owner's
    customers, ``person`` to those they may see; ``owners`` lists every staff member who owns a customer.
    """
    keys = boards().get(board)
    if keys is None:
        raise Missing(f"board {board!r} does not exist; known: {', '.join(boards())}")
    pipeline = crm.PIPELINES[board]
    now = runner.now()
    where = runner.policy.condition(person, CustomerStage.customer_id) if person is not None else None
    with runner.db.read() as s:
        order = _stage_order(s, keys) or list(crm.STAGES[pipeline])
        counts = dict(s.execute(reads.counts_query(pipeline, order, owner=owner_name, where=where)).all())
        late = dict(
            s.execute(
                reads.overdue_query(pipeline, order, now, owner=owner_name, where=where, cap=reads.OVERDUE_CAP)
            ).all()
        )
        columns = []
        for stage in order:
            cursor = decode_cursor((after or {}).get(stage))
            query = reads.column_query(pipeline, stage, owner=owner_name, where=where, after=cursor, limit=limit + 1)
            cards = [
                {"id": i, "entered_at": at, "name": name, "owner": owner, "status": status, "stage": stage}
                for i, at, name, owner, status in (s.execute(query) if counts.get(stage) else [])
            ]
            more = len(cards) > limit
            cards = cards[:limit]
            columns.append(
                {
                    "stage": stage,
                    "cards": cards,
                    "count": counts.get(stage, 0),
                    "overdue": late.get(stage, 0),
                    "overdue_capped": late.get(stage, 0) >= reads.OVERDUE_CAP,
                    "next": encode_cursor(cards[-1]["entered_at"], cards[-1]["id"]) if more else None,
                }
            )
        shown = [card for column in columns for card in column["cards"]]
        overdue = _overdue(s, keys, [c["id"] for c in shown], now)
        owners = list(s.scalars(reads.owners_query()))
        names = _staff_names_of(s, set(owners) | {c["owner"] for c in shown if c["owner"]})
    for card in shown:
        card.update(
            owner_name=names.get(card["owner"], card["owner"]),
            days=(now - card["entered_at"]).days,
            overdue=overdue.get(card["id"], []),
        )
    return {
        "board": board,
        "pipeline": pipeline,
        "process_keys": list(keys),
        "columns": columns,
        "owners": sorted(
            ({"username": u, "full_name": names.get(u, u)} for u in owners),
            key=lambda o: (o["full_name"], o["username"]),
        ),
        "now": now,
    }


def encode_cursor(entered_at: datetime, customer_id: str) -> str:
    """A board column's page cursor: the last card's (entered_at, id) as text for a URL."""
    return f"{entered_at.astimezone(UTC).isoformat()}|{customer_id}"


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The (entered_at, id) of a cursor; ``BadValue`` names a malformed one."""
    if not cursor:
        return None
    moment, sep, customer_id = cursor.partition("|")
    try:
        at = datetime.fromisoformat(moment)
    except ValueError:
        at = None
    if not sep or not customer_id or at is None or at.tzinfo is None:
        raise BadValue(f"after: {cursor!r} is not a board cursor (moment|customer id)")
    return at, customer_id


def _overdue(s: Session, keys: Iterable[str], ids: list[str], now: datetime) -> dict[str, list[dict[str, Any]]]:
    """Customer -> their open user tasks past due (name, due, assignee), most overdue first."""
    if not ids:
        return {}
    rows = sorted(s.execute(reads.overdue_tasks_query(keys, ids, now)), key=lambda row: row.due_at)
    found: dict[str, list[dict[str, Any]]] = {}
    for key, task_id, name, element_id, due_at, assignee in rows:
        if key is None:  # never: the query asks for these customers' tasks
            continue
        found.setdefault(key, []).append(
            {"id": task_id, "name": name or element_id, "due_at": due_at, "assignee": assignee}
        )
    return found


def _staff_names_of(s: Session, usernames: set[str]) -> dict[str, str]:
    if not usernames:
        return {}
    return dict(s.execute(select(Staff.username, Staff.full_name).where(Staff.username.in_(sorted(usernames)))).all())


def _staff_names(s: Session) -> dict[str, str]:
    return dict(s.execute(select(Staff.username, Staff.full_name)).all())


def staff_names(runner: Runner) -> dict[str, str]:
    """Username -> full name of every staff member."""
    with runner.db.read() as s:
        return _staff_names(s)


# --- the customer's timeline ---------------------------------------------------------------------


def timeline(
    runner: Runner, customer_id: str, *, kinds: Iterable[str] | None = None, limit: int = TIMELINE_MAX
) -> list[dict[str, Any]]:
    """The newest ``limit`` of the customer's notes, messages, completed tasks (who, when, what
    data), timers fired, incidents, stage changes and instances started or ended, newest first.

    Each entry: at, kind (``TIMELINE_KINDS``), title, text, actor, actor_name, fields
    (label, value pairs), state, process_key, instance_id, element_id; a change (an edited
    field, its name the title) also has old and new.
    """
    wanted = set(kinds or TIMELINE_KINDS)
    events = [event for event, kind in TIMELINE_EVENTS.items() if kind in wanted]
    with runner.db.read() as s:
        crm.get_customer(s, customer_id)
        processes = _process_names(s)
        # NOTE: each source gives its newest ``limit`` rows (ix_history_business_key,
        # ix_customer_notes_customer_id, the customer's instances), so one customer's long
        # past costs no more than a page; the merge below keeps the newest ``limit`` of them.
        history = s.scalars(
            select(HistoryEvent)
            .where(HistoryEvent.business_key == customer_id, HistoryEvent.event.in_(events))
            .order_by(HistoryEvent.id.desc())
            .limit(limit)
        ).all()[::-1]
        forms = _task_forms(s, [h.details.get("task_id") for h in history if h.event == "task.completed"])
        elements = _element_names(s, {h.instance_id for h in history if h.event != "task.completed"})
        entries = [_history_entry(h, forms, elements, processes) for h in history]
        if "note" in wanted:
            notes = s.scalars(
                select(Note).where(Note.customer_id == customer_id).order_by(Note.id.desc()).limit(limit)
            ).all()
            entries += [_note_entry(n) for n in notes[::-1]]
        if "message" in wanted:
            # NOTE: every message carries its instance's business key (service.jobs writes it, and an
            # instance's key never changes): ix_outbox_business_key (business_key, id) read backward
            # gives the newest ``limit`` of them, however many the customer has.
            messages = s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.business_key == customer_id)
                .order_by(OutboxMessage.id.desc())
                .limit(limit)
            ).all()
            entries += [_message_entry(m) for m in messages[::-1]]
        if "change" in wanted:  # NOTE: fields people edited (runner.crm.editing), who, old -> new
            entries += [_change_entry(c) for c in editing.changes(s, customer_id, limit=limit)[::-1]]
        names = _staff_names_of(s, {e["actor"] for e in entries if e["actor"]})
    for entry in entries:
        entry["actor_name"] = names.get(entry["actor"], entry["actor"]) if entry["actor"] else None
    # NOTE: a stable sort keeps history's own order for events of the same instant.
    entries.sort(key=lambda e: e["at"])
    return entries[::-1][:limit]


def _entry(at: datetime, kind: str, title: str, **more: Any) -> dict[str, Any]:
    entry = {
        "at": at,
        "kind": kind,
        "title": title,
        "text": None,
        "actor": None,
        "fields": [],
        "state": None,
        "process_key": None,
        "instance_id": None,
        "element_id": None,
    }
    entry.update(more)
    return entry


def _history_entry(
    h: HistoryEvent, forms: dict[str, dict], elements: dict[str, dict[str, str]], processes: dict[str, str]
) -> dict[str, Any]:
    details = h.details or {}
    common = {
        "actor": h.actor,
        "process_key": h.process_key,
        "instance_id": h.instance_id,
        "element_id": h.element_id,
        "state": h.event.split(".")[1],
    }
    element = elements.get(h.instance_id or "", {}).get(h.element_id or "", h.element_id or "")
    process = processes.get(h.process_key or "", h.process_key or "")
    if h.event == "task.completed":
        return _entry(
            h.at,
            "task",
            details.get("name") or h.element_id or "",
            fields=_task_fields(details.get("data") or {}, forms.get(details.get("task_id") or "", {})),
            **common,
        )
    if h.event == "timer.fired":
        return _entry(h.at, "timer", element, text=details.get("value"), **common)
    if h.event.startswith("incident."):
        return _entry(h.at, "incident", element or process, text=details.get("error"), **common)
    if h.event == "stage.entered":
        return _entry(h.at, "stage", details.get("stage", ""), text=process, **common)
    return _entry(h.at, "instance", process, **common)


def _note_entry(n: Note) -> dict[str, Any]:
    return _entry(n.created_at, "note", n.kind, text=n.text, actor=n.author, instance_id=n.instance_id, state=n.kind)


def _change_entry(c: dict[str, Any]) -> dict[str, Any]:
    return _entry(
        c["at"],
        "change",
        c["field"],
        actor=c["actor"],
        old=c["old"],
        new=c["new"],
        fields=[("old", c["old"]), ("new", c["new"])],
    )


def _message_entry(m: OutboxMessage) -> dict[str, Any]:
    payload = m.payload or {}
    text = payload.get("body") or payload.get("text")
    first_line = next((line.strip() for line in str(text or "").splitlines() if line.strip()), "")
    title = payload.get("subject") or first_line[:120] or payload.get("template") or m.channel
    fields = [(key, payload[key]) for key in ("to", "template") if payload.get(key)]
    # NOTE: placed when the step asked for it (in order with history); ``sent_at`` says when it left,
    # ``scheduled_for`` when a waiting message will go (its sending window opens, or its next try).
    scheduled = m.due_at if m.state == "pending" and m.due_at > m.created_at else None
    return _entry(
        m.created_at,
        "message",
        str(title),
        text=text,
        state=m.state,
        fields=fields,
        instance_id=m.instance_id,
        element_id=m.channel,
        sent_at=m.sent_at,
        scheduled_for=scheduled,
        channel=m.channel,
    )


def _task_forms(s: Session, task_ids: list[str | None]) -> dict[str, dict]:
    ids = [t for t in task_ids if t]
    if not ids:
        return {}
    return dict(s.execute(select(UserTask.id, UserTask.form).where(UserTask.id.in_(ids))).all())


def _task_fields(data: dict[str, Any], form: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) of what a person entered, in the form's order; enum ids shown by name."""
    fields = {f["id"]: f for f in form.get("fields", [])}
    order = [f for f in fields if f in data] + [k for k in data if k not in fields]
    out = []
    for key in order:
        value, field = data[key], fields.get(key, {})
        if value is None or value == "":
            continue
        options = {o["id"]: o["name"] for o in field.get("options", [])}
        out.append((field.get("label") or key, options.get(value, value) if isinstance(value, str) else value))
    return out


def _process_names(s: Session) -> dict[str, str]:
    rows = s.execute(
        select(ProcessVersion.process_key, ProcessVersion.name)
        .where(ProcessVersion.kind == "bpmn")
        .order_by(ProcessVersion.version)
    )
    return {key: name or key for key, name in rows}


def _element_names(s: Session, instance_ids: set[str | None]) -> dict[str, dict[str, str]]:
    """Instance id -> element id -> name, from its version's file and those of the processes it calls."""
    out: dict[str, dict[str, str]] = {}
    rows = s.execute(
        select(Instance.id, Instance.version_id, Instance.called_versions).where(
            Instance.id.in_([i for i in instance_ids if i])
        )
    ).all()
    for instance_id, version_id, called in rows:
        names: dict[str, str] = {}
        for vid in [*(called or {}).values(), version_id]:
            names.update(_version_element_names(s, vid))
        out[instance_id] = names
    return out


def _version_element_names(s: Session, version_id: int) -> dict[str, str]:
    digest = s.scalar(select(ProcessVersion.content_hash).where(ProcessVersion.id == version_id))
    if digest is None:
        return {}
    if digest not in _ELEMENT_NAMES:
        xml = s.execute(select(ProcessVersion.xml).where(ProcessVersion.id == version_id)).scalar_one()
        root = parse(xml.encode())
        _ELEMENT_NAMES[digest] = {
            el.get("id"): " ".join(el.get("name").split())
            for el in root.iter(f"{{{BPMN_NS}}}*")
            if isinstance(el.tag, str) and el.get("id") and el.get("name")
        }
    return _ELEMENT_NAMES[digest]


# --- instances, bookings, search -------------------------------------------------------------------


def instances(runner: Runner, customer_id: str) -> list[dict[str, Any]]:
    """The customer's instances, running first then newest: process name, version, status, stages, open tasks."""
    with runner.db.read() as s:
        processes = _process_names(s)
        rows = s.execute(
            select(Instance, ProcessVersion.version)
            .join(ProcessVersion, ProcessVersion.id == Instance.version_id)
            .where(Instance.business_key == customer_id)
            .order_by(Instance.status != "running", Instance.created_at.desc(), Instance.id)
        ).all()
        waiting: dict[str, list[str]] = {}
        for instance_id, name, element in s.execute(
            select(UserTask.instance_id, UserTask.name, UserTask.element_id)
            .where(UserTask.business_key == customer_id, UserTask.state == "open")
            .order_by(UserTask.created_at)
        ):
            waiting.setdefault(instance_id, []).append(name or element)
    return [
        {
            "id": inst.id,
            "process_key": inst.process_key,
            "process_name": processes.get(inst.process_key, inst.process_key),
            "version": version,
            "status": inst.status,
            "stages": list(inst.stages or []),
            "created_at": inst.created_at,
            "ended_at": inst.ended_at,
            "waiting": waiting.get(inst.id, []),
        }
        for inst, version in rows
    ]


def _booking(b: Booking, customer_name: str | None, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": b.id,
        "kind": b.kind,
        "session_no": b.session_no,
        "start_at": b.start_at,
        "end_at": b.end_at,
        "status": b.status,
        "staff": b.teacher,
        "staff_name": names.get(b.teacher, b.teacher),
        "customer_id": b.customer_id,
        "customer_name": customer_name,
    }


def customer_bookings(runner: Runner, customer_id: str) -> list[dict[str, Any]]:
    """The customer's appointments (training, care, demo), earliest first, with the staff member's name."""
    with runner.db.read() as s:
        names = _staff_names(s)
        return [
            _booking(b, None, names)
            for b in s.scalars(
                select(Booking).where(Booking.customer_id == customer_id).order_by(Booking.start_at, Booking.id)
            )
        ]


def staff_bookings(runner: Runner, username: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """A staff member's appointments overlapping ``[start, end)``, earliest first, with the customer's name."""
    with runner.db.read() as s:
        names = _staff_names(s)
        rows = s.execute(
            select(Booking, Customer.name)
            .join(Customer, Customer.id == Booking.customer_id)
            .where(Booking.teacher == username, Booking.start_at < end, Booking.end_at > start)
            .order_by(Booking.start_at, Booking.id)
        )
        return [_booking(b, name, names) for b, name in rows]


def known_tags(runner: Runner) -> list[str]:
    """Every tag some customer has, alphabetically."""
    with runner.db.read() as s:
        return list(s.scalars(select(CustomerTag.tag).distinct().order_by(CustomerTag.tag)))


def find_customers(
    runner: Runner,
    text: str = "",
    *,
    tag: str | None = None,
    limit: int = 50,
    where: Any = None,
    after: str | None = None,
) -> list[dict]:
    """Customers by name (accents ignored), phone, code or tag: ``crm.search`` rows plus tags, owner_name, stages.

    A ``text`` that is exactly a tag in use also finds the customers with that tag. ``where``
    (a condition on ``Customer``, e.g. ``Runner.policy.condition``) narrows the search; the
    page holds ``limit`` customers in id order after the id ``after``.
    """
    with runner.db.read() as s:
        rows = crm.search(s, text, tag=tag, limit=limit, where=where, after=after)
        ids = [r["id"] for r in rows]
        names = _staff_names_of(s, {r["owner"] for r in rows if r["owner"]})
        tags: dict[str, list[str]] = {}
        for customer_id, value in s.execute(reads.tags_query(ids)) if ids else []:
            tags.setdefault(customer_id, []).append(value)
        stages: dict[str, dict[str, str]] = {}
        for customer_id, pipeline, stage in s.execute(reads.stages_query(ids)) if ids else []:
            stages.setdefault(customer_id, {})[pipeline] = stage
    for row in rows:
        row.update(
            tags=tags.get(row["id"], []),
            owner_name=names.get(row["owner"], row["owner"]),
            stages=crm.in_pipeline_order(stages.get(row["id"], {})),
        )
    return rows


# --- the one write: a discussion note ------------------------------------------------------------


def add_note(runner: Runner, customer_id: str, text: str, author: str) -> int:
    """Add a Thảo luận note by a staff member; ``BadValue`` names the field, ``Missing`` the customer."""
    text = (text or "").strip()
    if not text:
        raise BadValue("text: the note is empty")
    if len(text) > NOTE_MAX:
        raise BadValue(f"text: at most {NOTE_MAX} characters, got {len(text)}")
    problem = inputs.text_problem(text)
    if problem:
        raise BadValue(f"text: {problem}")
    now = runner.now()
    with runner.db.unit() as s:
        return crm.add_note(s, customer_id, text, now=now, author=author)
