"""Moving a running instance to another deployed version of its process.

The saved task tree names task specs by BPMN element id, so it restores against the
target version's specs when every task the instance has reached exists there; what was
only predicted after the active tasks is predicted again from the target's flows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from runner import projection
from runner.errors import Conflict, Invalid, NotFound
from runner.models import Instance, ProcessVersion

if TYPE_CHECKING:
    from runner.runtime import Runner


def migrate(runner: "Runner", s: Session, instance_id: str, to_version: int | None, actor: str | None) -> int:
    """Move one instance (in the caller's unit of work); returns the version it is now on."""
    inst = s.get(Instance, instance_id, with_for_update=runner.db.is_postgres)
    if inst is None:
        raise NotFound(f"instance {instance_id} does not exist")
    if inst.status != "running":
        raise Conflict(f"instance {instance_id} is {inst.status}; only running instances move")
    source = s.get(ProcessVersion, inst.version_id)
    target = version(runner, s, inst.process_key, to_version)
    if target.id == source.id:
        return target.version
    spec, subs = runner._specs(s, target, inst.called_versions or {})
    try:
        workflow = runner.store.load_state_on(inst.state, spec, subs, runner.engine.script_engine)
    except Invalid as exc:
        raise Invalid(f"instance {instance_id} cannot move from version {source.version} to "
                      f"{target.version}: {exc}") from exc
    inst.version_id = target.id
    runner._history(s, inst, "instance.migrated", actor=actor, details={"from": source.version, "to": target.version})
    snap = runner._commit_step(s, inst, workflow)
    projection.refresh(s, snap)
    return target.version


def version(runner: "Runner", s: Session, process_key: str, number: int | None) -> ProcessVersion:
    """One deployed version of a process key (the latest when ``number`` is None)."""
    if number is None:
        return runner.latest_version(s, process_key)
    row = s.scalars(select(ProcessVersion).where(ProcessVersion.process_key == process_key,
                                                 ProcessVersion.kind == "bpmn",
                                                 ProcessVersion.version == number)).first()
    if row is None:
        raise NotFound(f"process {process_key!r} has no version {number}")
    return row
