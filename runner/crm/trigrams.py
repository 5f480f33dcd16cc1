"""Customer search by part of the name or phone on SQLite: the FTS5 trigram index of migration 0020.

    trigrams.branches("search_name", "phuong nam", common, after=None, limit=50)   # two SELECTs of ids

PostgreSQL answers ``search_name LIKE '%text%'`` from a GIN trigram index (migration 0010); on
SQLite that LIKE walks ``customers`` in id order until a page is full, which for a rare word or
a phone is the whole table. ``customer_search`` (FTS5, ``tokenize='trigram'``) finds the rows
that hold a substring of three characters or more in what it costs to find them, but in rowid
order, so a page in id order must sort everything it found: cheap for a rare word, the whole
table again for a common one. Each search therefore has two parts, each exact on its own:

1. the scan: the next ``SCAN_ROWS`` customers in id order (after ``after``), their matches;
   if these fill the page, they *are* the page (nothing before them was skipped);
2. the index: only when the scan did not fill the page, every customer the trigram index
   finds, in id order (its ``LIMIT`` is 0 otherwise, so SQLite never opens the index).

A common word costs the rows up to its page's last (plus the walk of ``SCAN_ROWS`` keys of the
primary key that finds where the window ends); a rare one ``SCAN_ROWS`` rows plus what the
index finds. Text the index cannot look up (``searchable``) gets the scan alone.

NOTE: the typed text never reaches FTS5's query language (MATCH): the index is asked through
``LIKE`` with a bound pattern, which only knows ``%`` and ``_``. Those two in the typed text
are turned into ``_`` (any one character) for the index, which then finds a few more rows
than the text names, and every row is checked again with the exact ``LIKE ... ESCAPE`` on
``customers``: the answer is the one PostgreSQL gives.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, case, func, literal_column, select, table
from sqlalchemy import column as sql_column

from runner.crm.folding import ESCAPE, contains
from runner.crm.models import Customer

SCAN_ROWS = 2_000  # customers read in id order before the index is asked: about a millisecond
# NOTE: text of one or two characters (or no three in a row besides % and _) has no trigram the
# index could look up: FTS5 would read all of it. Such text is looked for among the next
# SHORT_SCAN_ROWS customers in id order only (a few milliseconds): a page of a common pair of letters
# fills long before; a rare one beyond them is not found (three characters search everyone).
SHORT_SCAN_ROWS = 5_000
TRIGRAM = re.compile(r"[^%_]{3}")

customer_search = table("customer_search", sql_column("rowid"), sql_column("search_name"), sql_column("search_phone"))
# NOTE: Core tables, made once: an ORM alias per search cost more than the search itself.
_CUSTOMERS = Customer.__table__
_ROWID: Any = literal_column("customers.rowid")
_WINDOW = _CUSTOMERS.alias("following")
_LAST = select(func.max(_WINDOW.c.id)).scalar_subquery()


def searchable(needle: str) -> bool:
    """Whether the trigram index can find ``needle``: three characters in a row that are not % or _."""
    return TRIGRAM.search(needle) is not None


def _scan(exact: Any, common: list[Any], after: str | None, limit: int, rows: int) -> Select:
    """The matches among the next ``rows`` customers in id order (ix: the primary key)."""
    # NOTE: the window is a range of the primary key, its end the id ``rows`` customers on (an
    # index walk), so that the scan reads in id order and stops as soon as the page is full.
    following = select(_WINDOW.c.id).order_by(_WINDOW.c.id).offset(rows - 1).limit(1)
    if after is not None:
        following = following.where(_WINDOW.c.id > after)
    end = func.coalesce(following.scalar_subquery(), _LAST)
    return select(_CUSTOMERS.c.id).where(_CUSTOMERS.c.id <= end, exact, *common).order_by(_CUSTOMERS.c.id).limit(limit)


def branches(column: str, needle: str, common: list[Any], *, after: str | None, limit: int) -> list[Select]:
    """SELECTs of customer ids whose ``column`` (search_name or search_phone) contains ``needle``: their
    union's first ``limit`` in id order are the page's; ``common`` (who may see, ``after``, a tag) applies."""
    exact = _CUSTOMERS.c[column].like(contains(needle), escape=ESCAPE)
    if not searchable(needle):
        return [_scan(exact, common, after, limit, SHORT_SCAN_ROWS)]
    scanned = _scan(exact, common, after, limit, SCAN_ROWS).cte(f"{column}_scanned")
    found = select(func.count()).select_from(scanned).scalar_subquery()
    pattern = "%" + re.sub("[%_]", "_", needle) + "%"
    # NOTE: LIMIT 0 when the scan filled the page: SQLite then never opens the FTS5 table.
    indexed = (
        select(customer_search.c.rowid)
        .where(customer_search.c[column].like(pattern))
        .limit(case((found < limit, -1), else_=0))
    )
    by_index = select(_CUSTOMERS.c.id).where(_ROWID.in_(indexed), exact, *common).order_by(_CUSTOMERS.c.id).limit(limit)
    return [select(scanned.c.id), by_index]
