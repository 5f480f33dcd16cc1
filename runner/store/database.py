"""Database access and workflow (de)serialization.

NOTE: this is the only module that serializes workflows. Specs are stored once per
process version and cached in memory; an instance row holds only its task tree.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import cache
from threading import Lock
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, create_engine, event, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key

from runner.engine.parser import serializer_config
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
        # NOTE: straight on the driver, as storage.Prepared runs the busiest statements.
        sql = "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
        try:
            conn.connection.dbapi_connection.execute(sql)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, (), exc, sqlite3.Error, dialect=conn.dialect) from exc

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


sql_log = logging.getLogger("runner.sql")


class Prepared:
    """A Core statement compiled once per dialect and set of keys, run on the driver's cursor.

    NOTE: SQLAlchemy's own work per executed statement (cache key, execution context,
    result object) costs several times what the database spends on a small indexed
    statement, and the busiest units of work run half a dozen of them. Those run through
    here, inside the session's transaction: values go through the columns' own bind
    processors (JSON, UTC datetimes), Python-side column defaults fill an INSERT's
    missing columns, and driver errors come back as SQLAlchemy's ``DBAPIError`` so that
    ``Database.unit`` turns them into ``Conflict`` as before.
    """

    def __init__(self, statement):
        self.statement = statement
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def _plan(self, dialect, keys: tuple[str, ...]) -> _Plan:
        plan = self._plans.get((dialect.name, keys))
        if plan is None:
            plan = self._plans[(dialect.name, keys)] = _Plan(self.statement, dialect, keys)
        return plan

    def execute(self, session: Session, params: dict[str, Any]) -> int:
        """Run once with ``params``; returns the number of rows it changed."""
        driver, dialect = _driver(session)
        plan = self._plan(dialect, tuple(params))
        return plan.run(driver, plan.bind(params))[0]

    def executemany(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """Run once per row (every row has the first row's keys)."""
        if rows:
            driver, dialect = _driver(session)
            plan = self._plan(dialect, tuple(rows[0]))
            plan.run(driver, [plan.bind(row) for row in rows], many=True)

    def first(self, session: Session, params: dict[str, Any]) -> dict[str, Any] | None:
        """The first row of a SELECT as a dict by column label, or None."""
        driver, dialect = _driver(session)
        plan = self._plan(dialect, tuple(params))
        found = plan.run(driver, plan.bind(params))[1]
        if found is None:
            return None
        return {
            key: value if load is None else load(value)
            for key, load, value in zip(plan.labels, plan.loaders, found, strict=True)
        }


class _Plan:
    """One compiled form of a ``Prepared`` statement."""

    def __init__(self, statement, dialect, keys: tuple[str, ...]):
        self.dialect = dialect
        self.errors = dialect.loaded_dbapi.Error
        self.compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = self.compiled.string
        self.order = self.compiled.positiontup if self.compiled.positional else None
        self.processors = {}
        for name, bind in self.compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor
        self.defaults = {}
        if getattr(statement, "is_insert", False):
            self.defaults = {
                column.key: column.default
                for column in statement.table.columns
                if column.default is not None and column.key not in keys and column.key in self.compiled.binds
            }
        columns = list(statement.selected_columns) if getattr(statement, "is_select", False) else []
        self.labels = [column.key for column in columns]
        self.loaders = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]

    def bind(self, params: dict[str, Any]):
        """The driver's parameters (a sequence or a dict, by the driver's paramstyle)."""
        if self.defaults:
            params = {
                **{
                    key: default.arg if default.is_scalar else default.arg(None)
                    for key, default in self.defaults.items()
                },
                **params,
            }
        values = self.compiled.construct_params(params)
        for name, processor in self.processors.items():
            if name in values:
                values[name] = processor(values[name])
        return values if self.order is None else [values[name] for name in self.order]

    def run(self, driver, params, many: bool = False) -> tuple[int, Any]:
        """Execute on a cursor of its own; returns the rows changed and the first row read (or None)."""
        if sql_log.isEnabledFor(logging.DEBUG):  # SQLAlchemy's echo does not see these statements
            sql_log.debug("%s %r", self.sql, params)
        cursor = driver.cursor()
        try:
            if many:
                cursor.executemany(self.sql, params)
            else:
                cursor.execute(self.sql, params)
            return cursor.rowcount, cursor.fetchone() if self.labels else None
        except self.errors as exc:
            raise DBAPIError.instance(self.sql, params, exc, self.errors, dialect=self.dialect) from exc
        finally:
            cursor.close()


DRIVER = "runner.driver"


def _driver(session: Session):
    """The DBAPI connection of the session's transaction, and its dialect.

    NOTE: kept in ``session.info`` with the root transaction it belongs to, so a session
    that goes on to another transaction (and maybe another pooled connection) looks again.
    """
    found = session.info.get(DRIVER)
    transaction = session.get_transaction()
    if found is None or found[0] is not transaction:
        connection = session.connection()
        transaction = session.get_transaction()
        found = session.info[DRIVER] = (transaction, connection.connection.dbapi_connection, connection.dialect)
    return found[1], found[2]


