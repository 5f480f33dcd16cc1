"""Who a copied customer is: a Vietnamese school's name, a mobile number and an e-mail of its own.

Each copy of a template customer gets a number ``n`` (``copy * templates + ordinal``), and
the SQL here turns ``n`` into its name, phone and e-mail, so that a search finds one customer
and not every copy of a template. The maps are one-to-one in ``n``:

- the name is a kind of school, a brand, a city and, past the 19,200 combinations, a branch
  (``Trung tâm Anh ngữ Sao Mai Đà Nẵng - Cơ sở 3``); ``search_name`` is the same parts folded;
- the phone is one of the demo's mobile prefixes and seven digits, a permutation of ``n``;
- the e-mail carries ``n``.
"""

from __future__ import annotations

from bench.crm_data import pick
from runner.crm.demo import PHONE_PREFIXES
from runner.crm.folding import fold

KINDS = (
    "Trung tâm Anh ngữ",
    "Trung tâm Toán tư duy",
    "Trung tâm Tin học",
    "Trung tâm Luyện thi",
    "Trung tâm Nhật ngữ",
    "Trung tâm Hàn ngữ",
    "Trung tâm Hoa văn",
    "Trung tâm Kỹ năng sống",
    "Trường Mầm non",
    "Trường Tiểu học",
    "Trung tâm Mỹ thuật",
    "Trung tâm Âm nhạc",
    "Trung tâm Ngoại ngữ",
    "Học viện Tiếng Anh",
    "Trung tâm Bồi dưỡng Văn hóa",
    "Trung tâm STEM",
)
BRANDS = (
    "Sao Mai", "Ánh Dương", "Hoa Sen", "Bình Minh", "Trí Việt", "Tuổi Thơ", "Hướng Dương", "Thành Công",
    "Tương Lai", "Phương Đông", "Đức Trí", "Tân Tiến", "Hồng Hà", "Việt Mỹ", "Kim Đồng", "Ngôi Sao",
    "Ong Vàng", "Hạnh Phúc", "Thăng Long", "Đông Á", "An Khang", "Minh Đức", "Trường Thịnh", "Sen Vàng",
    "Cầu Vồng", "Hải Âu", "Phù Đổng", "Lạc Hồng", "Vạn Xuân", "Nhân Văn", "Tri Thức", "Gia Phát",
    "Bách Khoa", "Chân Trời", "Hòa Bình", "Thiên Thần", "Măng Non", "Ước Mơ", "Quang Minh", "Tài Năng",
)  # fmt: skip
CITIES = (
    "Hà Nội", "Hồ Chí Minh", "Đà Nẵng", "Hải Phòng", "Cần Thơ", "Huế", "Nha Trang", "Vũng Tàu", "Biên Hòa",
    "Thủ Dầu Một", "Bắc Ninh", "Nam Định", "Thái Nguyên", "Vinh", "Quy Nhơn", "Buôn Ma Thuột", "Đà Lạt",
    "Long Xuyên", "Rạch Giá", "Hạ Long", "Việt Trì", "Thanh Hóa", "Hà Đông", "Thủ Đức", "Bình Dương",
    "Phan Thiết", "Pleiku", "Cà Mau", "Mỹ Tho", "Bạc Liêu",
)  # fmt: skip
# NOTE: seven digits from n // len(PHONE_PREFIXES) by an affine map modulo 10**7; the factor
# is odd and not a multiple of 5, so the map is a permutation and no two customers share a phone.
FACTOR, SHIFT, DIGITS = 7_654_321, 1_234_567, 10**7


def _folded(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(fold(v) for v in values)


def _slugs(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(fold(v).replace(" ", "") for v in values)


def _parts(n: str, folded: bool) -> str:
    """The name (or its folded form) of customer number ``n``."""
    kinds, brands, cities = (_folded(t) for t in (KINDS, BRANDS, CITIES)) if folded else (KINDS, BRANDS, CITIES)
    combos = len(KINDS) * len(BRANDS) * len(CITIES)
    branch = "co so" if folded else "Cơ sở"
    return (
        f"{pick(kinds, n)} || ' ' || {pick(brands, f'({n}) / {len(KINDS)}')} || ' ' ||"
        f" {pick(cities, f'({n}) / {len(KINDS) * len(BRANDS)}')} ||"
        f" CASE WHEN ({n}) >= {combos} THEN ' - {branch} ' || (({n}) / {combos} + 1) ELSE '' END"
    )


def _phone(n: str, dialect: str) -> str:
    digits = f"(CAST(({n}) / {len(PHONE_PREFIXES)} AS BIGINT) * {FACTOR} + {SHIFT}) % {DIGITS}"
    padded = f"lpad(CAST({digits} AS TEXT), 7, '0')" if dialect == "postgresql" else f"printf('%07d', {digits})"
    return f"{pick(PHONE_PREFIXES, n)} || {padded}"


def columns(n: str, dialect: str) -> dict[str, str]:
    """SQL for the customer columns that identify customer number ``n`` (an integer expression)."""
    phone = _phone(n, dialect)
    brand = pick(_slugs(BRANDS), f"({n}) / {len(KINDS)}")
    return {
        "name": _parts(n, folded=False),
        "search_name": _parts(n, folded=True),
        "phone": phone,
        "search_phone": phone,  # NOTE: already digits starting with 0, what phone_digits makes of it
        "email": f"'lienhe' || ({n}) || '@' || {brand} || '.edu.vn'",
    }
