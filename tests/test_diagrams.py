"""The diagrams in processes/: full diagram interchange, pools and lanes, stage names, and a clean deployment.

Camunda Modeler draws only what the BPMNDiagram describes, so every flow node needs a
shape and every sequence flow an edge whose ends touch its source and target. Lanes are the
inbox groups (role ids); the stage names are the pipelines' columns of DOMAIN.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from runner.crm import customers as crm
from runner.crm.models import ROLES
from runner.model import validation
from runner.model.document import BPMN_NS, BPMNDI_NS, CAMUNDA_NSS
from runner.registry import installed
from runner.service.deployment import read_paths
from runner.service.runtime import Runner

ROOT = Path(__file__).resolve().parents[1]  # the checkout
PROCESSES = ROOT / "processes"
FILES = sorted(PROCESSES.glob("*.bpmn"))
NS = {
    "bpmn": BPMN_NS,
    "bpmndi": BPMNDI_NS,
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "camunda": CAMUNDA_NSS[0],
}
# DOMAIN.md §1 and §2: the stages (board columns) of the two pipelines, as staff read them.
SALES_STAGES = ("Tiếp nhận", "Đã liên hệ", "Liên hệ lại", "Cấp Demo", "Đang chăm sóc", "Tiềm năng", "Chốt")
POST_SALE_STAGES = (
    "TIẾP NHẬN",
    "ĐÀO TẠO",
    "BÀN GIAO",
    "CHĂM SÓC ĐỊNH KỲ",
    "CHĂM SÓC TÁI KÝ",
    "CÓ VẤN ĐỀ",
    "DỪNG CHĂM SÓC",
    "KHÓA",
)
FLOW_NODES = frozenset(
    {
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "task",
        "userTask",
        "serviceTask",
        "scriptTask",
        "manualTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "callActivity",
        "subProcess",
        "exclusiveGateway",
        "parallelGateway",
        "inclusiveGateway",
        "eventBasedGateway",
    }
)
SLACK = 2.0  # pixels an edge end may sit away from its shape's border


def local(el: etree._Element) -> str:
    return etree.QName(el).localname


def parse(path: Path) -> etree._Element:
    return etree.parse(str(path)).getroot()


def flow_nodes(root: etree._Element) -> Iterator[etree._Element]:
    return (el for el in root.iter(f"{{{BPMN_NS}}}*") if local(el) in FLOW_NODES)


def bounds(shape: etree._Element) -> tuple[float, float, float, float]:
    b = shape.find("dc:Bounds", NS)
    return tuple(float(b.get(k)) for k in ("x", "y", "width", "height"))  # type: ignore[return-value]


def shapes(root: etree._Element) -> dict[str, etree._Element]:
    return {s.get("bpmnElement"): s for s in root.iterfind(".//bpmndi:BPMNShape", NS)}


def touches(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    """Whether a point lies on or inside a shape's bounds (edges start and end on borders)."""
    x, y, w, h = box
    return x - SLACK <= point[0] <= x + w + SLACK and y - SLACK <= point[1] <= y + h + SLACK


def stage_values(root: etree._Element) -> list[str]:
    return root.xpath("//camunda:property[@name='stage']/@value", namespaces=NS)


