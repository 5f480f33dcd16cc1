"""The lead-import pages (web.crm.lead_imports): who may use them, the uploads' 4xx, preview, progress, report."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_runner, with_crm

from runner.crm import lead_imports
from runner.crm.settings import CrmSettings
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import company
from tests.test_lead_import import HEADER, csv_bytes, row
from tests.webapp import WebClient, add_user

SALES = Path(__file__).resolve().parents[1] / "processes" / "sales.bpmn"
MAX_BYTES = 20_000


@pytest.fixture
def runner(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The web app's runner, its files of leads capped at ``MAX_BYTES``."""
    r = make_runner(sqlite_url, registry, extensions=with_crm(CrmSettings(import_max_bytes=MAX_BYTES)))
    yield r
    r.db.engine.dispose()


@pytest.fixture
def web(runner: Runner, client: WebClient) -> WebClient:
    """A marketing user signed in, over the company of tests/scenario.py with the sales diagram."""
    company(runner)
    runner.deploy([SALES])
    add_user(runner, "thuy", ["marketing"])
    add_user(runner, "khoa", ["teacher"])
    client.login("thuy")
    return client


def upload(client: WebClient, name: str, data: bytes):
    return client.post(
        "/customers/imports/", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )


def test_only_marketing_sales_and_admins_may_import(web: WebClient, runner: Runner) -> None:
    assert web.get("/customers/imports/").status_code == 200
    web.logout()
    web.login("khoa")
    assert web.get("/customers/imports/").status_code == 403
    assert upload(web, "a.csv", csv_bytes([HEADER])).status_code == 403
    import_id = lead_imports.preview(runner, "a.csv", csv_bytes([HEADER, row("Sao Mai", "0912345678")]), by="thuy")
    assert web.get(f"/customers/imports/{import_id}").status_code == 403
    assert web.post(f"/customers/imports/{import_id}/step").status_code == 403
    assert web.get(f"/customers/imports/{import_id}/progress").status_code == 403


def test_an_upload_without_csrf_is_refused(web: WebClient) -> None:
    response = web.post(
        "/customers/imports/", csrf=False, data={"file": (io.BytesIO(b"x"), "a.csv")},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert response.status_code == 400


@pytest.mark.parametrize(
    "name,data,status,text",
    [
        ("leads.txt", b"name\nSao Mai\n", 422, "only .csv and .xlsx"),
        ("leads.csv", b"name,name\nA,B\n", 422, "columns A and B are both the field"),
        ("leads.csv", b"name\n" + b"A" * 1500 + b"\n", 422, "row 2, column A"),
    ],
)
def test_a_file_that_cannot_be_imported_comes_back_with_a_4xx_naming_it(
    web: WebClient, name: str, data: bytes, status: int, text: str
) -> None:
    response = upload(web, name, data)
    assert response.status_code == status
    assert text in response.get_data(as_text=True)


def test_no_file_is_a_400(web: WebClient) -> None:
    response = web.post("/customers/imports/", data={}, content_type="multipart/form-data")
    assert response.status_code == 400


@pytest.mark.parametrize("size", [MAX_BYTES + 10, MAX_BYTES * 10])  # read and counted; refused before it is read
def test_a_file_over_the_size_cap_is_a_413(web: WebClient, size: int) -> None:
    response = upload(web, "big.csv", b"name\n" + b"A" * size)
    assert response.status_code == 413


def test_preview_then_import_with_the_progress_and_the_report(web: WebClient, runner: Runner) -> None:
    data = csv_bytes([HEADER + ["Ghi chú"], row("=cmd|' /C calc'!A0", "0912345678") + ["x"],
                       row("Đức Trí", "0912") + [""], row("Hoa Sen", "+84 912 345 678") + [""]])  # fmt: skip
    response = upload(web, "leads.csv", data)
    assert response.status_code == 302
    page_url = response.headers["Location"]
    import_id = page_url.rstrip("/").rsplit("/", 1)[-1]
    page = web.get(page_url).get_data(as_text=True)
    assert 'data-row="3" data-state="invalid"' in page and 'data-code="in_file"' in page
    assert "Ghi chú" in page  # the unknown column is named
    progress = web.post(f"/customers/imports/{import_id}/step", headers={"Accept": "application/json"}).get_json()
    assert (progress["state"], progress["created"], progress["done"], progress["valid"]) == ("done", 1, 1, 1)
    assert web.get(f"/customers/imports/{import_id}/progress").get_json()["created"] == 1
    report = web.get(f"/customers/imports/{import_id}/report.csv")
    lines = list(csv.reader(io.StringIO(report.get_data(as_text=True).lstrip("\ufeff"))))
    assert lines[1][:3] == ["2", "created", "KH0001"]
    assert lines[1][4] == "'=cmd|' /C calc'!A0"  # escaped: a spreadsheet shows it as text
    assert web.get(f"/customers/imports/{import_id}?only=created").get_data(as_text=True).count("data-row=") == 1


def test_a_missing_import_is_a_404(web: WebClient) -> None:
    assert web.get("/customers/imports/nope").status_code == 404
    assert web.post("/customers/imports/nope/step").status_code == 404


def test_the_pages_are_vietnamese_by_default_and_english_on_request(web: WebClient) -> None:
    assert "Nhập khách hàng từ tệp CSV hoặc XLSX" in web.get("/customers/imports/").get_data(as_text=True)
    web.post("/lang/en")
    response = upload(web, "leads.txt", b"name\n")
    page = response.get_data(as_text=True)
    assert "Import customers from a CSV or XLSX file" in page
    assert "The file cannot be imported: file &#39;leads.txt&#39;" in page


def test_hostile_cells_and_file_names_are_shown_escaped_and_never_make_a_header(web: WebClient) -> None:
    payloads = ["<script>alert('x')</script>", "{{7*7}}", '"><img src=x onerror=alert(1)>']
    data = csv_bytes([HEADER, *(row(p, f"0912 000 00{i}", source=p) for i, p in enumerate(payloads))])
    response = upload(web, "<img src=x onerror=alert(1)>.csv", data)
    assert response.status_code == 302, response.get_data(as_text=True)[-1500:]
    import_id = response.headers["Location"].rsplit("/", 1)[-1]
    page = web.get(response.headers["Location"]).get_data(as_text=True)
    for payload in payloads:
        assert payload not in page or payload == "{{7*7}}"
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page and "{{7*7}}" in page
    # Rendered as a template the cell would read 49; the page's random CSP nonce may hold "49" anywhere.
    assert re.search(r">\s*49\s*<", page) is None
    report = web.get(f"/customers/imports/{import_id}/report.csv")
    assert report.status_code == 200
    assert report.headers["Content-Disposition"] == 'attachment; filename="_img_src_x_onerror_alert_1__-report.csv"'
    assert "<img src=x onerror=alert(1)>.csv" not in page and "&lt;img src=x onerror=alert(1)&gt;.csv" in page
