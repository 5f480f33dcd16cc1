"""The contract file of the shipped sales diagram: attached on Task_contract, kept under the instance folder
(type by magic number, size cap, the uploader's name cleaned), shown and served on the customer page."""

from __future__ import annotations

import io
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from runner.model import files
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import START, add_customer, advance, company, complete, instance_of, runner_at, task
from tests.test_process_sales import KH, PROCESSES, at, demo_given, lead, reached
from tests.webapp import WebClient, add_user

PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + bytes(56)  # a Windows program, whatever its name says
CONTRACT = {"package": "Gói Chuyên nghiệp", "amount": "12.000.000", "contract_months": "12", "promotion_terms": ""}
LABEL = "File hợp đồng (PDF hoặc ảnh scan)"


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def runner(sqlite_url: str, registry: Registry, instance_path: Path) -> Iterator[Runner]:
    """The company with the shipped diagrams and its own instance folder; the app's runner."""
    r = runner_at(sqlite_url, registry, START, instance_path=str(instance_path))
    company(r)
    add_customer(r, KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn")
    r.deploy([PROCESSES])
    yield r
    r.db.engine.dispose()


def contract_task(runner: Runner, client: WebClient) -> str:
    """A promising demo won at the first push: an's contract task, with an signed in."""
    lead(runner)
    advance(runner, to=at(7, 9, 30))
    reached(runner)
    demo_given(runner, promising=True)
    advance(runner, minutes=15)
    complete(runner, KH, "Task_w_hot", {"negotiation_result": "won", "negotiation_note": "Chốt."}, by="an")
    add_user(runner, "an", ["sales"])
    client.login("an")
    return task(runner, KH, "Task_contract")["id"]


def post_contract(client: WebClient, task_id: str, content: bytes, name: str):
    """Post the contract form with one file, encoded in memory (the test client would spool a large one to a file)."""
    data = {**CONTRACT, "csrf_token": client.csrf_token(), "contract_file": FileStorage(io.BytesIO(content), name)}
    boundary, body = encode_multipart(data)
    return client.open(
        f"/inbox/tasks/{task_id}/complete",
        method="POST",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def stored(instance_path: Path) -> list[Path]:
    return sorted(p for p in (instance_path / "uploads").rglob("*") if p.is_file())


def test_the_contract_file_is_stored_in_the_instance_folder_and_shown_on_the_customer_page(
    client: WebClient, runner: Runner, instance_path: Path
) -> None:
    task_id = contract_task(runner, client)
    page = client.get(f"/inbox/tasks/{task_id}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page
    assert re.search(r'<input id="f-contract_file" name="contract_file" type="file" accept="\.pdf,\.png,\.jpg,', page)

    # A name with a NUL is refused at the edge, naming the field; folders in a name are dropped, and
    # nothing on disk is named after it.
    refused = post_contract(client, task_id, PDF, "HĐ\x00.pdf")
    assert refused.status_code == 400 and "contract_file (file name)" in refused.get_data(as_text=True)
    response = post_contract(client, task_id, PDF, "../../etc/HĐ Sao Mai\u202e.pdf")
    assert response.status_code == 302
    sales = instance_of(runner, KH, "sales")
    ref = sales["data"]["contract_file"]
    assert {k: ref[k] for k in ("name", "type", "size", "field")} == {
        "name": "HĐ Sao Mai.pdf",
        "type": "application/pdf",
        "size": len(PDF),
        "field": "contract_file",
    }
    [meta, content] = stored(instance_path)  # in name order: .json, then .pdf
    assert content == instance_path / "uploads" / sales["id"] / f"{ref['file']}.pdf"
    assert (content.read_bytes(), meta.name) == (PDF, f"{ref['file']}.json")
    assert stat.S_IMODE(content.stat().st_mode) == 0o600

    profile = client.get(f"/customers/{KH}").get_data(as_text=True)
    link = f"/instances/{sales['id']}/files/{ref['file']}"
    assert f'<a href="{link}">HĐ Sao Mai.pdf</a>' in profile
    with client.get(link) as served:  # NOTE: closes the stored file send_file opened
        assert (served.status_code, served.mimetype, served.data) == (200, "application/pdf", PDF)
        assert served.headers["Content-Disposition"].startswith("attachment")
        assert served.headers["X-Content-Type-Options"] == "nosniff"
    for wrong in (f"/instances/{sales['id']}/files/{'0' * 32}", f"/instances/..%2F..%2Fetc/files/{ref['file']}"):
        assert client.get(wrong).status_code == 404


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (EXE, "hop-dong.pdf", f"{LABEL} phải là tệp PDF, PNG, JPEG (kiểm tra theo nội dung tệp)."),
        (b"%PDF-1.4\n" + bytes(files.MAX_BYTES), "hop-dong.pdf", f"{LABEL} lớn quá 10.0 MB."),
        (b"", "hop-dong.pdf", f"{LABEL} là tệp rỗng."),
    ],
    ids=["wrong-type", "too-big", "empty"],
)
def test_a_wrong_or_too_big_contract_file_is_refused_naming_the_field(
    client: WebClient, runner: Runner, instance_path: Path, content: bytes, name: str, message: str
) -> None:
    task_id = contract_task(runner, client)
    response = post_contract(client, task_id, content, name)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'aria-invalid="true" aria-describedby="e-contract_file"' in page
    assert task(runner, KH, "Task_contract")["state"] == "open" and stored(instance_path) == []


def test_an_image_scan_is_taken_and_the_file_is_optional(client: WebClient, runner: Runner) -> None:
    task_id = contract_task(runner, client)
    assert post_contract(client, task_id, PNG, "scan.PDF").status_code == 302  # the content decides: a PNG
    assert instance_of(runner, KH, "sales")["data"]["contract_file"]["type"] == "image/png"
