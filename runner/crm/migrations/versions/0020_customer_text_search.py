"""customer text search on SQLite: an FTS5 trigram index over the folded name and the phone digits

On SQLite ``LIKE '%text%'`` cannot use the plain indexes of revision 0010, so a rare name or a
phone read the whole table. ``customer_search`` is an FTS5 table with the ``trigram`` tokenizer
(SQLite 3.34 or newer) over ``customers.search_name`` and ``search_phone``: it serves
``LIKE '%abc%'`` substring queries of three characters or more (``runner.crm.trigrams``).

- External content (``content='customers'``): the index holds the trigrams only, the values stay
  in ``customers``; an FTS row's rowid is its customer's rowid.
- Triggers keep it in step with every write of ``customers`` (the ORM, raw SQL, imports alike);
  an update touches it only when the name or the phone's search form changes.
- Filled in from the rows already there with FTS5's ``rebuild``; dropped on downgrade (with
  its shadow tables ``customer_search_data``, ``_idx``, ``_docsize``, ``_config``).

NOTE: the rowid of ``customers`` (a table with a text primary key, so an implicit rowid) ties
an index row to its customer. A later revision that rebuilds ``customers`` on SQLite (Alembic's
``batch_alter_table`` copies it into a new table, which drops the triggers and may renumber the
rowids) must create these triggers again and run ``rebuild`` (``_TRIGGERS``, ``_REBUILD`` below).

PostgreSQL keeps its GIN trigram indexes of revision 0010: nothing is done there.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlite3

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

TRIGRAM_SINCE = (3, 34, 0)  # the first SQLite with FTS5's trigram tokenizer
_COLUMNS = "search_name, search_phone"
_TABLE = (
    "CREATE VIRTUAL TABLE customer_search USING fts5("
    f"{_COLUMNS}, content='customers', content_rowid='rowid', tokenize='trigram')"
)
# NOTE: an external-content index forgets a row only when told its old values ('delete'),
# so an update is a 'delete' of the old values and an insert of the new ones.
_FORGET = (
    f"INSERT INTO customer_search(customer_search, rowid, {_COLUMNS})"
    " VALUES ('delete', OLD.rowid, OLD.search_name, OLD.search_phone);"
)
_LEARN = f"INSERT INTO customer_search(rowid, {_COLUMNS}) VALUES (NEW.rowid, NEW.search_name, NEW.search_phone);"
_TRIGGERS = {
    "customer_search_insert": f"AFTER INSERT ON customers BEGIN {_LEARN} END",
    "customer_search_delete": f"AFTER DELETE ON customers BEGIN {_FORGET} END",
    "customer_search_update": (
        f"AFTER UPDATE OF {_COLUMNS} ON customers"
        " WHEN OLD.search_name IS NOT NEW.search_name OR OLD.search_phone IS NOT NEW.search_phone"
        f" BEGIN {_FORGET} {_LEARN} END"
    ),
}
_REBUILD = "INSERT INTO customer_search(customer_search) VALUES ('rebuild')"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if not _sqlite():
        return
    found = tuple(int(part) for part in sqlite3.sqlite_version.split("."))
    if found < TRIGRAM_SINCE:
        raise RuntimeError(
            f"customer search needs SQLite {'.'.join(map(str, TRIGRAM_SINCE))} or newer (FTS5's trigram"
            f" tokenizer); this Python has SQLite {sqlite3.sqlite_version}"
        )
    op.execute(_TABLE)
    op.execute(_REBUILD)
    for name, body in _TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if not _sqlite():
        return
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS customer_search")
