"""Database access and workflow (de)serialization.

NOTE: this is the only module that serializes workflows. Specs are stored once per
process version and cached in memory; an instance row holds only its task tree.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from threading import Lock
from typing import Any
from uuid import UUID

from functools import cache

from sqlalchemy import bindparam, create_engine, event, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from runner.bpmn import serializer_config
from runner.errors import Conflict, Invalid, RunnerError

READ_ONLY = "runner_read_only"
PREDICTED = TaskState.PREDICTED_MASK | TaskState.FUTURE
ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """A SQLAlchemy engine; SQLite gets WAL, durable commits and one writer at a time."""
    if not url.startswith("sqlite"):
        return create_engine(url, echo=echo, pool_pre_ping=True)
    engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        # NOTE: autocommit off in the driver so that we can issue BEGIN IMMEDIATE ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # One writer at a time: a unit of work reads what the previous one committed.
        # Readers (Database.read) keep a plain BEGIN: in WAL mode they never wait for a writer.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


class Database:
    """Sessions over one engine; every unit of work is one transaction."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        event.listen(self._sessions, "before_commit", _insert_pending)
        self._reads = sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)

    @contextmanager
    def unit(self) -> Iterator[Session]:
        """One transaction; a concurrent writer's change surfaces as ``Conflict``."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        except StaleDataError as exc:
            raise Conflict("the instance was changed by someone else at the same time; reload and retry") from exc
        except OperationalError as exc:
            if "locked" in str(exc).lower() or "could not serialize" in str(exc).lower():
                raise Conflict(f"the database is busy with another writer: {exc.orig}") from exc
            raise
        except DBAPIError as exc:
            # serialization failure, deadlock, lock not available, unique key stored first by another writer
            if getattr(exc.orig, "sqlstate", "") in ("40001", "40P01", "55P03", "23505"):
                raise Conflict(f"concurrent update: {exc.orig}") from exc
            raise
        finally:
            session.close()

    def read(self) -> Session:
        """A session for queries (the caller closes it); on SQLite it does not wait for writers."""
        return self._reads()


def save_instance(session: Session, inst: Any, **values: Any) -> None:
    """UPDATE an instance row only if its version is still the one loaded, and bump the version.

    NOTE: one plain UPDATE on the hot path of every unit of work; a second writer that
    loaded the same version finds no row to update and gets StaleDataError (Conflict).
    """
    session.flush()
    version = inst.row_version
    result = session.connection().execute(_versioned_update(inst.__table__), {
        **values, "row_version": version + 1, "b_id": inst.id, "b_version": version})
    if result.rowcount != 1:
        raise StaleDataError(f"instance {inst.id} is no longer at version {version}")
    for name, value in {**values, "row_version": version + 1}.items():
        set_committed_value(inst, name, value)


PENDING = "runner.pending_rows"


def add_row_later(session: Session, model: type, **values: Any) -> None:
    """Queue a write-only row (history) to be inserted with the others just before commit."""
    session.info.setdefault(PENDING, []).append((model.__table__, values))


def _insert_pending(session: Session) -> None:
    """Insert the queued rows, one executemany per table, in the order they were queued."""
    pending = session.info.pop(PENDING, [])
    batches: dict[Any, list[dict[str, Any]]] = {}
    for table, values in pending:
        batches.setdefault(table, []).append(values)
    for table, rows in batches.items():
        session.connection().execute(insert_statement(table), rows)


@cache
def _versioned_update(table):
    # NOTE: built once: building a statement costs several times what executing a cached one
    # does. The SET clause comes from the parameters' keys.
    return update(table).where(table.c.id == bindparam("b_id"), table.c.row_version == bindparam("b_version"))


@cache
def insert_statement(table):
    """A reusable INSERT of ``table`` (columns from the parameters)."""
    return table.insert()


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """A nested transaction whose queued rows are dropped with it when it rolls back."""
    pending = session.info.setdefault(PENDING, [])
    mark = len(pending)
    try:
        with session.begin_nested():
            yield
    except BaseException:
        del pending[mark:]
        raise


def insert_row(session: Session, model: type, **values: Any) -> None:
    """INSERT one row with a reusable Core statement: write-only rows skip the ORM's bookkeeping."""
    session.connection().execute(insert_statement(model.__table__), values)


