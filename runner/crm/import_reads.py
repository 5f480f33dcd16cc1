"""Reading lead imports: the summary and progress of one, a page of its rows, the latest ones, its report.

See ``runner.crm.lead_imports`` for how the rows get there and how far an import is.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runner.crm import import_files
from runner.crm.import_models import LeadImport, LeadImportRow
from runner.errors import NotFound

if TYPE_CHECKING:
    from runner.service.runtime import Runner


def get_import(s: Session, import_id: str) -> LeadImport:
    """The import ``import_id``; ``NotFound`` when there is none."""
    imp = s.get(LeadImport, import_id)
    if imp is None:
        raise NotFound(f"lead import {import_id!r} does not exist")
    return imp


def summary(runner: Runner, import_id: str) -> dict[str, Any]:
    """The import as the page shows it: file, columns, state, who, and its rows counted by state."""
    with runner.db.read() as s:
        imp = get_import(s, import_id)
        counts = dict(
            s.execute(
                select(LeadImportRow.state, func.count())
                .where(LeadImportRow.import_id == import_id)
                .group_by(LeadImportRow.state)
            ).all()
        )
    states = {state: counts.get(state, 0) for state in ("invalid", "pending", "created", "skipped")}
    valid = imp.total_rows - states["invalid"]
    return {
        "id": imp.id,
        "filename": imp.filename,
        "created_by": imp.created_by,
        "created_at": imp.created_at,
        "columns": imp.columns,
        "unknown_columns": [c["header"] or "?" for c in imp.columns if c["field"] is None],
        "state": imp.state,
        "total": imp.total_rows,
        "valid": valid,
        "done": states["created"] + states["skipped"],
        **states,
    }


def progress(runner: Runner, import_id: str) -> dict[str, Any]:
    """The small JSON the progress bar polls: state, rows to import, rows done, created, skipped."""
    full = summary(runner, import_id)
    return {k: full[k] for k in ("state", "total", "valid", "done", "created", "skipped", "invalid", "pending")}


def rows(
    runner: Runner, import_id: str, *, after: int = 0, limit: int = 50, only: str | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of rows after row ``after`` (keyset on the row number), and the cursor of the next page."""
    with runner.db.read() as s:
        get_import(s, import_id)
        query = select(LeadImportRow).where(LeadImportRow.import_id == import_id, LeadImportRow.number > after)
        if only is not None:
            query = query.where(LeadImportRow.state == only)
        found = list(s.scalars(query.order_by(LeadImportRow.number).limit(limit + 1)))
    page = [_row_view(r) for r in found[:limit]]
    return page, (page[-1]["number"] if len(found) > limit else None)


def _row_view(row: LeadImportRow) -> dict[str, Any]:
    return {
        "number": row.number,
        "values": row.values,
        "errors": row.errors,
        "state": row.state,
        "customer_id": row.customer_id,
        "reason": row.reason,
    }


def recent(runner: Runner, limit: int = 20) -> list[dict[str, Any]]:
    """The latest imports, newest first: id, file, who, when, state, rows."""
    with runner.db.read() as s:
        found = s.scalars(select(LeadImport).order_by(LeadImport.created_at.desc()).limit(limit))
        return [
            {
                "id": i.id,
                "filename": i.filename,
                "created_by": i.created_by,
                "created_at": i.created_at,
                "state": i.state,
                "total": i.total_rows,
            }
            for i in found
        ]


def report_csv(runner: Runner, import_id: str) -> str:
    """Every row with its state, customer, errors or reason and its values, as CSV for a spreadsheet.

    NOTE: every cell goes through ``import_files.export_cell``: a value typed as ``=cmd|...`` in the
    uploaded file must not become a formula in the spreadsheet that opens the report.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    with runner.db.read() as s:
        columns = [c for c in get_import(s, import_id).columns if c["field"]]
        writer.writerow(["row", "state", "customer", "problems", *(c["header"] for c in columns)])
        query = select(LeadImportRow).where(LeadImportRow.import_id == import_id).order_by(LeadImportRow.number)
        for row in s.scalars(query.execution_options(yield_per=500)):
            problems = "; ".join([*(e["message"] for e in row.errors.values()), *([row.reason] if row.reason else [])])
            cells = [row.number, row.state, row.customer_id, problems, *(row.values.get(c["field"]) for c in columns)]
            writer.writerow([import_files.export_cell(c) for c in cells])
    return "\ufeff" + out.getvalue()  # NOTE: the BOM makes Excel read the file as UTF-8
