"""Importing leads from CSV and XLSX files (runner.crm.lead_imports, web.crm.lead_imports).

A file is read (any common CSV or an XLSX made here with openpyxl), its header mapped to fields, and
every row kept with its errors before anything is created; the import then makes one lead per valid
row with its sales instance, and an interrupted or repeated import makes each lead exactly once.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from runner.crm import import_files, intake, lead_imports
from runner.crm.import_files import FileRejected, Limits
from runner.crm.import_models import LeadImportRow
from runner.crm.models import Customer
from runner.registry import Registry
from runner.service import policy
from runner.service.runtime import Runner
from runner.store.models import Instance
from tests.scenario import START, add_customer, company, runner_at

SALES = Path(__file__).resolve().parents[1] / "processes" / "sales.bpmn"
HEADER = ["Tên khách hàng", "Số điện thoại", "Email", "Nguồn", "Mô hình kinh doanh", "Có bộ phận chuyên trách",
          "Số nhân viên", "Số học viên", "Mô hình khóa học"]  # fmt: skip
FACTS = ["Trung tâm ngoại ngữ", "có", "12", "350", "Theo khóa"]
MAI = policy.Person.of("mai", ["marketing"])


def row(name: str, phone: str, email: str = "", source: str = "Facebook") -> list[str]:
    """A data row under ``HEADER``."""
    return [name, phone, email, source, *FACTS]


def csv_bytes(rows: list[list[Any]], *, delimiter: str = ",", encoding: str = "utf-8-sig") -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for values in rows:
        sheet.append(values)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def phones(n: int) -> Iterator[str]:
    """``n`` distinct valid Vietnamese mobile numbers."""
    for i in range(n):
        yield f"09{12000000 + i:08d}"


@pytest.fixture(params=["sqlite", "postgresql"])
def r(request: pytest.FixtureRequest, registry: Registry) -> Iterator[Runner]:
    """The company of tests/scenario.py with the sales diagram, on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    runner = runner_at(url, registry, START)
    company(runner)
    runner.deploy([SALES])
    yield runner
    runner.db.engine.dispose()


def count(runner: Runner, what: Any, *where: Any) -> int:
    with runner.db.read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(what).where(*where)) or 0


def all_rows(runner: Runner, import_id: str) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    after: int | None = 0
    while after is not None:
        page, after = lead_imports.rows(runner, import_id, after=after, limit=7)
        found.update((r["number"], r) for r in page)
    return found


# --- reading files ----------


@pytest.mark.parametrize(
    "encoding,delimiter",
    [("utf-8-sig", ","), ("utf-8", ";"), ("utf-16", "\t"), ("utf-8-sig", ";")],
)
def test_csv_in_the_encodings_and_delimiters_excel_writes_is_read(encoding: str, delimiter: str) -> None:
    data = csv_bytes([HEADER, row("Trung tâm Sao Mai", "0912 345 678")], delimiter=delimiter, encoding=encoding)
    sheet = import_files.read("leads.csv", data, Limits())
    assert sheet.headers == HEADER
    assert sheet.rows == [(2, row("Trung tâm Sao Mai", "0912 345 678"))]


def test_a_windows_1258_csv_is_read_with_its_accents_composed() -> None:
    # NOTE: Windows-1258 has ê and á, but writes the tone of ệ as a combining dot below (U+0323)
    text = "Tên khách hàng;Điê\u0323n thoa\u0323i\nTrung tâm Sao Mai;0912345678\n"
    sheet = import_files.read("leads.csv", text.encode("cp1258"), Limits())
    assert sheet.headers == ["Tên khách hàng", "Điện thoại"]


def test_xlsx_cells_come_back_as_the_text_a_person_typed_and_formulas_are_never_run() -> None:
    data = xlsx_bytes([HEADER, [*row("Sao Mai", "x")[:1], 912345678, None, "Facebook", *FACTS[:2], 12, 350.0, FACTS[4]],
                       ["=1+1", "=cmd|' /C calc'!A0", "hoa@edu.vn"]])  # fmt: skip
    sheet = import_files.read("leads.xlsx", data, Limits())
    assert sheet.rows[0][1][:2] == ["Sao Mai", "912345678"]
    assert sheet.rows[0][1][6:8] == ["12", "350"]
    assert sheet.rows[1][1][:3] == ["", "", "hoa@edu.vn"]  # NOTE: no cached value: a formula is never evaluated here


