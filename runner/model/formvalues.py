"""Form values as staff type them: Vietnamese date-times and amounts, read and shown.

Pure functions: the business time zone is always passed in. A date-time is entered as
``dd/MM/yyyy HH:mm`` in that zone (or as ISO 8601, which a browser's datetime-local input and
API clients send) and stored as ISO 8601 with the zone's offset (``2026-12-08T09:30:00+07:00``),
which ``datetime.fromisoformat`` in the diagrams' expressions reads back. An amount is a whole
number of đồng typed with separators, a currency sign or a unit (``12.900.000 đ``, ``12,9tr``).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation

from runner.errors import Invalid

SHOWN_FORMAT = "%d/%m/%Y %H:%M"
_LOCAL = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ ,T]+(\d{1,2})[:hH.](\d{2}))?")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# NOTE: grouped thousands need the same separator between every group of exactly three digits,
# so "12.900.000" is twelve million and "4.2" stays an error rather than becoming 42.
_GROUPED = re.compile(r"\d{1,3}(?P<sep>[., \u00a0])\d{3}(?:(?P=sep)\d{3})*")
_CURRENCY = re.compile(r"\s*(?:₫|đ|vnđ|vnd|đồng|dong)\s*$")
_UNITS = {
    "tỷ": 10**9, "tỉ": 10**9, "ty": 10**9, "triệu": 10**6, "trieu": 10**6, "tr": 10**6, "m": 10**6,
    "nghìn": 1000, "nghin": 1000, "ngàn": 1000, "ngan": 1000, "k": 1000,
}  # fmt: skip
_SCALED = re.compile(
    r"(?P<number>\d+(?:[.,]\d+)?)\s*(?P<unit>" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")"
)


class ValueRefused(Invalid):
    """Raised when typed text is not a value of the wanted kind; ``code`` says which rule it broke."""

    def __init__(self, code: str, text: str):
        super().__init__(text)
        self.code = code


def parse_moment(value: object, tz: tzinfo, *, need_time: bool = True) -> datetime:
    """An aware moment from typed text (``dd/MM/yyyy HH:mm`` or ISO 8601), a date or a datetime.

    Text without an offset is wall-clock time in ``tz``. With ``need_time``, typed text must
    name a time of day: a day alone is what booked demos at midnight.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(), tz)
    if not isinstance(value, str):
        raise ValueRefused("type", "must be a date and time (dd/MM/yyyy HH:mm)")
    text = value.strip()
    local = _LOCAL.fullmatch(text)
    try:
        if local:
            day, month, year, hour, minute = local.groups()
            if hour is None and need_time:
                raise ValueRefused("type", "needs a time of day (dd/MM/yyyy HH:mm)")
            moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
        elif _ISO_DAY.fullmatch(text) and need_time:
            raise ValueRefused("type", "needs a time of day (dd/MM/yyyy HH:mm)")
        else:
            moment = datetime.fromisoformat(text)
    except ValueError as exc:
        if isinstance(exc, ValueRefused):
            raise
        raise ValueRefused("type", "must be a date and time (dd/MM/yyyy HH:mm)") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def store_moment(moment: datetime, tz: tzinfo) -> str:
    """The ISO 8601 text a date-time field stores: whole seconds, with the business zone's offset."""
    return moment.astimezone(tz).replace(microsecond=0).isoformat()


def show_moment(value: object, tz: tzinfo) -> str:
    """A stored date-time (or a legacy date-only value, read as 00:00) as ``dd/MM/yyyy HH:mm`` in ``tz``."""
    try:
        moment = parse_moment(value, tz, need_time=False)
    except ValueRefused:
        return "" if value is None else str(value)  # shown as it is so that nobody loses what was kept
    return moment.astimezone(tz).strftime(SHOWN_FORMAT)


def parse_whole(text: str) -> int | None:
    """Digits, optionally signed and grouped by thousands (``12.900.000``, ``1,000``); None otherwise."""
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    if body.isascii() and body.isdigit() and len(body) <= 30:
        return sign * int(body)
    if len(body) <= 40 and _GROUPED.fullmatch(body):
        return sign * int(re.sub(r"\D", "", body))
    return None


def parse_amount(value: object) -> int:
    """Whole đồng from what staff type: ``12900000``, ``12.900.000``, ``12,900,000 đ``, ``12.9tr``, ``12,9 triệu``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str) or len(value) > 60:
        raise ValueRefused("type", "must be an amount of money, e.g. 12.900.000")
    text = _CURRENCY.sub("", value.strip().lower())
    whole = parse_whole(text)
    if whole is not None:
        return whole
    scaled = _SCALED.fullmatch(text)
    if scaled:
        try:
            amount = Decimal(scaled["number"].replace(",", ".")) * _UNITS[scaled["unit"]]
        except InvalidOperation:
            amount = Decimal("0.5")
        if amount == amount.to_integral_value():
            return int(amount)
    raise ValueRefused("type", "must be an amount of money, e.g. 12.900.000")


def show_amount(value: object, sign: str = "₫") -> str:
    """Whole đồng with Vietnamese separators: ``12.900.000 ₫``; other values as they are."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "" if value is None else str(value)
    return f"{value:,}".replace(",", ".") + (f" {sign}" if sign else "")
