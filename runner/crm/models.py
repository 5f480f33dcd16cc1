"""The domain tables: staff, customers and what hangs off them, configured lists, bookings.

They live on the runner's ``Base`` (so that they may refer to its tables) and the CRM's own
Alembic branch (``crm``, in ``runner/crm/migrations``) creates them. A staff member is a
user of the runner's directory (``runner.store.models.User``: name, roles, active, e-mail);
``staff`` keeps only what the CRM knows of them and reads the rest from ``users``.
Queries and writes go through ``runner.crm.customers`` and
``runner.crm.bookings``; handlers and the web app never build these rows by hand.

NOTE: a customer's stage in a pipeline is not a column here: it is derived from the
running instances' ``stages`` (see ``runner.crm.customers.current_stages``), never typed in twice.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from runner.crm.folding import fold, phone_digits
from runner.errors import BadValue, Conflict, Missing
from runner.store.models import Base, User

__all__ = ["BadValue", "Missing", "SlotTaken"]  # re-exported: callers import them from here too
# The groups (roles) EasyEdu's users work in: the lanes of its processes plus ``admin``. The
# extension hands them to the runner, which then accepts no other role.
ROLES = ("marketing", "sales", "team_leader", "accountant", "customer_care", "teacher", "product", "admin")
BOOKING_KINDS = ("training", "care", "demo", "negotiation")
DATA_TYPES = ("text", "integer", "number", "boolean", "date")
STATUSES = ("Mới", "Đang chăm sóc", "Hoạt động", "Có vấn đề", "Dừng chăm sóc", "Khóa")
TAGS = (
    "TIẾP NHẬN",
    "ĐÃ LIÊN HỆ",
    "LIÊN HỆ LẠI",
    "CẤP DEMO",
    "ĐÃ HƯỚNG DẪN",
    "TIỀM NĂNG",
    "ĐÃ CHỐT",
    "SALE TRẢ LẠI",
    "REMARKETING",
)

# The configured lists of seed 003 as a new company starts with them (runner.crm.customers.seed_lists).
DEFAULT_LISTS: dict[str, Any] = {
    "stop_care_reasons": [
        ("Không còn nhu cầu", "Trung tâm không còn nhu cầu sử dụng phần mềm."),
        ("Chuyển sang phần mềm khác", "Khách hàng đã chọn giải pháp của nhà cung cấp khác."),
        ("Trung tâm ngừng hoạt động", "Trung tâm tạm dừng hoặc đóng cửa."),
        ("Không liên hệ được", "Đã liên hệ nhiều lần qua điện thoại, Zalo, e-mail nhưng không được."),
        ("Phản hồi xấu về sản phẩm", "Khách hàng không hài lòng với sản phẩm hoặc dịch vụ sau khi đã xử lý."),
        ("Không tái ký hợp đồng", "Hợp đồng hết hạn và khách hàng không gia hạn."),
        ("Chi phí không phù hợp", "Chi phí vượt ngân sách của khách hàng."),
    ],
    "sources": [
        ("Facebook", "Quảng cáo và fanpage Facebook"),
        ("Google", "Tìm kiếm và quảng cáo Google"),
        ("Website", "Form đăng ký dùng thử trên website"),
        ("Zalo", "Zalo Official Account"),
        ("Khách hàng giới thiệu", "Được khách hàng hiện tại giới thiệu"),
        ("Hội thảo - sự kiện", "Hội thảo, triển lãm giáo dục"),
    ],
    "groups": {
        "Trung tâm ngoại ngữ": ["Tiếng Anh", "Tiếng Trung", "Tiếng Nhật - Hàn"],
        "Trung tâm luyện thi": ["Luyện thi vào 10", "Luyện thi đại học"],
        "Trung tâm kỹ năng - năng khiếu": ["Kỹ năng sống", "Nghệ thuật - thể thao", "Lập trình - STEM"],
        "Trường học": [],
    },
    "occupations": [
        ("Chủ trung tâm", "Người sở hữu, quyết định mua"),
        ("Quản lý đào tạo", "Phụ trách lịch học, giáo viên"),
        ("Kế toán", "Phụ trách học phí, thu chi"),
        ("Giáo viên", "Giáo viên kiêm quản lý"),
        ("Nhân viên tư vấn", "Tư vấn tuyển sinh"),
    ],
    "schools": ["THPT Chu Văn An", "THPT Lê Hồng Phong", "THCS Trưng Vương", "Tiểu học Kim Đồng"],
    "extra_fields": [("branch_count", "Số cơ sở", "integer"), ("website", "Website", "text")],
    "required_fields": [
        "name",
        "phone",
        "business_model",
        "dedicated_department",
        "staff_count",
        "student_count",
        "course_model",
    ],
}


class SlotTaken(Conflict):
    """Raised when a staff member already has an appointment in (part of) the asked time."""


class Staff(Base):
    """What the CRM knows of a user: phone, Zalo id, round-robin bookkeeping.

    ``full_name``, ``roles``, ``active`` and ``email`` are the user's (``users``), read
    through ``user`` on a row and as correlated subqueries in SQL (``where(Staff.active)``).
    A user gets a staff row the first time the CRM needs one (``customers.staff_row``).
    """

    __tablename__ = "staff"

    username: Mapped[str] = mapped_column(ForeignKey("users.username"), primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(50))
    zalo_user_id: Mapped[str | None] = mapped_column(String(100))
    last_assigned_at: Mapped[datetime | None]  # when round-robin last gave them a customer
    user: Mapped[User] = relationship(lazy="joined", innerjoin=True, viewonly=True)

    @hybrid_property
    def full_name(self) -> str:
        """The user's full name."""
        return self.user.full_name

    @full_name.inplace.setter
    def _full_name_setter(self, value: str) -> None:
        self.user.full_name = value

    @full_name.inplace.expression
    @classmethod
    def _full_name(cls) -> Any:
        return _of_user(cls, User.full_name)

    @hybrid_property
    def roles(self) -> list[Any]:
        """The user's roles (role ids of ``ROLES``)."""
        return self.user.roles

    @roles.inplace.setter
    def _roles_setter(self, value: list[Any]) -> None:
        self.user.roles = value

    @roles.inplace.expression
    @classmethod
    def _roles(cls) -> Any:
        return _of_user(cls, User.roles)

    @hybrid_property
    def active(self) -> bool:
        """Whether the user is active."""
        return self.user.active

    @active.inplace.setter
    def _active_setter(self, value: bool) -> None:
        self.user.active = value

    @active.inplace.expression
    @classmethod
    def _active(cls) -> Any:
        return _of_user(cls, User.active)

    @hybrid_property
    def email(self) -> str | None:
        """The user's e-mail address."""
        return self.user.email

    @email.inplace.setter
    def _email_setter(self, value: str | None) -> None:
        self.user.email = value

    @email.inplace.expression
    @classmethod
    def _email(cls) -> Any:
        return _of_user(cls, User.email)


