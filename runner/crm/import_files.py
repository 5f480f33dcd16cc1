"""Reading a file of leads: CSV (UTF-8 with or without BOM, Excel's UTF-16, Windows-1258; ``,`` ``;`` tab) or XLSX.

    sheet = import_files.read("leads.xlsx", data, Limits(max_rows=10_000))
    sheet.headers, sheet.rows          # ['Tên khách hàng', 'SĐT'], [(2, ['Sao Mai', '0912 345 678']), ...]
    import_files.map_headers(sheet.headers, {"website": "Website"})   # [('Tên khách hàng', 'name'), ...]

Every cell comes back as text, exactly as written: a formula such as ``=cmd|' /C calc'!A0`` is only
text here (an XLSX is read with its cached values, never evaluated), and ``export_cell`` escapes it
for a spreadsheet that would. ``FileRejected`` (an ``Invalid``, a 4xx) names the file, row and column.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time

from runner.crm.folding import fold
from runner.errors import Invalid

# The headers each field is known by, folded (runner.crm.folding.fold: lower case, no accents).
ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("ten khach hang", "ten", "ho ten", "ho va ten", "khach hang", "ten trung tam", "name", "customer name"),
    "phone": ("so dien thoai", "dien thoai", "sdt", "so dt", "di dong", "phone", "phone number", "mobile"),
    "email": ("email", "e-mail", "thu dien tu", "mail"),
    "source": ("nguon", "nguon khach hang", "source", "lead source"),
    "owner": ("nguoi phu trach", "phu trach", "nhan vien phu trach", "owner", "sales rep"),
    "zalo_user_id": ("zalo", "zalo id", "zalo user id"),
    "group": ("nhom khach hang", "nhom", "group", "customer group"),
    "occupation": ("nghe nghiep", "occupation"),
    "school": ("truong hoc", "truong", "school"),
    "business_model": ("mo hinh kinh doanh", "business model"),
    "dedicated_department": ("co bo phan chuyen trach", "bo phan chuyen trach", "dedicated department"),
    "staff_count": ("so nhan vien", "so luong nhan vien", "staff count", "staff"),
    "student_count": ("so hoc vien", "so luong hoc vien", "student count", "students"),
    "course_model": ("mo hinh khoa hoc", "course model"),
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula (OWASP CSV injection)
DELIMITERS = (",", ";", "\t")
ZIP_RATIO = 40  # an XLSX unpacks to at most this many times its size (a zip bomb is refused before it is read)


class FileRejected(Invalid):
    """A file that cannot be imported as it is; the message names the file, and the row and column at fault."""


@dataclass(frozen=True)
class Limits:
    """How much one file may hold: bytes, data rows, characters per cell."""

    max_bytes: int = 5_000_000
    max_rows: int = 10_000
    max_cell: int = 1_000


@dataclass(frozen=True)
class Sheet:
    """A file's header row and its data rows (numbered as the file numbers them, the header being row 1)."""

    headers: list[str]
    rows: list[tuple[int, list[str]]]


def read(filename: str, data: bytes, limits: Limits) -> Sheet:
    """The header and rows of a ``.csv`` or ``.xlsx`` file (by its name); ``FileRejected`` says why not."""
    if len(data) > limits.max_bytes:
        raise FileRejected(f"file {filename!r}: {len(data)} bytes, more than the {limits.max_bytes} allowed")
    kind = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if kind == "csv":
        lines: Iterable[list[str]] = _csv_lines(filename, data)
    elif kind == "xlsx":
        lines = _xlsx_lines(filename, data)
    else:
        raise FileRejected(f"file {filename!r}: only .csv and .xlsx files can be imported")
    return _sheet(filename, lines, limits)


def _sheet(filename: str, lines: Iterable[list[str]], limits: Limits) -> Sheet:
    """The header (the first row with a value) and the non-empty rows after it, within ``limits``."""
    headers: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for number, cells in enumerate(lines, start=1):
        if number > 2 * limits.max_rows + 1000:
            # NOTE: empty rows are skipped, not counted; a sheet whose one cell sits at row 1,000,000 is refused
            raise FileRejected(f"file {filename!r}: more than {number - 1} rows, most of them empty")
        for column, cell in enumerate(cells):
            if len(cell) > limits.max_cell:
                where = f"row {number}, column {column_name(column)}"
                raise FileRejected(f"file {filename!r}, {where}: {len(cell)} characters, at most {limits.max_cell}")
        if not any(cell.strip() for cell in cells):
            continue
        if headers is None:
            headers = [cell.strip() for cell in cells]
            continue
        if len(rows) == limits.max_rows:
            raise FileRejected(f"file {filename!r}: more than {limits.max_rows} rows; split it into smaller files")
        rows.append((number, [cell.strip() for cell in cells]))
    if headers is None:
        raise FileRejected(f"file {filename!r} is empty: its first row must name the columns")
    return Sheet(headers, rows)