def save_instance(session: Session, inst: Any, **values: Any) -> None:
    """UPDATE an instance row only if its version is still the one loaded, and bump the version.

    NOTE: one plain UPDATE on the hot path of every unit of work; a second writer that
    loaded the same version finds no row to update and gets StaleDataError (Conflict).
    """
    session.flush()
    version = inst.row_version
    values["row_version"] = version + 1
    changed = _versioned_update(inst.__table__).execute(session, {**values, "b_id": inst.id, "b_version": version})
    if changed != 1:
        raise StaleDataError(f"instance {inst.id} is no longer at version {version}")
    for name, value in values.items():
        set_committed_value(inst, name, value)


def attach(session: Session, model: type[DeclarativeBase], values: dict[str, Any]) -> Any:
    """A model object for a row read with ``Prepared``, persistent in the session as if it had loaded it."""
    key = model.__mapper__.primary_key[0].key  # a table's column always has one; typed Optional for all columns
    found = session.identity_map.get(identity_key(model, values[key]))  # type: ignore[index]
    if found is not None:
        return found
    # NOTE: filled in as a load fills it (no attribute events, no history), then added:
    # about half the cost of the model's constructor.
    obj = model.__mapper__.class_manager.new_instance()
    obj.__dict__.update(values)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


PENDING = "runner.pending_rows"


def add_row_later(session: Session, model: type[DeclarativeBase], **values: Any) -> None:
    """Queue a write-only row (history) to be inserted with the others just before commit."""
    session.info.setdefault(PENDING, []).append((model.__table__, values))


def _insert_pending(session: Session) -> None:
    """Insert the queued rows, one executemany per table and set of columns, in the order they were queued."""
    pending = session.info.pop(PENDING, [])
    batches: dict[Any, list[dict[str, Any]]] = {}
    for table, values in pending:
        batches.setdefault((table, tuple(values)), []).append(values)
    for (table, _keys), rows in batches.items():
        insert_statement(table).executemany(session, rows)


@cache
def _versioned_update(table) -> Prepared:
    # NOTE: the SET clause comes from the parameters' keys.
    return Prepared(update(table).where(table.c.id == bindparam("b_id"), table.c.row_version == bindparam("b_version")))


@cache
def insert_statement(table) -> Prepared:
    """A reusable INSERT of ``table`` (columns from the parameters, Python-side defaults for the rest)."""
    return Prepared(table.insert().inline())


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


def insert_row(session: Session, model: type[DeclarativeBase], **values: Any) -> None:
    """INSERT one row with a reusable statement: write-only rows skip the ORM's bookkeeping."""
    insert_statement(model.__table__).execute(session, values)