def _of_user(cls: type[Staff], column: Any) -> Any:
    return select(column).where(User.username == cls.username).scalar_subquery()


class Customer(Base):
    """A customer (khách hàng); ``id`` is the business key of its process instances."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(50), index=True)
    email: Mapped[str | None] = mapped_column(String(200), index=True)  # lower case, see _searchable
    zalo_user_id: Mapped[str | None] = mapped_column(String(100))
    zalo_group_id: Mapped[str | None] = mapped_column(String(100))
    owner: Mapped[str | None] = mapped_column(ForeignKey("staff.username"), index=True)
    teacher: Mapped[str | None] = mapped_column(ForeignKey("staff.username"))
    status: Mapped[str | None] = mapped_column(String(100))
    # the five profile facts surveyed by sales (seed 001)
    business_model: Mapped[str | None] = mapped_column(String(300))
    dedicated_department: Mapped[bool | None]
    staff_count: Mapped[int | None]
    student_count: Mapped[int | None]
    course_model: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str | None] = mapped_column(String(200))
    group: Mapped[str | None] = mapped_column(String(200))
    occupation: Mapped[str | None] = mapped_column(String(200))
    school: Mapped[str | None] = mapped_column(String(200))
    contract_start: Mapped[date | None]
    contract_end: Mapped[date | None]
    package: Mapped[str | None] = mapped_column(String(200))
    trial_link: Mapped[str | None] = mapped_column(String(500))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)  # values of configured extra fields
    created_at: Mapped[datetime]
    # NOTE: bumped by every edit a person saves (runner.crm.editing): an edit made on an older
    # version is a conflict, so two people never overwrite each other unseen.
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    # NOTE: what search compares, written with the name and phone (``runner.crm.search.fold`` and
    # ``phone_digits``, by the ORM events of ``runner.crm.search``): lower case without Vietnamese
    # accents, and the phone's digits with +84 written as 0. On PostgreSQL each has a GIN trigram
    # index (pg_trgm), which serves ``LIKE '%text%'``; on SQLite a plain one (see migration 0010) and
    # the FTS5 trigram table ``customer_search``, kept by triggers (crm 0020, ``runner.crm.trigrams``).
    search_name: Mapped[str] = mapped_column(String(300), default="", server_default="")
    search_phone: Mapped[str] = mapped_column(String(50), default="", server_default="")

    __table_args__ = (
        Index(
            "ix_customers_search_name",
            "search_name",
            postgresql_using="gin",
            postgresql_ops={"search_name": "gin_trgm_ops"},
        ),
        Index(
            "ix_customers_search_phone",
            "search_phone",
            postgresql_using="gin",
            postgresql_ops={"search_phone": "gin_trgm_ops"},
        ),
    )

    @validates("name", "phone", "email")
    def _searchable(self, key: str, value: str | None) -> str | None:
        """Keep the search forms in step with the name and the phone, whoever sets them; e-mails in lower case."""
        if key == "name":
            self.search_name = fold(value or "")
        elif key == "phone":
            self.search_phone = phone_digits(value)
        elif value is not None:
            # NOTE: one address whatever its case: the duplicate check and search compare with = on ix_customers_email
            return value.lower()
        return value


class CustomerCode(Base):
    """The last number given to a new customer's code per prefix (KH -> 41 made KH0041), see ``runner.crm.intake``."""

    __tablename__ = "customer_codes"

    prefix: Mapped[str] = mapped_column(String(10), primary_key=True)
    last_number: Mapped[int]


