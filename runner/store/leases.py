"""Whether an outbox row's sender is still alive: a lock that dies with its holder.

A sender claims a row (state ``sending``) for ``outbox.LEASE``. Its lease alone cannot
tell a sender that is still talking to Zalo from one killed with ``kill -9``, so a row
orphaned by a killed worker used to wait the whole lease. Now a sender also holds a lock
named after the row from its claim until it has settled the row:

- on PostgreSQL, a session-level advisory lock (the outbox table's oid, the row's id)
  on a connection of its own;
- on SQLite, a POSIX record lock on one byte (at the row's id) of a file beside the
  database (SQLite is one machine's database, so every sender shares that file).

The server or the kernel drops such a lock the moment its holder dies. A ``sending`` row
whose lock can be taken therefore has no live sender, and ``outbox.recover`` settles it at
once: a restarted worker does so on its first tick (any live worker on its next one).

Why a lock rather than the sender's ``host:pid``: a lock cannot be fooled by a reused pid
or by containers that share a host name, it covers senders on other hosts, and it needs no
schema change. Probing takes the lock and gives it straight back, while the prober holds
the row (``FOR UPDATE`` on PostgreSQL, the one write lock on SQLite), so no claim can slip
in between. An in-memory SQLite database has no file: its rows wait for the lease.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from runner.store.database import Database

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite rows wait for their lease
    fcntl = None  # type: ignore[assignment]  # the module, or None where it does not exist


class SenderLocks:
    """The outbox senders' locks on one database (each runner has one)."""

    def __init__(self, db: Database):
        self.db = db
        self._space: int | None = None

    @contextmanager
    def holding(self) -> Iterator[Hold]:
        """A hold for one delivery: ``take`` before the claim commits; released on leaving."""
        if self.db.is_postgres:
            space = self.lock_space()
            with self.db.engine.connect() as conn:
                advisory = _AdvisoryHold(conn.execution_options(isolation_level="AUTOCOMMIT"), space)
                try:
                    yield advisory
                finally:
                    advisory.release()
            return
        lock_file = _lock_file(self.db)
        hold = _RecordHold(lock_file) if lock_file is not None else Hold()
        try:
            yield hold
        finally:
            hold.release()

    def gone(self, s: Session, message_id: int) -> bool:
        """True when no live process holds the lock of a ``sending`` row (the caller holds the row)."""
        if self.db.is_postgres:
            space = self.lock_space()
            if not s.scalar(select(func.pg_try_advisory_lock(space, message_id))):
                return False
            s.scalar(select(func.pg_advisory_unlock(space, message_id)))
            return True
        lock_file = _lock_file(self.db)
        return lock_file is not None and lock_file.probe(message_id)

    def lock_space(self) -> int:
        """The first key of the outbox's advisory locks: its table's oid, as a signed int4."""
        # NOTE: advisory locks are per database, not per schema; the oid tells apart two
        # runners (or two test schemas) that share a database.
        if self._space is None:
            with self.db.engine.connect() as conn:
                oid = int(conn.scalar(text("select 'outbox'::regclass::oid::bigint")))
            self._space = oid - 2**32 if oid >= 2**31 else oid
        return self._space