class _StateConverter(BpmnWorkflowConverter):
    """The workflow without its specs: those live once per process version.

    NOTE: the top-level tasks go straight to ``_task_to_dict``/``_task_from_dict``
    rather than through the registry's lookup per task; the format is SpiffWorkflow's.
    """

    def to_dict(self, workflow):
        return {
            "data": _convert(self.registry, self.registry.clean(workflow.data)),
            "correlations": workflow.correlations,
            "last_task": str(workflow.last_task.id) if workflow.last_task is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": {str(task_id): _task_to_dict(self.registry, task) for task_id, task in workflow.tasks.items()},
            "root": str(workflow.task_tree.id),
            "subprocesses": self.mapping_to_dict(workflow.subprocesses),
            "bpmn_events": self.registry.convert(workflow.bpmn_events),
        }

    def from_dict(self, dct, spec=None, subprocess_specs=None, script_engine=None):
        workflow = self.target_class(spec, subprocess_specs, script_engine=script_engine, deserializing=True)
        workflow.tasks = tasks = {}
        for task_id, task_dct in dct["tasks"].items():
            tasks[_uuid(task_id)] = _task_from_dict(self.registry, task_dct, workflow)
        workflow.task_tree = tasks.get(_uuid(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class _Id(UUID):
    """A task id that remembers its text: a saved tree writes every id several times."""

    __slots__ = ("text",)
    text: str

    def __init__(self, text: str):
        super().__init__(text)
        object.__setattr__(self, "text", text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"UUID({self.text!r})"

    def __reduce__(self):
        return _Id, (self.text,)


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
            found = self._parsed[text] = _Id(text)
        return found


_uuid = _UUIDs()
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_json(value: Any) -> bool:
    """Plain JSON: nothing in it for the registry to convert (nor a dict it would mistake for one)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is dict:
        return "typename" not in value and all(type(key) is str and _is_json(item) for key, item in value.items())
    if kind is list:
        return all(_is_json(item) for item in value)
    return False


def _is_stored_json(value: Any) -> bool:
    """Stored JSON with no converted object in it (those are dicts with a ``typename``)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is dict:
        return "typename" not in value and all(_is_stored_json(item) for item in value.values())
    if kind is list:
        return all(_is_stored_json(item) for item in value)
    return False


def _convert(registry, value: Any) -> Any:
    """``registry.convert`` with a fast way through the usual case, plain JSON data."""
    return value if _is_json(value) else registry.convert(_escape(value))


class _Keyed:
    """Instance data holding a ``typename`` key of its own, wrapped for storage.

    NOTE: the registry takes every stored dict with a ``typename`` for an object it
    converted, so such data (from a form, a handler, a message or a script) used to
    make the instance impossible to load again. Not a dict subclass: the registry
    turns those into plain dicts before it looks at their type.
    """

    def __init__(self, items: dict[str, Any]):
        self.items = items


def _escape(value: Any) -> Any:
    """``value`` with every dict that has a ``typename`` key made a ``_Keyed``."""
    kind = type(value)
    if kind is dict:
        inner = {key: _escape(item) for key, item in value.items()}
        return _Keyed(inner) if "typename" in inner else inner
    if kind is list:
        return [_escape(item) for item in value]
    return value


def _restore(registry, value: Any) -> Any:
    """``registry.restore`` with the same fast way (freshly parsed JSON is not shared)."""
    return value if _is_stored_json(value) else registry.restore(value)


def _task_to_dict(registry, task: Task) -> dict[str, Any]:
    """SpiffWorkflow's task format: data stored as a delta to the parent's.

    NOTE: unlike SpiffWorkflow 3.2.0's own converter, changed values in the delta go
    through the registry too, so a date set on a task survives a save.
    """
    parent = task.parent
    if parent is None:
        data, delta = _convert(registry, task.data), {}
    else:
        data = {}
        delta = {
            "updates": _convert(registry, DeepMerge.get_updated_keys(parent.data, task.data)),
            "deletions": DeepMerge.get_deleted_keys(parent.data, task.data),
        }
    return {
        "id": str(task.id),
        "parent": str(task._parent) if parent is not None else None,
        "children": [str(child) for child in task._children],
        "last_state_change": task.last_state_change,
        "state": task.state,
        "task_spec": task.task_spec.name,
        "triggered": task.triggered,
        "internal_data": _convert(registry, task.internal_data),
        "data": data,
        "delta": delta,
        "typename": "Task",
    }


def _task_from_dict(registry, dct: dict[str, Any], workflow) -> Task:
    """A task restored from ``_task_to_dict``'s format, with interned ids."""
    spec = workflow.spec.task_specs.get(dct["task_spec"])
    task = Task(workflow, spec, state=dct["state"], id=_uuid(dct["id"]))
    parent = dct["parent"]
    task._parent = None if parent is None else _uuid(parent)
    task._children = [_uuid(child) for child in dct["children"]]
    task.last_state_change = dct["last_state_change"]
    task.triggered = dct["triggered"]
    task.internal_data = _restore(registry, dct["internal_data"])
    if isinstance(spec, CatchingEvent) and task.has_state(TaskState.WAITING):
        task.workflow.top_workflow.event_manager.add_task(task)
    delta = dct.get("delta")
    if delta and parent is not None:
        data = DeepMerge.merge({}, task.parent.data)
        data.update(_restore(registry, delta.get("updates", {})))
        for key in delta.get("deletions", ()):
            data.pop(key, None)
    else:
        data = _restore(registry, dct["data"])
    task.data = data
    return task


class _TaskConverter(TaskConverter):
    """Tasks of subprocesses (reached through the registry) use the same two functions."""

    def to_dict(self, task):
        dct = _task_to_dict(self.registry, task)
        del dct["typename"]  # the registry adds it
        return dct

    def from_dict(self, dct, workflow):
        return _task_from_dict(self.registry, dct, workflow)


def _registry():
    config = serializer_config()
    config[BpmnWorkflow] = _StateConverter
    config[Task] = _TaskConverter
    registry = BpmnWorkflowSerializer.configure(config)
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
    registry.register(
        _Keyed,
        lambda v: {"items": {key: registry.convert(item) for key, item in v.items.items()}},
        lambda v: {key: registry.restore(item) for key, item in v["items"].items()},
        typename="runner.KeyedData",
    )
    return registry


class WorkflowStore:
    """Turns specs and workflows into JSON text and back, with a cache of specs per version."""

    def __init__(self):
        self.registry = _registry()
        self._specs: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._lock = Lock()

    def dump_spec(self, spec, subprocess_specs: dict[str, Any]) -> str:
        """A process spec and the specs it needs, as JSON."""
        return json.dumps(
            {
                "spec": self.registry.convert(spec),
                "subprocess_specs": {k: self.registry.convert(v) for k, v in subprocess_specs.items()},
            }
        )

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
        return self.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs, script_engine=script_engine)

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
            raise Invalid(
                "the target version lacks element(s) the instance has reached: " + ", ".join(dict.fromkeys(missing))
            )
        workflow = self.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs, script_engine=script_engine)
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
