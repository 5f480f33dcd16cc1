"""The SQL behind every CRM list: search, board columns and their counts, as statements an index serves.

    reads.search_query("nguyen", dialect="sqlite", limit=50)  # customers, in id order
    reads.column_query("Trong bán hàng", "Tiếp nhận", limit=50)   # a board column, longest in stage first
    reads.counts_query("Trong bán hàng", stages)              # stage, customers per stage (kept counts)
    reads.overdue_query("Trong bán hàng", stages, now)        # stage, overdue customers (up to OVERDUE_CAP)

Each builder returns a ``Select`` and runs nothing, so that the callers (``runner.crm.views``)
and the test that EXPLAINs them on PostgreSQL (tests/test_crm_reads_pg.py) use the very same
statement. Lists take ``after`` (the last row's key on the previous page: keyset paging) and a
``limit``; no statement reads more than what a page shows plus what its index skips over.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Select,
    String,
    TextClause,
    exists,
    func,
    literal,
    select,
    text,
    tuple_,
    union,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from runner.crm import trigrams
from runner.crm.folding import ESCAPE, contains, fold, phone_digits
from runner.crm.models import BoardCount, Customer, CustomerStage, CustomerTag
from runner.store.models import UserTask

MIN_PHONE_DIGITS = 3  # fewer digits match nearly every phone number: not a phone search


def normalize_tag(tag: str) -> str:
    """Tags are compared in upper case with single spaces: 'Đã liên hệ' is ĐÃ LIÊN HỆ."""
    return " ".join(str(tag).split()).upper()


def _needles(typed: str) -> dict[str, str]:
    """The parts of the name and of the phone that ``typed`` may be: {column: what it must contain}."""
    found = {"search_name": fold(typed)}
    digits = phone_digits(typed)
    if len(digits) >= MIN_PHONE_DIGITS:
        found["search_phone"] = digits
    return found


def _text_matches(typed: str, owners: Iterable[str] = (), tags: Iterable[str] = ()) -> list[ColumnElement[bool]]:
    """What typed text may mean besides part of the name or phone: the customer code, an e-mail, a tag, an
    owner (``owners``: the usernames it names) or a tag written without accents (``tags``: those it names)."""
    found: list[ColumnElement[bool]] = [
        Customer.id.in_(sorted({typed, typed.upper()})),  # the primary key: KH0001 typed as kh0001 too
        # NOTE: ix_customer_tags_tag_customer (tag, customer_id)
        Customer.id.in_(
            select(CustomerTag.customer_id).where(CustomerTag.tag.in_(sorted({normalize_tag(typed), *tags})))
        ),
    ]
    if "@" in typed:
        found.append(Customer.email == typed.lower())  # NOTE: ix_customers_email; stored in lower case
    if owners:
        found.append(Customer.owner.in_(sorted(set(owners))))  # NOTE: ix_customers_owner
    return found


def _part_of(column: str, needle: str, common: list[Any], *, dialect: str, after: str | None, limit: int) -> list[Any]:
    """The SELECTs of ids whose ``column`` contains ``needle``, as each database's index serves them."""
    if dialect == "sqlite":
        return trigrams.branches(column, needle, common, after=after, limit=limit)  # NOTE: FTS5, migration 0020
    # NOTE: GIN trigram indexes ix_customers_search_name and ix_customers_search_phone (migration 0010)
    like = getattr(Customer, column).like(contains(needle), escape=ESCAPE)
    return [select(Customer.id).where(like, *common).order_by(Customer.id).limit(limit)]


def search_query(
    text: str = "",
    *,
    dialect: str,
    tag: str | None = None,
    where: Any = None,
    after: str | None = None,
    limit: int = 50,
    owners: Iterable[str] = (),
    tags: Iterable[str] = (),
) -> Select:
    """Customers (id, name, phone, owner, status) matching ``text`` and having ``tag``, in id order.

    ``text`` is part of the name (accents and case ignored), part of the phone number (+84 or
    0, any spelling), a customer code, an e-mail address, or a tag; ``owners`` and ``tags`` are
    the usernames and tags the caller found it names (``text_owners``, ``text_tags``). ``where``
    is a further condition on ``Customer`` (who may see); ``dialect`` the database's (its
    indexes for parts of a name or phone differ: ``runner.crm.trigrams`` on SQLite).
    """
    common: list[Any] = []
    if where is not None:
        common.append(where)
    if after is not None:
        common.append(Customer.id > after)
    if tag:
        common.append(exists().where(CustomerTag.customer_id == Customer.id, CustomerTag.tag == normalize_tag(tag)))
    columns = (Customer.id, Customer.name, Customer.phone, Customer.owner, Customer.status)
    if not text.strip():
        return select(*columns).where(*common).order_by(Customer.id).limit(limit)
    typed = " ".join(text.split())  # NOTE: repeated spaces are one, as ``fold`` makes them
    # NOTE: one branch per meaning, each served by its own index and cut at ``limit`` in id
    # order; the page is the first ``limit`` ids of their union. An OR of them in one WHERE
    # would make PostgreSQL read the whole table.
    branches = [
        select(Customer.id).where(match, *common).order_by(Customer.id).limit(limit)
        for match in _text_matches(typed, owners, tags)
    ]
    for column, needle in _needles(typed).items():
        branches += _part_of(column, needle, common, dialect=dialect, after=after, limit=limit)
    ids = union(*(select(b.subquery().c.id) for b in branches)).subquery()
    return select(*columns).where(Customer.id.in_(select(ids.c.id))).order_by(Customer.id).limit(limit)


