"""The forms of a name and a phone number that customer search compares, one definition for both databases.

    fold("Trung tâm Toán Đức Trí")    # 'trung tam toan duc tri'
    phone_digits("+84 912.345.678")   # '0912345678'
    contains("50%_off")               # '%50\\%\\_off%' for LIKE ... ESCAPE '\\'

NOTE: computed in Python on write (``Customer`` keeps ``search_name`` and ``search_phone``) and
on the typed text, never in SQL, so SQLite and PostgreSQL compare the very same strings.
"""

from __future__ import annotations

import re
import unicodedata

ESCAPE = "\\"


def fold(text: str) -> str:
    """Lower case without Vietnamese accents (đ is d), spaces collapsed, so that 'nguyen' finds 'Nguyễn'."""
    text = unicodedata.normalize("NFD", text.casefold().replace("đ", "d"))
    return " ".join("".join(ch for ch in text if not unicodedata.combining(ch)).split())


def phone_digits(text: str | None) -> str:
    """The digits of a phone number, a leading 84 (Vietnam's +84) written as the national 0."""
    digits = re.sub(r"\D", "", text or "")
    if digits.startswith("84") and len(digits) >= 11:
        return "0" + digits[2:]
    return digits


def contains(text: str) -> str:
    """A LIKE pattern (escape ``ESCAPE``) for values that contain ``text``."""
    escaped = text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"