def test_the_diagrams_are_there() -> None:
    names = {p.name for p in FILES}
    assert {"onboarding.bpmn", "care_month.bpmn", "renewal.bpmn"} <= names
    keys = {pid for p in FILES for pid in parse(p).xpath("bpmn:process/@id", namespaces=NS)}
    assert {"onboarding", "care_month", "renewal"} <= keys


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_flow_node_has_a_shape_and_every_sequence_flow_an_edge(path: Path) -> None:
    root = parse(path)
    found = shapes(root)
    nodes = list(flow_nodes(root))
    assert nodes, "no flow nodes"
    assert [n.get("id") for n in nodes if n.get("id") not in found] == []
    for node in nodes:
        _, _, width, height = bounds(found[node.get("id")])
        assert width > 0 and height > 0, node.get("id")
    edges = {e.get("bpmnElement"): e for e in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    for flow in root.iter(f"{{{BPMN_NS}}}sequenceFlow"):
        fid = flow.get("id")
        assert fid in edges, f"sequence flow {fid} has no BPMNEdge"
        points = [(float(p.get("x")), float(p.get("y"))) for p in edges[fid].iterfind("di:waypoint", NS)]
        assert len(points) >= 2, fid
        assert touches(points[0], bounds(found[flow.get("sourceRef")])), f"{fid} does not start at its source"
        assert touches(points[-1], bounds(found[flow.get("targetRef")])), f"{fid} does not end at its target"
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    assert [ref for ref in (*found, *edges) if ref not in ids] == []  # no shape of a deleted element


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_one_pool_per_process_with_lanes_for_roles(path: Path) -> None:
    root = parse(path)
    assert root.get("exporter") == "Camunda Modeler"
    processes = root.findall("bpmn:process", NS)
    participants = root.findall("bpmn:collaboration/bpmn:participant", NS)
    assert sorted(p.get("processRef") for p in participants) == sorted(p.get("id") for p in processes)
    found = shapes(root)
    for participant in participants:
        assert participant.get("id") in found and participant.get("name")
    for process in processes:
        pool = bounds(found[next(p.get("id") for p in participants if p.get("processRef") == process.get("id"))])
        lanes = process.findall("bpmn:laneSet/bpmn:lane", NS)
        assert lanes, f"{process.get('id')} has no lanes"
        placed: dict[str, str] = {}
        for lane in lanes:
            group = lane.xpath(
                "bpmn:extensionElements/camunda:properties/camunda:property[@name='group']/@value", namespaces=NS
            )
            assert group and group[0] in ROLES and lane.get("name"), lane.get("id")
            x, y, w, h = bounds(found[lane.get("id")])
            for ref in lane.findall("bpmn:flowNodeRef", NS):
                placed[ref.text] = lane.get("id")
                nx, ny, nw, nh = bounds(found[ref.text])
                # a node is drawn in its lane (boundary events may straddle their activity's border)
                assert y - nh / 2 <= ny + nh / 2 <= y + h + nh / 2, f"{ref.text} is not drawn in {lane.get('id')}"
                assert pool[0] <= nx and nx + nw <= pool[0] + pool[2], f"{ref.text} is outside the pool"
        # NOTE: nodes inside a subprocess belong to the subprocess's lane unless listed themselves.
        unplaced = [n.get("id") for n in process if local(n) in FLOW_NODES and n.get("id") not in placed]
        assert unplaced == [], f"flow nodes in no lane: {unplaced}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_boundary_events_sit_on_their_activity(path: Path) -> None:
    root = parse(path)
    found = shapes(root)
    for event in root.iter(f"{{{BPMN_NS}}}boundaryEvent"):
        x, y, w, h = bounds(found[event.get("attachedToRef")])
        ex, ey, ew, eh = bounds(found[event.get("id")])
        cx, cy = ex + ew / 2, ey + eh / 2
        on_edge = (
            (abs(cy - y) <= SLACK or abs(cy - (y + h)) <= SLACK)
            and x <= cx <= x + w
            or (abs(cx - x) <= SLACK or abs(cx - (x + w)) <= SLACK)
            and y <= cy <= y + h
        )
        assert on_edge, event.get("id")


def test_each_stage_of_both_pipelines_is_a_stage_property() -> None:
    assert crm.STAGES == {"Trong bán hàng": SALES_STAGES, "Sau bán hàng": POST_SALE_STAGES}
    used = {value for path in FILES for value in stage_values(parse(path))}
    assert [s for s in (*SALES_STAGES, *POST_SALE_STAGES) if s not in used] == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_stage_properties_name_stages_of_the_process_pipeline(path: Path) -> None:
    root = parse(path)
    for process in root.findall("bpmn:process", NS):
        pipeline = crm.PIPELINES.get(process.get("id"))
        values = set(stage_values(process))
        known = set(SALES_STAGES) | set(POST_SALE_STAGES) if pipeline is None else set(crm.STAGES[pipeline])
        assert values <= known, values - known


def test_the_post_sale_diagrams_cover_every_post_sale_stage() -> None:
    used = {
        value
        for name in ("onboarding", "care_month", "renewal")
        for value in stage_values(parse(PROCESSES / f"{name}.bpmn"))
    }
    assert used == set(POST_SALE_STAGES)


def test_user_tasks_name_their_inbox_group() -> None:
    for path in FILES:
        root = parse(path)
        for lane in root.iter(f"{{{BPMN_NS}}}lane"):
            group = lane.xpath(
                "bpmn:extensionElements/camunda:properties/camunda:property[@name='group']/@value", namespaces=NS
            )[0]
            for ref in lane.findall("bpmn:flowNodeRef", NS):
                node = root.xpath("//*[@id=$id]", id=ref.text)[0]
                declared = node.get(f"{{{CAMUNDA_NSS[0]}}}candidateGroups")
                if local(node) == "userTask" and declared and "${" not in declared:
                    assert group in declared.split(","), f"{path.name}: {ref.text} is drawn in the {group} lane"
                # NOTE: a group chosen at run time (feature_request's ${product_group}) is drawn in the
                # lane of its default; test_process_routines checks where the task goes.


def test_processes_deploy_without_problems(runner: Runner) -> None:
    registry = installed()
    files = read_paths([PROCESSES])
    lists = runner.extensions.option_lists  # the CRM's configured lists (stop_reasons)
    assert validation.validate(files, topics=registry.topics(), checks=registry.checks(), lists=lists) == []
    deployed = runner.deploy([PROCESSES])
    assert {d.process_key for d in deployed} >= {"onboarding", "care_month", "renewal"}
    assert {d.file_name for d in deployed} == {p.name for p in FILES}
