"""runner.uploads and the ``file`` form type: kind by magic number, size cap, cleaned names, references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_forms import task_xml

from runner import uploads
from runner.errors import DeploymentInvalid, FormInvalid, Missing
from runner.model import files
from runner.model.forms import coerce, parse_form

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(8)
JPEG = b"\xff\xd8\xff\xe0" + bytes(8)
INSTANCE = "0d4c7a52-9d7e-4b7e-9a51-3c2f4f3d1e10"


@pytest.mark.parametrize(
    ("head", "kind"),
    [(PDF, "pdf"), (PNG, "png"), (JPEG, "jpeg"), (b"MZ\x90\x00", None), (b"<html>", None), (b"", None)],
)
def test_the_kind_comes_from_the_first_bytes(head: bytes, kind: str | None) -> None:
    assert files.kind_of(head) == kind


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\an\\HĐ Sao Mai.pdf", "HĐ Sao Mai.pdf"),
        ("hop\x00dong\u202e.pdf", "hopdong.pdf"),
        ("..", "tep"),
        ("", "tep"),
        ("a" * 300 + ".pdf", ("a" * 300 + ".pdf")[-files.NAME_CHARS :]),
    ],
)
def test_an_uploaders_name_is_kept_for_display_only_and_cleaned(name: str, shown: str) -> None:
    assert files.display_name(name) == shown


def test_a_stored_file_is_named_by_a_random_id_in_the_instance_folder(tmp_path: Path) -> None:
    ref = uploads.store(str(tmp_path), INSTANCE, "contract_file", "../../x.png", PDF)  # a PDF named .png
    assert (ref["type"], ref["size"], ref["name"], ref["field"]) == (
        "application/pdf",
        len(PDF),
        "x.png",
        "contract_file",
    )
    path, meta = uploads.find(str(tmp_path), INSTANCE, ref["file"])
    assert path == tmp_path / "uploads" / INSTANCE / f"{ref['file']}.pdf" and path.read_bytes() == PDF
    assert meta == ref == json.loads(path.with_suffix(".json").read_text()) and files.is_reference(ref)
    assert uploads.listing(str(tmp_path), INSTANCE) == [ref]
    assert sorted(p.name for p in (tmp_path / "uploads").rglob("*")) == sorted(
        [INSTANCE, f"{ref['file']}.pdf", f"{ref['file']}.json"]
    )


@pytest.mark.parametrize(
    ("data", "kinds", "limit", "code"),
    [
        (b"MZ\x90\x00" + bytes(60), ("pdf", "png", "jpeg"), files.MAX_BYTES, "file_type"),
        (PNG, ("pdf",), files.MAX_BYTES, "file_type"),
        (PDF + bytes(100), ("pdf",), 50, "file_size"),
        (b"", ("pdf",), files.MAX_BYTES, "file_empty"),
    ],
    ids=["program", "image-where-pdf", "too-big", "empty"],
)
def test_a_wrong_kind_too_big_or_empty_file_is_refused_naming_the_field(
    tmp_path: Path, data: bytes, kinds: tuple[str, ...], limit: int, code: str
) -> None:
    with pytest.raises(FormInvalid) as refused:
        uploads.store(
            str(tmp_path), INSTANCE, "contract_file", "a.pdf", data, label="Hợp đồng", kinds=kinds, max_bytes=limit
        )
    assert list(refused.value.errors) == ["contract_file"] and refused.value.codes == {"contract_file": code}
    assert refused.value.errors["contract_file"].startswith("Hợp đồng ")
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").rglob("*.json"))


@pytest.mark.parametrize("instance_id", ["../etc", "a/b", "", "x" * 65])
def test_no_path_is_built_from_an_odd_instance_or_file_id(tmp_path: Path, instance_id: str) -> None:
    with pytest.raises(Missing):
        uploads.find(str(tmp_path), instance_id, "0" * 32)
    assert uploads.listing(str(tmp_path), instance_id) == []
    with pytest.raises(Missing):
        uploads.find(str(tmp_path), INSTANCE, "../../secret_key")


def file_field(prop: str, value: str) -> str:
    return (
        '<camunda:formField id="f" type="file"><camunda:properties>'
        f'<camunda:property id="{prop}" value="{value}" /></camunda:properties></camunda:formField>'
    )


def test_a_file_field_is_parsed_with_its_kinds_and_size_and_checked_at_deployment() -> None:
    field = parse_form(
        task_xml(
            '<camunda:formField id="scan" label="Bản scan" type="file"><camunda:properties>'
            '<camunda:property id="accept" value="pdf,image" /><camunda:property id="max_bytes" value="2048" />'
            "</camunda:properties></camunda:formField>"
        )
    ).field("scan")
    assert (field.type, field.file_kinds, field.max_bytes) == ("file", ("pdf", "png", "jpeg"), 2048)
    assert field.to_dict()["type"] == "file" and field.to_dict()["properties"]["accept"] == "pdf,image"
    with pytest.raises(DeploymentInvalid, match="property 'accept': 'exe' is not a kind of file"):
        parse_form(task_xml(file_field("accept", "exe")))
    with pytest.raises(DeploymentInvalid, match="property 'max_bytes' is '99999999999'"):
        parse_form(task_xml(file_field("max_bytes", "99999999999")))


def test_a_file_field_takes_only_a_stored_files_reference(tmp_path: Path) -> None:
    form = parse_form(
        task_xml(
            '<camunda:formField id="scan" label="Bản scan" type="file"><camunda:properties>'
            '<camunda:property id="accept" value="pdf" /></camunda:properties>'
            '<camunda:validation><camunda:constraint name="required" /></camunda:validation></camunda:formField>'
        )
    )
    ref = uploads.store(str(tmp_path), INSTANCE, "scan", "a.pdf", PDF)
    assert coerce(form, {"scan": ref}) == {"scan": ref}
    png = uploads.store(str(tmp_path), INSTANCE, "scan", "a.png", PNG)
    cases = {"/etc/passwd": "type", json.dumps(ref): "type", "forged": "type"}
    for value, code in [*cases.items(), (png, "file_type"), ({**ref, "size": 10**9}, "file_size")]:
        with pytest.raises(FormInvalid) as refused:
            coerce(form, {"scan": value if value != "forged" else {**ref, "file": "../x"}})
        assert refused.value.codes == {"scan": code}, value
    with pytest.raises(FormInvalid, match="Bản scan is required"):
        coerce(form, {})