class CustomerTag(Base):
    """A tag (thẻ) on a customer, e.g. ĐÃ LIÊN HỆ."""

    __tablename__ = "customer_tags"

    # NOTE: (tag, customer_id) serves the tag filter in customer-id order, with keyset paging.
    __table_args__ = (Index("ix_customer_tags_tag_customer", "tag", "customer_id"),)

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    added_at: Mapped[datetime]


class CustomerStage(Base):
    """A customer's current stage in one pipeline: one row per (customer, pipeline), what the boards read.

    NOTE: written by the database, not by Python: triggers on ``instances`` (migration 0010)
    recompute the row whenever an instance of one of the pipeline's processes gets a stage or
    changes status, from that customer's instances of the pipeline: running ones first, then
    the one changed last, its last stage. ``entered_at`` is when the stage last changed. So the
    row is in step with ``instances.stages`` in the same transaction, whoever writes it.
    """

    __tablename__ = "customer_stages"
    # NOTE: (pipeline, stage, entered_at, customer_id) serves a board column in
    # longest-in-stage order with keyset paging, and the counts of a board someone sees only
    # part of; (pipeline, stage, overdue_from, customer_id) the customers of a stage with a
    # task past due, as one range ending at now.
    __table_args__ = (
        Index("ix_customer_stages_board", "pipeline", "stage", "entered_at", "customer_id"),
        Index("ix_customer_stages_overdue", "pipeline", "stage", "overdue_from", "customer_id"),
    )

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(100), primary_key=True)
    stage: Mapped[str] = mapped_column(String(200))
    instance_id: Mapped[str] = mapped_column(String(36))
    entered_at: Mapped[datetime]
    # NOTE: kept by triggers on ``user_tasks`` (migration 0019): the earliest due of the
    # customer's open tasks of the pipeline's processes, None when there is none.
    overdue_from: Mapped[datetime | None]


class BoardCount(Base):
    """How many customers of one owner ('' for none) are in one stage of a pipeline: a board's column count.

    NOTE: written by the database, not by Python: triggers on ``customer_stages`` and on
    ``customers.owner`` (migration 0019) add and take away in the same transaction as the
    change, so a board counts its columns from a few rows however many customers there are.
    A row that reached 0 stays.
    """

    __tablename__ = "board_counts"

    pipeline: Mapped[str] = mapped_column(String(100), primary_key=True)
    stage: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    n: Mapped[int]


class Note(Base):
    """A note in the customer's discussion (Thảo luận)."""

    __tablename__ = "customer_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30), default="discussion")
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(100))
    instance_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]