class _StateConverter(BpmnWorkflowConverter):
    """The workflow without its specs: those live once per process version."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct, spec=None, subprocess_specs=None, script_engine=None):
        workflow = self.target_class(spec, subprocess_specs, script_engine=script_engine, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class _UUIDs:
    """Task ids parsed once per process: an instance's tasks live through many loads.

    NOTE: parsing a UUID string is most of the cost of restoring a small tree; the
    table is cleared when it grows past ``limit`` so memory stays bounded.
    """

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self._parsed: dict[str, UUID] = {}

    def __call__(self, text: str) -> UUID:
        found = self._parsed.get(text)
        if found is None:
            if len(self._parsed) >= self.limit:
                self._parsed.clear()
            found = self._parsed[text] = UUID(text)
        return found


_uuid = _UUIDs()


class _TaskConverter(TaskConverter):
    """SpiffWorkflow's task format (data stored as a delta to the parent's), read with interned ids."""

    def from_dict(self, dct, workflow):
        spec = workflow.spec.task_specs.get(dct["task_spec"])
        task = self.target_class(workflow, spec, state=dct["state"], id=_uuid(dct["id"]))
        parent = dct["parent"]
        task._parent = None if parent is None else _uuid(parent)
        task._children = [_uuid(child) for child in dct["children"]]
        task.last_state_change = dct["last_state_change"]
        task.triggered = dct["triggered"]
        task.internal_data = self.registry.restore(dct["internal_data"])
        if isinstance(spec, CatchingEvent) and task.has_state(TaskState.WAITING):
            task.workflow.top_workflow.event_manager.add_task(task)
        delta = dct.get("delta")
        if delta and parent is not None:
            data = DeepMerge.merge({}, task.parent.data)
            data.update(self.registry.restore(delta.get("updates", {})))
            for key in delta.get("deletions", ()):
                data.pop(key, None)
        else:
            data = self.registry.restore(dct["data"])
        task.data = data
        return task


def _registry():
    config = serializer_config()
    config[BpmnWorkflow] = _StateConverter
    config[Task] = _TaskConverter
    registry = BpmnWorkflowSerializer.configure(config)
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
    return registry


class WorkflowStore:
    """Turns specs and workflows into JSON text and back, with a cache of specs per version."""

    def __init__(self):
        self.registry = _registry()
        self._specs: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._lock = Lock()

    def dump_spec(self, spec, subprocess_specs: dict[str, Any]) -> str:
        """A process spec and the specs it needs, as JSON."""
        return json.dumps({
            "spec": self.registry.convert(spec),
            "subprocess_specs": {k: self.registry.convert(v) for k, v in subprocess_specs.items()},
        })

    def load_spec(self, version_id: int, text: str | Callable[[], str]) -> tuple[Any, dict[str, Any]]:
        """The parsed spec of a version, restored once per process (``text`` may be a loader)."""
        with self._lock:
            if version_id not in self._specs:
                dct = json.loads(text() if callable(text) else text)
                spec = self.registry.restore(dct["spec"])
                subs = {k: self.registry.restore(v) for k, v in dct["subprocess_specs"].items()}
                self._specs[version_id] = (spec, subs)
            return self._specs[version_id]

    def dump_state(self, workflow: BpmnWorkflow) -> str:
        """The task tree and data of a workflow, as JSON."""
        try:
            return json.dumps(self.registry.convert(workflow), separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise RunnerError(f"instance data is not JSON-safe: {exc}") from exc

    def load_state(self, text: str, spec, subprocess_specs: dict[str, Any], script_engine) -> BpmnWorkflow:
        """A workflow restored from its JSON and its (cached) specs."""
        dct = json.loads(text)
        return self.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs,
                                     script_engine=script_engine)

    def load_state_on(self, text: str, spec, subprocess_specs: dict[str, Any], script_engine) -> BpmnWorkflow:
        """A saved instance restored against another version's specs; raises Invalid naming missing elements.

        Task specs are referenced by name (the BPMN element id), so the tree restores when
        every task that has been reached still exists. What was only predicted after the
        active tasks is dropped and predicted again from the target version's flows.
        """
        dct = json.loads(text)
        missing: list[str] = []
        for wf in (dct, *dct["subprocesses"].values()):
            target = spec if wf is dct else subprocess_specs.get(wf["spec"])
            missing += _drop_predicted(wf, target)
        if missing:
            raise Invalid("the target version lacks element(s) the instance has reached: "
                          + ", ".join(dict.fromkeys(missing)))
        workflow = self.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs,
                                         script_engine=script_engine)
        for wf in (workflow, *workflow.subprocesses.values()):
            wf._predict()
        return workflow


def _drop_predicted(wf: dict[str, Any], spec) -> list[str]:
    """Remove tasks predicted below active ones; return reached task specs ``spec`` lacks."""
    tasks = wf["tasks"]
    if spec is None:
        return [wf["spec"]]
    drop: set[str] = set()
    for task in tasks.values():
        if task["state"] & ACTIVE:
            stack = list(task["children"])
            while stack:
                child = tasks[stack.pop()]
                if child["state"] & PREDICTED:
                    drop.add(child["id"])
                    stack.extend(child["children"])
    for task_id in drop:
        del tasks[task_id]
    for task in tasks.values():
        task["children"] = [c for c in task["children"] if c not in drop]
    return [t["task_spec"] for t in tasks.values() if t["task_spec"] not in spec.task_specs]
