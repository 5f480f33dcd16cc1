"""Database access: engines, sessions (units of work), prepared statements.

The store keeps the JSON text it is given; ``runner.engine.serializer`` turns workflows
and specs into that text and back.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, create_engine, event, make_url, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key

from runner.errors import Conflict

READ_ONLY = "runner_read_only"


@dataclass(frozen=True)
class PoolOptions:
    """How one process connects to PostgreSQL (from the settings: ``unit.pool_options``); SQLite ignores it."""

    size: int = 5
    max_overflow: int = 10
    timeout: float = 30.0
    statement_timeout: float = 0.0  # seconds; 0: no limit
    prepared_statements: bool = True

    def connect_args(self, url: str) -> dict[str, Any]:
        """The driver's arguments for every new connection of the pool."""
        args: dict[str, Any] = {}
        parsed = make_url(url)
        if self.statement_timeout > 0:
            # NOTE: a startup option, so it holds from the first statement of every connection
            # at no round trip; added to the URL's own ``options`` (a search_path, say), which
            # connect_args would otherwise replace.
            ms = max(1, round(self.statement_timeout * 1000))
            options = parsed.query.get("options", "")
            if isinstance(options, tuple):
                options = " ".join(options)
            args["options"] = f"{options} -c statement_timeout={ms}".strip()
        if not self.prepared_statements and parsed.get_driver_name() == "psycopg":
            # NOTE: a statement prepared on one server connection is unknown on the next one
            # PgBouncer (transaction mode) hands out; psycopg prepares after 5 runs by default.
            args["prepare_threshold"] = None
        return args


# Seconds a pooled PostgreSQL connection may sit idle before it is checked out with a ping.
PING_AFTER_IDLE = 10.0
IDLE_SINCE = "runner_idle_since"


def make_engine(
    url: str, *, echo: bool = False, pool: PoolOptions | None = None, ping_after: float = PING_AFTER_IDLE
) -> Engine:
    """A SQLAlchemy engine; SQLite gets WAL, durable commits and one writer at a time.

    A PostgreSQL connection that sat idle in the pool ``ping_after`` seconds or more is
    pinged when checked out (and replaced if the server dropped it), see ``_ping_when_idle``.
    """
    if not url.startswith("sqlite"):
        pool = pool or PoolOptions()
        engine = create_engine(
            url,
            echo=echo,
            pool_size=pool.size,
            max_overflow=pool.max_overflow,
            pool_timeout=pool.timeout,
            connect_args=pool.connect_args(url),
        )
        _ping_when_idle(engine, ping_after)
        return engine
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
        # NOTE: straight on the driver, as Prepared runs the busiest statements.
        sql = "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
        try:
            conn.connection.dbapi_connection.execute(sql)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, (), exc, sqlite3.Error, dialect=conn.dialect) from exc

    return engine


def _ping_when_idle(engine: Engine, ping_after: float) -> None:
    """Ping a pooled connection on checkout only when it was idle ``ping_after`` seconds or more.

    NOTE: ``pool_pre_ping`` costs one round trip per checkout, so one per unit of work and
    per read; a worker checks out several a second. A connection the server dropped (a
    restart, an idle timeout) has almost always been idle a while; one dropped in the
    last seconds fails its statement once and is invalidated by SQLAlchemy as before.
    """

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn, record) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, _proxy) -> None:
        since = record.info.get(IDLE_SINCE)
        if since is None or time.monotonic() - since < ping_after:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool invalidates this connection and checks out a fresh one.
            raise DisconnectionError(f"a pooled connection was dropped: {exc}") from exc


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


class _Given:
    """What a context-sensitive column default sees (as SQLAlchemy's execution context): the row's values."""

    def __init__(self, params: dict[str, Any]):
        self._params = params

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> dict[str, Any]:
        return self._params


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
            given = _Given(params)
            params = {
                **{
                    key: default.arg if default.is_scalar else default.arg(given)
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
    A new instance (never saved: no version yet, not in the session) is INSERTed once,
    with what its first unit of work computed, at version 1.
    """
    session.flush()
    if inst.row_version is None:
        _insert_instance(session, inst, values)
        return
    version = inst.row_version
    values["row_version"] = version + 1
    changed = _versioned_update(inst.__table__).execute(session, {**values, "b_id": inst.id, "b_version": version})
    if changed != 1:
        raise StaleDataError(f"instance {inst.id} is no longer at version {version}")
    for name, value in values.items():
        set_committed_value(inst, name, value)


def _insert_instance(session: Session, inst: Any, values: dict[str, Any]) -> None:
    """INSERT a transient instance with ``values`` and make it persistent in the session."""
    if inst in session:
        raise ValueError(f"instance {inst.id} is in the session before its first save")
    row = {column.key: getattr(inst, column.key) for column in inst.__table__.columns}
    row.update(values, row_version=1)
    insert_statement(inst.__table__).execute(session, row)
    for name, value in row.items():
        set_committed_value(inst, name, value)
    make_transient_to_detached(inst)
    session.add(inst)


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
