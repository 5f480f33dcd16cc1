"""processes/sales.bpmn, the sales pipeline of seed 001: the diagram itself, then one scenario per path.

Every scenario runs the real diagram with the real crm/zalo/email handlers on the virtual
clock and asserts the stages entered, the tasks each role got, the outbox and the history.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from sqlalchemy import select

from runner.clock import FixedClock
from runner.crm import pages, views
from runner.crm.models import Booking, Order
from runner.engine.scripting import RestrictedScriptEngine
from runner.model import validation
from runner.model.document import BPMN_NS, BPMNDI_NS, CAMUNDA_NSS
from runner.registry import Registry
from runner.service.runtime import Runner
from tests.scenario import (
    START,
    TZ,
    add_customer,
    advance,
    company,
    complete,
    created_tasks,
    customer,
    history,
    instance_of,
    local_now,
    messages,
    open_tasks,
    outbox,
    runner_at,
    stages,
    start,
    task,
    timers_scheduled,
)

ROOT = Path(__file__).resolve().parents[1]  # the checkout
PROCESSES = ROOT / "processes"
SALES = PROCESSES / "sales.bpmn"
KH = "KH0001"
NS = {
    "bpmn": BPMN_NS,
    "bpmndi": BPMNDI_NS,
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "camunda": CAMUNDA_NSS[0],
}
SALES_STAGES = ("Tiếp nhận", "Đã liên hệ", "Liên hệ lại", "Cấp Demo", "Đang chăm sóc", "Tiềm năng", "Chốt")
CONTRACT_TOPICS = {
    "crm.add_note",
    "crm.add_tags",
    "crm.remove_tags",
    "crm.set_status",
    "crm.update_profile",
    "crm.assign_owner",
    "crm.assign_teacher",
    "crm.create_order",
    "crm.confirm_payment",
    "crm.create_contract",
    "booking.find_slots",
    "booking.book_sessions",
    "booking.appointment",
    "booking.reschedule",
    "booking.cancel",
    "zalo.send",
    "email.send",
}
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
PROMOTION = "Tặng thêm 1 tháng sử dụng khi ký hợp đồng 12 tháng trong tuần này."


def at(day: int, hour: int, minute: int = 0, month: int = 12, year: int = 2026) -> datetime:
    """A moment in business time (December 2026 unless told)."""
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


def company_runner(url: str, registry: Registry) -> Runner:
    """A runner at START with the company, the lead KH0001 and the diagrams deployed."""
    runner = runner_at(url, registry, START)
    company(runner)
    add_customer(
        runner, KH, "Trung tâm Anh ngữ Sao Mai", phone="0912345678", email="saomai@example.vn", source="Facebook"
    )
    runner.deploy([PROCESSES])  # sales hands over to onboarding, which calls care and renewal
    return runner


@pytest.fixture
def r(sqlite_url: str, registry: Registry) -> Iterator[Runner]:
    """The company on SQLite, its clock at Monday 7 December 2026, 09:00."""
    runner = company_runner(sqlite_url, registry)
    yield runner
    runner.db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_r(request: pytest.FixtureRequest, registry: Registry) -> Iterator[Runner]:
    """The same company on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    runner = company_runner(url, registry)
    yield runner
    runner.db.engine.dispose()


# --- steps shared by the scenarios --------------------------------------------------------------


def lead(runner: Runner, verdict: str = "good", by: str = "an") -> str:
    """Marketing hands over the lead; ten minutes later the sales rep verifies it."""
    instance_id = start(runner, "sales", KH)
    advance(runner, minutes=10)
    complete(runner, KH, "Task_verify", {"verdict": verdict}, by=by)
    return instance_id


def reached(runner: Runner, **survey) -> None:
    """The first call reaches the customer; the survey books the demo and issues the trial."""
    complete(runner, KH, "Task_call", {"call_result": "reached"}, by="an")
    complete(runner, KH, "Task_survey", {**SURVEY, **survey}, by="an")


def demo_given(runner: Runner, promising: bool, sample_contract: bool = False) -> None:
    """From the survey: reminder an hour before, confirmation, the demo on Wednesday 9 at 10:00."""
    advance(runner, to=at(9, 9))
    complete(runner, KH, "Task_confirm", {"demo_status": "confirmed"}, by="an")
    advance(runner, to=at(9, 10, 45))
    complete(
        runner,
        KH,
        "Task_demo",
        {
            "promising": promising,
            "negotiation_at": "2026-12-10T09:00:00",
            "sample_contract": sample_contract,
            "demo_note": "Khách quan tâm phân hệ học phí.",
        },
        by="an",
    )


def elements(runner: Runner, process_key: str = "sales") -> list[str]:
    """The element ids of the user tasks created so far, in order."""
    return [element for element, _, _ in created_tasks(runner, KH, process_key)]


def pushes(runner: Runner) -> list[str]:
    """``elements`` without the daily contacts and the negotiation reminder that run beside the pushes."""
    return [element for element in elements(runner) if element not in ("Task_w_daily", "Task_w_negotiation")]


# --- the diagram ----------------------------------------------------------------------------------


def _bounds(shape: etree._Element) -> tuple[float, float, float, float]:
    b = shape.find("dc:Bounds", NS)
    return tuple(float(b.get(k)) for k in ("x", "y", "width", "height"))  # type: ignore[return-value]