def tags_query(customer_ids: Iterable[str]) -> Select:
    """(customer, tag) of the given customers, oldest tag first (primary key (customer_id, tag))."""
    return (
        select(CustomerTag.customer_id, CustomerTag.tag)
        .where(CustomerTag.customer_id.in_(list(customer_ids)))
        .order_by(CustomerTag.added_at, CustomerTag.tag)
    )


def stages_query(customer_ids: Iterable[str]) -> Select:
    """(customer, pipeline, stage) of the given customers (primary key (customer_id, pipeline))."""
    return select(CustomerStage.customer_id, CustomerStage.pipeline, CustomerStage.stage).where(
        CustomerStage.customer_id.in_(list(customer_ids))
    )


def _board_filters(pipeline: str, owner: str | None, where: Any) -> list[Any]:
    found: list[Any] = [CustomerStage.pipeline == pipeline]
    if owner is not None:
        # NOTE: ix_customers_owner finds the owner's customers, the primary key of customer_stages their stage
        found.append(CustomerStage.customer_id.in_(select(Customer.id).where(Customer.owner == owner)))
    if where is not None:
        found.append(where)
    return found


def column_query(
    pipeline: str,
    stage: str,
    *,
    owner: str | None = None,
    where: Any = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> Select:
    """A board column: its customers (id, entered_at, name, owner, status), longest in the stage first.

    ``where`` is a condition on ``CustomerStage.customer_id`` (who may see); ``after`` the
    (entered_at, id) of the previous page's last card.
    """
    # NOTE: ix_customer_stages_board (pipeline, stage, entered_at, customer_id) gives the order
    # and the keyset; each card's customer row comes by primary key, and the owner is checked
    # on that row: the walk stops after ``limit`` of theirs. (An IN over the owner's customers
    # made SQLite gather all of them, a fifth of the company, for every column.)
    query = (
        select(
            CustomerStage.customer_id,
            CustomerStage.entered_at,
            Customer.name,
            Customer.owner,
            Customer.status,
        )
        .join(Customer, Customer.id == CustomerStage.customer_id)
        .where(CustomerStage.stage == stage, *_board_filters(pipeline, None, where))
    )
    if owner is not None:
        query = query.where(Customer.owner == owner)
    if after is not None:
        query = query.where(tuple_(CustomerStage.entered_at, CustomerStage.customer_id) > tuple_(*after))
    return query.order_by(CustomerStage.entered_at, CustomerStage.customer_id).limit(limit)


def counts_query(
    pipeline: str, stages: Iterable[str], *, owner: str | None = None, where: Any = None
) -> Select | CompoundSelect:
    """(stage, customers) for each of the pipeline's ``stages``: the board's column counts."""
    if where is None:
        # NOTE: board_counts, kept on write (migration 0019): a range of its primary key
        # (pipeline, stage, owner), a row per owner who has customers in the stage, or the one
        # row of ``owner``. So the counts cost the same at 1k and at 1M customers.
        kept = [BoardCount.pipeline == pipeline, BoardCount.stage.in_(list(stages))]
        if owner is not None:
            kept.append(BoardCount.owner == owner)
        return select(BoardCount.stage, func.sum(BoardCount.n)).where(*kept).group_by(BoardCount.stage)
    # NOTE: someone who sees only some customers: one count per stage, each an index-only range
    # scan of ix_customer_stages_board's (pipeline, stage) prefix, filtered by what they may see.
    # It grows with the customers they see (their own, or a team's), not with the company.
    return union_all(
        *(
            select(literal(stage, String()).label("stage"), func.count().label("n")).where(
                CustomerStage.stage == stage, *_board_filters(pipeline, owner, where)
            )
            for stage in stages
        )
    )


# A board's overdue badge counts at most this many customers; the page shows "100+" beyond.
OVERDUE_CAP = 100


def overdue_query(
    pipeline: str,
    stages: Iterable[str],
    now: datetime,
    *,
    owner: str | None = None,
    where: Any = None,
    cap: int = OVERDUE_CAP,
) -> CompoundSelect:
    """(stage, customers with an open task of the pipeline past due, up to ``cap``) per stage: the overdue badges."""
    # NOTE: overdue changes with the clock, so no counter can hold it. customer_stages keeps
    # each customer's earliest open due (``overdue_from``, migration 0019) and
    # ix_customer_stages_overdue (pipeline, stage, overdue_from, customer_id) holds a stage's
    # overdue customers as one index range ending at ``now``. The count stops at ``cap``: a
    # badge needs no exact figure past a hundred (inboxes show "99+"), and the read is then
    # bounded: at most ``cap`` index entries per stage (plus, with an owner or a person, the
    # entries their filter passes over), however long the pipeline's backlog grows.
    overdue = []
    for stage in stages:
        query = select(CustomerStage.customer_id).where(
            CustomerStage.stage == stage, CustomerStage.overdue_from < now, *_board_filters(pipeline, None, where)
        )
        if owner is not None:  # NOTE: the owner on each customer's row (primary key), as in column_query
            query = query.join(Customer, Customer.id == CustomerStage.customer_id).where(Customer.owner == owner)
        counted = select(literal(stage, String()).label("stage"), func.count().label("n"))
        overdue.append(counted.select_from(query.limit(cap).subquery()))
    return union_all(*overdue)


class _Unindexed(ColumnElement[Any]):
    """A column that SQLite's planner may not take an index on (``+column``); the column itself elsewhere."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]  # NOTE: part of the cache key

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type


@compiles(_Unindexed)
def _plain(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(_Unindexed, "sqlite")
def _plus(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)


def overdue_tasks_query(process_keys: Iterable[str], customer_ids: Iterable[str], now: datetime) -> Select:
    """(customer, task id, name, element, due, assignee) of the customers' open tasks of the processes past due."""
    # NOTE: ix_user_tasks_business_key: the shown cards' tasks, a few each. SQLite has no
    # statistics and would take ix_user_tasks_open (state, due_at) for the state and the order,
    # reading every overdue task of the company: the other columns are kept off their indexes
    # there, and the caller orders the few rows.
    return select(
        UserTask.business_key, UserTask.id, UserTask.name, UserTask.element_id, UserTask.due_at, UserTask.assignee
    ).where(
        UserTask.business_key.in_(list(customer_ids)),
        _Unindexed(UserTask.state) == "open",
        _Unindexed(UserTask.process_key).in_(list(process_keys)),
        _Unindexed(UserTask.due_at) < now,
    )


def owners_query() -> TextClause:
    """The usernames that own some customer, in order."""
    # NOTE: a loose index scan of ix_customers_owner (each step the next owner after the last):
    # as many index lookups as there are owners, not as there are customers.
    return text(
        "WITH RECURSIVE found(owner) AS ("
        " SELECT min(owner) FROM customers"
        " UNION ALL SELECT (SELECT min(c.owner) FROM customers c WHERE c.owner > found.owner)"
        " FROM found WHERE found.owner IS NOT NULL)"
        " SELECT owner FROM found WHERE owner IS NOT NULL"
    )


def tags_in_use_query() -> TextClause:
    """Every tag some customer has, in order."""
    # NOTE: a loose index scan of ix_customer_tags_tag_customer, as ``owners_query``: one
    # index lookup per distinct tag, however many customers have them.
    return text(
        "WITH RECURSIVE found(tag) AS ("
        " SELECT min(tag) FROM customer_tags"
        " UNION ALL SELECT (SELECT min(t.tag) FROM customer_tags t WHERE t.tag > found.tag)"
        " FROM found WHERE found.tag IS NOT NULL)"
        " SELECT tag FROM found WHERE tag IS NOT NULL"
    )


def text_tags(text: str, in_use: Iterable[str]) -> list[str]:
    """The tags in use that ``text`` names without accents or case: 'cap demo' names CẤP DEMO."""
    needle = fold(text)
    return [tag for tag in in_use if needle and fold(tag) == needle]


def text_owners(text: str, people: Iterable[tuple[str, str]]) -> list[str]:
    """The usernames among ``people`` (username, full name) that ``text`` names: the username, the
    full name or its last words ('Hùng', 'Văn Hùng' for Nguyễn Văn Hùng), accents and case ignored."""
    needle = fold(text)
    if not needle:
        return []
    return [
        username
        for username, full_name in people
        if needle == username.casefold() or fold(full_name) == needle or fold(full_name).endswith(" " + needle)
    ]
