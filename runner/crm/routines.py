"""Seed 001's internal routines as staff read them: the daily check-in and feature requests.

The diagrams run them (``processes/checkin.bpmn``, ``processes/feature_request.bpmn``); this module
reads what they left, and files a feature request:

- **Check-in.** Each working day at 08:30 one ``checkin`` instance gives every active sales rep a
  ``Task_checkin`` (the multi-instance task, one per rep). A rep's answers are the form values of
  their completion, kept in the ``task.completed`` history event; ``checkin_day`` puts the day's
  answers, and who has not answered (or did not, once the day closed), on one page.
- **Feature requests.** Anyone files one (``file_feature_request``), from a customer page (the
  business key is then the customer's id) or on its own (no business key). The diagram keeps its
  state in the variable ``request_state``; ``feature_requests`` lists a requester's requests with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runner.crm.models import Customer
from runner.errors import FormInvalid
from runner.store.models import HistoryEvent, Instance, User, UserTask

if TYPE_CHECKING:
    from runner.service.runtime import Runner

CHECKIN = "checkin"  # the process key of processes/checkin.bpmn
CHECKIN_TASK = "Task_checkin"  # its multi-instance user task, one per rep
QUESTIONS = ("yesterday", "today", "blockers", "ideas")  # the form fields, in the seed's order
FEATURE_REQUEST = "feature_request"  # the process key of processes/feature_request.bpmn
STATES = ("received", "accepted", "in_progress", "done", "declined")  # request_state, as the diagram sets it
TITLE_MAX, DESCRIPTION_MAX = 200, 4000
REQUESTS_SHOWN = 200  # a requester's newest requests on their page


def members(session: Session, role: str) -> list[str]:
    """The usernames of the active users holding ``role``, in order: who gets one check-in each.

    NOTE: roles are a JSON list, so the filter runs here, over the users table (the company's staff).
    """
    users = session.scalars(select(User).where(User.active).order_by(User.username))
    return [u.username for u in users if role in (u.roles or [])]


# --- the daily check-in --------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckinRow:
    """One rep's check-in of a day: ``answered``, ``waiting`` (still open) or ``missed`` (the day closed)."""

    rep: str
    rep_name: str
    state: str
    due_at: datetime | None
    answered_at: datetime | None
    answers: dict[str, str]


def checkin_day(runner: Runner, day: date) -> list[CheckinRow]:
    """The check-ins created on ``day`` (business time), one row per rep, by name.

    NOTE: three indexed reads, none of which grows with history: the day's instances through
    ``ix_instances_list_process`` (process_key, created_at, id), their tasks through
    ``user_tasks.instance_id`` and their completions through ``history.instance_id``.
    """
    start = datetime.combine(day, time(), runner.settings.tz).astimezone(UTC)
    with runner.db.read() as s:
        ids = list(
            s.scalars(
                select(Instance.id).where(
                    Instance.process_key == CHECKIN,
                    Instance.created_at >= start,
                    Instance.created_at < start + timedelta(days=1),
                )
            )
        )
        if not ids:
            return []
        tasks = s.execute(
            select(UserTask.id, UserTask.assignee, UserTask.state, UserTask.due_at, UserTask.ended_at).where(
                UserTask.instance_id.in_(ids), UserTask.element_id == CHECKIN_TASK
            )
        ).all()
        done = s.execute(
            select(HistoryEvent.details).where(
                HistoryEvent.instance_id.in_(ids),
                HistoryEvent.event == "task.completed",
                HistoryEvent.element_id == CHECKIN_TASK,
            )
        ).scalars()
        answers = {d.get("task_id"): d.get("data") or {} for d in done}
        names = _full_names(s, {t.assignee for t in tasks if t.assignee})
    rows = [
        CheckinRow(
            rep=t.assignee or "",
            rep_name=names.get(t.assignee or "", t.assignee or ""),
            state={"completed": "answered", "open": "waiting"}.get(t.state, "missed"),
            due_at=t.due_at,
            answered_at=t.ended_at if t.state == "completed" else None,
            answers={q: str(answers.get(t.id, {}).get(q) or "") for q in QUESTIONS},
        )
        for t in tasks
    ]
    return sorted(rows, key=lambda r: (r.rep_name, r.rep))


def _full_names(s: Session, usernames: set[str]) -> dict[str, str]:
    if not usernames:
        return {}
    return dict(s.execute(select(User.username, User.full_name).where(User.username.in_(sorted(usernames)))).all())


# --- feature requests ----------------------------------------------------------------------------


def file_feature_request(
    runner: Runner, requester: str, title: Any, description: Any, customer_id: str | None = None
) -> str:
    """Start a feature request of ``requester`` (about a customer, or none); returns the instance id.

    Bad fields are refused together (``FormInvalid`` by field). Whether the requester may see the
    customer is the caller's check (the page answers 404 before it gets here).
    """
    values = {"title": title, "description": description}
    limits = {"title": TITLE_MAX, "description": DESCRIPTION_MAX}
    errors: dict[str, str] = {}
    for name, value in values.items():
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            errors[name] = "required"
        elif len(text) > limits[name]:
            errors[name] = f"at most {limits[name]} characters"
        values[name] = text
    customer_name = None
    if customer_id:
        with runner.db.read() as s:
            found = s.get(Customer, customer_id)
            customer_name = found.name if found is not None else None
        if customer_name is None:
            errors["customer"] = f"customer {customer_id!r} does not exist"
    if errors:
        raise FormInvalid(errors)
    with runner.db.read() as s:
        name = _full_names(s, {requester}).get(requester, requester)
    data = {**values, "requester": requester, "requester_name": name}
    if customer_name is not None:
        data["customer_name"] = customer_name
    return runner.start_instance(FEATURE_REQUEST, customer_id or None, data, actor=requester)


def feature_requests(runner: Runner, requester: str) -> list[dict[str, Any]]:
    """The requester's feature requests, newest first, with their state (``request_state``) and the reply.

    NOTE: read along ``ix_instances_list_process`` (process_key, created_at, id), newest first; the
    requester is a field of the instance data, so the scan covers feature requests only, never other
    processes' instances (a company files a few a week).
    """
    query = (
        select(Instance)
        .where(Instance.process_key == FEATURE_REQUEST, Instance.data["requester"].as_string() == requester)
        .order_by(Instance.created_at.desc(), Instance.id.desc())
        .limit(REQUESTS_SHOWN)
    )
    with runner.db.read() as s:
        found = s.scalars(query).all()
        return [
            {
                "id": inst.id,
                "created_at": inst.created_at,
                "customer_id": inst.business_key,
                "customer_name": inst.data.get("customer_name"),
                "title": inst.data.get("title", ""),
                "description": inst.data.get("description", ""),
                "state": inst.data.get("request_state") or "received",
                "reply": inst.data.get("product_reply") or "",
                "planned_release": inst.data.get("planned_release"),
                "updated_at": inst.updated_at,
            }
            for inst in found
        ]
