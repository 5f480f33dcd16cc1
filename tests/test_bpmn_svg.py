"""The SVG renderer: every DI shape and edge drawn, the right look per kind, overlays, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lxml import etree

from web.svg.di import DiagramError, read_diagram
from web.svg.render import ACTIVE, DONE, INCIDENT, Overlays, heat_colour, render_svg
from web.svg.text import text_width, wrap

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "corpus" / "miwg"
FIXTURE = HERE / "bpmn" / "diagrams" / "all_elements.bpmn"
SVG = "{http://www.w3.org/2000/svg}"
BPMNDI = "{http://www.omg.org/spec/BPMN/20100524/DI}"
DC = "{http://www.omg.org/spec/DD/20100524/DC}"

if CORPUS.is_dir():
    CORPUS_FILES = [pytest.param(path, id=path.name) for path in sorted(CORPUS.glob("*.bpmn"))]
else:
    CORPUS_FILES = [
        pytest.param(None, id="miwg-missing", marks=pytest.mark.skip(reason=f"MIWG corpus not found at {CORPUS}"))
    ]


def svg_of(xml: bytes, overlays: Overlays | None = None) -> etree._Element:
    return etree.fromstring(render_svg(xml, overlays).encode())


def element(svg: etree._Element, element_id: str) -> etree._Element:
    found = svg.findall(f".//{SVG}g[@data-element-id='{element_id}'][@class]")
    found = [g for g in found if "bpmn-element" in g.get("class", "")]
    assert len(found) == 1, f"{element_id}: {len(found)} groups"
    return found[0]


def label_of(g: etree._Element) -> str:
    return " ".join(t.text or "" for t in g.iter(f"{SVG}tspan"))


def view_box(svg: etree._Element) -> tuple[float, float, float, float]:
    x, y, w, h = map(float, svg.get("viewBox").split())
    return x, y, x + w, y + h


@pytest.fixture(scope="module")
def fixture_xml() -> bytes:
    return FIXTURE.read_bytes()


@pytest.fixture(scope="module")
def plain(fixture_xml: bytes) -> etree._Element:
    return svg_of(fixture_xml)


# --- the MIWG reference files -----------------------------------------------------------


@pytest.mark.parametrize("path", CORPUS_FILES)
def test_corpus_file_renders_every_shape_and_edge(path: Path) -> None:
    data = path.read_bytes()
    svg = svg_of(data)  # well-formed: lxml parses it back
    assert svg.tag == f"{SVG}svg"
    di = etree.fromstring(data)
    drawn = {g.get("data-element-id") for g in svg.iter(f"{SVG}g") if "bpmn-element" in g.get("class", "")}
    shapes = [s.get("bpmnElement") for s in di.iter(f"{BPMNDI}BPMNShape")]
    edges = [e.get("bpmnElement") for e in di.iter(f"{BPMNDI}BPMNEdge")]
    assert shapes and set(shapes) <= drawn
    assert set(edges) <= drawn
    left, top, right, bottom = view_box(svg)
    for shape in di.iter(f"{BPMNDI}BPMNShape"):
        b = shape.find(f"{DC}Bounds")
        x, y, w, h = (float(b.get(n)) for n in ("x", "y", "width", "height"))
        assert left <= x and x + w <= right and top <= y and y + h <= bottom, shape.get("bpmnElement")
    names = [el.get("name") for el in di.iter() if el.get("name") and el.get("id") in drawn]
    text = " ".join(t.text or "" for t in svg.iter(f"{SVG}tspan"))
    for name in names:
        assert name.split()[0] in text, name


def test_corpus_is_present_or_skipped_visibly() -> None:
    assert CORPUS_FILES[0].id == "miwg-missing" or len(CORPUS_FILES) >= 6


# --- one look per kind --------------------------------------------------------------------


def test_every_di_element_of_the_fixture_is_drawn_once(fixture_xml: bytes, plain: etree._Element) -> None:
    diagram = read_diagram(fixture_xml)
    assert not diagram.problems
    for item in [*diagram.shapes, *diagram.edges]:
        g = element(plain, item.element_id)
        assert g.get("data-element-type") == item.kind
        assert item.element_id in g.find(f"{SVG}title").text


@pytest.mark.parametrize(
    "element_id, icon",
    [
        ("Task_user", "task-userTask"),
        ("Task_service", "task-serviceTask"),
        ("Task_script", "task-scriptTask"),
        ("Task_send", "task-sendTask"),
        ("Task_receive", "task-receiveTask"),
        ("Task_manual", "task-manualTask"),
        ("Task_rule", "task-businessRuleTask"),
        ("StartEvent_msg", "event-message"),
        ("Boundary_timer", "event-timer"),
        ("Start_timer", "event-timer"),
        ("End_sub", "event-terminate"),
        ("Boundary_error", "event-error"),
        ("End_error", "event-error"),
        ("Catch_sig", "event-signal"),
        ("Throw_esc", "event-escalation"),
        ("Catch_cond", "event-conditional"),
        ("End_comp", "event-compensate"),
        ("Throw_link", "event-link"),
        ("Gateway_x", "gateway-marker"),
        ("Gateway_p", "gateway-marker"),
        ("Gateway_incl", "gateway-marker"),
        ("Gateway_evt", "gateway-marker"),
        ("Gateway_cx", "gateway-marker"),
    ],
)
def test_icons_by_kind(plain: etree._Element, element_id: str, icon: str) -> None:
    classes = [g.get("class", "") for g in element(plain, element_id).iter(f"{SVG}g")]
    assert any(icon in c.split() for c in classes), classes


@pytest.mark.parametrize(
    "element_id, markers",
    [
        ("Task_script", ["marker-parallel"]),
        ("Task_send", ["marker-sequential"]),
        ("Task_rule", ["marker-loop"]),
        ("Call_care", ["marker-collapsed"]),
        ("Sub_event", ["marker-collapsed"]),
        ("Tx_1", ["marker-collapsed"]),
        ("Sub_1", []),
        ("Task_user", []),
        ("DataObject_ref", ["marker-parallel"]),
    ],
)
def test_activity_markers(plain: etree._Element, element_id: str, markers: list[str]) -> None:
    found = [
        c.split()[1]
        for g in element(plain, element_id).iter(f"{SVG}g")
        if (c := g.get("class", "")).startswith("marker ")
    ]
    assert found == markers


def first(g: etree._Element, tag: str) -> etree._Element:
    return next(g.iter(f"{SVG}{tag}"))


def test_event_borders_follow_the_event_kind(plain: etree._Element) -> None:
    assert first(element(plain, "Start_timer"), "circle").get("stroke-width") == "2"
    assert first(element(plain, "End_error"), "circle").get("stroke-width") == "4"
    inter = [c for c in element(plain, "Catch_msg").iter(f"{SVG}circle")][:2]
    assert [c.get("stroke-width") for c in inter] == ["1.5", "1.5"]  # the double ring
    assert first(element(plain, "Boundary_timer"), "circle").get("stroke-dasharray")  # non-interrupting
    assert first(element(plain, "Boundary_error"), "circle").get("stroke-dasharray") is None


def test_throwing_icons_are_filled_and_catching_ones_are_not(plain: etree._Element) -> None:
    def envelope_fill(element_id: str) -> str:
        icon = next(g for g in element(plain, element_id).iter(f"{SVG}g") if "event-message" in g.get("class", ""))
        return first(icon, "rect").get("fill")

    assert envelope_fill("End_msg") != "white"
    assert envelope_fill("StartEvent_msg") == "white"
    assert envelope_fill("Catch_msg") == "white"


def test_call_activity_border_is_thick_and_tasks_are_rounded(plain: etree._Element) -> None:
    assert first(element(plain, "Call_care"), "rect").get("stroke-width") == "5"
    task = first(element(plain, "Task_inner"), "rect")
    assert task.get("stroke-width") == "2" and task.get("rx") == "10"
    assert first(element(plain, "Sub_event"), "rect").get("stroke-dasharray")  # event subprocess: dotted
    assert len(element(plain, "Tx_1").findall(f"{SVG}rect")) == 2  # transaction: double border


def test_exclusive_gateway_shows_its_x_only_when_the_di_says_so() -> None:
    xml = FIXTURE.read_bytes().replace(b'isMarkerVisible="true"', b'isMarkerVisible="false"')
    assert not element(svg_of(xml), "Gateway_x").findall(f".//{SVG}g")
    assert element(svg_of(FIXTURE.read_bytes()), "Gateway_x").findall(f".//{SVG}g")


def test_pools_and_lanes_have_rotated_labels(plain: etree._Element) -> None:
    for lane in ("Pool_main", "Lane_sales", "Lane_care"):
        text = first(element(plain, lane), "text")
        assert text.get("transform", "").startswith("rotate(-90")
    assert label_of(element(plain, "Lane_care")) == "Chăm sóc khách hàng"
    collapsed = first(element(plain, "Pool_customer"), "text")
    assert collapsed.get("transform") is None  # a black-box pool: label across, centred


def test_sequence_flows_have_arrowheads_and_default_or_condition_markers(plain: etree._Element) -> None:
    plain_flow = element(plain, "Flow_1")
    assert [p.get("fill") for p in plain_flow.iter(f"{SVG}polygon")] != ["white"]
    assert len(list(element(plain, "Flow_default").iter(f"{SVG}line"))) == 1  # the slash
    assert not list(element(plain, "Flow_cond").iter(f"{SVG}line"))  # condition from a gateway: no diamond
    diamonds = [p for p in element(plain, "Flow_8").iter(f"{SVG}polygon") if p.get("fill") == "white"]
    assert len(diamonds) == 1  # condition leaving an activity: the diamond


def test_message_flows_are_dashed_with_circle_and_open_arrow(plain: etree._Element) -> None:
    g = element(plain, "MsgFlow_in")
    visible = [p for p in g.iter(f"{SVG}polyline") if p.get("class") != "hit"]
    assert visible[0].get("stroke-dasharray")
    assert len(list(g.iter(f"{SVG}circle"))) == 1
    assert [p.get("fill") for p in g.iter(f"{SVG}polygon")] == ["white"]
    assert label_of(g) == "Đăng ký"


def test_associations_are_dotted(plain: etree._Element) -> None:
    for edge_id in ("Assoc_1", "DataIn_1", "DataOut_1"):
        visible = [p for p in element(plain, edge_id).iter(f"{SVG}polyline") if p.get("class") != "hit"]
        assert visible[0].get("stroke-dasharray") == "0.5,5"


def test_labels_use_di_label_bounds_or_sit_below(plain: etree._Element) -> None:
    start = first(element(plain, "StartEvent_msg"), "text")
    assert float(start.get("x")) == pytest.approx(150 + 76 / 2)  # the BPMNLabel's centre
    below = first(element(plain, "Start_timer"), "text")
    assert float(below.get("x")) == pytest.approx(188) and float(below.get("y")) >= 518
    assert label_of(element(plain, "Group_1")) == "Liên hệ"  # group label = its category value
    assert label_of(element(plain, "Annotation_1")) == "Ghi chú: ký trong 24 giờ"
    assert label_of(element(plain, "DataObject_ref")) == "Hồ sơ"


def test_long_task_names_wrap_inside_the_task(plain: etree._Element) -> None:
    lines = [t.text for t in element(plain, "Task_user").iter(f"{SVG}tspan")]
    assert len(lines) == 2 and " ".join(lines) == "Gọi điện tư vấn khách hàng mới"
    assert all(text_width(line, 12) <= 90 for line in lines)


# --- overlays ---------------------------------------------------------------------------


def test_instance_overlays(fixture_xml: bytes) -> None:
    svg = svg_of(
        fixture_xml,
        Overlays(
            active=frozenset({"Task_receive"}),
            completed=frozenset({"StartEvent_msg", "Flow_1", "Task_user"}),
            incidents={"Task_service": 2},
            details={"Task_receive": {"Người nhận": "lan", "Hạn": "25/11/2026"}},
        ),
    )
    active = element(svg, "Task_receive")
    assert "is-active" in active.get("class")
    assert first(active, "rect").get("stroke") == ACTIVE[0]
    assert json.loads(active.get("data-details")) == {"Người nhận": "lan", "Hạn": "25/11/2026"}
    assert "Người nhận: lan" in active.find(f"{SVG}title").text
    done = element(svg, "Task_user")
    assert "is-completed" in done.get("class") and first(done, "rect").get("fill") == DONE[1]
    flow = [p for p in element(svg, "Flow_1").iter(f"{SVG}polyline") if p.get("class") != "hit"][0]
    assert flow.get("stroke") == DONE[0]
    assert "is-completed" not in element(svg, "Flow_2").get("class")
    incident = element(svg, "Task_service")
    assert "has-incident" in incident.get("class") and first(incident, "rect").get("stroke") == INCIDENT
    badge = svg.find(f".//{SVG}g[@data-element-id='Task_service'][@class='bpmn-badge bpmn-badge-incident']")
    assert badge is not None and "2" in first(badge, "text").text


def test_ids_inside_a_collapsed_subprocess_mark_the_subprocess(fixture_xml: bytes) -> None:
    svg = svg_of(fixture_xml, Overlays(active=frozenset({"Start_cancel"}), counts={"Start_cancel": 3}))
    sub = element(svg, "Sub_event")
    assert "is-active" in sub.get("class")
    badge = svg.find(f".//{SVG}g[@data-element-id='Sub_event'][@class='bpmn-badge bpmn-badge-count']")
    assert first(badge, "text").text == "3" and sub.get("data-count") == "3"


def test_unknown_overlay_ids_are_ignored(fixture_xml: bytes) -> None:
    svg = svg_of(fixture_xml, Overlays(active=frozenset({"Nowhere"}), counts={"Nowhere": 4}))
    assert not svg.findall(f".//{SVG}g[@class='bpmn-badge bpmn-badge-count']")
    assert not [g for g in svg.iter(f"{SVG}g") if "is-active" in g.get("class", "")]


def test_heat_map_colours_by_count(fixture_xml: bytes) -> None:
    svg = svg_of(fixture_xml, Overlays(counts={"Task_user": 10, "Task_send": 1}, heat=True))
    hot, cool = first(element(svg, "Task_user"), "rect"), first(element(svg, "Task_send"), "rect")
    assert hot.get("fill") == heat_colour(10, 10) and cool.get("fill") == heat_colour(1, 10)
    assert first(element(svg, "Task_rule"), "rect").get("fill") == "white"
    counts = {
        b.get("data-element-id"): first(b, "text").text
        for b in svg.findall(f".//{SVG}g[@class='bpmn-badge bpmn-badge-count']")
    }
    assert counts == {"Task_user": "10", "Task_send": "1"}


def test_heat_colour_scale() -> None:
    assert heat_colour(0, 5) is None and heat_colour(3, 0) is None
    reds = [int(heat_colour(n, 10)[3:5], 16) for n in range(1, 11)]  # green channel falls as count rises
    assert reds == sorted(reds, reverse=True) and reds[0] > reds[-1]
    assert heat_colour(10, 10) == "#f06e5f"


# --- bad input ----------------------------------------------------------------------------


def test_not_xml_is_an_error_naming_the_problem() -> None:
    with pytest.raises(DiagramError, match="not well formed"):
        render_svg(b"<definitions")


def test_a_file_without_di_cannot_be_drawn() -> None:
    xml = re.sub(rb"<bpmndi:BPMNDiagram.*</bpmndi:BPMNDiagram>", b"", FIXTURE.read_bytes(), flags=re.S)
    with pytest.raises(DiagramError, match="BPMNDiagram"):
        render_svg(xml)


def test_broken_di_elements_are_skipped_and_named(fixture_xml: bytes) -> None:
    xml = fixture_xml.replace(b'bpmnElement="Task_user"', b'bpmnElement="Task_gone"')
    xml = xml.replace(
        b'<bpmndi:BPMNEdge id="Flow_2_di" bpmnElement="Flow_2"><di:waypoint x="350" y="175" />',
        b'<bpmndi:BPMNEdge id="Flow_2_di" bpmnElement="Flow_2">',
    )
    diagram = read_diagram(xml)
    assert any("Task_gone" in p for p in diagram.problems)
    assert any(p.startswith("Flow_2:") for p in diagram.problems)
    svg = render_svg(xml)
    assert "Task_gone" in svg and 'data-element-id="Task_service"' in svg
    assert 'data-element-id="Task_user"' not in svg


def test_entities_are_not_expanded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = FIXTURE.read_text(encoding="utf-8").replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://{secret}">]>',
    )
    xml = xml.replace("Ghi chú: ký trong 24 giờ", "&x;")
    assert "TOP-SECRET" not in render_svg(xml.encode())
    with pytest.raises(DiagramError, match="external entity"):  # in an attribute lxml refuses it outright
        render_svg(xml.replace('name="Gửi Zalo"', 'name="&x;"').encode())


def test_names_are_escaped_not_injected(fixture_xml: bytes) -> None:
    xml = fixture_xml.replace('name="Gửi Zalo"'.encode(), b'name="&lt;script&gt;alert(1)&lt;/script&gt;"')
    text = render_svg(xml)
    assert "<script>" not in text and "&lt;script&gt;" in text


# --- text -------------------------------------------------------------------------------


def test_wrap_keeps_words_and_width() -> None:
    lines = wrap("Liên hệ lại khách hàng tiềm năng sau buổi demo", 90, 12)
    assert " ".join(lines) == "Liên hệ lại khách hàng tiềm năng sau buổi demo"
    assert len(lines) > 1 and all(text_width(line, 12) <= 90 for line in lines)
    assert wrap("a\nb", 90, 12) == ["a", "b"]
    long = wrap("https://online.emso.vn/truong-tieu-hoc-so-1", 60, 12)
    assert "".join(long) == "https://online.emso.vn/truong-tieu-hoc-so-1" and len(long) > 1
    assert wrap("", 90, 12) == []