def column_name(index: int) -> str:
    """A spreadsheet's name of the column at ``index`` (0 -> A, 26 -> AA)."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


# --- CSV -------------------------------------------------------------------------------------------


def _decode(filename: str, data: bytes) -> str:
    """The text of a CSV file: UTF-8 (BOM or not), UTF-16 with a BOM (Excel's 'Unicode text'), else Windows-1258."""
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    # NOTE: Excel on a Vietnamese Windows saves "CSV" in its ANSI code page, 1258
    for encoding in ("utf-16",) if utf16 else ("utf-8-sig", "cp1258"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise FileRejected(f"file {filename!r} is not a text file (save it as 'CSV UTF-8')")
    if "\x00" in text:
        raise FileRejected(f"file {filename!r} is not a text file")
    return unicodedata.normalize("NFC", text)  # NOTE: 1258 writes accents as combining marks


def _csv_lines(filename: str, data: bytes) -> Iterator[list[str]]:
    """The CSV file's rows, the delimiter being whichever of , ; tab its first line uses most."""
    text = _decode(filename, data)
    first = text.split("\n", 1)[0]
    delimiter = max(DELIMITERS, key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error as exc:
        raise FileRejected(f"file {filename!r}, row {reader.line_num}: {exc}") from exc


# --- XLSX -------------------------------------------------------------------------------------------


def _xlsx_lines(filename: str, data: bytes) -> Iterator[list[str]]:
    """The first worksheet's rows as text, read in openpyxl's read-only mode with cached values (no formulas run)."""
    from openpyxl import load_workbook  # NOTE: here: only an XLSX upload pays for importing it

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise FileRejected(f"file {filename!r} is not an XLSX workbook") from exc
    if unpacked > ZIP_RATIO * max(len(data), 100_000):
        raise FileRejected(f"file {filename!r} unpacks to {unpacked} bytes, too much for its size")
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
        raise FileRejected(f"file {filename!r} is not a readable XLSX workbook: {exc}") from exc
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise FileRejected(f"file {filename!r} has no worksheet")
        for values in sheet.iter_rows(values_only=True):
            yield [cell_text(v) for v in values]
    finally:
        book.close()


def cell_text(value: object) -> str:
    """A spreadsheet cell as the text a person typed: 912345678.0 is '912345678', a date is 2026-12-07."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# --- columns ---------------------------------------------------------------------------------------


def map_headers(headers: list[str], extra_labels: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """(header, field) per column: a known field by its Vietnamese or English name, else None (reported).

    ``extra_labels``: the configured extra fields, name -> label; each is known by either.
    ``FileRejected`` when two columns are one field, or when no column is a known field.
    """
    known = {alias: field for field, aliases in ALIASES.items() for alias in aliases}
    for key in ALIASES:
        known.setdefault(fold(key.replace("_", " ")), key)
    for name, label in extra_labels.items():
        known.setdefault(fold(label), name)
        known.setdefault(fold(name.replace("_", " ")), name)
    mapped: list[tuple[str, str | None]] = []
    seen: dict[str, int] = {}
    for column, header in enumerate(headers):
        field = known.get(fold(header.replace("_", " ").rstrip("*:").strip())) if header else None
        if field is not None and field in seen:
            first = column_name(seen[field])
            raise FileRejected(f"columns {first} and {column_name(column)} are both the field {field!r}")
        if field is not None:
            seen[field] = column
        mapped.append((header, field))
    if not seen:
        raise FileRejected(f"no column is a known field; the first row must name them (e.g. {', '.join(ALIASES)})")
    return mapped


def export_cell(value: object) -> str:
    """A value for a CSV a spreadsheet will open: text a spreadsheet would run as a formula gets a leading '."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
