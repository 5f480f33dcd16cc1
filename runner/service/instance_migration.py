"""Moving a running instance to another deployed version of its process.

The saved task tree names task specs by BPMN element id, so it restores against the
target version's specs when every task the instance has reached exists there; what was
only predicted after the active tasks is predicted again from the target's flows.

``dry_run`` tells beforehand which running instances of a version can move and why the
others cannot; ``migrate_many`` then moves them one unit of work at a time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from runner.engine import diff
from runner.errors import Conflict, Invalid, NotFound
from runner.model import inputs
from runner.service import projection
from runner.service.unit import Core, Unit
from runner.store.models import Instance, ProcessVersion


def migrate(unit: Unit, instance_id: str, to_version: int | None, actor: str | None) -> int:
    """Move one instance (in the caller's unit of work); returns the version it is now on."""
    s, core = unit.session, unit.core
    inst = s.get(Instance, instance_id, with_for_update=core.db.is_postgres)
    if inst is None:
        raise NotFound(f"instance {instance_id} does not exist")
    if inst.status != "running":
        raise Conflict(f"instance {instance_id} is {inst.status}; only running instances move")
    source = s.get_one(ProcessVersion, inst.version_id)
    target = version(unit, inst.process_key, to_version)
    if target.id == source.id:
        return target.version
    spec, subs = unit.specs(target, inst.called_versions or {})
    try:
        workflow = core.store.load_state_on(inst.state, spec, subs, unit.engine.script_engine)
    except Invalid as exc:
        raise Invalid(
            f"instance {instance_id} cannot move from version {source.version} to {target.version}: {exc}"
        ) from exc
    inst.version_id = target.id
    unit.record(inst, "instance.migrated", actor=actor, details={"from": source.version, "to": target.version})
    snap = unit.commit(inst, workflow)
    projection.refresh(s, snap)
    return target.version


def version(unit: Unit, process_key: str, number: int | None) -> ProcessVersion:
    """One deployed version of a process key (the latest when ``number`` is None)."""
    if number is None:
        return unit.latest_version(process_key)
    row = unit.session.scalars(
        select(ProcessVersion).where(
            ProcessVersion.process_key == process_key, ProcessVersion.kind == "bpmn", ProcessVersion.version == number
        )
    ).first()
    if row is None:
        raise NotFound(f"process {process_key!r} has no version {number}")
    return row


# --- a dry run over every running instance of one version, and moving many ----------------------


def dry_run(core: Core, process_key: str, from_version: int, to_version: int | None = None) -> dict[str, Any]:
    """Which running instances of ``from_version`` can move to ``to_version`` (default: the next one), and why
    the others cannot. Nothing is written.

    Returns ``{"process_key", "from", "to", "diff": {"added", "removed", "changed"}, "instances": [...]}``;
    each instance is ``{"id", "business_key", "active", "movable", "blockers", "changes", "error"}`` where a
    blocker is ``{"element", "name", "reason": "removed"|"renamed"|"process_missing", "to"}`` and a change is
    ``{"element", "name", "attributes"}`` for an element the instance waits at.
    """
    with core.reading() as unit:
        source = version(unit, process_key, from_version)
        target = version(unit, process_key, from_version + 1 if to_version is None else to_version)
        if target.id == source.id:
            raise Invalid(f"process {process_key!r}: version {source.version} cannot move to itself")
        old_spec, _subs = unit.specs(source, {})
        new_spec, _subs = unit.specs(target, {})
        ids = unit.session.scalars(
            select(Instance.id)
            .where(Instance.version_id == source.id, Instance.status == "running")
            .order_by(Instance.created_at, Instance.id)
        ).all()
        instances = [_check(unit, instance_id, target) for instance_id in ids]
    return {
        "process_key": process_key,
        "from": source.version,
        "to": target.version,
        "diff": diff.spec_summary(core.store, old_spec, new_spec),
        "instances": instances,
    }


def _check(unit: Unit, instance_id: str, target: ProcessVersion) -> dict[str, Any]:
    """One instance of the dry run."""
    store = unit.core.store
    inst, workflow = unit.load(instance_id)
    spec, subs = unit.specs(target, inst.called_versions or {})
    blockers, changes = diff.explain_move(store, workflow, spec, subs)
    error = diff.move_error(store, inst.state, spec, subs, unit.engine.script_engine)
    return {
        "id": inst.id,
        "business_key": inst.business_key,
        "movable": error is None,
        "error": error,
        "active": diff.active_elements(workflow),
        "blockers": blockers,
        "changes": changes,
    }


def migrate_many(
    core: Core, process_key: str, instance_ids: list[str], to_version: int, actor: str | None = None
) -> list[dict[str, Any]]:
    """Move each instance (of ``process_key``) to ``to_version``, one unit of work each.

    Returns one ``{"id", "ok", "version" or "error"}`` per instance: one that cannot move is
    reported and left as it was, and the others still move.
    """
    results = []
    for instance_id in instance_ids:
        try:
            inputs.check_key(instance_id, "instance_id", inputs.ROW_ID_LENGTH)  # else its error repeats it
            with core.db.read() as s:
                inst = s.get(Instance, instance_id)
                if inst is None or inst.process_key != process_key:
                    raise NotFound(f"instance {instance_id} of process {process_key!r} does not exist")
            with core.unit() as unit:
                moved = migrate(unit, instance_id, to_version, actor)
            results.append({"id": instance_id, "ok": True, "version": moved})
        except (Invalid, Conflict, NotFound) as exc:
            results.append({"id": instance_id, "ok": False, "error": str(exc)})
    return results
