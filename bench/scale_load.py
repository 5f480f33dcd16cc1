"""What a bulk load does around its INSERTs: triggers off, secondary indexes built once at the end,
sequences moved past the ids written, and the template company kept in a file for the next run.

PostgreSQL turns triggers (and the foreign-key checks, which are triggers) off per session with
``session_replication_role = replica``, a superuser's setting, as bench/crm_data.py does; SQLite
has no such switch, so its triggers are dropped and made again from their own SQL.
"""

from __future__ import annotations

import contextlib
import pickle
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, Integer, MetaData, Table, text

SKIP = {"alembic_version"}  # written by the migrations themselves
FTS5_SHADOWS = ("", "_data", "_idx", "_content", "_docsize", "_config")  # an FTS5 table, then its shadows

PG_INDEXES = """
SELECT i.indexname, i.indexdef FROM pg_indexes i
JOIN pg_class c ON c.relname = i.indexname AND c.relnamespace = to_regnamespace(i.schemaname)
WHERE i.schemaname = current_schema() AND i.tablename IN ({tables})
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
"""
SQLITE_INDEXES = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({tables})"
)
SQLITE_TRIGGERS = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({tables})"


def _listed(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def bulk_session(conn: Connection) -> None:
    """PostgreSQL: no triggers and no foreign-key checks in this transaction, states compressed by lz4.

    NOTE: the rows written are consistent by construction (copies of consistent rows, the
    boards' rows copied with them), so the checks would only cost time. lz4 compresses the
    serialized states several times faster than the default pglz; it is a session setting,
    the schema is untouched, and readers decompress either.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.exec_driver_sql("SET LOCAL default_toast_compression = lz4")
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")  # NOTE: a crash loses a bench, which starts over


@contextlib.contextmanager
def sqlite_without_triggers(conn: Connection, tables: Iterable[str]) -> Iterator[None]:
    """SQLite: the triggers on ``tables`` dropped for the block and made again after it."""
    if conn.dialect.name != "sqlite":
        yield
        return
    triggers = conn.exec_driver_sql(SQLITE_TRIGGERS.format(tables=_listed(tables))).all()
    for name, _ in triggers:
        conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
    try:
        yield
    finally:
        for _, sql in triggers:
            conn.exec_driver_sql(sql)
        # NOTE: an FTS5 index of one of the tables (crm 0020's customer_search) is kept by
        # triggers too: it missed the rows written in the block, so it is made again from them.
        for index in _fts5_indexes(conn, tables):
            conn.exec_driver_sql(f'INSERT INTO "{index}"("{index}") VALUES (\'rebuild\')')


def _fts5_indexes(conn: Connection, tables: Iterable[str]) -> list[str]:
    """The external-content FTS5 tables whose content is one of ``tables``."""
    found = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE '%fts5(%'")
    wanted = set(tables)
    return [name for name, sql in found if (m := re.search(r"content\s*=\s*'([^']+)'", sql)) and m[1] in wanted]


def drop_indexes(engine: Engine, tables: Iterable[str]) -> list[tuple[str, str]]:
    """Drop the secondary indexes of ``tables`` (not those behind a key or constraint); their names and SQL."""
    query = PG_INDEXES if engine.dialect.name == "postgresql" else SQLITE_INDEXES
    with engine.begin() as conn:
        found = [(n, sql) for n, sql in conn.exec_driver_sql(query.format(tables=_listed(tables))).all()]
        for name, _ in found:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return found


def create_index(engine: Engine, sql: str) -> None:
    """One index made again, sorting in memory where it fits."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
            conn.exec_driver_sql("SET LOCAL max_parallel_maintenance_workers = 0")  # NOTE: the build runs two at once
        conn.exec_driver_sql(sql)


def reset_sequences(conn: Connection, tables: Iterable[Table]) -> None:
    """PostgreSQL: each serial id's sequence moved to the largest id, so the next insert gets a new one."""
    if conn.dialect.name != "postgresql":
        return  # NOTE: SQLite takes max(rowid) + 1, or the largest ever written with AUTOINCREMENT
    for table in tables:
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer) and len(table.primary_key.columns) == 1:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence(:t, :c), max({column.name})) FROM {table.name}"
                        f" HAVING max({column.name}) IS NOT NULL"
                    ),
                    {"t": table.name, "c": column.name},
                )


# --- the template company in a file --------------------------------------------------------------


def _revision(conn: Connection) -> list[str]:
    return list(conn.exec_driver_sql("SELECT version_num FROM alembic_version ORDER BY 1").scalars())


def _tables(conn: Connection) -> list[Table]:
    metadata = MetaData()
    metadata.reflect(conn)
    return [t for t in metadata.sorted_tables if t.name not in SKIP | _fts5_tables(conn)]


def _fts5_tables(conn: Connection) -> set[str]:
    """SQLite's FTS5 tables and their shadow tables: derived from other tables' rows, never copied."""
    if conn.dialect.name != "sqlite":
        return set()
    found = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%fts5(%'")
    return {f"{name}{shadow}" for name in found.scalars() for shadow in FTS5_SHADOWS}


def save(engine: Engine, path: Path) -> None:
    """Every row of the database at ``engine`` into ``path``, exactly as stored (COPY text on PostgreSQL)."""
    dump: dict[str, object] = {}
    with engine.connect() as conn:
        revision = _revision(conn)
        for table in _tables(conn):
            names = [c.name for c in table.columns if c.computed is None]
            if engine.dialect.name == "postgresql":
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                with cursor.copy(f"COPY {table.name} ({', '.join(_quoted(names))}) TO STDOUT") as copy:
                    dump[table.name] = (names, b"".join(bytes(block) for block in copy))
            else:
                select = f"SELECT {', '.join(_quoted(names))} FROM {table.name}"
                dump[table.name] = (names, conn.exec_driver_sql(select).all())
    path.write_bytes(pickle.dumps({"dialect": engine.dialect.name, "revision": revision, "rows": dump}))


def restore(engine: Engine, path: Path) -> bool:
    """The rows ``save`` wrote into the empty, migrated database at ``engine``; False when the file does not fit."""
    if not path.is_file():
        return False
    dump = pickle.loads(path.read_bytes())  # NOTE: a file this bench wrote itself, on this machine
    with engine.begin() as conn:
        tables = _tables(conn)
        if dump["dialect"] != engine.dialect.name or dump["revision"] != _revision(conn):
            return False
        bulk_session(conn)
        with sqlite_without_triggers(conn, [t.name for t in tables]):
            for table in reversed(tables):  # NOTE: what the Runner writes when it starts (its clock), replaced
                conn.exec_driver_sql(f"DELETE FROM {table.name}")
            for table in tables:
                names, rows = dump["rows"].get(table.name, ([], b""))
                if not rows:
                    continue
                if engine.dialect.name == "postgresql":
                    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                    with cursor.copy(f"COPY {table.name} ({', '.join(_quoted(names))}) FROM STDIN") as copy:
                        copy.write(rows)
                else:
                    marks = ", ".join("?" for _ in names)
                    insert = f"INSERT INTO {table.name} ({', '.join(_quoted(names))}) VALUES ({marks})"
                    conn.exec_driver_sql(insert, [tuple(r) for r in rows])
        reset_sequences(conn, tables)
    return True


def _quoted(names: Iterable[str]) -> list[str]:
    return [f'"{n}"' for n in names]
