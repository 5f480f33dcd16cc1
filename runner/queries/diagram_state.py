"""Read queries behind the diagram views: a version's XML, where one instance stands in it,
and how many instances of a version wait at each element.

Everything is read from the projection tables (user tasks, jobs, timers, subscriptions,
incidents) and history; nothing loads or deserializes a workflow. Elements of a called
process count for the call activity that runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from runner.errors import NotFound
from runner.model.paths import FlowGraph, lift_called, read_graph, taken_path
from runner.store.models import HistoryEvent, Incident, Instance, Job, ProcessVersion, Subscription, Timer, UserTask

if TYPE_CHECKING:
    from runner.service.runtime import Runner

DONE_EVENTS = ("task.completed", "handler.succeeded", "timer.fired", "message.correlated", "instance.started")


def versions(runner: Runner, process_key: str) -> list[dict[str, Any]]:
    """The versions of a BPMN process, newest first, with their running instance counts."""
    running = (
        select(Instance.version_id, func.count()).where(Instance.status == "running").group_by(Instance.version_id)
    )
    query = (
        select(ProcessVersion)
        .where(ProcessVersion.process_key == process_key, ProcessVersion.kind == "bpmn")
        .order_by(ProcessVersion.version.desc())
    )
    with runner.db.read() as s:
        counts = dict(s.execute(running).all())
        return [
            {
                "id": v.id,
                "version": v.version,
                "name": v.name,
                "deployed_at": v.deployed_at,
                "running": counts.get(v.id, 0),
            }
            for v in s.scalars(query)
        ]


def version_xml(runner: Runner, process_key: str, version: int) -> dict[str, Any]:
    """One deployed version with its XML; ``NotFound`` names the key and version."""
    with runner.db.read() as s:
        row = _version(s, process_key, version)
        return {
            "id": row.id,
            "process_key": row.process_key,
            "version": row.version,
            "name": row.name,
            "file_name": row.file_name,
            "deployed_at": row.deployed_at,
            "xml": row.xml,
        }


def _version(s: Session, process_key: str, version: int) -> ProcessVersion:
    row = s.scalars(
        select(ProcessVersion).where(ProcessVersion.process_key == process_key, ProcessVersion.version == version)
    ).first()
    if row is None:
        raise NotFound(f"process {process_key} has no version {version}")
    return row


def waiting_counts(runner: Runner, process_key: str, version: int) -> dict[str, int]:
    """How many running instances of one version wait at each element (called processes: at the call)."""
    with runner.db.read() as s:
        row = _version(s, process_key, version)
        graph = read_graph(row.xml)
        called = _called_graphs(s, _called_ids(s, row.id))
        running = select(Instance.id).where(Instance.version_id == row.id, Instance.status == "running")
        pairs = _wait_pairs(s, running)
    lifted = lift_called({e for e, _, _ in pairs}, graph, called)
    messages = _message_catchers(graph, called)
    seen: dict[str, set[str]] = {}
    for element, instance_id, kind in pairs:
        targets = messages.get(element, []) if kind == "message" else [element]
        for target in targets:
            owner = lifted.get(target, target) if kind != "message" else target
            owner = graph.attached.get(owner, owner)  # NOTE: a boundary wait counts for its activity
            seen.setdefault(owner, set()).add(instance_id)
    return {element: len(ids) for element, ids in seen.items()}


def _wait_pairs(s: Session, instance_ids: Select) -> list[tuple[str, str, str]]:
    """(element id or message name, instance id, kind) for every open wait of the selected instances."""
    pairs = [
        (e, i, "task")
        for e, i in s.execute(
            select(UserTask.element_id, UserTask.instance_id).where(
                UserTask.state == "open", UserTask.instance_id.in_(instance_ids)
            )
        )
    ]
    pairs += [
        (e, i, "job")
        for e, i in s.execute(
            select(Job.element_id, Job.instance_id).where(
                Job.state.in_(("pending", "incident")), Job.instance_id.in_(instance_ids)
            )
        )
    ]
    pairs += [
        (e, i, "timer")
        for e, i in s.execute(
            select(Timer.element_id, Timer.instance_id).where(
                Timer.state == "waiting", Timer.instance_id.in_(instance_ids)
            )
        )
        if i is not None  # always, by the query; start-event timers have no instance
    ]
    pairs += [
        (m, i, "message")
        for m, i in s.execute(
            select(Subscription.message_name, Subscription.instance_id).where(
                Subscription.instance_id.in_(instance_ids)
            )
        )
        if i is not None  # always, by the query; start-event subscriptions have no instance
    ]
    return pairs


def _called_ids(s: Session, version_id: int) -> dict[str, int]:
    """Called process key -> version id, as the newest instance of a version bound them (else latest)."""
    bound = s.scalars(
        select(Instance.called_versions)
        .where(Instance.version_id == version_id)
        .order_by(Instance.created_at.desc())
        .limit(1)
    ).first()
    if bound:
        return dict(bound)
    latest = (
        select(ProcessVersion.process_key, func.max(ProcessVersion.id))
        .where(ProcessVersion.kind == "bpmn")
        .group_by(ProcessVersion.process_key)
    )
    return {key: vid for key, vid in s.execute(latest)}


def _called_graphs(s: Session, called: dict[str, int]) -> dict[str, FlowGraph]:
    out = {}
    for key, version_id in called.items():
        row = s.get(ProcessVersion, version_id)
        if row is not None and row.kind == "bpmn":
            out[key] = read_graph(row.xml)
    return out


def _message_catchers(graph: FlowGraph, called: dict[str, FlowGraph]) -> dict[str, list[str]]:
    """Message name -> elements of ``graph`` that wait for it (a called process's wait: its call activity)."""
    out = {name: list(ids) for name, ids in graph.catchers.items()}
    for sub in called.values():
        for name, ids in sub.catchers.items():
            for owner in lift_called(ids, graph, called).values():
                out.setdefault(name, []).append(owner)
    return {name: list(dict.fromkeys(ids)) for name, ids in out.items()}


def instance_diagram(runner: Runner, instance_id: str) -> dict[str, Any]:
    """An instance's diagram state: XML, active and passed elements, waits, steps and incidents."""
    with runner.db.read() as s:
        inst = s.get(Instance, instance_id)
        if inst is None:
            raise NotFound(f"instance {instance_id} does not exist")
        row = s.get_one(ProcessVersion, inst.version_id)
        xml = row.xml
        called = _called_graphs(s, dict(inst.called_versions or {}))
        waits = _waits(s, inst.id)
        steps: list[dict[str, Any]] = [
            {"element_id": h.element_id, "event": h.event, "at": h.at, "actor": h.actor, "details": h.details}
            for h in s.scalars(
                select(HistoryEvent)
                .where(HistoryEvent.instance_id == inst.id, HistoryEvent.event.in_(DONE_EVENTS))
                .order_by(HistoryEvent.id)
            )
        ]
        incidents = [
            {
                "id": i.id,
                "element_id": i.element_id,
                "error": i.error,
                "kind": i.kind,
                "created_at": i.created_at,
                "tries": i.tries,
            }
            for i in s.scalars(select(Incident).where(Incident.instance_id == inst.id, Incident.state == "open"))
        ]
        info: dict[str, Any] = {
            "id": inst.id,
            "process_key": inst.process_key,
            "name": row.name,
            "version": row.version,
            "version_id": row.id,
            "business_key": inst.business_key,
            "status": inst.status,
            "stages": list(inst.stages or []),
            "created_at": inst.created_at,
            "ended_at": inst.ended_at,
        }
    graph = read_graph(xml)
    _place(graph, called, waits, steps, incidents)
    active = {w["element_id"] for w in waits if w["element_id"] and w["kind"] != "boundary"}
    visited = {st["element_id"] for st in steps if st["element_id"]}
    path = taken_path(graph, visited, active, inst.process_key, info["status"] == "completed")
    return {
        "instance": info,
        "xml": xml,
        "active": active,
        "completed": path,
        "waits": waits,
        "steps": steps,
        "incidents": incidents,
    }


def _waits(s: Session, instance_id: str) -> list[dict[str, Any]]:
    """What the instance waits for now, one dict per wait, with the raw element id or message name."""
    out: list[dict[str, Any]] = [
        {
            "kind": "task",
            "element_id": t.element_id,
            "name": t.name,
            "task_id": t.id,
            "assignee": t.assignee,
            "candidate_groups": list(t.candidate_groups or []),
            "due_at": t.due_at,
            "created_at": t.created_at,
        }
        for t in s.scalars(select(UserTask).where(UserTask.instance_id == instance_id, UserTask.state == "open"))
    ]
    out += [
        {
            "kind": "job",
            "element_id": j.element_id,
            "topic": j.topic,
            "state": j.state,
            "attempts": j.attempts,
            "due_at": j.due_at,
            "last_error": j.last_error,
        }
        for j in s.scalars(select(Job).where(Job.instance_id == instance_id, Job.state.in_(("pending", "incident"))))
    ]
    out += [
        {"kind": "timer", "element_id": t.element_id, "due_at": t.due_at, "value": t.value}
        for t in s.scalars(select(Timer).where(Timer.instance_id == instance_id, Timer.state == "waiting"))
    ]
    out += [
        {"kind": "message", "element_id": None, "message": m}
        for m in s.scalars(select(Subscription.message_name).where(Subscription.instance_id == instance_id))
    ]
    return out


def _place(
    graph: FlowGraph,
    called: dict[str, FlowGraph],
    waits: list[dict[str, Any]],
    steps: list[dict[str, Any]],
    incidents: list[dict[str, Any]],
) -> None:
    """Rewrite element ids to elements of the top diagram (in place); message waits get their catchers."""
    messages = _message_catchers(graph, called)
    extra = []
    for wait in waits:
        if wait["kind"] == "message":
            targets = messages.get(wait["message"], [])
            wait["element_id"] = targets[0] if targets else None
            extra += [dict(wait, element_id=t) for t in targets[1:]]
    waits.extend(extra)
    for step in steps:
        step["element_id"] = _step_element(graph, messages, step)
    ids = {r["element_id"] for r in [*waits, *steps, *incidents] if r.get("element_id")}
    lifted = lift_called(ids, graph, called)
    for record in [*waits, *steps, *incidents]:
        if record.get("element_id"):
            record["called_element"] = record["element_id"] if record["element_id"] not in graph.kinds else None
            record["element_id"] = lifted.get(record["element_id"], record["element_id"])
    for wait in waits:
        if wait["element_id"] in graph.attached:
            wait["kind_of_wait"], wait["kind"] = wait["kind"], "boundary"


def _step_element(graph: FlowGraph, messages: dict[str, list[str]], step: dict[str, Any]) -> str | None:
    """The element a history step finished; message steps and starts map through the diagram."""
    details = step.get("details") or {}
    if step["event"] == "message.correlated":
        targets = messages.get(details.get("message", ""), [])
        return targets[0] if len(targets) == 1 else None
    if step["event"] == "instance.started":
        kind, value = (details.get("trigger") or [None, None])[:2]
        if kind == "message":
            starts = graph.message_starts.get(value, [])
            return starts[0] if starts else None
        return value if kind == "timer" else None
    return step["element_id"]
