"""The runner's tables. Alembic migrations in ``runner/store/migrations`` (the core branch) create them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}
    if TYPE_CHECKING:
        __table__: ClassVar[Table]  # each model maps one Table (DeclarativeBase types it as any FromClause)


class ProcessVersion(Base):
    """One deployed version of one process key: its XML and its parsed spec, stored once."""

    __tablename__ = "process_versions"
    __table_args__ = (UniqueConstraint("process_key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(500), default="")
    kind: Mapped[str] = mapped_column(String(10), default="bpmn")  # bpmn | dmn
    content_hash: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(500))
    # NOTE: deferred: units of work read a version's row each time, its spec comes from a cache.
    xml: Mapped[str] = mapped_column(Text, deferred=True)
    spec: Mapped[str] = mapped_column(Text, deferred=True)  # SpiffWorkflow-serialized spec + subprocess specs
    called: Mapped[list[Any]] = mapped_column(default=list)  # process keys of call activities
    message_starts: Mapped[list[Any]] = mapped_column(default=list)
    timer_starts: Mapped[list[Any]] = mapped_column(default=list)
    deployed_at: Mapped[datetime]
    deployed_by: Mapped[str] = mapped_column(String(200), default="")


class Instance(Base):
    """One running (or finished) process instance, usually one per customer and process."""

    __tablename__ = "instances"
    # NOTE: the instance list pages newest first by (created_at, id) behind an equality prefix.
    __table_args__ = (
        Index("ix_instances_list", "created_at", "id"),
        Index("ix_instances_list_process", "process_key", "created_at", "id"),
        Index("ix_instances_list_status", "status", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"))
    business_key: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    state: Mapped[str] = mapped_column(Text)  # serialized task tree, see runner.store.database
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)  # top-level data, for queries
    called_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stages: Mapped[list[Any]] = mapped_column(default=list)
    waits: Mapped[dict[str, Any]] = mapped_column(default=dict)  # what the projections hold, see runtime
    parent_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": row_version}


NO_GROUP_OPEN = text("state = 'open' AND CAST(candidate_groups AS TEXT) = '[]'")


class UserTask(Base):
    """A user task waiting for (or done by) a person: the inbox reads this table."""

    __tablename__ = "user_tasks"
    # NOTE: the task lists page by (due_sort, id) behind an equality prefix; see runner.queries.tasklists.
    __table_args__ = (
        Index("ix_user_tasks_open", "state", "due_at"),
        Index("ix_user_tasks_list", "state", "due_sort", "id"),
        Index("ix_user_tasks_list_assignee", "assignee", "state", "due_sort", "id"),
        Index("ix_user_tasks_list_process", "process_key", "state", "due_sort", "id"),
        Index("ix_user_tasks_list_stage", "stage", "state", "due_sort", "id"),
        # NOTE: serves the open-tasks gauge's "(none)" label (runner.queries.metrics.OPEN_ALONE): only
        # the open tasks offered to no group are in it, so counting them never reads the others.
        Index("ix_user_tasks_no_group", "id", postgresql_where=NO_GROUP_OPEN, sqlite_where=NO_GROUP_OPEN),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the engine's task id
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    business_key: Mapped[str | None] = mapped_column(String(200), index=True)
    process_key: Mapped[str] = mapped_column(String(200))
    element_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(500), default="")
    lane: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str | None] = mapped_column(String(200))
    candidate_groups: Mapped[list[Any]] = mapped_column(default=list)
    candidate_users: Mapped[list[Any]] = mapped_column(default=list)
    assignee: Mapped[str | None] = mapped_column(String(200), index=True)
    due_at: Mapped[datetime | None]
    # NOTE: due_at, or NO_DUE for a task without one: a non-null key that an index orders, the same on
    # every backend (SQLite and PostgreSQL disagree on where NULLs sort and cannot index NULLS LAST alike).
    due_sort: Mapped[datetime] = mapped_column(default=lambda ctx: due_sort(ctx.get_current_parameters().get("due_at")))
    follow_up_at: Mapped[datetime | None]
    priority: Mapped[int] = mapped_column(default=50)
    form: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default="open")  # open|completed|cancelled
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(200))


NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)


def due_sort(due_at: datetime | None) -> datetime:
    """The task lists' sort key: the due time, tasks without one last."""
    return NO_DUE if due_at is None else due_at