class CustomerChange(Base):
    """One field of a customer changed by a person: who, when, old and new value, and the version it made."""

    __tablename__ = "customer_changes"
    # NOTE: (customer_id, version) serves both reads of this table: a customer's timeline (newest
    # versions first) and an edit's conflict check (the fields changed after the version it saw).
    __table_args__ = (Index("ix_customer_changes_customer_version", "customer_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    version: Mapped[int]  # the customer's version this change made
    field: Mapped[str] = mapped_column(String(100))  # a column, an extra field's name, "owner" or "tags"
    old: Mapped[Any] = mapped_column(JSON, nullable=True)
    new: Mapped[Any] = mapped_column(JSON, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime]


class Order(Base):
    """An order (đơn hàng) for a package; the accountant confirms its payment."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    package: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)  # VND
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | paid
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    confirmed_by: Mapped[str | None] = mapped_column(String(100))


class Contract(Base):
    """A signed contract (hợp đồng): package and period."""

    __tablename__ = "contracts"
    __table_args__ = (CheckConstraint("end_date > start_date", name="ck_contracts_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    package: Mapped[str] = mapped_column(String(200))
    start_date: Mapped[date]
    end_date: Mapped[date]
    months: Mapped[int]
    created_at: Mapped[datetime]


# --- configured lists (seed 003) ---------------------------------------------------------


class StopCareReason(Base):
    """A configured reason to stop care (lý do ngừng chăm sóc)."""

    __tablename__ = "stop_care_reasons"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class CustomerSource(Base):
    """A configured customer source (nguồn khách hàng)."""

    __tablename__ = "customer_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class LeadKey(Base):
    """A website or landing-page form's key for POST /api/leads: its source, a hash of the secret, its use."""

    __tablename__ = "lead_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("customer_sources.id"))
    label: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256: the key itself is never stored
    prefix: Mapped[str] = mapped_column(String(12))
    origins: Mapped[str] = mapped_column(Text, default="")  # web origins allowed to post, one per line
    per_minute: Mapped[int]  # posts a minute at most (429 beyond)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(100))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    window_start: Mapped[datetime | None]  # the current minute of the rate limit
    window_posts: Mapped[int] = mapped_column(default=0)


class LeadPost(Base):
    """One client-keyed post of a lead form: the same client key answers the first post's outcome again."""

    __tablename__ = "lead_posts"
    __table_args__ = (UniqueConstraint("key_id", "client_key", name="uq_lead_posts_client_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the reference the form is given
    key_id: Mapped[int] = mapped_column(ForeignKey("lead_keys.id"))
    client_key: Mapped[str] = mapped_column(String(200))
    body_hash: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(20))  # created | known; None while being made
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    created_at: Mapped[datetime]


class CustomerGroup(Base):
    """A configured customer group (nhóm); groups nest through ``parent_id``."""

    __tablename__ = "customer_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("customer_groups.id"))


class Occupation(Base):
    """A configured occupation (nghề nghiệp)."""

    __tablename__ = "occupations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class School(Base):
    """A configured school (trường học)."""

    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class ExtraField(Base):
    """A configured extra customer field (thông tin bổ sung); values live in ``Customer.extra``."""

    __tablename__ = "extra_fields"
    __table_args__ = (
        CheckConstraint(
            "data_type in ('text', 'integer', 'number', 'boolean', 'date')", name="ck_extra_fields_data_type"
        ),
    )

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    data_type: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column(default=0)


class RequiredField(Base):
    """A customer field (column or extra field) that must be filled (thông tin bắt buộc)."""

    __tablename__ = "required_fields"

    field: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)


# --- calendar ------------------------------------------------------------------------------


class Availability(Base):
    """A weekly window in which a teacher (or any staff member) can take appointments.

    ``weekday`` is 0 = Monday ... 6 = Sunday; times are wall-clock times in the business zone.
    """

    __tablename__ = "availability"
    __table_args__ = (
        CheckConstraint("weekday between 0 and 6", name="ck_availability_weekday"),
        CheckConstraint("end_time > start_time", name="ck_availability_window"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    teacher: Mapped[str] = mapped_column(ForeignKey("staff.username"), index=True)
    weekday: Mapped[int]
    start_time: Mapped[time]
    end_time: Mapped[time]


class Booking(Base):
    """An appointment of a staff member with a customer: a training session, a care call, a demo.

    ``teacher`` is the staff member who holds the appointment (a teacher for training).
    """

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="ck_bookings_period"),
        Index("ix_bookings_teacher_start", "teacher", "start_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    teacher: Mapped[str] = mapped_column(ForeignKey("staff.username"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="training")
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    session_no: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default="booked")  # booked | cancelled
    sequence: Mapped[int] = mapped_column(default=0)  # bumped on every change, for calendar apps
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BookingSlot(Base):
    """One 30-minute cell of a staff member's time taken by a booked appointment.

    NOTE: the UNIQUE constraint on (teacher, slot_start) is what makes double-booking
    impossible on every backend, even for two transactions that both saw the time free:
    the second INSERT fails (PostgreSQL makes it wait for the first to commit). A booking
    writes its cells in its own transaction and deletes them when it is cancelled.
    """

    __tablename__ = "booking_slots"
    __table_args__ = (UniqueConstraint("teacher", "slot_start", name="uq_booking_slots_teacher_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    teacher: Mapped[str] = mapped_column(ForeignKey("staff.username"))
    slot_start: Mapped[datetime]
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)


# NOTE: at the end, so that the lead-import tables register with the rest wherever the models are loaded
from runner.crm import import_models  # noqa: E402, F401