class WorkerLocks:
    """Whether the worker named in a timer's or job's lease still runs: a lock held during each pass.

    A worker holds the lock named after its id (``Settings.worker_id``) while it holds leases
    (``runner.service.claims.holding``): an advisory lock on PostgreSQL, a record lock on
    SQLite, as the senders' locks above. A lease whose holder's lock can be taken belongs to
    a dead worker and is released at once instead of when it runs out. NOTE: only how soon
    work comes back depends on this; no item fires twice either way (see claims).
    """

    def __init__(self, db: Database):
        self.db = db
        self._space: int | None = None

    @contextmanager
    def holding(self, worker: str) -> Iterator[None]:
        """Hold ``worker``'s lock for the block (not taken if another thread of it holds it)."""
        key = _key(worker)
        if self.db.is_postgres:
            space = self.lock_space()
            with self.db.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                taken = bool(conn.scalar(select(func.pg_try_advisory_lock(space, key))))
                try:
                    yield
                finally:
                    if taken:
                        conn.scalar(select(func.pg_advisory_unlock(space, key)))
            return
        lock_file = _lock_file(self.db, "-worker-locks")
        taken = lock_file is not None and lock_file.take(key)
        try:
            yield
        finally:
            if taken and lock_file is not None:
                lock_file.give_back(key)

    def gone(self, s: Session, worker: str) -> bool:
        """True when no live process holds ``worker``'s lock (False where nothing can tell)."""
        key = _key(worker)
        if self.db.is_postgres:
            space = self.lock_space()
            if not s.scalar(select(func.pg_try_advisory_lock(space, key))):
                return False
            s.scalar(select(func.pg_advisory_unlock(space, key)))
            return True
        lock_file = _lock_file(self.db, "-worker-locks")
        return lock_file is not None and lock_file.probe(key)

    def lock_space(self) -> int:
        """The first key of the workers' advisory locks: the workers table's oid, as a signed int4."""
        if self._space is None:
            with self.db.engine.connect() as conn:
                oid = int(conn.scalar(text("select 'workers'::regclass::oid::bigint")))
            self._space = oid - 2**32 if oid >= 2**31 else oid
        return self._space


def _key(worker: str) -> int:
    """A worker id as a lock key: a non-negative int4 (a byte offset on SQLite)."""
    return zlib.crc32(worker.encode()) & 0x7FFFFFFF


class Hold:
    """No lock at all (an in-memory database): the lease is the only way back."""

    def take(self, message_id: int) -> bool:
        """Lock ``message_id``; False if some other holder has it."""
        return True

    def release(self) -> None:
        """Give back what was taken (nothing here)."""


class _AdvisoryHold(Hold):
    def __init__(self, conn: Connection, space: int):
        self.conn = conn
        self.space = space
        self.held: int | None = None

    def take(self, message_id: int) -> bool:
        taken = bool(self.conn.scalar(select(func.pg_try_advisory_lock(self.space, message_id))))
        self.held = message_id if taken else None
        return taken

    def release(self) -> None:
        if self.held is not None:
            self.conn.scalar(select(func.pg_advisory_unlock(self.space, self.held)))
            self.held = None


class _RecordHold(Hold):
    def __init__(self, lock_file: _LockFile):
        self.lock_file = lock_file
        self.held: int | None = None

    def take(self, message_id: int) -> bool:
        taken = self.lock_file.take(message_id)
        self.held = message_id if taken else None
        return taken

    def release(self) -> None:
        if self.held is not None:
            self.lock_file.give_back(self.held)
            self.held = None


@dataclass
class _LockFile:
    """One process's descriptor on a database's lock file, and the bytes it holds."""

    fd: int
    held: set[int] = field(default_factory=set)
    mutex: threading.Lock = field(default_factory=threading.Lock)

    def take(self, message_id: int) -> bool:
        with self.mutex:
            if message_id in self.held or not self._lock(message_id):
                return False
            self.held.add(message_id)
            return True

    def give_back(self, message_id: int) -> None:
        with self.mutex:
            self.held.discard(message_id)
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, message_id)

    def probe(self, message_id: int) -> bool:
        with self.mutex:
            # NOTE: record locks belong to the process, so our own threads' bytes would
            # look free to us: the set says which of them are ours.
            if message_id in self.held or not self._lock(message_id):
                return False
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, message_id)
            return True

    def _lock(self, message_id: int) -> bool:
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, message_id)
        except OSError:
            return False
        return True


# NOTE: one descriptor per file and process, never closed: closing ANY descriptor of a
# file drops all of the process's record locks on it (POSIX). Keyed by pid as well, since
# a forked child inherits the dict but not the locks.
_LOCK_FILES: dict[tuple[int, str], _LockFile] = {}
_LOCK_FILES_MUTEX = threading.Lock()


def _lock_file(db: Database, suffix: str = "-outbox-locks") -> _LockFile | None:
    database = db.engine.url.database
    if fcntl is None or not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = os.path.abspath(database) + suffix
    with _LOCK_FILES_MUTEX:
        key = (os.getpid(), path)
        if key not in _LOCK_FILES:
            _LOCK_FILES[key] = _LockFile(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        return _LOCK_FILES[key]