def _on_border(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    (px, py), (x, y, w, h) = point, box
    inside = x - 1 <= px <= x + w + 1 and y - 1 <= py <= y + h + 1
    return inside and min(abs(px - x), abs(px - x - w), abs(py - y), abs(py - y - h)) <= 1


def test_diagram_is_camunda_7_with_full_interchange_lanes_and_stages() -> None:
    tree = etree.parse(str(SALES))
    BpmnValidator().validate(tree)  # the OMG BPMN 2.0 schema (with DI), as Camunda Modeler writes it
    root = tree.getroot()
    assert root.get("exporter") == "Camunda Modeler" and root.nsmap.get("camunda") == CAMUNDA_NSS[0]
    [participant] = root.findall("bpmn:collaboration/bpmn:participant", NS)
    [process] = root.findall("bpmn:process", NS)
    assert (participant.get("processRef"), process.get("id"), process.get("isExecutable")) == ("sales", "sales", "true")

    shapes = {s.get("bpmnElement"): s for s in root.iter(f"{{{BPMNDI_NS}}}BPMNShape")}
    edges = {e.get("bpmnElement"): e for e in root.iter(f"{{{BPMNDI_NS}}}BPMNEdge")}
    skip = {
        "sequenceFlow",
        "laneSet",
        "lane",
        "documentation",
        "extensionElements",
        "incoming",
        "outgoing",
        "conditionExpression",
        "script",
    }
    nodes = [
        el
        for el in process.iter(f"{{{BPMN_NS}}}*")
        if el is not process
        and el.get("id")
        and etree.QName(el).localname not in skip
        and not etree.QName(el).localname.endswith("Definition")
    ]
    assert len(nodes) > 80
    assert [n.get("id") for n in nodes if n.get("id") not in shapes] == []
    lanes = process.findall("bpmn:laneSet/bpmn:lane", NS)
    assert all(el.get("id") in shapes for el in [participant, *lanes])

    # Lanes are the roles: every top-level flow node sits in exactly one of them.
    groups = {
        lane.get("name"): lane.find(
            "bpmn:extensionElements/camunda:properties/camunda:property[@name='group']", NS
        ).get("value")
        for lane in lanes
    }
    assert groups == {
        "Marketing": "marketing",
        "Kinh doanh": "sales",
        "Team Leader": "team_leader",
        "Kế toán": "accountant",
    }
    refs = [ref.text for lane in lanes for ref in lane.findall("bpmn:flowNodeRef", NS)]
    top_level = [n.get("id") for n in nodes if n.getparent() is process]
    assert sorted(refs) == sorted(top_level)

    # Every flow has an edge whose ends touch its source and target shapes.
    flows = list(process.iter(f"{{{BPMN_NS}}}sequenceFlow"))
    for flow in flows:
        points = [(float(p.get("x")), float(p.get("y"))) for p in edges[flow.get("id")].findall("di:waypoint", NS)]
        assert len(points) >= 2, flow.get("id")
        assert _on_border(points[0], _bounds(shapes[flow.get("sourceRef")])), flow.get("id")
        assert _on_border(points[-1], _bounds(shapes[flow.get("targetRef")])), flow.get("id")
        assert all(a[0] == b[0] or a[1] == b[1] for a, b in itertools.pairwise(points)), flow.get("id")  # orthogonal

    # Shapes stay inside their lane (and the subprocess's children inside it).
    lane_box = {lane.get("id"): _bounds(shapes[lane.get("id")]) for lane in lanes}
    for lane in lanes:
        x, y, w, h = lane_box[lane.get("id")]
        for ref in lane.findall("bpmn:flowNodeRef", NS):
            sx, sy, sw, sh = _bounds(shapes[ref.text])
            assert x <= sx and sx + sw <= x + w and y <= sy and sy + sh <= y + h, ref.text
    for sub in process.findall("bpmn:subProcess", NS):
        x, y, w, h = _bounds(shapes[sub.get("id")])
        for child in sub:
            if child.get("id") in shapes:
                cx, cy, cw, ch = _bounds(shapes[child.get("id")])
                assert x <= cx and cx + cw <= x + w and y <= cy and cy + ch <= y + h, child.get("id")

    stage_values = [p.get("value") for p in process.iter(f"{{{CAMUNDA_NSS[0]}}}property") if p.get("name") == "stage"]
    assert set(stage_values) == set(SALES_STAGES)
    topics = {el.get(f"{{{CAMUNDA_NSS[0]}}}topic") for el in process.iter(f"{{{BPMN_NS}}}serviceTask")}
    assert topics <= CONTRACT_TOPICS
    assert [m.get("name") for m in root.findall("bpmn:message", NS)] == ["start_onboarding"]


def test_deploys_with_the_real_handlers_and_no_problems(runner: Runner, registry: Registry) -> None:
    files = {"sales.bpmn": SALES.read_bytes()}
    assert validation.validate(files, topics=registry.topics(), checks=registry.checks()) == []
    [deployed] = runner.deploy(files, actor="admin")
    assert (deployed.process_key, deployed.version) == ("sales", 1)


def test_local_now_reads_the_runner_clock_in_the_business_time_zone() -> None:
    engine = RestrictedScriptEngine(FixedClock(datetime(2026, 12, 7, 2, 0, tzinfo=UTC)), TZ)
    assert engine.environment.evaluate("local_now().hour", {}) == 9
    assert engine.environment.evaluate("local_now() == now()", {}) is True
    context: dict = {}
    engine.environment.execute("hour = local_now().hour", context)
    assert context == {"hour": 9}  # the clock functions never become instance data


# --- Tiếp nhận -------------------------------------------------------------------------------------


def test_lead_not_contacted_within_60_minutes_is_reassigned_to_another_sales_rep(r: Runner) -> None:
    start(r, "sales", KH)
    first = task(r, KH, "Task_verify")
    assert (first["assignee"], first["candidate_groups"], first["stage"]) == ("an", ["sales"], "Tiếp nhận")
    assert first["due_at"] == at(7, 10).astimezone(UTC)
    assert customer(r, KH)["tags"] == ["TIẾP NHẬN"]
    # Two more leads go round the other reps, who verify theirs in time: an is now the one
    # assigned longest ago, so plain round-robin would hand KH0001 straight back to an.
    for customer_id, rep in (("KH0002", "binh"), ("KH0003", "chi")):
        advance(r, minutes=1)
        add_customer(r, customer_id, f"Trung tâm {customer_id}", phone="0900000000")
        start(r, "sales", customer_id)
        complete(r, customer_id, "Task_verify", {"verdict": "good"}, by=rep)

    advance(r, to=at(7, 9, 59))
    assert task(r, KH, "Task_verify")["id"] == first["id"]
    advance(r, minutes=1)  # 10:00: not contacted in 60 minutes -> marketing gives it to another rep
    second = task(r, KH, "Task_verify")
    assert (second["assignee"], customer(r, KH)["owner"]) == ("binh", "binh")
    with pytest.raises(AssertionError, match="an cannot work on Task_verify"):
        complete(r, KH, "Task_verify", {"verdict": "good"}, by="an")

    advance(r, minutes=60)  # 11:00: binh did not either -> round-robin among the others: an (09:00) before chi
    assert task(r, KH, "Task_verify")["assignee"] == "an"
    advance(r, minutes=20)
    complete(r, KH, "Task_verify", {"verdict": "good"}, by="an")

    assert task(r, KH, "Task_call")["assignee"] == "an"
    assert created_tasks(r, KH) == [
        ("Task_verify", ("sales",), "an"),
        ("Task_verify", ("sales",), "binh"),
        ("Task_verify", ("sales",), "an"),
        ("Task_call", ("sales",), "an"),
    ]
    fired = [(h["element_id"], h["at"].astimezone(TZ)) for h in history(r, KH, "timer.fired")]
    assert fired == [("Timer_60", at(7, 10)), ("Timer_60", at(7, 11))]
    assert [h["details"]["task_id"] for h in history(r, KH, "task.cancelled")] == [first["id"], second["id"]]
    assert stages(r, KH) == ["Tiếp nhận", "Đã liên hệ"]
    assert customer(r, KH)["tags"] == ["TIẾP NHẬN", "ĐÃ LIÊN HỆ"]
    assert messages(r, KH) == []


@pytest.mark.parametrize("doubtful", [False, True], ids=["bad", "doubtful-then-bad"])
def test_bad_lead_goes_back_to_marketing_tagged_sale_tra_lai(r: Runner, doubtful: bool) -> None:
    instance_id = lead(r, "doubtful" if doubtful else "bad")
    if doubtful:
        tl = task(r, KH, "Task_tl_verify")
        assert (tl["candidate_groups"], tl["assignee"], tl["stage"]) == (["team_leader"], None, "Tiếp nhận")
        complete(r, KH, "Task_tl_verify", {"tl_verdict": "bad"}, by="tuan")

    back = task(r, KH, "Task_mkt_returned")
    assert (back["candidate_groups"], back["lane"]) == (["marketing"], "Marketing")
    assert customer(r, KH)["tags"] == ["SALE TRẢ LẠI"]  # TIẾP NHẬN removed from the sales pipeline
    complete(r, KH, "Task_mkt_returned", {"mkt_note": "Số điện thoại không có thật."}, by="mai")

    assert instance_of(r, KH, "sales")["status"] == "completed"
    expected = [("Task_verify", ("sales",), "an")]
    if doubtful:
        expected.append(("Task_tl_verify", ("team_leader",), None))
    assert created_tasks(r, KH) == [*expected, ("Task_mkt_returned", ("marketing",), None)]
    assert stages(r, KH) == ["Tiếp nhận"]
    assert messages(r, KH) == []
    done = [h["element_id"] for h in history(r, KH, "task.completed")]
    assert done[-1] == "Task_mkt_returned" and history(r, KH)[-1]["event"] == "instance.completed"
    assert instance_id == instance_of(r, KH, "sales")["id"]


# --- Đã liên hệ / Liên hệ lại ------------------------------------------------------------------------


def test_not_reached_twice_calls_back_the_next_half_days(r: Runner) -> None:
    lead(r)
    advance(r, to=at(7, 9, 30))
    complete(r, KH, "Task_call", {"call_result": "not_reached"}, by="an")  # Monday morning

    assert timers_scheduled(r, KH, "Timer_recall") == [at(7, 14)]  # -> the same afternoon
    assert customer(r, KH)["tags"] == ["TIẾP NHẬN", "ĐÃ LIÊN HỆ", "LIÊN HỆ LẠI"]
    assert instance_of(r, KH, "sales")["stages"] == ["Liên hệ lại"]
    advance(r, to=at(7, 13, 59))
    assert open_tasks(r, KH) == []
    advance(r, minutes=1)
    recall = task(r, KH, "Task_recall")
    assert (recall["assignee"], recall["stage"], recall["created_at"]) == ("an", "Liên hệ lại", r.now())

    advance(r, to=at(7, 15))
    complete(r, KH, "Task_recall", {"call_result": "not_reached"}, by="an")  # Monday afternoon
    assert timers_scheduled(r, KH, "Timer_recall") == [at(7, 14), at(8, 8)]  # -> Tuesday morning
    advance(r, to=at(8, 7, 59))
    assert open_tasks(r, KH) == []
    advance(r, minutes=1)
    advance(r, minutes=30)
    complete(r, KH, "Task_recall", {"call_result": "reached"}, by="an")

    assert task(r, KH, "Task_survey")["stage"] == "Đã liên hệ"
    assert instance_of(r, KH, "sales")["data"]["call_attempts"] == 2
    assert elements(r) == ["Task_verify", "Task_call", "Task_recall", "Task_recall", "Task_survey"]
    assert {assignee for _, _, assignee in created_tasks(r, KH)} == {"an"}
    assert stages(r, KH) == ["Tiếp nhận", "Đã liên hệ", "Liên hệ lại", "Đã liên hệ"]
    fired = [h["at"].astimezone(TZ) for h in history(r, KH, "timer.fired") if h["element_id"] == "Timer_recall"]
    assert fired == [at(7, 14), at(8, 8)]
    assert messages(r, KH) == []


@pytest.mark.parametrize(
    "called, callback",
    [
        (at(8, 7, 15), at(8, 14)),  # before the working day: that afternoon
        (at(7, 11, 59), at(7, 14)),  # morning -> afternoon
        (at(7, 12), at(8, 8)),  # afternoon -> next morning
        (at(7, 22, 30), at(8, 8)),  # evening -> next morning
        (at(11, 15), at(12, 8)),  # Friday afternoon -> Saturday morning
        (at(12, 9), at(14, 8)),  # Saturday morning: no working afternoon, never Sunday -> Monday
        (at(12, 13), at(14, 8)),
        (at(31, 16), at(2, 8, month=1, year=2027)),  # across the year's end: New Year's Day is a holiday
        (at(3, 15, month=2, year=2027), at(11, 8, month=2, year=2027)),  # never during Tết (4-10 Feb 2027)
    ],
)
def test_call_back_is_booked_for_the_next_working_half_day(r: Runner, called: datetime, callback: datetime) -> None:
    lead(r)
    advance(r, to=called)
    complete(r, KH, "Task_call", {"call_result": "not_reached"}, by="an")
    assert timers_scheduled(r, KH, "Timer_recall") == [callback]
    assert instance_of(r, KH, "sales")["data"]["callback_at"] == callback.isoformat()


def test_customer_not_interested_ends_the_pipeline(r: Runner) -> None:
    lead(r)
    complete(r, KH, "Task_call", {"call_result": "not_interested"}, by="an")
    assert instance_of(r, KH, "sales")["status"] == "completed"
    assert stages(r, KH) == ["Tiếp nhận", "Đã liên hệ"]
    assert history(r, KH)[-1]["event"] == "instance.completed"
    assert messages(r, KH) == [] and open_tasks(r, KH) == []


@pytest.mark.parametrize("decision", ["remarketing", "retry"])
def test_doubtful_lead_goes_to_the_team_leader_and_remarketing_after_repeated_failures(
    r: Runner, decision: str
) -> None:
    lead(r, "doubtful")
    with pytest.raises(AssertionError, match="an cannot work on Task_tl_verify"):
        complete(r, KH, "Task_tl_verify", {"tl_verdict": "contact"}, by="an")
    complete(r, KH, "Task_tl_verify", {"tl_verdict": "contact"}, by="tuan")
    for moment in (at(7, 9, 30), at(7, 14, 10), at(8, 8, 10)):  # three calls nobody answers
        advance(r, to=moment)
        complete(r, KH, "Task_recall" if moment.hour != 9 else "Task_call", {"call_result": "not_reached"}, by="an")

    review = task(r, KH, "Task_tl_review")
    assert (review["candidate_groups"], review["stage"]) == (["team_leader"], "Liên hệ lại")
    complete(r, KH, "Task_tl_review", {"tl_decision": decision}, by="tuan")

    assert elements(r) == ["Task_verify", "Task_tl_verify", "Task_call", "Task_recall", "Task_recall", "Task_tl_review"]
    if decision == "remarketing":
        assert instance_of(r, KH, "sales")["status"] == "completed"
        assert customer(r, KH)["tags"] == ["TIẾP NHẬN", "ĐÃ LIÊN HỆ", "LIÊN HỆ LẠI", "REMARKETING"]
    else:
        assert open_tasks(r, KH) == []
        advance(r, to=at(8, 14))  # the third failure was on Tuesday morning -> Tuesday afternoon
        assert task(r, KH, "Task_recall")["created_at"] == at(8, 14).astimezone(UTC)
        assert "REMARKETING" not in customer(r, KH)["tags"]
    assert stages(r, KH) == ["Tiếp nhận", "Đã liên hệ", "Liên hệ lại"]
    assert messages(r, KH) == []


# --- Cấp Demo -------------------------------------------------------------------------------------------


def demo_bookings(r: Runner) -> list[tuple]:
    """The customer's demo appointments: id, staff, start and end (business time), status, times changed."""
    with r.db.read() as s:
        rows = s.scalars(select(Booking).where(Booking.customer_id == KH, Booking.kind == "demo").order_by(Booking.id))
        return [
            (b.id, b.teacher, b.start_at.astimezone(TZ), b.end_at.astimezone(TZ), b.status, b.sequence) for b in rows
        ]


def test_demo_is_issued_by_email_and_zalo_and_reminded_an_hour_before(r: Runner) -> None:
    instance_id = lead(r)
    advance(r, to=at(7, 9, 30))
    reached(r)

    profile = customer(r, KH)
    assert {
        k: profile[k]
        for k in (
            "business_model",
            "dedicated_department",
            "staff_count",
            "student_count",
            "course_model",
            "trial_link",
            "zalo_user_id",
        )
    } == {
        k: SURVEY[k]
        for k in (
            "business_model",
            "dedicated_department",
            "staff_count",
            "student_count",
            "course_model",
            "trial_link",
            "zalo_user_id",
        )
    }
    assert profile["tags"] == ["TIẾP NHẬN", "ĐÃ LIÊN HỆ", "CẤP DEMO"]
    assert SURVEY["call_note"] in [n["text"] for n in profile["notes"]]
    sent = outbox(r, KH)
    assert messages(r, KH) == [("email", "demo_account"), ("zalo", "demo_account")]
    assert sent[0]["payload"]["to"] == ["saomai@example.vn"] and SURVEY["trial_link"] in sent[0]["payload"]["body"]
    assert sent[1]["payload"]["recipient_id"] == "zl-saomai" and SURVEY["trial_link"] in sent[1]["payload"]["text"]
    assert timers_scheduled(r, KH, "Timer_demo_reminder") == [at(9, 9)]  # demo on Wednesday 10:00
    # The appointment is in the rep's calendar (and so in its feed).
    [(booking_id, *booked)] = demo_bookings(r)
    assert booked == ["an", at(9, 10), at(9, 11), "booked", 0]

    advance(r, to=at(9, 8, 59))
    assert len(messages(r, KH)) == 2 and open_tasks(r, KH) == []
    advance(r, minutes=1)  # one hour before: confirmation with the meeting room, and a call to make
    confirmation = outbox(r, KH)[-1]["payload"]
    assert (confirmation["template"], confirmation["to"]) == ("demo_confirmation", "user")
    assert "10:00" in confirmation["text"] and "online.emso.vn/TrungTamAnhNguSaoMai" in confirmation["text"]
    confirm = task(r, KH, "Task_confirm")
    assert (confirm["due_at"], confirm["stage"]) == (at(9, 9, 30).astimezone(UTC), "Cấp Demo")

    complete(r, KH, "Task_confirm", {"demo_status": "rescheduled", "demo_at": "2026-12-10T15:00:00"}, by="an")
    assert timers_scheduled(r, KH, "Timer_demo_reminder") == [at(9, 9), at(10, 14)]
    assert demo_bookings(r) == [(booking_id, "an", at(10, 15), at(10, 16), "booked", 1)]  # the same event, moved
    advance(r, to=at(10, 14))
    assert messages(r, KH)[-1] == ("zalo", "demo_confirmation") and "15:00" in outbox(r, KH)[-1]["payload"]["text"]
    complete(r, KH, "Task_confirm", {"demo_status": "confirmed"}, by="an")
    demo = task(r, KH, "Task_demo")
    assert (demo["due_at"], demo["assignee"]) == (at(10, 15, 45).astimezone(UTC), "an")

    assert elements(r) == ["Task_verify", "Task_call", "Task_survey", "Task_confirm", "Task_confirm", "Task_demo"]
    assert stages(r, KH) == ["Tiếp nhận", "Đã liên hệ", "Cấp Demo"]
    assert messages(r, KH, instance_id) == [
        ("email", "demo_account"),
        ("zalo", "demo_account"),
        ("zalo", "demo_confirmation"),
        ("zalo", "demo_confirmation"),
    ]


# --- Đàm phán hợp đồng ----------------------------------------------------------------------------------


@pytest.mark.parametrize("approved", [True, False])
def test_closing_pushes_every_3_days_and_default_promotion_at_day_7(r: Runner, approved: bool) -> None:
    lead(r)
    advance(r, to=at(7, 9, 30))
    reached(r)
    demo_given(r, promising=False, sample_contract=True)  # Wednesday 9, 10:45

    profile = customer(r, KH)
    assert profile["status"] == "Đang chăm sóc"
    assert profile["tags"] == ["TIẾP NHẬN", "ĐÃ LIÊN HỆ", "CẤP DEMO", "ĐÃ HƯỚNG DẪN"]  # not promising
    push = task(r, KH, "Task_w_warm")
    # Not promising, but not "Đang chăm sóc" before the 7-day closing point (seed 001): still Cấp Demo.
    assert (push["stage"], push["assignee"], push["due_at"]) == ("Cấp Demo", "an", at(10, 10, 45).astimezone(UTC))
    assert customer(r, KH)["stages"]["Trong bán hàng"] == "Cấp Demo"
    assert timers_scheduled(r, KH, "Timer_7d") == [at(16, 10, 45)]  # the 7-day closing point

    advance(r, minutes=15)
    complete(
        r, KH, "Task_w_warm", {"negotiation_result": "continue", "negotiation_note": "Khách cần hỏi ý sếp."}, by="an"
    )
    advance(r, to=at(12, 11))  # Saturday morning: the next push, 3 working days later
    advance(r, minutes=30)
    complete(r, KH, "Task_w_warm", {"negotiation_result": "continue", "negotiation_note": "Hẹn gọi lại."}, by="an")
    # The pushes count working days (business time): Sunday does not, so the third is due
    # on Wednesday 11:30, after the closing point.
    assert timers_scheduled(r, KH, "Timer_w_3d") == [at(12, 11), at(16, 11, 30)]
    advance(r, to=at(15, 17, 30))
    assert {t["element_id"] for t in open_tasks(r, KH)} == {"Task_w_daily", "Task_w_negotiation"}  # left undone
    assert stages(r, KH) == ["Tiếp nhận", "Đã liên hệ", "Cấp Demo"]

    advance(r, to=at(16, 10, 45))  # the closing point passes without a deal
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_promo_approve"]
    approval = task(r, KH, "Task_promo_approve")
    assert (approval["candidate_groups"], approval["stage"]) == (["team_leader"], "Đang chăm sóc")
    complete(r, KH, "Task_promo_approve", {"promotion_approved": approved, "promotion": PROMOTION}, by="tuan")

    sent = messages(r, KH)
    assert sent[:5] == [
        ("email", "demo_account"),
        ("zalo", "demo_account"),
        ("zalo", "demo_confirmation"),
        ("email", "sample_contract"),
        ("zalo", "negotiation_reminder"),
    ]
    if approved:
        assert sent[5:] == [("zalo", "promotion")] and PROMOTION in outbox(r, KH)[-1]["payload"]["text"]
    else:
        assert sent[5:] == []
    care = task(r, KH, "Task_care")
    assert (care["stage"], care["assignee"]) == ("Đang chăm sóc", "an")
    advance(r, minutes=15)
    complete(r, KH, "Task_care", {"negotiation_result": "continue", "negotiation_note": "Chưa quyết."}, by="an")
    assert timers_scheduled(r, KH, "Timer_c_3d") == [at(19, 11)]  # pushes go on every 3 days after the window
    advance(r, to=at(19, 11))
    complete(r, KH, "Task_care", {"negotiation_result": "lost", "negotiation_note": "Đã chọn phần mềm khác."}, by="an")

    assert instance_of(r, KH, "sales")["status"] == "completed"
    assert pushes(r) == [
        "Task_verify",
        "Task_call",
        "Task_survey",
        "Task_confirm",
        "Task_demo",
        "Task_w_warm",
        "Task_w_warm",
        "Task_promo_approve",
        "Task_care",
        "Task_care",
    ]
    entered = [(h["details"]["stage"], h["at"]) for h in history(r, KH, "stage.entered")]
    assert entered[-1] == ("Đang chăm sóc", at(16, 10, 45).astimezone(UTC))  # at the closing point, not on demo day
    assert ("Task_promo_approve", ("team_leader",), None) in created_tasks(r, KH)
    assert stages(r, KH) == ["Tiếp nhận", "Đã liên hệ", "Cấp Demo", "Đang chăm sóc"]
    notes = [n["text"] for n in customer(r, KH)["notes"]]
    assert "Đã chọn phần mềm khác." in notes and "Khách quan tâm phân hệ học phí." in notes


def negotiation_bookings(r: Runner) -> list[tuple]:
    """The customer's negotiation appointments: id, staff, start and end (business time), status, times changed."""
    with r.db.read() as s:
        rows = s.scalars(
            select(Booking).where(Booking.customer_id == KH, Booking.kind == "negotiation").order_by(Booking.id)
        )
        return [
            (b.id, b.teacher, b.start_at.astimezone(TZ), b.end_at.astimezone(TZ), b.status, b.sequence) for b in rows
        ]


def test_negotiation_appointment_is_in_the_reps_calendar_and_reminded_an_hour_before(any_r: Runner) -> None:
    r = any_r
    lead(r)
    advance(r, to=at(7, 9, 30))
    reached(r)
    demo_given(r, promising=True)  # Wednesday 9 at 10:45; negotiation_at: Thursday 10 at 09:00

    [(booking_id, *booked)] = negotiation_bookings(r)
    assert booked == ["an", at(10, 9), at(10, 10), "booked", 0]
    week = views.staff_bookings(r, "an", at(7, 0), at(14, 0))  # "Lịch của tôi"
    assert [(b["kind"], b["start_at"].astimezone(TZ)) for b in week] == [
        ("demo", at(9, 10)),
        ("negotiation", at(10, 9)),
    ]
    feed = pages.calendar_feed(r, "an", since=at(1, 0), tz=TZ).decode()
    assert "SUMMARY:Đàm phán hợp đồng - Trung tâm Anh ngữ Sao Mai" in feed
    assert "DTSTART;TZID=Asia/Ho_Chi_Minh:20261210T090000" in feed
    assert timers_scheduled(r, KH, "Timer_w_negotiation") == [at(10, 8)]

    advance(r, to=at(10, 7, 59))
    assert ("zalo", "negotiation_reminder") not in messages(r, KH)
    assert "Task_w_negotiation" not in [t["element_id"] for t in open_tasks(r, KH)]
    advance(r, minutes=1)  # an hour before: the customer is reminded with the meeting room, the rep gets a call
    reminder = outbox(r, KH)[-1]
    assert (reminder["channel"], reminder["payload"]["template"], reminder["payload"]["to"]) == (
        "zalo",
        "negotiation_reminder",
        "user",
    )
    assert reminder["created_at"].astimezone(TZ) == at(10, 8)
    text = reminder["payload"]["text"]
    assert "09:00" in text and "online.emso.vn/TrungTamAnhNguSaoMai" in text
    call = task(r, KH, "Task_w_negotiation")
    assert (call["assignee"], call["due_at"]) == ("an", at(10, 8, 30).astimezone(UTC))
    complete(r, KH, "Task_w_negotiation", {"negotiation_confirmed": True}, by="an")

    advance(r, to=at(10, 10))  # won at the appointment: nothing of the talks is left behind
    complete(r, KH, "Task_w_hot", {"negotiation_result": "won", "negotiation_note": "Chốt tại buổi đàm phán."}, by="an")
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_contract"]
    assert timers_scheduled(r, KH, "Timer_w_daily") == [at(10, 10, 45)]
    advance(r, to=at(11, 11))
    assert [h["element_id"] for h in history(r, KH, "timer.fired")].count("Timer_w_daily") == 0
    assert negotiation_bookings(r) == [(booking_id, "an", at(10, 9), at(10, 10), "booked", 0)]


def test_daily_contact_tasks_in_business_time_beside_the_3_day_pushes(r: Runner) -> None:
    lead(r)
    advance(r, to=at(7, 9, 30))
    reached(r)
    demo_given(r, promising=False)  # Wednesday 9 at 10:45: the 7-day closing window opens
    advance(r, minutes=15)
    complete(r, KH, "Task_w_warm", {"negotiation_result": "continue", "negotiation_note": "Hỏi ý sếp."}, by="an")
    advance(r, to=at(10, 8))
    complete(r, KH, "Task_w_negotiation", {"negotiation_confirmed": True}, by="an")

    # Every working day at the time the window opened; Sunday 13 is not one. Each is due four
    # working hours later (Saturday closes at 12:00, so Saturday's is due on Monday).
    days = [
        (at(10, 10, 45), at(10, 14, 45)),
        (at(11, 10, 45), at(11, 14, 45)),
        (at(12, 10, 45), at(14, 10, 45)),
        (at(14, 10, 45), at(14, 14, 45)),
        (at(15, 10, 45), at(15, 14, 45)),
    ]
    for n, (created, due) in enumerate(days, 1):
        advance(r, to=created - timedelta(minutes=1))
        assert "Task_w_daily" not in [t["element_id"] for t in open_tasks(r, KH)], n
        advance(r, minutes=1)
        daily = task(r, KH, "Task_w_daily")
        assert (daily["assignee"], daily["created_at"], daily["due_at"]) == (
            "an",
            created.astimezone(UTC),
            due.astimezone(UTC),
        )
        assert daily["stage"] is None and customer(r, KH)["stages"]["Trong bán hàng"] == "Cấp Demo"
        advance(r, minutes=30)
        complete(r, KH, "Task_w_daily", {"daily_channel": "zalo", "daily_note": f"Hỏi thăm ngày {n}."}, by="an")
        if created.day == 12:  # Saturday: the 3-day push comes beside the daily contact
            advance(r, to=at(12, 11, 30))
            push = task(r, KH, "Task_w_warm")
            assert push["created_at"] == at(12, 11).astimezone(UTC)
            complete(r, KH, "Task_w_warm", {"negotiation_result": "continue", "negotiation_note": "Chưa."}, by="an")

    fired = [h["at"].astimezone(TZ) for h in history(r, KH, "timer.fired") if h["element_id"] == "Timer_w_daily"]
    assert fired == [created for created, _ in days]
    assert [h["at"].astimezone(TZ) for h in history(r, KH, "task.created") if h["element_id"] == "Task_w_warm"] == [
        at(9, 10, 45),
        at(12, 11),
    ]
    notes = [n["text"] for n in customer(r, KH)["notes"]]  # the newest few, newest first
    assert notes[:2] == ["Hỏi thăm ngày 5.", "Hỏi thăm ngày 4."]

    advance(r, to=at(16, 10, 45))  # the closing point: the window, its daily contacts and pushes end
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_promo_approve"]
    assert customer(r, KH)["stages"]["Trong bán hàng"] == "Đang chăm sóc"
    assert timers_scheduled(r, KH, "Timer_w_daily")[-1] == at(16, 10, 45)
    assert len(fired) == 5


# --- Chốt ------------------------------------------------------------------------------------------------


def test_won_customer_pays_starts_onboarding_and_gets_the_30_day_upsell_call(any_r: Runner) -> None:
    r = any_r
    instance_id = lead(r)
    advance(r, to=at(7, 9, 30))
    reached(r)
    demo_given(r, promising=True)

    # (tags added in the same moment come in name order)
    assert customer(r, KH)["tags"] == ["TIẾP NHẬN", "ĐÃ LIÊN HỆ", "CẤP DEMO", "TIỀM NĂNG", "ĐÃ HƯỚNG DẪN"]
    assert task(r, KH, "Task_w_hot")["stage"] == "Tiềm năng"
    advance(r, minutes=15)
    complete(r, KH, "Task_w_hot", {"negotiation_result": "continue", "negotiation_note": "Gửi báo giá."}, by="an")
    advance(r, to=at(12, 11, 30))
    complete(r, KH, "Task_w_hot", {"negotiation_result": "won", "negotiation_note": "Chốt gói Chuyên nghiệp."}, by="an")

    # The talks ended: the daily contacts and the negotiation reminder left undone are withdrawn.
    assert [t["element_id"] for t in open_tasks(r, KH)] == ["Task_contract"]
    contract = task(r, KH, "Task_contract")
    assert (contract["stage"], contract["assignee"]) == ("Chốt", "an")
    complete(
        r,
        KH,
        "Task_contract",
        {"package": "Gói Chuyên nghiệp", "amount": 12_000_000, "contract_months": 12, "promotion_terms": "Không"},
        by="an",
    )
    payment = task(r, KH, "Task_payment")
    assert (payment["candidate_groups"], payment["lane"], payment["stage"]) == (["accountant"], "Kế toán", "Chốt")
    with pytest.raises(AssertionError, match="an cannot work on Task_payment"):
        complete(r, KH, "Task_payment", {"paid": True}, by="an")
    complete(r, KH, "Task_payment", {"paid": False}, by="ketoan")
    assert open_tasks(r, KH) == []
    # The accountant checks again one working day later: Saturday 11:30 → Monday 11:30.
    assert timers_scheduled(r, KH, "Timer_pay") == [at(14, 11, 30)]
    advance(r, to=at(14, 11, 29))
    assert open_tasks(r, KH) == []
    advance(r, minutes=1)
    complete(r, KH, "Task_payment", {"paid": True}, by="ketoan")
    with r.db.read() as s:
        order = s.scalars(select(Order).where(Order.customer_id == KH)).one()
    # The payment is recorded as confirmed by whoever completed the task (currentUser()).
    assert (order.status, order.confirmed_by) == ("paid", "ketoan")

    profile = customer(r, KH)
    assert profile["status"] == "Hoạt động"
    assert profile["tags"][-1] == "ĐÃ CHỐT"
    assert (profile["package"], profile["contract_start"], profile["contract_end"]) == (
        "Gói Chuyên nghiệp",
        "2026-12-12",
        "2027-12-12",
    )
    data = instance_of(r, KH, "sales")["data"]
    assert (data["paid"], data["tags"][-1]) == (True, "ĐÃ CHỐT")
    assert messages(r, KH, instance_id) == [
        ("email", "demo_account"),
        ("zalo", "demo_account"),
        ("zalo", "demo_confirmation"),
        ("zalo", "negotiation_reminder"),
        ("zalo", "welcome_active"),
    ]
    assert "12/12/2027" in outbox(r, KH, instance_id)[-1]["payload"]["text"]

    # The hand-off: the post-sale pipeline starts at TIẾP NHẬN for the same customer, with the contract.
    onboarding = instance_of(r, KH, "onboarding")
    assert onboarding["business_key"] == KH
    assert {k: onboarding["data"][k] for k in ("package", "contract_start", "contract_end", "owner")} == {
        "package": "Gói Chuyên nghiệp",
        "contract_start": "2026-12-12",
        "contract_end": "2027-12-12",
        "owner": "an",
    }
    assert stages(r, KH, "onboarding")[0] == "TIẾP NHẬN"
    started = history(r, KH, "instance.started")[-1]
    assert (started["process_key"], started["details"]["trigger"]) == ("onboarding", ["message", "start_onboarding"])

    paid_at = local_now(r)
    assert timers_scheduled(r, KH, "Timer_30d") == [paid_at + timedelta(days=30)]
    advance(r, days=30)
    upsell = task(r, KH, "Task_upsell")
    assert (upsell["assignee"], upsell["created_at"]) == ("an", (paid_at + timedelta(days=30)).astimezone(UTC))
    complete(r, KH, "Task_upsell", {"upsell_interest": True, "upsell_note": "Muốn thêm 1 cơ sở."}, by="an")

    assert instance_of(r, KH, "sales")["status"] == "completed"
    assert pushes(r) == [
        "Task_verify",
        "Task_call",
        "Task_survey",
        "Task_confirm",
        "Task_demo",
        "Task_w_hot",
        "Task_w_hot",
        "Task_contract",
        "Task_payment",
        "Task_payment",
        "Task_upsell",
    ]
    assert stages(r, KH, "sales") == ["Tiếp nhận", "Đã liên hệ", "Cấp Demo", "Tiềm năng", "Chốt"]
    # Won inside the closing window: no promotion, and the 7-day timer was called off.
    assert "Task_promo_approve" not in elements(r)
    assert [h["element_id"] for h in history(r, KH, "timer.fired")].count("Timer_7d") == 0
    assert "Muốn thêm 1 cơ sở." in [n["text"] for n in customer(r, KH)["notes"]]
