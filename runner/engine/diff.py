"""What changes between two versions of a process, for an instance that would move: plain data.

SpiffWorkflow's diff utilities explain the change (which elements were removed, renamed
or changed); whether an instance can move is decided by restoring its saved tree on the
target version (``WorkflowStore.load_state_on``), so a dry run never disagrees with a move.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from runner.engine.serializer import WorkflowStore
from runner.errors import Invalid

_REACHED = TaskState.FINISHED_MASK | TaskState.READY | TaskState.WAITING | TaskState.STARTED
_ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED


def spec_summary(store: WorkflowStore, old_spec: Any, new_spec: Any) -> dict[str, Any]:
    """The BPMN elements a new version added, removed (or renamed) and changed."""
    diff = SpecDiff(store.registry, old_spec, new_spec)

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


def active_elements(workflow: Any) -> list[str]:
    """The BPMN ids of the elements a workflow waits at (or runs), sorted."""
    return sorted({t.task_spec.bpmn_id for t in workflow.get_tasks(state=_ACTIVE) if t.task_spec.bpmn_id})


def explain_move(
    store: WorkflowStore, workflow: Any, spec: Any, subs: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Blockers (reached elements the target lacks) and changes (at waiting elements) of a move to ``spec``.

    A blocker is ``{"element", "name", "reason": "removed"|"renamed"|"process_missing", "to"}``,
    a change ``{"element", "name", "attributes"}``.
    """
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
        spec_diff = SpecDiff(store.registry, wf.spec, target_spec)
        _explain(wf, spec_diff, WorkflowDiff(wf, spec_diff), target_spec, blockers, changes)
    return list({b["element"]: b for b in blockers}.values()), changes


def _explain(
    wf,
    spec_diff: SpecDiff,
    wf_diff: WorkflowDiff,
    target_spec,
    blockers: list[dict[str, Any]],
    changes: list[dict[str, Any]],
) -> None:
    """Blockers and changes of one (sub)workflow."""
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


def move_error(store: WorkflowStore, state: str, spec: Any, subs: dict[str, Any], script_engine: Any) -> str | None:
    """Why a saved instance cannot be restored on another version's specs, or None when it can."""
    try:
        store.load_state_on(state, spec, subs, script_engine)
    except Invalid as exc:
        return str(exc)
    except (SpiffWorkflowException, KeyError, ValueError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
