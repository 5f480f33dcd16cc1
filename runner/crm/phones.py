"""Phone numbers in one format: E.164 with region VN, so ``0912 345 678`` and ``+84 912 345 678`` are one number.

The one place the CRM reads a typed phone number: a lead's (``intake``), a customer edit's
(``editing``), an import row's (``lead_imports``) and a staff member's (``contacts``).
"""

from __future__ import annotations

import phonenumbers

from runner.errors import BadValue

REGION = "VN"


def e164(text: str, field: str = "phone") -> str:
    """``text`` as E.164 (``+84912345678``); ``BadValue`` names ``field`` when it is no valid number."""
    try:
        number = phonenumbers.parse(text, REGION)
    except phonenumbers.NumberParseException as exc:
        raise BadValue(f"{field}: {text!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise BadValue(f"{field}: {text!r} is not a valid phone number (region {REGION} unless it starts with +)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
