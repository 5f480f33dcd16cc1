"""Importing leads from a file: a preview that keeps every row and its errors, then an import row by row.

    imp = lead_imports.preview(runner, "leads.xlsx", data, by="thuy")   # stored; nothing created yet
    lead_imports.run_batch(runner, imp, person=person, size=50)         # the next 50 valid rows
    lead_imports.progress(runner, imp)                                  # {"total": 5000, "done": 50, ...}

Each row becomes a lead through ``intake.create_lead_in``, and its state (``created``) commits in that
same unit of work: a crash loses nothing and repeats nothing, and running a batch again only takes the
rows still ``pending``. A row refused at import time (a duplicate committed since the preview) is
``skipped`` with the reason. Batches are driven by whoever asks (the import page's polling, or
``runner import-leads``), so the generic worker knows nothing of leads.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import event, select, update
from sqlalchemy.engine import FrozenResult, Result
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.cache_key import HasCacheKey

from runner.crm import import_files, intake, staff
from runner.crm import settings as crm_settings
from runner.crm.folding import phone_digits
from runner.crm.import_models import LeadImport, LeadImportRow
from runner.crm.import_reads import get_import, progress, recent, report_csv, rows, summary
from runner.crm.models import BadValue, ExtraField
from runner.engine import scripting
from runner.errors import Conflict, FormInvalid, RunnerError
from runner.service import policy

__all__ = [
    "import_row",
    "preview",
    "progress",
    "recent",
    "report_csv",
    "rows",
    "run_all",
    "run_batch",
    "start",
    "summary",
]

if TYPE_CHECKING:
    from runner.service.runtime import Runner

BATCH = 10  # rows per batch: one step of the page answers within a few seconds (a lead takes ~0.1-0.3 s)
REQUIRED = re.compile(r": required$")
# What a preview reads again and again and the import never changes (see _remember_settings).
SETTINGS_TABLES = {"extra_fields", "required_fields", "customer_sources", "customer_groups", "occupations", "schools",
                   "staff", "users"}  # fmt: skip


def limits(runner: Runner) -> import_files.Limits:
    """The configured caps of one file (``RUNNER_IMPORT_MAX_BYTES``, ``_MAX_ROWS``, ``_MAX_CELL``)."""
    config = crm_settings.of(runner)
    return import_files.Limits(config.import_max_bytes, config.import_max_rows, config.import_max_cell)


# --- the preview ------------------------------------------------------------------------------------


def preview(runner: Runner, filename: str, data: bytes, *, by: str) -> str:
    """Read, map and check every row of the file, store them (nothing else); returns the import's id.

    ``FileRejected`` (a 4xx) when the file cannot be read as it is; row errors are kept per row.
    """
    sheet = import_files.read(filename, data, limits(runner))
    import_id = str(uuid.uuid4())
    # NOTE: checked on a read session, written after in one short unit: on SQLite a unit holds the
    # one write lock, which the worker must not wait for while thousands of rows are checked
    with runner.db.unit() as s:
        staff.ensure_staff(s)  # NOTE: an owner named in the file is then found on the read session below
    with runner.db.read() as s:
        _remember_settings(s)
        extra = dict(s.execute(select(ExtraField.name, ExtraField.label)).all())
        columns = import_files.map_headers(sheet.headers, extra)
        rows = [_checked_row(s, runner, columns, number, cells) for number, cells in sheet.rows]
    _mark_duplicates_in_file(rows)
    with runner.db.unit() as s:
        s.add(
            LeadImport(
                id=import_id,
                filename=filename[:300],
                created_by=by,
                created_at=runner.now(),
                columns=[{"header": h, "field": f} for h, f in columns],
                total_rows=len(sheet.rows),
            )
        )
        s.flush()
        s.execute(LeadImportRow.__table__.insert(), [{**row, "import_id": import_id} for row in rows])
    return import_id


def _remember_settings(s: Session) -> None:
    """Let ``s`` answer each query of the configuration (fields, lists, staff) once per preview.

    NOTE: the intake checks one lead at a time and asks the configured fields and lists for each
    field; over thousands of rows those identical reads were nine queries in ten.
    """
    answers: dict[tuple[Any, str], FrozenResult[Any]] = {}

    @event.listens_for(s, "do_orm_execute")
    def _answer(state: ORMExecuteState) -> Result[Any] | None:
        tables = {m.class_.__tablename__ for m in state.all_mappers} if state.is_select else set()
        if not tables or not tables <= SETTINGS_TABLES:
            return None
        cache_key = cast(HasCacheKey, state.statement)._generate_cache_key()  # SQLAlchemy's own statement key
        if cache_key is None:
            return None
        values = tuple(b.effective_value for b in cache_key.bindparams)
        key = (cache_key.key, repr((values, state.parameters)))
        if key not in answers:
            answers[key] = state.invoke_statement().freeze()
        return answers[key]()


def _checked_row(
    s: Session, runner: Runner, columns: list[tuple[str, str | None]], number: int, cells: list[str]
) -> dict[str, Any]:
    """A row as stored: its values by field, its errors by field ({code, message, ...}), its state."""
    values = {field: cells[i] for i, (_, field) in enumerate(columns) if field and i < len(cells) and cells[i]}
    errors: dict[str, Any] = {}
    cleaned: dict[str, Any] = {}
    try:
        cleaned, _owner = intake.clean_lead(s, values, runner.settings.tz, required=True)
    except FormInvalid as exc:
        for field, message in exc.errors.items():
            code = "required" if REQUIRED.search(message) else "invalid"
            errors[field] = {"code": code, "message": message}
    duplicate = intake.find_duplicate(s, cleaned.get("phone"), cleaned.get("email"))
    if duplicate is not None:
        errors[duplicate.field] = {
            "code": "in_db",
            "message": str(duplicate),
            "customer_id": duplicate.customer_id,
            "name": duplicate.name,
        }
    return {
        "number": number,
        "values": values,
        "errors": errors,
        "state": "invalid" if errors else "pending",
        "keys": _keys(values),
    }


def _keys(values: dict[str, str]) -> dict[str, str]:
    """What makes two rows one lead: the phone's digits (any spelling) and the e-mail in lower case."""
    keys = {}
    try:
        if values.get("phone"):
            keys["phone"] = phone_digits(intake.normalize_phone(values["phone"]))
        if values.get("email"):
            keys["email"] = intake.normalize_email(values["email"])
    except BadValue:
        pass  # NOTE: the row's own error says so already
    return keys


