"""Customer search and paging in the database (runner.crm.reads), the same answers on SQLite and PostgreSQL.

Names are found without accents or case (đ is d), phones in any spelling (+84 or 0, dots, spaces),
customers by code and by tag; a page follows the previous one's last id with nothing skipped or
shown twice, on the search and on a board column.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from runner.crm import customers as crm
from runner.crm import trigrams, views
from runner.crm.folding import fold, phone_digits
from runner.crm.models import BadValue, Customer
from runner.service.runtime import Runner
from runner.store.models import Instance, ProcessVersion

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
PEOPLE = [
    ("KH0001", "Trung tâm Anh ngữ Sao Mai", "0912 345 678", ["Tiếp nhận"]),
    ("KH0002", "Trung tâm Toán Đức Trí", "+84 987.654.321", ["tiềm năng"]),
    ("KH0003", "Nguyễn Văn Hùng", "84-90-111-2222", []),
    ("KH0004", "ĐẶNG THỊ ÁNH DƯƠNG", None, ["Tiếp nhận", "Cấp demo"]),
    ("KH0005", "Lớp 100% vui_vẻ", "0281234567", []),
]


@pytest.fixture
def r(any_runner: Runner) -> Runner:
    with any_runner.db.unit() as s:
        for customer_id, name, phone, tags in PEOPLE:
            crm.add_customer(s, customer_id, name, now=NOW, tags=tags, **({"phone": phone} if phone else {}))
    return any_runner


def ids(runner: Runner, text: str = "", **options) -> list[str]:
    return [row["id"] for row in views.find_customers(runner, text, **options)]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("sao mai", ["KH0001"]),  # no accents typed
        ("SAO MAI", ["KH0001"]),
        ("Đức Trí", ["KH0002"]),  # accents typed
        ("duc tri", ["KH0002"]),  # đ is d
        ("dang thi anh", ["KH0004"]),  # a name kept in capitals
        ("ánh dương", ["KH0004"]),
        ("nguyen", ["KH0003"]),
        ("trung tâm", ["KH0001", "KH0002"]),
        ("tam toan", ["KH0002"]),  # across a word boundary: a substring of the folded name
        ("0987654321", ["KH0002"]),  # stored as +84 987.654.321
        ("+84 912 345 678", ["KH0001"]),  # typed with +84, stored with 0
        ("84912345678", ["KH0001"]),
        ("0901112222", ["KH0003"]),  # stored as 84-90-...
        ("345 678", ["KH0001"]),  # part of the number
        ("KH0003", ["KH0003"]),  # the code
        ("cấp demo", ["KH0004"]),  # a tag typed in the box
        ("100%", ["KH0005"]),  # LIKE's wildcards are plain characters
        ("%", ["KH0005"]),
        ("_", ["KH0005"]),
        ("không ai", []),
        ("kh0003", ["KH0003"]),  # the code in lower case
        ("cap demo", ["KH0004"]),  # a tag without accents
        ("tiep   nhan", ["KH0001", "KH0004"]),
        ("  sao    mai ", ["KH0001"]),  # repeated spaces are one
        ("+84  912.345.678", ["KH0001"]),
        ("84 (90) 111-2222", ["KH0003"]),
    ],
)
def test_search_finds_names_without_accents_phones_in_any_form_codes_and_tags(
    r: Runner, text: str, expected: list[str]
) -> None:
    assert ids(r, text) == expected


# Names that read as FTS5 query syntax (phrases, prefixes, NEAR, AND/OR/NOT, column filters,
# ^ for the start) and as LIKE or SQL: all of it is plain text to search.
HOSTILE = [
    ("KH0101", 'Lớp "Sao" *Mai*', "0241 111 000"),
    ("KH0102", "Trung tâm NEAR(anh văn) AND tin học OR toán", None),
    ("KH0103", "Nhà sách O'Brien - {search_phone}: 50\\50", None),
    ("KH0104", "Lớp ^đầu* (bắt buộc) NOT", None),
]


@pytest.fixture(params=["scan first", "index only"])
def hostile(r: Runner, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Runner:
    """PEOPLE and HOSTILE; on SQLite once as it runs and once with the scan cut to one customer (the index answers)."""
    if request.param == "index only":
        monkeypatch.setattr(trigrams, "SCAN_ROWS", 0)
    with r.db.unit() as s:
        for customer_id, name, phone in HOSTILE:
            crm.add_customer(s, customer_id, name, now=NOW, **({"phone": phone} if phone else {}))
    return r


@pytest.mark.parametrize(
    "text,expected",
    [
        ('"sao"', ["KH0101"]),  # quotes are characters of the name, not an FTS5 phrase
        ('sao" *mai', ["KH0101"]),
        ("*mai*", ["KH0101"]),
        ("mai*", ["KH0101"]),  # not a prefix query: KH0001's "sao mai" has no *
        ("sao mai", ["KH0001"]),
        ("sao OR mai", []),  # as FTS5 syntax it would find KH0001 and KH0101
        ("sao AND mai", []),
        ("sao NOT mai", []),
        ("NEAR(sao mai)", []),
        ("near(anh văn) and", ["KH0102"]),  # the words are in this name
        ("tin học OR toán", ["KH0102"]),
        ("search_name: sao mai", []),  # a column filter would find KH0001
        ("{search_phone}:", ["KH0103"]),
        ("o'brien", ["KH0103"]),
        ("' OR 1=1 --", []),
        ("50\\50", ["KH0103"]),  # the LIKE escape character is a character
        ("^đầu*", ["KH0104"]),
        ("(bắt buộc) not", ["KH0104"]),
        ("lớp", ["KH0005", "KH0101", "KH0104"]),  # Vietnamese accents, three letters
        ("LOP", ["KH0005", "KH0101", "KH0104"]),
        ("vui_vẻ", ["KH0005"]),
        ("0% vui", ["KH0005"]),
        ("0%", ["KH0005"]),  # short: two characters
        ('"', ["KH0101"]),
        ("*", ["KH0101", "KH0104"]),
        ("\\", ["KH0103"]),
        ("-", ["KH0103"]),
        ("024 1111", ["KH0101"]),  # part of a phone through the index
        ("+84 241 111 000", ["KH0101"]),
        ("phuong nam", []),  # a rare word that is nowhere
        ("hùng", ["KH0003"]),  # a rare word, with accents
        ("anh", ["KH0001", "KH0004", "KH0102"]),
    ],
)
def test_hostile_text_is_plain_text_on_both_databases_with_or_without_the_scan(
    hostile: Runner, text: str, expected: list[str]
) -> None:
    assert ids(hostile, text) == expected


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_the_index_pages_in_id_order_without_gaps(hostile: Runner, limit: int) -> None:
    seen: list[str] = []
    after = None
    while page := ids(hostile, "lop", limit=limit, after=after):
        seen += page
        after = page[-1]
    assert seen == ["KH0005", "KH0101", "KH0104"]


def test_a_common_word_is_found_by_the_scan_and_a_rare_one_beyond_it_by_the_index(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: 20 customers, the scan reads 5 of them: a page of 2 fills there; what is further the index finds."""
    monkeypatch.setattr(trigrams, "SCAN_ROWS", 5)
    with runner.db.unit() as s:
        for n in range(20):
            crm.add_customer(s, f"C{n:02d}", f"Trung tâm {'Phương Nam' if n == 17 else 'Sao'} {n}", now=NOW)
    assert ids(runner, "trung tam", limit=2) == ["C00", "C01"]
    assert ids(runner, "phương nam") == ["C17"]
    assert ids(runner, "trung tam", after="C15", limit=2) == ["C16", "C17"]
    assert ids(runner, "sao 1", after="C05") == [f"C{n}" for n in range(10, 20) if n != 17]