@pytest.mark.parametrize(
    "filename,data,message",
    [
        ("leads.txt", b"a,b", "only .csv and .xlsx"),
        ("leads.xlsx", b"not a zip", "not an XLSX workbook"),
        ("leads.csv", b"", "is empty"),
        ("leads.csv", b"name,phone\n" + b"a,0912345678\n" * 4, "more than 3 rows"),
        ("leads.csv", b"name,phone\nSao Mai," + b"9" * 50 + b"\n", "row 2, column B: 50 characters"),
        ("leads.csv", b"x" * 2001, "2001 bytes, more than the 2000"),
        ("leads.csv", b"\xff\xfe\x00", "is not a text file"),
    ],
)
def test_a_file_beyond_the_limits_or_unreadable_is_refused_naming_file_row_and_column(
    filename: str, data: bytes, message: str
) -> None:
    with pytest.raises(FileRejected, match=message) as caught:
        import_files.read(filename, data, Limits(max_bytes=2000, max_rows=3, max_cell=40))
    assert filename in str(caught.value)


def test_an_xlsx_that_unpacks_far_beyond_its_size_is_refused() -> None:
    data = xlsx_bytes([["name"], *([["A" * 1000]] * 5000)])  # 5 MB of text, compressed to a few KB
    with pytest.raises(FileRejected, match="unpacks to"):
        import_files.read("bomb.xlsx", data, Limits())


def test_headers_map_by_vietnamese_english_or_unaccented_names_and_extra_field_labels() -> None:
    headers = ["TÊN KHÁCH HÀNG", "phone", "E-mail", "nguon", "Người phụ trách", "Website của trung tâm", "Ghi chú", ""]
    mapped = import_files.map_headers(headers, {"website": "Website của trung tâm"})
    assert [f for _, f in mapped] == ["name", "phone", "email", "source", "owner", "website", None, None]


def test_two_columns_of_one_field_or_no_known_column_are_refused() -> None:
    with pytest.raises(FileRejected, match="columns B and C are both the field 'phone'"):
        import_files.map_headers(["Tên", "SĐT", "Phone"], {})
    with pytest.raises(FileRejected, match="no column is a known field"):
        import_files.map_headers(["Sao Mai", "0912345678"], {})


@pytest.mark.parametrize("typed", ["=cmd|' /C calc'!A0", "+1+1", "-2", "@SUM(A1)", "\t=1"])
def test_what_a_spreadsheet_would_run_is_escaped_on_export(typed: str) -> None:
    assert import_files.export_cell(typed) == "'" + typed
    assert import_files.export_cell("Sao Mai") == "Sao Mai"


# --- the preview ----------


def test_the_preview_keeps_every_row_with_its_errors_and_creates_nothing(r: Runner) -> None:
    add_customer(r, "KH0100", "Trung tâm Cũ", phone="0987 654 321", email="cu@edu.vn")
    rows = [
        HEADER + ["Ghi chú"],
        row("Sao Mai", "0912 345 678", "Lien.He@SaoMai.vn") + ["ok"],  # 2: valid
        row("", "0912 000 001") + [""],  # 3: no name
        row("Đức Trí", "0912") + [""],  # 4: bad phone
        row("Hoa Sen", "+84 912 345 678") + [""],  # 5: the phone of row 2, spelt otherwise
        row("Bình Minh", "0912 000 002", "lien.he@saomai.VN") + [""],  # 6: the e-mail of row 2, in another case
        row("Trường Cũ", "+84987654321") + [""],  # 7: the phone of KH0100
        row("Ánh Dương", "0912 000 003", "CU@edu.vn") + [""],  # 8: the e-mail of KH0100
        row("Lạ", "0912 000 004", "not-an-email") + [""],  # 9: bad e-mail
        [*row("Thiếu", "0912 000 005")[:4], "", "", "", "", ""],  # 10: facts missing
    ]
    import_id = lead_imports.preview(r, "leads.csv", csv_bytes(rows), by="mai")
    got = all_rows(r, import_id)
    assert sorted(got) == list(range(2, 11))
    codes = {n: {f: e["code"] for f, e in got[n]["errors"].items()} for n in got}
    assert codes[2] == {} and got[2]["state"] == "pending"
    assert codes[3] == {"name": "required"}
    assert codes[4] == {"phone": "invalid"}
    assert codes[5] == {"phone": "in_file"} and got[5]["errors"]["phone"]["row"] == 2
    assert codes[6] == {"email": "in_file"} and got[6]["errors"]["email"]["row"] == 2
    assert codes[7] == {"phone": "in_db"} and got[7]["errors"]["phone"]["customer_id"] == "KH0100"
    assert codes[8] == {"email": "in_db"} and got[8]["errors"]["email"]["name"] == "Trung tâm Cũ"
    assert codes[9] == {"email": "invalid"}
    assert set(codes[10]) == {"business_model", "staff_count", "student_count", "course_model", "dedicated_department"}
    summary = lead_imports.summary(r, import_id)
    assert (summary["total"], summary["valid"], summary["invalid"]) == (9, 1, 8)
    assert summary["unknown_columns"] == ["Ghi chú"]
    assert count(r, Customer) == 1 and count(r, Instance) == 0


