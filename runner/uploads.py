"""Files attached on a user task's ``file`` form field, kept in the instance folder.

A file is stored as ``<instance folder>/uploads/<instance id>/<file id><extension>`` beside a
``<file id>.json`` that says what it is; the process variable of the field holds a reference
(:func:`store` returns it), never the bytes. The type is read from the file's first bytes (its
magic number), not from its name or the browser's Content-Type: a PDF renamed ``.png`` is a PDF,
an executable renamed ``.pdf`` is refused. The name the uploader's computer gave is kept for
display only, cleaned of paths and control characters; nothing on disk is named after it.

    ref = uploads.store(settings.instance_path, instance_id, "contract_file", "HĐ Sao Mai.pdf", data)
    path, meta = uploads.find(settings.instance_path, instance_id, ref["file"])
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.errors import FormInvalid, Missing
from runner.model.files import FILE_ID, KINDS, MAX_BYTES, display_name, kind_of

FOLDER = "uploads"
_INSTANCE_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


def _refuse(field: str, label: str, code: str, text: str) -> FormInvalid:
    exc = FormInvalid({field: f"{label} {text}"})
    exc.codes = {field: code}  # file_empty | file_size | file_type
    return exc


def _folder(instance_path: str, instance_id: str) -> Path:
    if not _INSTANCE_ID.fullmatch(instance_id):
        raise Missing(f"instance {instance_id!r} has no files")  # NOTE: never a path built from odd text
    return Path(instance_path) / FOLDER / instance_id


def store(
    instance_path: str,
    instance_id: str,
    field: str,
    filename: str | None,
    data: bytes,
    *,
    label: str = "",
    kinds: tuple[str, ...] = tuple(KINDS),
    max_bytes: int = MAX_BYTES,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Keep an uploaded file of a form field; its reference for the process data.

    ``FormInvalid`` names the field when the file is empty, larger than ``max_bytes`` or not
    one of ``kinds`` by its first bytes. The caller reads at most ``max_bytes + 1`` bytes.
    """
    label = label or field
    if not data:
        raise _refuse(field, label, "file_empty", "is an empty file")
    if len(data) > max_bytes:
        raise _refuse(field, label, "file_size", f"is larger than {max_bytes} bytes")
    kind = kind_of(data[:16])
    if kind not in kinds:
        raise _refuse(field, label, "file_type", f"must be a file of type {', '.join(kinds)} (by its content)")
    _, media_type, extension = KINDS[kind]
    folder = _folder(instance_path, instance_id)
    folder.mkdir(parents=True, exist_ok=True)
    file_id = secrets.token_hex(16)
    ref: dict[str, Any] = {
        "file": file_id,
        "name": display_name(filename),
        "type": media_type,
        "size": len(data),
        "field": field,
    }
    if now is not None:
        ref["uploaded_at"] = now.isoformat()
    _write(folder / f"{file_id}{extension}", data)
    _write(folder / f"{file_id}.json", json.dumps(ref, ensure_ascii=False).encode())
    return ref


def _write(path: Path, data: bytes) -> None:
    """Write a new file readable by its owner only; O_EXCL: a file is never replaced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def find(instance_path: str, instance_id: str, file_id: str) -> tuple[Path, dict[str, Any]]:
    """The path and reference of one stored file of an instance; ``Missing`` otherwise."""
    folder = _folder(instance_path, instance_id)
    if not FILE_ID.fullmatch(file_id or ""):
        raise Missing(f"file {file_id!r} does not exist")
    try:
        meta = json.loads((folder / f"{file_id}.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Missing(f"file {file_id!r} does not exist") from None
    extension = next(ext for _, media, ext in KINDS.values() if media == meta["type"])
    return folder / f"{file_id}{extension}", meta


def listing(instance_path: str, instance_id: str) -> list[dict[str, Any]]:
    """The references of an instance's stored files, oldest upload first."""
    try:
        folder = _folder(instance_path, instance_id)
    except Missing:
        return []
    if not folder.is_dir():
        return []
    refs = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")]
    return sorted(refs, key=lambda r: (r.get("uploaded_at", ""), r["file"]))