def test_a_short_text_is_looked_for_among_the_next_customers_only_on_sqlite(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One or two characters have no trigram: SQLite reads the next SHORT_SCAN_ROWS customers (here 2) only."""
    monkeypatch.setattr(trigrams, "SHORT_SCAN_ROWS", 2)
    with runner.db.unit() as s:
        for customer_id, name, phone, tags in PEOPLE:
            crm.add_customer(s, customer_id, name, now=NOW, tags=tags, **({"phone": phone} if phone else {}))
    assert ids(runner, "%") == []  # KH0005 is the fifth
    assert ids(runner, "%", after="KH0003") == ["KH0005"]  # the window follows the page
    assert ids(runner, "00%") == []  # no three characters besides % and _
    assert ids(runner, "100%") == ["KH0005"]  # three: the index, everyone
    assert ids(runner, "tr") == ["KH0001", "KH0002"]


@pytest.fixture
def owned(r: Runner) -> Runner:
    """KH0001 and KH0002 owned by lan (Nguyễn Thị Lan), KH0003 by hung (Trần Văn Hùng); e-mails on two."""
    with r.db.unit() as s:
        crm.add_staff(s, "lan", "Nguyễn Thị Lan", ["sales"])
        crm.add_staff(s, "hung", "Trần Văn Hùng", ["sales"])
        for customer_id, owner, email in (
            ("KH0001", "lan", "LienHe@SaoMai.edu.vn"),
            ("KH0002", "lan", None),
            ("KH0003", "hung", "hung.nguyen@example.vn"),
        ):
            row = s.get(Customer, customer_id)
            row.owner, row.email = owner, email
    return r


@pytest.mark.parametrize(
    "text,expected",
    [
        ("lienhe@saomai.edu.vn", ["KH0001"]),  # stored as typed with capitals: e-mails are kept in lower case
        ("LIENHE@SAOMAI.EDU.VN", ["KH0001"]),
        ("hung.nguyen@example.vn", ["KH0003"]),
        ("lan", ["KH0001", "KH0002"]),  # the owner's username
        ("Nguyễn Thị Lan", ["KH0001", "KH0002"]),  # ... full name
        ("nguyen  thi lan", ["KH0001", "KH0002"]),
        ("hùng", ["KH0003"]),  # ... given name
        ("van hung", ["KH0003"]),
        ("tran", []),  # the family name alone names nobody
        ("nobody@example.vn", []),
    ],
)
def test_search_finds_emails_and_owners_by_username_or_name(owned: Runner, text: str, expected: list[str]) -> None:
    assert ids(owned, text) == expected


def test_the_tag_filter_narrows_a_search(r: Runner) -> None:
    assert ids(r, tag="tiếp nhận") == ["KH0001", "KH0004"]
    assert ids(r, "trung", tag="TIẾP NHẬN") == ["KH0001"]
    assert ids(r, "", tag="không có") == []


def test_search_columns_follow_name_and_phone_changes(r: Runner) -> None:
    with r.db.unit() as s:
        crm.update_fields(s, s.get(Customer, "KH0003"), {"name": "Trần Thị Bích", "phone": "+84 33 999 8888"})
    assert ids(r, "nguyen") == []
    assert ids(r, "tran thi bich") == ["KH0003"]
    assert ids(r, "0339998888") == ["KH0003"]


def test_every_vietnamese_letter_folds_to_its_base_letter() -> None:
    tones = ("", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323")
    for base in "aăâeêioôơuưy":
        for tone in tones:
            for letter in (base, base.upper()):
                composed = unicodedata.normalize("NFC", letter + tone)
                assert fold(composed) == {"ă": "a", "â": "a", "ê": "e", "ô": "o", "ơ": "o", "ư": "u"}.get(base, base)
                assert fold(unicodedata.normalize("NFD", composed)) == fold(composed)
    assert fold("Đặng  Văn   ĐỨC") == "dang van duc"


@pytest.mark.parametrize(
    "raw,digits",
    [
        ("0912 345 678", "0912345678"),
        ("+84 912 345 678", "0912345678"),
        ("84912345678", "0912345678"),
        ("(028) 1234-567", "0281234567"),
        ("8412", "8412"),
        (None, ""),
    ],
)
def test_phone_digits_write_plus_84_as_0(raw: str | None, digits: str) -> None:
    assert phone_digits(raw) == digits


def test_search_pages_follow_each_other_without_gaps_or_repeats(any_runner: Runner) -> None:
    with any_runner.db.unit() as s:
        for n in range(23):
            crm.add_customer(s, f"P{n:03d}", f"Trung tâm số {n}", now=NOW, tags=["Tiếp nhận"] if n % 2 else [])
    for text, tag in (("", None), ("trung tam", None), ("", "TIẾP NHẬN")):
        everyone = ids(any_runner, text, tag=tag, limit=100)
        seen: list[str] = []
        after = None
        while True:
            page = ids(any_runner, text, tag=tag, limit=5, after=after)
            if not page:
                break
            seen += page
            after = page[-1]
        assert seen == everyone and len(set(seen)) == len(seen) and everyone, (text, tag)


def _stage(runner: Runner, customer_id: str, stages: list[str], at: datetime) -> None:
    """An instance of the sales process at ``stages`` (written as the engine writes one: migration 0010's triggers)."""
    with runner.db.unit() as s:
        version = s.scalar(sa.select(ProcessVersion.id).limit(1))
        if version is None:
            version_row = ProcessVersion(
                process_key="sales",
                version=1,
                content_hash="x",
                file_name="sales.bpmn",
                xml="",
                spec="",
                deployed_at=at,
            )
            s.add(version_row)
            s.flush()
            version = version_row.id
        s.add(
            Instance(
                id=f"i-{customer_id}",
                process_key="sales",
                version_id=version,
                business_key=customer_id,
                state="",
                stages=stages,
                created_at=at,
                updated_at=at,
                row_version=1,
            )
        )


def test_a_board_column_pages_longest_in_stage_first_and_counts_the_whole_column(any_runner: Runner) -> None:
    with any_runner.db.unit() as s:
        for n in range(12):
            crm.add_customer(s, f"B{n:02d}", f"Khách {n}", now=NOW)
    for n in range(12):  # B00 entered first; B10 and B11 at the same moment, ordered by id
        _stage(any_runner, f"B{n:02d}", ["Tiếp nhận"], NOW + timedelta(hours=min(n, 10)))
    _stage(any_runner, "X", ["Tiếp nhận"], NOW)  # a business key without a customer has no card
    seen: list[str] = []
    after: dict[str, str] | None = None
    while True:
        board = views.pipeline_board(any_runner, "sales", limit=5, after=after)
        [column] = [c for c in board["columns"] if c["stage"] == "Tiếp nhận"]
        assert column["count"] == 12
        seen += [card["id"] for card in column["cards"]]
        if column["next"] is None:
            break
        after = {"Tiếp nhận": column["next"]}
    assert seen == [f"B{n:02d}" for n in range(12)]
    with pytest.raises(BadValue, match="after"):
        views.pipeline_board(any_runner, "sales", after={"Tiếp nhận": "yesterday|B01"})