# --- the import ----------


def test_importing_makes_one_lead_per_valid_row_with_its_sales_instance(r: Runner) -> None:
    rows = [
        HEADER + ["Người phụ trách"],
        row("Sao Mai", "0912 345 678") + ["chi"],
        row("Đức Trí", "0912 345 679") + [""],
        row("", "0912 345 670") + [""],
    ]
    import_id = lead_imports.preview(r, "leads.xlsx", xlsx_bytes(rows), by="mai")
    lead_imports.run_all(r, import_id, person=MAI, size=1)
    got = all_rows(r, import_id)
    assert [got[n]["state"] for n in (2, 3, 4)] == ["created", "created", "invalid"]
    with r.db.read() as s:
        owners = dict(s.execute(sa.select(Customer.name, Customer.owner)).all())
        started = set(s.scalars(sa.select(Instance.business_key)))
    assert owners == {"Sao Mai": "chi", "Đức Trí": "an"}  # chosen in the file, else the round-robin
    assert started == {got[2]["customer_id"], got[3]["customer_id"]}
    assert lead_imports.progress(r, import_id) == {
        "state": "done", "total": 3, "valid": 2, "done": 2, "created": 2, "skipped": 0, "invalid": 1, "pending": 0,
    }  # fmt: skip


def test_a_duplicate_committed_after_the_preview_is_skipped_naming_the_customer(r: Runner) -> None:
    import_id = lead_imports.preview(r, "leads.csv", csv_bytes([HEADER, row("Sao Mai", "0912345678")]), by="mai")
    intake.create_lead(r, dict(zip(["name", "phone", "source", "business_model", "dedicated_department",
                                    "staff_count", "student_count", "course_model"],
                                   ["Sao Mai khác", "+84912345678", "Facebook", *FACTS], strict=True)))  # fmt: skip
    lead_imports.run_all(r, import_id, person=MAI)
    skipped = all_rows(r, import_id)[2]
    assert skipped["state"] == "skipped" and "KH0001" in skipped["reason"]
    assert count(r, Customer) == 1


def test_an_interrupted_import_resumed_makes_each_lead_once(r: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    numbers = list(phones(12))
    import_id = lead_imports.preview(
        r, "leads.csv", csv_bytes([HEADER, *(row(f"TT {p}", p) for p in numbers)]), by="mai"
    )
    real, calls = intake.create_lead_in, []

    def crash_on_the_fifth(*args: Any, **kwargs: Any) -> intake.Lead:
        lead = real(*args, **kwargs)
        calls.append(lead.customer_id)
        if len(calls) == 5:
            raise SystemExit("kill -9 after the lead, before the commit")
        return lead

    monkeypatch.setattr(intake, "create_lead_in", crash_on_the_fifth)
    with pytest.raises(SystemExit):
        lead_imports.run_all(r, import_id, person=MAI, size=3)
    assert count(r, Customer) == 4  # the fifth rolled back with its row's state
    assert lead_imports.progress(r, import_id)["pending"] == 8
    monkeypatch.setattr(intake, "create_lead_in", real)
    lead_imports.run_all(r, import_id, person=MAI, size=3)
    lead_imports.run_all(r, import_id, person=MAI, size=3)  # again: nothing left to do
    got = all_rows(r, import_id)
    assert {g["state"] for g in got.values()} == {"created"}
    assert len({g["customer_id"] for g in got.values()}) == 12
    assert count(r, Customer) == 12 and count(r, Instance) == 12


def test_two_drivers_of_one_import_make_each_lead_once(r: Runner) -> None:
    numbers = list(phones(16))
    import_id = lead_imports.preview(
        r, "leads.csv", csv_bytes([HEADER, *(row(f"TT {p}", p) for p in numbers)]), by="mai"
    )
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            for _ in range(50):  # NOTE: a busy database leaves a row pending; the next batch takes it
                lead_imports.run_batch(r, import_id, person=MAI, size=4)
                if lead_imports.progress(r, import_id)["pending"] == 0:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drive) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(r, Customer) == 16 and count(r, Instance) == 16
    assert count(r, LeadImportRow, LeadImportRow.state == "created") == 16


