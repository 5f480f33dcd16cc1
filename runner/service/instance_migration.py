"""Moving a running instance to another deployed version of its process.

The saved task tree names task specs by BPMN element id, so it restores against the
target version's specs when every task the instance has reached exists there; what was
only predicted after the active tasks is predicted again from the target's flows.

``dry_run`` tells beforehand which running instances of a version can move and why the
others cannot; ``migrate_many`` then moves them one unit of work at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from runner.errors import Conflict, Invalid, NotFound
from runner.model import inputs
from runner.service import projection
from runner.store.models import Instance, ProcessVersion

if TYPE_CHECKING:
    from runner.service.runtime import Runner


def migrate(runner: Runner, s: Session, instance_id: str, to_version: int | None, actor: str | None) -> int:
    """Move one instance (in the caller's unit of work); returns the version it is now on."""
    inst = s.get(Instance, instance_id, with_for_update=runner.db.is_postgres)
    if inst is None:
        raise NotFound(f"instance {instance_id} does not exist")
    if inst.status != "running":
        raise Conflict(f"instance {instance_id} is {inst.status}; only running instances move")
    source = s.get_one(ProcessVersion, inst.version_id)
    target = version(runner, s, inst.process_key, to_version)
    if target.id == source.id:
        return target.version
    spec, subs = runner._specs(s, target, inst.called_versions or {})
    try:
        workflow = runner.store.load_state_on(inst.state, spec, subs, runner.engine.script_engine)
    except Invalid as exc:
        raise Invalid(
            f"instance {instance_id} cannot move from version {source.version} to {target.version}: {exc}"
        ) from exc
    inst.version_id = target.id
    runner._history(s, inst, "instance.migrated", actor=actor, details={"from": source.version, "to": target.version})
    snap = runner._commit_step(s, inst, workflow)
    projection.refresh(s, snap)
    return target.version


def version(runner: Runner, s: Session, process_key: str, number: int | None) -> ProcessVersion:
    """One deployed version of a process key (the latest when ``number`` is None)."""
    if number is None:
        return runner.latest_version(s, process_key)
    row = s.scalars(
        select(ProcessVersion).where(
            ProcessVersion.process_key == process_key, ProcessVersion.kind == "bpmn", ProcessVersion.version == number
        )
    ).first()
    if row is None:
        raise NotFound(f"process {process_key!r} has no version {number}")
    return row


# --- a dry run over every running instance of one version, and moving many ----------------------

# NOTE: SpiffWorkflow's diff utilities explain the change (which elements were removed,
# renamed or changed); whether an instance can move is decided by restoring its saved tree
# on the target version exactly as ``migrate`` does, so the dry run never disagrees with it.
_REACHED = TaskState.FINISHED_MASK | TaskState.READY | TaskState.WAITING | TaskState.STARTED
_ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED


def dry_run(runner: Runner, process_key: str, from_version: int, to_version: int | None = None) -> dict[str, Any]:
    """Which running instances of ``from_version`` can move to ``to_version`` (default: the next one), and why
    the others cannot. Nothing is written.

    Returns ``{"process_key", "from", "to", "diff": {"added", "removed", "changed"}, "instances": [...]}``;
    each instance is ``{"id", "business_key", "active", "movable", "blockers", "changes", "error"}`` where a
    blocker is ``{"element", "name", "reason": "removed"|"renamed"|"process_missing", "to"}`` and a change is
    ``{"element", "name", "attributes"}`` for an element the instance waits at.
    """
    with runner.db.read() as s:
        source = version(runner, s, process_key, from_version)
        target = version(runner, s, process_key, from_version + 1 if to_version is None else to_version)
        if target.id == source.id:
            raise Invalid(f"process {process_key!r}: version {source.version} cannot move to itself")
        old_spec, _subs = runner._specs(s, source, {})
        new_spec, _subs = runner._specs(s, target, {})
        ids = s.scalars(
            select(Instance.id)
            .where(Instance.version_id == source.id, Instance.status == "running")
            .order_by(Instance.created_at, Instance.id)
        ).all()
        instances = [_check(runner, s, instance_id, target) for instance_id in ids]
    return {
        "process_key": process_key,
        "from": source.version,
        "to": target.version,
        "diff": _spec_summary(SpecDiff(runner.store.registry, old_spec, new_spec)),
        "instances": instances,
    }


def _spec_summary(diff: SpecDiff) -> dict[str, Any]:
    """The BPMN elements a new version added, removed (or renamed) and changed."""

    def element(spec) -> dict[str, str]:
        return {"element": spec.bpmn_id, "name": spec.bpmn_name or ""}

    return {
        "added": [element(spec) for spec in diff.added if spec.bpmn_id],
        "removed": [
            {**element(old), "to": new.bpmn_id if new is not None and new.name != old.name else None}
            for old, new in diff.alignment.items()
            if old is not None and old.bpmn_id and (new is None or new.name != old.name)
        ],
        "changed": [
            {**element(old), "attributes": sorted(attrs)}
            for old, attrs in diff.changed.items()
            if old.bpmn_id and diff.alignment.get(old) is not None and diff.alignment[old].name == old.name
        ],
    }


def _check(runner: Runner, s: Session, instance_id: str, target: ProcessVersion) -> dict[str, Any]:
    """One instance of the dry run."""
    inst, workflow = runner.load(s, instance_id)
    spec, subs = runner._specs(s, target, inst.called_versions or {})
    blockers: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    # NOTE: what SpiffWorkflow's diff_workflow does, keeping each SpecDiff for its comparisons.
    for wf in (workflow, *workflow.subprocesses.values()):
        target_spec = spec if wf is workflow else subs.get(wf.spec.name)
        if target_spec is None:
            blockers.append(
                {"element": wf.spec.name, "name": wf.spec.description or "", "reason": "process_missing", "to": None}
            )
            continue
        spec_diff = SpecDiff(runner.store.registry, wf.spec, target_spec)
        _explain(wf, spec_diff, WorkflowDiff(wf, spec_diff), target_spec, blockers, changes)
    result = {
        "id": inst.id,
        "business_key": inst.business_key,
        "movable": True,
        "error": None,
        "active": sorted({t.task_spec.bpmn_id for t in workflow.get_tasks(state=_ACTIVE) if t.task_spec.bpmn_id}),
        "blockers": list({b["element"]: b for b in blockers}.values()),
        "changes": changes,
    }
    try:
        runner.store.load_state_on(inst.state, spec, subs, runner.engine.script_engine)
    except Invalid as exc:
        result.update(movable=False, error=str(exc))
    except (SpiffWorkflowException, KeyError, ValueError, TypeError) as exc:
        result.update(movable=False, error=f"{type(exc).__name__}: {exc}")
    return result


def _explain(
    wf,
    spec_diff: SpecDiff,
    wf_diff: WorkflowDiff,
    target_spec,
    blockers: list[dict[str, Any]],
    changes: list[dict[str, Any]],
) -> None:
    """Blockers (reached elements the target lacks) and changes (at waiting elements) of one (sub)workflow."""
    changed = {task.id for task in wf_diff.changed}
    for task in wf.get_tasks(state=_REACHED, skip_subprocesses=True):
        spec = task.task_spec
        if spec.name not in target_spec.task_specs:
            aligned = wf_diff.alignment.get(task)
            renamed = aligned is not None and aligned.name != spec.name
            blockers.append(
                {
                    "element": spec.bpmn_id or spec.name,
                    "name": spec.bpmn_name or "",
                    "reason": "renamed" if renamed else "removed",
                    "to": aligned.bpmn_id if renamed else None,
                }
            )
        elif task.id in changed and task.has_state(_ACTIVE) and spec.bpmn_id:
            attributes = sorted(spec_diff.changed.get(spec, []))
            changes.append({"element": spec.bpmn_id, "name": spec.bpmn_name or "", "attributes": attributes})


def migrate_many(
    runner: Runner, process_key: str, instance_ids: list[str], to_version: int, actor: str | None = None
) -> list[dict[str, Any]]:
    """Move each instance (of ``process_key``) to ``to_version``, one unit of work each.

    Returns one ``{"id", "ok", "version" or "error"}`` per instance: one that cannot move is
    reported and left as it was, and the others still move.
    """
    results = []
    for instance_id in instance_ids:
        try:
            inputs.check_key(instance_id, "instance_id", inputs.ROW_ID_LENGTH)  # else its error repeats it
            with runner.db.read() as s:
                inst = s.get(Instance, instance_id)
                if inst is None or inst.process_key != process_key:
                    raise NotFound(f"instance {instance_id} of process {process_key!r} does not exist")
            results.append(
                {
                    "id": instance_id,
                    "ok": True,
                    "version": runner.migrate_instance(instance_id, to_version, actor=actor),
                }
            )
        except (Invalid, Conflict, NotFound) as exc:
            results.append({"id": instance_id, "ok": False, "error": str(exc)})
    return results