class UserTaskCandidate(Base):
    """Who an open user task is offered to, one row per candidate group or user: the group lists' index.

    NOTE: rows live while their task is open (the projection writes and drops them with the task) and
    copy its ``due_sort``, so that one index range reads a group's queue in order.
    """

    __tablename__ = "user_task_candidates"
    __table_args__ = (Index("ix_user_task_candidates_queue", "kind", "name", "due_sort", "task_id"),)

    task_id: Mapped[str] = mapped_column(ForeignKey("user_tasks.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)  # group | user
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    due_sort: Mapped[datetime]


class Job(Base):
    """A service task waiting for its handler: claimed by workers, retried with backoff."""

    __tablename__ = "jobs"
    __table_args__ = (
        # NOTE: serves the claim (runner.service.claims.claim_query): ``state = 'pending' AND
        # due_at <= :now ... ORDER BY due_at, id LIMIT :n``. The index is read in order and the
        # scan stops after n rows, however many jobs share one due time; also the earliest due job.
        Index(
            "ix_jobs_claim",
            "due_at",
            "id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        # NOTE: serves claims.release_dead: the holders of leases (only leased rows are in it).
        Index(
            "ix_jobs_leased",
            "locked_by",
            postgresql_where=text("locked_by IS NOT NULL"),
            sqlite_where=text("locked_by IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the engine's task id
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    element_id: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending|done|incident|cancelled
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    timeout: Mapped[float] = mapped_column(default=30.0)
    due_at: Mapped[datetime]
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class Timer(Base):
    """A timer event waiting on an instance, or a timer start event of a process key."""

    __tablename__ = "timers"
    __table_args__ = (
        # NOTE: serves the claim (runner.service.claims.claim_query): ``state = 'waiting' AND
        # due_at <= :now ... ORDER BY due_at, id LIMIT :n`` reads n entries in order, however many
        # timers share one due time (the virtual clock gives them all the same); also next_due.
        Index(
            "ix_timers_claim",
            "due_at",
            "id",
            postgresql_where=text("state = 'waiting'"),
            sqlite_where=text("state = 'waiting'"),
        ),
        # NOTE: serves claims.release_dead: the holders of leases (only leased rows are in it).
        Index(
            "ix_timers_leased",
            "locked_by",
            postgresql_where=text("locked_by IS NOT NULL"),
            sqlite_where=text("locked_by IS NOT NULL"),
        ),
        Index("ix_timers_task", "instance_id", "task_id", "timer_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str | None] = mapped_column(ForeignKey("instances.id"))
    task_id: Mapped[str | None] = mapped_column(String(36))
    process_key: Mapped[str | None] = mapped_column(String(200))  # timer start events
    element_id: Mapped[str] = mapped_column(String(200))
    timer_name: Mapped[str] = mapped_column(String(500))
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(20), default="waiting")  # waiting|fired|cancelled|incident
    fired_at: Mapped[datetime | None]
    value: Mapped[str] = mapped_column(String(200), default="")
    # The worker whose batch holds the timer, until when (wall-clock time): see runner.service.claims.
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None]


class Subscription(Base):
    """A message some instance waits for, by business key: what ``correlate`` looks up."""

    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_lookup", "message_name", "business_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    business_key: Mapped[str | None] = mapped_column(String(200))
    message_name: Mapped[str] = mapped_column(String(500))


class Incident(Base):
    """Something that needs an admin: a handler out of tries, a failing timer or step."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NOTE: None for a process-level failure, such as a timer start event that failed.
    instance_id: Mapped[str | None] = mapped_column(ForeignKey("instances.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # job|timer|message|outbox
    ref: Mapped[str] = mapped_column(String(64))  # job id or timer id
    element_id: Mapped[str] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(Text)
    tries: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(20), default="open", index=True)  # open|resolved
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))


class HistoryEvent(Base):
    """Everything that happened, per instance and per customer."""

    __tablename__ = "history"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    business_key: Mapped[str | None] = mapped_column(String(200), index=True)
    process_key: Mapped[str | None] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(50))
    element_id: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OutboxMessage(Base):
    """A side effect to deliver, written in the same transaction as the step that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The ``sending`` rows that ``outbox.recover`` looks at, and counts per state.
        Index("ix_outbox_due", "state", "due_at"),
        # NOTE: serves the delivery claim (outbox.claim_query): ``state = 'pending' AND due_at <=
        # :now ORDER BY due_at, id LIMIT 1``, read in order however many messages share a due time.
        Index(
            "ix_outbox_claim",
            "due_at",
            "id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        # NOTE: serves a customer's newest messages (queries.tasklists.recent_messages, the CRM
        # timeline): ``business_key = :key ORDER BY id DESC LIMIT n`` reads n entries backward.
        Index("ix_outbox_business_key", "business_key", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    channel: Mapped[str] = mapped_column(String(100))
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    business_key: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sending|sent|failed|unknown|dismissed
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # The sending window class (runner.windows) the message keeps to; None: any time.
    # NOTE: not in the claim's filter: the window moves ``due_at`` instead, so ix_outbox_claim serves on.
    send_window: Mapped[str | None] = mapped_column(String(40))


class Worker(Base):
    """A worker process's heartbeat: who it is, when it last ticked, how far behind due work is."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # Settings.worker_id
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    last_beat_at: Mapped[datetime]  # wall-clock time, as the leases
    # Seconds the oldest due timer or job waits past its due time (runner time), at the last beat.
    lag_seconds: Mapped[float | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    items_done: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(20), default="running")  # running|stopped|lost


class ClockRow(Base):
    """The persisted virtual clock (one row)."""

    __tablename__ = "clock"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    now: Mapped[datetime]


class CalendarRow(Base):
    """The business calendar (one row, ``default``): working hours per weekday and whose public holidays count.

    NOTE: every edit, a day off too, moves ``row_version``; timers read the calendar through a
    cache keyed by it, so an edit is seen by the next unit of work.
    """

    __tablename__ = "business_calendar"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    hours: Mapped[dict[str, Any]]  # {"mon": "08:00-17:30", ...}; a missing or empty weekday is off
    country: Mapped[str | None] = mapped_column(String(8))  # public holidays of this country (holidays package)
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200), default="")

    __mapper_args__ = {"version_id_col": row_version}


class CalendarDayOff(Base):
    """A company day off (a local date) in the business calendar."""

    __tablename__ = "calendar_days_off"

    calendar: Mapped[str] = mapped_column(ForeignKey("business_calendar.name", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    note: Mapped[str] = mapped_column(String(200), default="")


class ClockRun(Base):
    """One request to move the virtual clock to ``target``, worked off in the background.

    NOTE: ``active`` is 1 while the run is queued or running and NULL afterwards; its unique
    constraint lets one run at a time be active, on every backend, without a lock.
    ``lease_owner``/``lease_until`` (wall-clock time) say who works on it; a lease that ran
    out belongs to a dead process, and the next executor resumes the run from ``reached``.
    """

    __tablename__ = "clock_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    start: Mapped[datetime]  # the clock when the run was asked for
    target: Mapped[datetime]
    reached: Mapped[datetime]  # how far the clock has got (== start until the first step)
    fired: Mapped[int] = mapped_column(default=0)  # timers and jobs worked off so far
    state: Mapped[str] = mapped_column(String(20), default="queued")  # queued | running | done | failed
    active: Mapped[int | None] = mapped_column(unique=True)
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    history_from: Mapped[int] = mapped_column(default=0)  # the last history event before the run
    error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class User(Base):
    """A person of the user directory: who signs in, the groups (roles) they work in, whether they may.

    The groups are the BPMN candidate groups (lanes) their tasks are offered to. Sign-in data
    hangs off it (the tables below, kept by ``runner.service.accounts``); an extension keeps its
    own facts about a person in its own table that refers to ``users.username`` (the CRM's ``staff``).
    """

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(100), primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[Any]] = mapped_column(default=list)  # group ids
    active: Mapped[bool] = mapped_column(default=True)
    email: Mapped[str | None] = mapped_column(String(200))


class Account(Base):
    """The sign-in side of a user (one row per username): password hash, UI language, feed address."""

    __tablename__ = "accounts"

    username: Mapped[str] = mapped_column(ForeignKey("users.username"), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(300))
    locale: Mapped[str] = mapped_column(String(10), default="vi")
    password_set_at: Mapped[datetime | None]
    # NOTE: part of the calendar feed address's signature; raising it retires the old address.
    feed_generation: Mapped[int] = mapped_column(default=0, server_default="0")


class ApiToken(Base):
    """A bearer token of one user for the REST API; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to tell tokens apart
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginSession(Base):
    """One signed-in browser of one user; only the hash of its token is kept."""

    __tablename__ = "login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class LoginThrottle(Base):
    """Failed sign-in attempts in a row of one account or one client address (keyed by a SHA-256)."""

    __tablename__ = "login_throttles"

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime]
