"""runner/customer_views.py over the real sales diagram: boards, the 360° timeline, bookings, search, notes.

Customers move through processes/sales.bpmn with the real handlers on the virtual clock
(``tests.scenario``); the board and the timeline are then read back as the web pages see them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from runner.crm import bookings as calendar
from runner.crm import customers as crm
from runner.crm import views
from runner.crm.models import BadValue, Missing
from runner.queries import tasklists as inbox
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import START, TZ, add_customer, advance, company, complete, runner_at, start

ROOT = Path(__file__).resolve().parents[1]  # the checkout
PROCESSES = ROOT / "processes"
SALES_ORDER = ["Tiếp nhận", "Đã liên hệ", "Liên hệ lại", "Cấp Demo", "Đang chăm sóc", "Tiềm năng", "Chốt"]
AFTER_SALE_ORDER = [
    "TIẾP NHẬN",
    "ĐÀO TẠO",
    "BÀN GIAO",
    "CHĂM SÓC ĐỊNH KỲ",
    "CHĂM SÓC TÁI KÝ",
    "CÓ VẤN ĐỀ",
    "DỪNG CHĂM SÓC",
    "KHÓA",
]
SURVEY = {
    "business_model": "Trung tâm ngoại ngữ",
    "dedicated_department": True,
    "staff_count": 12,
    "student_count": 350,
    "course_model": "Theo khóa 3 tháng",
    "zalo_user_id": "zl-saomai",
    "demo_at": "2026-12-09T10:00:00",
    "trial_link": "https://trial.easyedu.vn/saomai",
    "call_note": "Trung tâm 2 cơ sở, muốn quản lý học phí và điểm danh.",
}


def company_runner(url: str, registry: Registry) -> Runner:
    """The company (lists, staff an/binh/chi in sales ...) at Monday 09:00 with every diagram deployed."""
    runner = runner_at(url, registry, START)
    company(runner)
    runner.deploy([PROCESSES])
    return runner


def lead(runner: Runner, customer_id: str, name: str, **fields) -> str:
    """Marketing hands a lead over (the sales process starts); returns the sales rep it went to.

    NOTE: the lead passes from rep to rep every 60 working minutes and is never escalated here
    (``max_reassignments``): these tests are about what the pages show of a waiting lead.
    """
    add_customer(runner, customer_id, name, source="Facebook", **fields)
    start(runner, "sales", customer_id, {"max_reassignments": 1000})
    [task] = inbox.tasks(runner, business_key=customer_id)
    return task["assignee"]


def pipeline(runner: Runner) -> dict[str, str]:
    """Three leads on Monday: KH1 gets a demo account, KH2 waits, KH3 is not reached (call back at 14:00).

    Returns customer id -> owner. The clock then moves to Tuesday 09:00: the call-back task
    of KH3 (due Tuesday 08:30, 4 working hours on) is overdue, and every customer has been a day in its stage.
    """
    owners = {
        "KH1": lead(runner, "KH1", "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn"),
        "KH2": lead(runner, "KH2", "Trường Tiểu học Hoa Sen", phone="0987654321"),
        "KH3": lead(runner, "KH3", "Trung tâm Kỹ năng Ánh Dương", phone="0905111222"),
    }
    complete(runner, "KH1", "Task_verify", {"verdict": "good"}, by=owners["KH1"])
    complete(runner, "KH1", "Task_call", {"call_result": "reached"}, by=owners["KH1"])
    complete(runner, "KH1", "Task_survey", SURVEY, by=owners["KH1"])
    complete(runner, "KH3", "Task_verify", {"verdict": "good"}, by=owners["KH3"])
    complete(runner, "KH3", "Task_call", {"call_result": "not_reached"}, by=owners["KH3"])
    advance(runner, to=START + timedelta(days=1))
    runner.deliver_outbox()
    return owners


@pytest.fixture
def r(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    runner = company_runner(sqlite_url, registry)
    yield runner
    runner.db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_r(request: pytest.FixtureRequest, registry: Registry) -> Iterator[Runner]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    runner = company_runner(url, registry)
    yield runner
    runner.db.engine.dispose()


def _columns(board: dict) -> dict[str, list[str]]:
    return {col["stage"]: [card["id"] for card in col["cards"]] for col in board["columns"]}


# --- which stages, in which order --------------------------------------------------------------


def test_boards_group_the_processes_of_a_pipeline() -> None:
    assert views.boards() == {"sales": ("sales",), "onboarding": ("onboarding", "renewal", "care_month")}


@pytest.mark.parametrize("file,expected", [("sales.bpmn", SALES_ORDER), ("onboarding.bpmn", AFTER_SALE_ORDER)])
def test_stages_are_read_left_to_right_from_the_diagram(file: str, expected: list[str]) -> None:
    assert views.diagram_stages((PROCESSES / file).read_bytes()) == expected


def test_the_leftmost_shape_places_a_stage_and_shapeless_stages_come_last() -> None:
    xml = """<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
      xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
      xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d"><process id="p">
      <userTask id="late"><extensionElements><camunda:properties>
        <camunda:property name="stage" value="B" /></camunda:properties></extensionElements></userTask>
      <userTask id="nowhere"><extensionElements><camunda:properties>
        <camunda:property name="stage" value="Z" /></camunda:properties></extensionElements></userTask>
      <subProcess id="sub"><extensionElements><camunda:properties>
        <camunda:property name="stage" value="A" /><camunda:property name="other" value="X" />
        </camunda:properties></extensionElements>
        <userTask id="inner"><extensionElements><camunda:properties>
          <camunda:property name="stage" value="B" /></camunda:properties></extensionElements></userTask>
      </subProcess></process>
      <bpmndi:BPMNDiagram><bpmndi:BPMNPlane bpmnElement="p">
        <bpmndi:BPMNShape bpmnElement="late"><dc:Bounds x="900" y="0" width="10" height="10" /></bpmndi:BPMNShape>
        <bpmndi:BPMNShape bpmnElement="sub"><dc:Bounds x="100" y="0" width="500" height="10" /></bpmndi:BPMNShape>
        <bpmndi:BPMNShape bpmnElement="inner"><dc:Bounds x="300" y="0" width="10" height="10" /></bpmndi:BPMNShape>
      </bpmndi:BPMNPlane></bpmndi:BPMNDiagram></definitions>"""
    assert views.diagram_stages(xml) == ["A", "B", "Z"]


def test_an_unknown_board_is_missing(r: Runner) -> None:
    with pytest.raises(Missing, match="board 'nope' does not exist; known: sales, onboarding"):
        views.pipeline_board(r, "nope")


def test_without_a_deployed_diagram_the_configured_stages_are_the_columns(runner: Runner) -> None:
    board = views.pipeline_board(runner, "sales")
    assert [col["stage"] for col in board["columns"]] == list(crm.STAGES["Trong bán hàng"])
    assert all(col["count"] == 0 for col in board["columns"])


# --- the board ----------------------------------------------------------------------------------


def test_board_has_one_column_per_stage_with_cards_days_and_overdue_markers(any_r: Runner) -> None:
    owners = pipeline(any_r)
    board = views.pipeline_board(any_r, "sales")
    assert [col["stage"] for col in board["columns"]] == SALES_ORDER
    assert _columns(board) == {
        "Tiếp nhận": ["KH2"],
        "Đã liên hệ": [],
        "Liên hệ lại": ["KH3"],
        "Cấp Demo": ["KH1"],
        "Đang chăm sóc": [],
        "Tiềm năng": [],
        "Chốt": [],
    }
    counts = {col["stage"]: (col["count"], col["overdue"]) for col in board["columns"]}
    assert counts["Liên hệ lại"] == (1, 1) and counts["Cấp Demo"] == (1, 0) and counts["Chốt"] == (0, 0)
    cards = {card["id"]: card for col in board["columns"] for card in col["cards"]}
    kh3 = cards["KH3"]
    assert (kh3["name"], kh3["owner"], kh3["days"]) == ("Trung tâm Kỹ năng Ánh Dương", owners["KH3"], 1)
    assert kh3["owner_name"] in {"Đỗ Thị An", "Phạm Văn Bình", "Vũ Thị Chi"}
    [late] = kh3["overdue"]
    assert late["name"] == "Gọi lại cho khách hàng"
    # 4 working hours after the 14:00 call-back (Task_recall counts business time): 3.5 h on Monday, 0.5 h on Tuesday
    assert late["due_at"] == datetime(2026, 12, 8, 8, 30, tzinfo=TZ)
    assert cards["KH1"]["overdue"] == [] and cards["KH1"]["days"] == 1
    assert cards["KH1"]["entered_at"] == START  # entered Cấp Demo on Monday 09:00
    # the 60-minute rule handed KH2 on to other reps all night: its card shows who has it now
    [kh2_task] = inbox.tasks(any_r, business_key="KH2")
    assert cards["KH2"]["owner"] == kh2_task["assignee"] and cards["KH2"]["overdue"] == []
    assert {o["username"] for o in board["owners"]} == {c["owner"] for c in cards.values()}


def test_days_in_stage_count_from_the_last_time_the_stage_was_entered(r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Anh ngữ Sao Mai", phone="0912345678")
    complete(r, "KH1", "Task_verify", {"verdict": "good"}, by=owner)
    advance(r, days=3)
    [card] = _columns_cards(views.pipeline_board(r, "sales"), "Đã liên hệ")
    assert card["days"] == 3
    complete(r, "KH1", "Task_call", {"call_result": "not_reached"}, by=owner)
    [card] = _columns_cards(views.pipeline_board(r, "sales"), "Liên hệ lại")
    assert card["days"] == 0 and card["entered_at"] == r.now()


def _columns_cards(board: dict, stage: str) -> list[dict]:
    [col] = [c for c in board["columns"] if c["stage"] == stage]
    return col["cards"]


def test_board_narrows_to_one_owner(r: Runner) -> None:
    owners = pipeline(r)
    everyone = views.pipeline_board(r, "sales")
    cards = [card for col in everyone["columns"] for card in col["cards"]]
    mine = views.pipeline_board(r, "sales", owner_name=owners["KH1"])
    expected = sorted(card["id"] for card in cards if card["owner"] == owners["KH1"])
    assert "KH1" in expected and len(expected) < len(cards)
    assert sorted(card["id"] for col in mine["columns"] for card in col["cards"]) == expected
    assert mine["owners"] == everyone["owners"]  # the filter still offers every owner on the board
    nobody = views.pipeline_board(r, "sales", owner_name="nobody")
    assert [col["count"] for col in nobody["columns"]] == [0] * len(SALES_ORDER)


def test_after_sale_board_lists_its_stages_even_when_empty(r: Runner) -> None:
    pipeline(r)
    board = views.pipeline_board(r, "onboarding")
    assert board["pipeline"] == "Sau bán hàng"
    assert [col["stage"] for col in board["columns"]] == AFTER_SALE_ORDER
    assert sum(col["count"] for col in board["columns"]) == 0


# --- the 360° timeline ------------------------------------------------------------------------------


def test_timeline_has_tasks_with_who_and_what_stages_messages_and_notes(any_r: Runner) -> None:
    owners = pipeline(any_r)
    views.add_note(any_r, "KH1", "Khách muốn xem thêm báo giá gói 12 tháng.", owners["KH1"])
    entries = views.timeline(any_r, "KH1")
    assert entries[0]["kind"] == "note" and entries[0]["actor"] == owners["KH1"]
    assert entries[0]["text"] == "Khách muốn xem thêm báo giá gói 12 tháng." and entries[0]["actor_name"]
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    tasks = [e for e in entries if e["kind"] == "task"]
    assert [e["title"] for e in tasks] == [
        "Khảo sát khách hàng & cấp Demo",
        "Gọi điện liên hệ khách hàng",
        "Thẩm định thông tin lead (Google, Facebook)",
    ]
    assert {e["actor"] for e in tasks} == {owners["KH1"]}
    assert tasks[2]["fields"] == [("Kết quả thẩm định", "Data chuẩn – liên hệ ngay")]  # enum id shown by name
    survey = dict(tasks[0]["fields"])
    assert survey["Số lượng nhân sự"] == 12 and survey["Có phòng ban chuyên biệt?"] is True
    stages = [e["title"] for e in entries if e["kind"] == "stage"]
    assert stages == ["Cấp Demo", "Đã liên hệ", "Tiếp nhận"]
    messages = [e for e in entries if e["kind"] == "message"]
    assert {(m["channel"], m["state"]) for m in messages} == {("email", "sent"), ("zalo", "sent")}
    email = next(m for m in messages if m["channel"] == "email")
    assert email["title"].startswith("[EasyEdu] Tài khoản dùng thử") and "trial.easyedu.vn/saomai" in email["text"]
    assert email["sent_at"] is not None and ("to", ["saomai@example.vn"]) in email["fields"]
    zalo = next(m for m in messages if m["channel"] == "zalo")
    assert zalo["title"] == "Dạ em chào anh/chị Trung tâm Anh ngữ Sao Mai!"  # no subject: its first line
    notes = [e for e in entries if e["kind"] == "note"]
    assert notes[-1]["text"] == SURVEY["call_note"] and notes[-1]["actor"] is None  # written by the process
    assert entries[-1]["kind"] == "instance" and entries[-1]["state"] == "started"
    assert entries[-1]["title"] == "Quy trình Bán hàng"


def test_timeline_shows_timers_fired_by_name(r: Runner) -> None:
    pipeline(r)
    [timer] = [e for e in views.timeline(r, "KH3") if e["kind"] == "timer"]
    assert timer["element_id"] == "Timer_recall" and timer["at"] == datetime(2026, 12, 7, 14, 0, tzinfo=TZ)
    assert timer["title"] == "Đến buổi gọi lại"  # the element's name in the diagram


def test_timeline_shows_an_incident_and_who_resolved_it(r: Runner) -> None:
    owner = lead(r, "KH1", "Trung tâm Anh ngữ Sao Mai", phone="0912345678")  # no e-mail yet
    complete(r, "KH1", "Task_verify", {"verdict": "good"}, by=owner)
    complete(r, "KH1", "Task_call", {"call_result": "reached"}, by=owner)
    complete(r, "KH1", "Task_survey", SURVEY, by=owner)
    advance(r, minutes=30)  # the e-mail handler runs out of tries
    [incident] = inbox.incidents(r)
    raised = [e for e in views.timeline(r, "KH1") if e["kind"] == "incident"]
    assert [(e["state"], e["element_id"]) for e in raised] == [("raised", "Svc_email_demo")]
    assert raised[0]["title"] == "Gửi tài khoản Demo qua Email" and "has no email" in raised[0]["text"]
    with r.db.unit() as s:
        crm.update_fields(s, crm.get_customer(s, "KH1"), {"email": "saomai@example.vn"})
    r.retry_incident(incident["id"], actor="tuan")
    advance(r, minutes=1)
    incidents = [e for e in views.timeline(r, "KH1", kinds=["incident"])]
    assert [(e["state"], e["actor_name"]) for e in incidents] == [("resolved", "Nguyễn Minh Tuấn"), ("raised", None)]


def test_timeline_can_be_narrowed_to_kinds(r: Runner) -> None:
    pipeline(r)
    views.add_note(r, "KH1", "Gọi lại sau 15h", "an")
    only = views.timeline(r, "KH1", kinds=["note", "stage"])
    assert {e["kind"] for e in only} == {"note", "stage"} and len(only) == 5


def test_timeline_of_an_unknown_customer_is_missing(r: Runner) -> None:
    with pytest.raises(Missing, match="customer 'KH404' does not exist"):
        views.timeline(r, "KH404")


# --- notes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,message", [("   ", "text: the note is empty"), ("x" * (views.NOTE_MAX + 1), "text: at most 5000 characters")]
)
def test_a_bad_note_is_refused_and_nothing_is_written(r: Runner, text: str, message: str) -> None:
    add_customer(r, "KH1", "Trung tâm Anh ngữ Sao Mai")
    with pytest.raises(BadValue, match=message):
        views.add_note(r, "KH1", text, "an")
    assert views.timeline(r, "KH1", kinds=["note"]) == []


def test_a_note_on_an_unknown_customer_is_missing(r: Runner) -> None:
    with pytest.raises(Missing):
        views.add_note(r, "KH404", "Xin chào", "an")


def test_a_note_is_stored_as_a_discussion_note_with_its_author(r: Runner) -> None:
    add_customer(r, "KH1", "Trung tâm Anh ngữ Sao Mai")
    note_id = views.add_note(r, "KH1", "  Khách hẹn tuần sau  ", "an")
    with r.db.read() as s:
        [note] = crm.customer_view(s, "KH1")["notes"]
    assert (note["id"], note["kind"], note["text"], note["author"]) == (
        note_id,
        "discussion",
        "Khách hẹn tuần sau",
        "an",
    )


# --- instances, bookings, search ---------------------------------------------------------------------


def test_instances_are_listed_running_first_with_what_they_wait_for(any_r: Runner) -> None:
    r = any_r
    pipeline(r)
    [sales] = views.instances(r, "KH3")
    assert (sales["process_name"], sales["version"], sales["status"]) == ("Quy trình Bán hàng", 1, "running")
    assert sales["stages"] == ["Liên hệ lại"] and sales["waiting"] == ["Gọi lại cho khách hàng"]
    assert views.instances(r, "KH404") == []
    # KH2 is bad data: back to marketing, whose task ends that instance; a new lead starts again
    [verify] = inbox.tasks(r, business_key="KH2")
    complete(r, "KH2", "Task_verify", {"verdict": "bad"}, by=verify["assignee"])
    complete(r, "KH2", "Task_mkt_returned", {"mkt_note": "Số điện thoại không đúng"}, by="mai")
    advance(r, hours=1)
    again = start(r, "sales", "KH2")
    found = views.instances(r, "KH2")
    assert [(i["id"] == again, i["status"]) for i in found] == [(True, "running"), (False, "completed")]
    assert found[1]["ended_at"] == START + timedelta(days=1) and found[1]["waiting"] == []


def test_bookings_of_a_customer_and_of_a_staff_member(any_r: Runner) -> None:
    r = any_r
    pipeline(r)
    monday = datetime(2026, 12, 14, 9, 0, tzinfo=TZ)
    with r.db.unit() as s:
        first = calendar.book(s, "minh", "KH1", monday, duration_minutes=90, now=r.now(), session_no=1)
        calendar.book(s, "minh", "KH3", monday + timedelta(days=1), duration_minutes=90, now=r.now(), session_no=1)
        calendar.book(s, "hoa", "KH1", monday + timedelta(days=2), duration_minutes=30, now=r.now(), kind="care")
        later = calendar.book(
            s, "minh", "KH1", monday + timedelta(days=8), duration_minutes=90, now=r.now(), session_no=2
        )
        calendar.cancel(s, first, r.now())
    rows = views.customer_bookings(r, "KH1")
    assert [(b["staff_name"], b["kind"], b["session_no"], b["status"]) for b in rows] == [
        ("Đỗ Thị An", "demo", None, "booked"),  # the sales procedure booked the demo with the rep
        ("Trần Văn Minh", "training", 1, "cancelled"),
        ("Trần Thị Hoa", "care", None, "booked"),
        ("Trần Văn Minh", "training", 2, "booked"),
    ]
    week = views.staff_bookings(r, "minh", monday, monday + timedelta(days=7))
    assert [(b["customer_name"], b["status"]) for b in week] == [
        ("Trung tâm Anh ngữ Sao Mai", "cancelled"),
        ("Trung tâm Kỹ năng Ánh Dương", "booked"),
    ]
    assert later.id not in {b["id"] for b in week}
    # an appointment that started before the window but runs into it is there too
    assert [
        b["id"] for b in views.staff_bookings(r, "minh", monday + timedelta(minutes=30), monday + timedelta(hours=1))
    ] == [first.id]


@pytest.mark.parametrize(
    "text,tag,expected",
    [
        ("sao mai", None, ["KH1"]),  # accents and case ignored
        ("Ánh Dương", None, ["KH3"]),
        ("0987 654", None, ["KH2"]),  # digits of the phone number
        ("liên hệ lại", None, ["KH3"]),  # a tag typed in the box
        ("", "CẤP DEMO", ["KH1"]),  # the tag filter
        ("trung tâm", "TIẾP NHẬN", ["KH1", "KH3"]),
        ("", None, ["KH1", "KH2", "KH3"]),
        ("không có", None, []),
    ],
)
def test_find_customers_by_name_phone_or_tag(r: Runner, text: str, tag: str | None, expected: list[str]) -> None:
    pipeline(r)
    rows = views.find_customers(r, text, tag=tag)
    assert [row["id"] for row in rows] == expected
    for row in rows:
        assert row["owner_name"] and "TIẾP NHẬN" in row["tags"] and "Trong bán hàng" in row["stages"]


def test_known_tags_are_the_tags_in_use(any_r: Runner) -> None:
    r = any_r
    pipeline(r)
    assert views.known_tags(r) == sorted({"TIẾP NHẬN", "ĐÃ LIÊN HỆ", "CẤP DEMO", "LIÊN HỆ LẠI"})
