"""Keeping a live task tree bounded, however long an instance loops.

SpiffWorkflow adds tasks for every round of a loop and its iterators stop at depth
1,000, so a loop of three tasks would silently "complete" after about 333 rounds. After
each unit of work the tree is re-rooted just above its oldest unfinished task.
"""

from __future__ import annotations

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import TaskNotFoundException
from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState


def prune(workflow: BpmnWorkflow) -> int:
    """Re-root each task tree just above its oldest unfinished task; returns tasks dropped.

    NOTE: every unfinished task, every join's split and every boundary event's
    split sit below the lowest common ancestor of the unfinished tasks, so what is
    dropped is finished history that no spec looks at again.
    """
    dropped = _reroot(workflow, workflow)
    for sub in list(workflow.subprocesses.values()):
        if sub.parent_task_id in workflow.subprocesses or _owner_exists(workflow, sub):
            dropped += _reroot(workflow, sub)
    return dropped


def _owner_exists(top: BpmnWorkflow, sub) -> bool:
    # NOTE: BpmnWorkflow.get_task_from_id raises (rather than returning None) for a task that
    # re-rooting an enclosing tree has just dropped, e.g. a finished embedded subprocess inside
    # a call activity; such a subprocess has been deleted and needs no re-rooting.
    try:
        return top.get_task_from_id(sub.parent_task_id) is not None
    except TaskNotFoundException:
        return False


def _reroot(top: BpmnWorkflow, wf) -> int:
    unfinished = [t for t in wf.tasks.values() if not t.has_state(TaskState.FINISHED_MASK)]
    if not unfinished:
        return 0
    common = _ancestors(unfinished[0])
    for task in unfinished[1:]:
        chain = {t.id for t in _ancestors(task)}
        common = [t for t in common if t.id in chain]
    new_root = common[0].parent or common[0]
    # NOTE: joins read the parent of every task of their spec, so a join task never
    # becomes the root (the only task without a parent).
    while isinstance(new_root.task_spec, Join) and new_root.parent is not None:
        new_root = new_root.parent
    if new_root is wf.task_tree:
        return 0
    keep = {t.id for t in _descendants(new_root)}
    dropped = [tid for tid in wf.tasks if tid not in keep]
    for tid in dropped:
        if tid in top.subprocesses:
            top.delete_subprocess(wf.tasks[tid])
        del wf.tasks[tid]
    new_root._parent = None
    wf.task_tree = new_root
    if wf.last_task is not None and wf.last_task.id not in keep:
        wf.last_task = None
    return len(dropped)


def _ancestors(task: Task) -> list[Task]:
    """The task and its ancestors, nearest first."""
    chain = []
    while task is not None:
        chain.append(task)
        task = task.parent
    return chain


def _descendants(task: Task) -> list[Task]:
    found, stack = [], [task]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(current.children)
    return found
