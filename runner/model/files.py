"""What a ``file`` form field accepts and holds: kinds of file by magic number, references, names.

Pure functions (no I/O): ``runner.uploads`` stores the bytes in the instance folder and hands
back the reference a ``file`` field's value is (:func:`is_reference`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

MAX_BYTES = 10 * 1024 * 1024  # default cap of one file; a field's ``max_bytes`` property may lower it
NAME_CHARS = 120  # characters of the uploader's file name kept for display
# kind -> (magic number at offset 0, media type, extension on disk)
KINDS: dict[str, tuple[bytes, str, str]] = {
    "pdf": (b"%PDF-", "application/pdf", ".pdf"),
    "png": (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    "jpeg": (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
}
MEDIA_TYPES = frozenset(media for _, media, _ in KINDS.values())
FILE_ID = re.compile(r"[0-9a-f]{32}")


def kind_of(head: bytes) -> str | None:
    """The kind (``pdf``, ``png``, ``jpeg``) the first bytes of a file announce, or None."""
    for kind, (magic, _, _) in KINDS.items():
        if head.startswith(magic):
            return kind
    return None


def accepted(value: str | None) -> tuple[str, ...]:
    """The kinds a field's ``accept`` property allows (``pdf,image``; default every kind)."""
    if not value or not value.strip():
        return tuple(KINDS)
    kinds: list[str] = []
    for word in (w.strip().lower() for w in value.split(",")):
        found = ("png", "jpeg") if word == "image" else ("jpeg",) if word == "jpg" else (word,)
        if any(k not in KINDS for k in found):
            raise ValueError(f"{word!r} is not a kind of file the runner knows (pdf, image, png, jpeg)")
        kinds.extend(k for k in found if k not in kinds)
    return tuple(kinds)


def display_name(name: str | None) -> str:
    """The uploader's file name as shown: no folders, no control characters, at most ``NAME_CHARS`` characters."""
    text = unicodedata.normalize("NFC", str(name or ""))
    text = re.split(r"[\\/]", text)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C").strip(" .")
    return text[-NAME_CHARS:] or "tep"


def is_reference(value: Any) -> bool:
    """Tell whether a value is a reference :func:`store` made (what a ``file`` field holds)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("file"), str)
        and FILE_ID.fullmatch(value["file"]) is not None
        and value.get("type") in MEDIA_TYPES
        and isinstance(value.get("size"), int)
        and isinstance(value.get("name"), str)
    )
