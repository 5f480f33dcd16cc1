"""Reading a deployed file's bytes as the XML rules say: byte order mark, then XML declaration.

Every later step (validation, the engine's parser, storage as text) sees UTF-8, so a
UTF-16 or ISO-8859-1 file is re-encoded here once, its declaration rewritten to match.
A file whose bytes contradict what it declares is refused with a reason that names the
position, never the bytes themselves.

    as_utf8(b'\\xff\\xfe<\\x00?\\x00x\\x00...')   # -> b'<?xml version="1.0" encoding="UTF-8"?>...'
"""

from __future__ import annotations

import codecs
import re

from runner.errors import Invalid

# NOTE: the first bytes of a document tell its encoding family (XML 1.0, appendix F).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DECLARATION_START = {b"<\x00?\x00": "utf-16-le", b"\x00<\x00?": "utf-16-be"}
_DECLARED_ENCODING = re.compile(r"""\A(<\?xml\s[^>]{0,200}?\bencoding\s*=\s*)(["'])([A-Za-z][A-Za-z0-9._-]{0,39})\2""")
# Encodings a diagram may declare: Unicode and the single-byte ISO/Windows code pages.
_UNICODE = {
    "utf-8": "utf-8",
    "utf-16": "utf-16",
    "utf-16-le": "utf-16",
    "utf-16-be": "utf-16",
    "utf-32": "utf-32",
    "utf-32-le": "utf-32",
    "utf-32-be": "utf-32",
}


class EncodingInvalid(Invalid):
    """Raised when a file's bytes, byte order mark and XML declaration do not agree."""


def as_utf8(data: bytes) -> bytes:
    """The document as UTF-8 bytes with a matching declaration; UTF-8 input comes back unchanged."""
    sniffed, bom = _sniff(data)
    body = data[len(bom) :]
    if sniffed is None and body[:2] in (b"<\x00", b"\x00<"):
        raise EncodingInvalid(
            "the file looks like UTF-16 but has neither a byte order mark nor an XML declaration; save it as UTF-8"
        )
    wide = sniffed if sniffed != "utf-8" else None  # UTF-16 or UTF-32, by its first bytes
    if wide:
        codec, label = wide, f"{wide.upper()}, as its first bytes show"
    else:
        declared = _declared(body[:300].decode("latin-1"))
        codec, label = (
            (_codec(declared), f"{declared}, the encoding the file declares")
            if declared
            else ("utf-8", "UTF-8, the encoding of a file without an XML declaration")
        )
        if sniffed == "utf-8" and codec != "utf-8":
            raise EncodingInvalid(
                f"the file starts with a UTF-8 byte order mark but its XML declaration says {declared!r}"
            )
        if _family(codec) in ("utf-16", "utf-32"):
            raise EncodingInvalid(
                f"the XML declaration says {declared!r} but the file is not written in "
                f"{declared}; save it again in the encoding it declares, or as UTF-8"
            )
    text = _decode(body, codec, label)
    if wide:
        declared = _declared(text[:300])
        if declared is not None and _family(_codec(declared)) != _family(codec):
            raise EncodingInvalid(f"the file is {codec.upper()} but its XML declaration says {declared!r}")
    if codec == "utf-8":
        return data
    return _DECLARED_ENCODING.sub(r"\1\2UTF-8\2", text, count=1).encode("utf-8")


def _sniff(data: bytes) -> tuple[str | None, bytes]:
    """The encoding the first bytes imply (None: ASCII-compatible) and the byte order mark."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, bom
    return _DECLARATION_START.get(data[:4]), b""


def _family(codec: str) -> str:
    """utf-16 for utf-16-le and -be (likewise utf-32); any other codec is its own family."""
    return _UNICODE.get(codec, codec)


def _declared(prolog: str) -> str | None:
    """The encoding name an XML declaration at the very start gives, if any."""
    found = _DECLARED_ENCODING.match(prolog)
    return found.group(3) if found else None


def _codec(declared: str) -> str:
    """Python's name for a declared encoding the runner accepts; refuses the others."""
    try:
        name = codecs.lookup(declared).name
    except LookupError:
        raise EncodingInvalid(
            f"the XML declaration names an unknown encoding {declared!r}; save the file as UTF-8"
        ) from None
    if name in _UNICODE or name in ("ascii", "latin-1") or re.fullmatch(r"iso8859-\d+|cp125\d", name):
        return name
    raise EncodingInvalid(f"encoding {declared!r} is not supported; save the file as UTF-8")


def _decode(body: bytes, codec: str, label: str) -> str:
    """The text, or a refusal naming the line of the first bad byte (never the bytes themselves)."""
    try:
        return body.decode(codec)
    except UnicodeDecodeError as exc:
        line = body[: exc.start].decode(codec, errors="replace").count("\n") + 1
        raise EncodingInvalid(
            f"byte {exc.start + 1} (line {line}) is not valid {label}; save the file "
            "again in that encoding, or as UTF-8"
        ) from None
