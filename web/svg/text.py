"""Estimating label widths and wrapping labels, without a browser to measure text.

Widths come from the standard metrics of Helvetica/Arial (units per 1000 em), so a
wrapped label breaks close to where a browser would break it; accents are measured as
their base letter (Vietnamese labels are mostly accented Latin letters).
"""

from __future__ import annotations

import unicodedata

# Widths of the printable ASCII characters 32..126 (space to tilde) in Helvetica/Arial.
_ASCII_WIDTHS = (
    278,
    278,
    355,
    556,
    556,
    889,
    667,
    191,
    333,
    333,
    389,
    584,
    278,
    333,
    278,
    278,  # space .. /
    556,
    556,
    556,
    556,
    556,
    556,
    556,
    556,
    556,
    556,
    278,
    278,
    584,
    584,
    584,
    556,  # 0 .. ?
    1015,
    667,
    667,
    722,
    722,
    667,
    611,
    778,
    722,
    278,
    500,
    667,
    556,
    833,
    722,
    778,  # @ .. O
    667,
    778,
    722,
    667,
    611,
    722,
    667,
    944,
    667,
    667,
    611,
    278,
    278,
    278,
    469,
    556,  # P .. _
    333,
    556,
    556,
    500,
    556,
    556,
    278,
    556,
    556,
    222,
    222,
    500,
    222,
    833,
    556,
    556,  # ` .. o
    556,
    556,
    333,
    500,
    278,
    556,
    500,
    722,
    500,
    500,
    500,
    334,
    260,
    334,
    584,  # p .. ~
)
_EXTRA = {
    "đ": 556,
    "Đ": 722,
    "ơ": 640,
    "Ơ": 860,
    "ư": 640,
    "Ư": 800,
    "–": 556,
    "—": 1000,
    "…": 1000,
    "“": 333,
    "”": 333,
    "‘": 222,
    "’": 222,
    "•": 350,
}
LINE_HEIGHT = 1.2


def char_width(ch: str) -> int:
    """Width of one character in 1/1000 em."""
    if ch in _EXTRA:
        return _EXTRA[ch]
    base = unicodedata.normalize("NFD", ch)[:1] or ch
    if base in _EXTRA:
        return _EXTRA[base]
    code = ord(base)
    if 32 <= code <= 126:
        return _ASCII_WIDTHS[code - 32]
    if unicodedata.combining(ch):
        return 0
    return 1000 if unicodedata.east_asian_width(ch) in ("W", "F") else 556


def text_width(text: str, font_size: float) -> float:
    """Estimated rendered width of ``text`` in pixels."""
    return sum(char_width(ch) for ch in text) * font_size / 1000


def wrap(text: str, width: float, font_size: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` (words longer than that are split)."""
    lines: list[str] = []
    for paragraph in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        lines.extend(_wrap_paragraph(paragraph.split(), max(width, font_size * 2), font_size))
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _wrap_paragraph(words: list[str], width: float, font_size: float) -> list[str]:
    if not words:
        return [""]
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if text_width(candidate, font_size) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        for piece in _split_word(word, width, font_size):
            if current:
                lines.append(current)
            current = piece
    if current:
        lines.append(current)
    return lines


def _split_word(word: str, width: float, font_size: float) -> list[str]:
    """A word wider than ``width`` in pieces that fit (a hyphen or slash is a preferred break)."""
    pieces: list[str] = []
    current = ""
    for ch in word:
        if current and text_width(current + ch, font_size) > width:
            cut = max(current.rfind("-"), current.rfind("/"), current.rfind("_"))
            if 0 < cut < len(current) - 1:
                pieces.append(current[: cut + 1])
                current = current[cut + 1 :]
            else:
                pieces.append(current)
                current = ""
        current += ch
    if current:
        pieces.append(current)
    return pieces
