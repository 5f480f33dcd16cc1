"""The tables of lead imports: an uploaded file as previewed, and each of its rows with its errors and state.

A row's state says how far the import got with it, and is written in the unit of work that creates
its lead (``runner.crm.lead_imports``), so that a crash never loses nor repeats a row:

    invalid  -> errors in the preview, never imported
    pending  -> valid in the preview, waiting for the import
    created  -> its customer and sales instance exist (``customer_id``)
    skipped  -> refused at import time (``reason``: a duplicate committed since the preview...)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from runner.store.models import Base

ROW_STATES = ("invalid", "pending", "created", "skipped")
IMPORT_STATES = ("previewed", "running", "done")


class LeadImport(Base):
    """An uploaded file of leads: who sent it, its columns as mapped to fields, and how far its import is."""

    __tablename__ = "lead_imports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    filename: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    # [{"header": "Số điện thoại", "field": "phone"}, {"header": "Ghi chú", "field": null}...] in file order
    columns: Mapped[list[Any]] = mapped_column(default=list)
    total_rows: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(20), default="previewed")
    started_by: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class LeadImportRow(Base):
    """One data row of an uploaded file: its values by field, its errors by field, and its import state."""

    __tablename__ = "lead_import_rows"
    __table_args__ = (Index("ix_lead_import_rows_state", "import_id", "state", "number"),)

    import_id: Mapped[str] = mapped_column(ForeignKey("lead_imports.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True)  # the row's number in the file (the header is 1)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    errors: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20))
    customer_id: Mapped[str | None] = mapped_column(String(50))
    reason: Mapped[str | None] = mapped_column(Text)
