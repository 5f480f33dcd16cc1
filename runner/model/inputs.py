"""Checks on what callers send: text and data the database and the pages can hold.

The runner's public operations call these before anything is stored, so the CLI, the web
app and the API are covered alike; the web app checks its query strings and forms once
more at the edge (``web.edge``) so that hostile text never reaches a query.

- No text may hold a NUL (PostgreSQL text cannot) or a lone surrogate (a page that shows
  it cannot be encoded as UTF-8, so it would fail for every user).
- Identifiers and business keys hold no control characters at all and are not longer
  than their columns.
- Data (start, message and form data, script results) nests at most ``MAX_DEPTH`` deep
  and its numbers are finite (JSON has no NaN or Infinity).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from runner.errors import Invalid

MAX_DEPTH = 32
KEY_LENGTH = 200  # process keys, business keys, usernames, element ids: String(200) columns
NAME_LENGTH = 500  # message names, task and process names: String(500) columns
ROW_ID_LENGTH = 36  # instance and task ids (uuids): String(36) columns
MAX_ROW_NUMBER = 2**31 - 1  # integer primary keys (incidents, outbox rows, tokens)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ANY_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class TextInvalid(Invalid):
    """Raised when a text or a data value cannot be stored or shown; ``field`` names where it is."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def text_problem(value: str, *, control: bool = False) -> str | None:
    """What makes ``value`` unstorable (NUL, lone surrogate, a control character if ``control``), or None."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which cannot be stored"
    found = _LONE_SURROGATE.search(value)
    if found:
        return f"contains a lone surrogate (\\u{ord(found.group()):04x}), which is not valid text"
    if control:
        found = _ANY_CONTROL.search(value)
        if found:
            return f"contains a control character (\\u{ord(found.group()):04x})"
    return None


def check_text(value: Any, field: str, *, max_length: int | None = None, control: bool = False) -> str:
    """``value`` if it is a storable string (at most ``max_length`` characters), else TextInvalid."""
    if not isinstance(value, str):
        raise TextInvalid(field, f"must be text, not {type(value).__name__}")
    problem = text_problem(value, control=control)
    if problem:
        raise TextInvalid(field, problem)
    if max_length is not None and len(value) > max_length:
        raise TextInvalid(field, f"at most {max_length} characters, got {len(value)}")
    return value


def check_key(value: Any, field: str, max_length: int = KEY_LENGTH) -> Any:
    """An identifier or business key (None passes): text without control characters that fits its column."""
    if value is None:
        return None
    return check_text(value, field, max_length=max_length, control=True)


def check_row_number(value: Any, field: str) -> int:
    """An integer row id the database's integer column can hold, else TextInvalid."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ROW_NUMBER:
        raise TextInvalid(field, f"must be a whole number from 1 to {MAX_ROW_NUMBER}, got {value!r}"[:200])
    return value


def check_data(value: Any, field: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` if every text in it (keys too) is storable, numbers are finite and it nests at most ``max_depth``."""
    _walk(value, field, max_depth, max_depth)
    return value


def _walk(value: Any, where: str, depth: int, limit: int) -> None:
    # NOTE: recursion is bounded by ``limit``: a hostile body cannot exhaust the stack.
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise TextInvalid(where, problem)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise TextInvalid(where, f"{value} is not a finite number (JSON has no NaN or Infinity)")
    elif isinstance(value, (Mapping, list, tuple)):
        if depth <= 0:
            raise TextInvalid(where, f"nests deeper than {limit} levels")
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                problem = text_problem(key, control=True) or (
                    f"a name of at most {KEY_LENGTH} characters, got {len(key)}" if len(key) > KEY_LENGTH else None
                )
                if problem:
                    raise TextInvalid(f"{where} key {key[:40]!r}", problem)
            _walk(item, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]", depth - 1, limit)