@pytest.mark.slow
def test_a_file_of_5000_rows_previews_and_imports_completely(runner_5000: Runner) -> None:
    r = runner_5000
    data = xlsx_bytes([HEADER + ["Website", "Số cơ sở"], *(row(f"Trung tâm {i}", p) + [f"https://tt{i}.vn", i % 5 + 1]
                                              for i, p in enumerate(phones(5000)))])  # fmt: skip
    began = time.perf_counter()
    import_id = lead_imports.preview(r, "5000.xlsx", data, by="mai")
    previewed = time.perf_counter()
    assert lead_imports.progress(r, import_id)["valid"] == 5000
    lead_imports.run_all(r, import_id, person=MAI, size=100)
    imported = time.perf_counter()
    print(f"\n5000-row XLSX: preview {previewed - began:.1f} s, import {imported - previewed:.1f} s")
    assert count(r, Customer) == 5000 and count(r, Instance) == 5000
    assert lead_imports.progress(r, import_id)["created"] == 5000
    with r.db.read() as s:
        last = s.scalar(sa.select(Customer.extra).where(Customer.name == "Trung tâm 4999"))
    assert last == {"website": "https://tt4999.vn", "branch_count": 5}  # extra fields by their labels


@pytest.fixture
def runner_5000(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    runner = runner_at(sqlite_url, registry, START)
    company(runner)
    runner.deploy([SALES])
    yield runner
    runner.db.engine.dispose()


def test_the_cli_previews_imports_and_resumes_a_file(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("RUNNER_DATABASE_URL", url)
    monkeypatch.setenv("RUNNER_CLOCK", "virtual")
    assert main(["db", "upgrade"]) == 0
    r = runner_at(url, registry, START)
    company(r)
    r.deploy([SALES])
    leads = tmp_path / "leads.csv"
    leads.write_bytes(csv_bytes([HEADER, row("Sao Mai", "0912345678"), row("Đức Trí", "0912")], delimiter=";"))
    capsys.readouterr()
    assert main(["import-leads", str(leads), "--actor", "mai", "--preview"]) == 0
    previewed = json.loads(capsys.readouterr().out)
    assert (previewed["state"], previewed["pending"], previewed["invalid"]) == ("previewed", 1, 1)
    assert main(["import-leads", "--resume", previewed["id"], "--actor", "mai"]) == 0
    assert json.loads(capsys.readouterr().out)["created"] == 1
    assert count(r, Customer) == 1 and count(r, Instance) == 1
    r.db.engine.dispose()


def test_a_sheet_of_mostly_empty_rows_is_refused_before_it_is_read_to_its_end() -> None:
    book = Workbook()
    book.active.append(["name"])
    book.active.cell(row=100_000, column=1, value="Sao Mai")
    out = io.BytesIO()
    book.save(out)
    with pytest.raises(FileRejected, match="most of them empty"):
        import_files.read("sparse.xlsx", out.getvalue(), Limits(max_rows=100))


def test_each_row_is_checked_against_the_configured_lists_on_its_own_value(r: Runner) -> None:
    rows = [HEADER, row("Sao Mai", "0912345678", source="Facebook"), row("Đức Trí", "0912345679", source="Nguồn lạ"),
            row("Hoa Sen", "0912345670", source="Facebook")]  # fmt: skip
    import_id = lead_imports.preview(r, "leads.csv", csv_bytes(rows), by="mai")
    got = all_rows(r, import_id)
    assert [list(got[n]["errors"]) for n in (2, 3, 4)] == [[], ["source"], []]