def _mark_duplicates_in_file(rows: list[dict[str, Any]]) -> None:
    """Every row after the first with the same phone or e-mail is invalid, naming that first row."""
    first: dict[tuple[str, str], int] = {}
    for row in rows:
        for field, key in row.pop("keys").items():
            earlier = first.setdefault((field, key), row["number"])
            if earlier != row["number"] and field not in row["errors"]:
                message = f"field {field!r}: the same {field} as row {earlier}"
                row["errors"][field] = {"code": "in_file", "message": message, "row": earlier}
                row["state"] = "invalid"


# --- the import --------------------------------------------------------------------------------------


def start(runner: Runner, import_id: str, *, by: str) -> None:
    """Mark the import as started by ``by`` (once; starting again changes nothing)."""
    with runner.db.unit() as s:
        imp = get_import(s, import_id)
        if imp.state == "previewed":
            imp.state, imp.started_by, imp.started_at = "running", by, runner.now()


def run_batch(runner: Runner, import_id: str, *, person: policy.Person, size: int = BATCH) -> int:
    """Import the next ``size`` pending rows, each in its own unit of work; returns how many were taken."""
    with runner.db.read() as s:
        imp = get_import(s, import_id)
        if imp.state == "done":
            return 0
        numbers = list(_pending(s, import_id, size))
    if imp.state == "previewed":
        start(runner, import_id, by=person.username)
    for number in numbers:
        import_row(runner, import_id, number, person=person)
    if len(numbers) < size:
        _finish(runner, import_id)
    return len(numbers)


def run_all(runner: Runner, import_id: str, *, person: policy.Person, size: int = BATCH) -> None:
    """Import every pending row, batch by batch (the CLI; the page drives batches one poll at a time)."""
    while run_batch(runner, import_id, person=person, size=size):
        pass


def import_row(runner: Runner, import_id: str, number: int, *, person: policy.Person) -> str:
    """Create the lead of one pending row and mark it created in the same unit; returns the row's state then.

    A row another driver took meanwhile is left alone; a row the intake refuses is ``skipped`` with why.
    """
    try:
        with scripting.acting_as(person.username), runner.unit() as unit:
            row = _claim(unit.session, import_id, number)
            if row is None:
                return "taken"
            lead = intake.create_lead_in(runner, unit, row.values, person=person, actor=person.username)
            row.state, row.customer_id = "created", lead.customer_id
            return "created"
    except Conflict as exc:
        if not isinstance(exc, intake.DuplicateCustomer):
            return "pending"  # NOTE: a busy database: the row stays pending for the next batch
        reason = str(exc)
    except RunnerError as exc:  # FormInvalid, Forbidden, NotFound, StepFailed: the intake refused it
        reason = str(exc)
    with runner.db.unit() as s:
        s.execute(
            update(LeadImportRow)
            .where(LeadImportRow.import_id == import_id, LeadImportRow.number == number)
            .where(LeadImportRow.state == "pending")
            .values(state="skipped", reason=reason)
        )
    return "skipped"


def _claim(s: Session, import_id: str, number: int) -> LeadImportRow | None:
    """The row, locked for this unit of work, if it is still pending (else None: done or being done)."""
    # NOTE: FOR UPDATE on PostgreSQL makes a second driver of the same row wait, then see it done
    query = select(LeadImportRow).where(LeadImportRow.import_id == import_id, LeadImportRow.number == number)
    row = s.scalars(query.with_for_update()).first()
    return row if row is not None and row.state == "pending" else None


def _pending(s: Session, import_id: str, size: int) -> Iterator[int]:
    """The numbers of the next pending rows, in file order (ix_lead_import_rows_state)."""
    query = select(LeadImportRow.number).where(LeadImportRow.import_id == import_id, LeadImportRow.state == "pending")
    return iter(s.scalars(query.order_by(LeadImportRow.number).limit(size)))


def _finish(runner: Runner, import_id: str) -> None:
    """Mark the import done once no row is pending."""
    with runner.db.unit() as s:
        imp = get_import(s, import_id)
        if imp.state != "done" and next(_pending(s, import_id, 1), None) is None:
            imp.state, imp.finished_at = "done", runner.now()
