"""Reading a BPMN file's diagram interchange (DI) into plain shapes and edges.

The renderer (``web.svg.render``) draws what this module finds: every ``BPMNShape`` and
``BPMNEdge`` of one diagram, joined with what the semantic model says about its element
(kind, name, event definitions, markers). Nothing here knows about SVG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from runner.errors import Invalid
from runner.model.document import BPMN_NS, BPMNDI_NS, parse, qname

DC_NS = "http://www.omg.org/spec/DD/20100524/DC"
DI_NS = "http://www.omg.org/spec/DD/20100524/DI"

TASKS = frozenset(
    {"task", "userTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "manualTask", "businessRuleTask"}
)
SUBPROCESSES = frozenset({"subProcess", "transaction", "adHocSubProcess"})
ACTIVITIES = TASKS | SUBPROCESSES | {"callActivity"}
EVENTS = frozenset({"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"})
GATEWAYS = frozenset({"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"})
DATA = frozenset({"dataObjectReference", "dataObject", "dataStoreReference", "dataInput", "dataOutput"})
THROWING = frozenset({"endEvent", "intermediateThrowEvent"})
DEFAULT_FONT_SIZE = 12.0


class DiagramError(Invalid):
    """Raised when a file cannot be drawn at all (not XML, or no diagram interchange)."""


@dataclass(frozen=True)
class Bounds:
    """A rectangle in diagram coordinates."""

    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass
class Label:
    """Where a label goes (``bounds`` None: the renderer picks a default place) and its font size."""

    bounds: Bounds | None = None
    font_size: float = DEFAULT_FONT_SIZE


@dataclass
class Shape:
    """One drawn node: its DI bounds plus what the renderer needs to know of its element."""

    di_id: str
    element_id: str
    kind: str
    name: str
    bounds: Bounds
    label: Label
    expanded: bool = False
    horizontal: bool = True
    marker_visible: bool = False
    event_definitions: tuple[str, ...] = ()
    parallel_multiple: bool = False
    interrupting: bool = True
    loop: str | None = None  # loop | parallel | sequential
    compensation: bool = False
    triggered_by_event: bool = False
    instantiate: bool = False
    gateway_type: str = ""  # eventBasedGateway: Exclusive | Parallel
    collection: bool = False
    collapsed_pool: bool = False
    calls_task: bool = False  # a call activity calling a global task (no subprocess marker)
    multiplicity: bool = False
    attached_to: str | None = None
    parents: tuple[str, ...] = ()  # semantic ancestors' ids, nearest first

    @property
    def throwing(self) -> bool:
        return self.kind in THROWING


@dataclass
class Edge:
    """One drawn connection: its waypoints plus its element's kind and markers."""

    di_id: str
    element_id: str
    kind: str
    name: str
    points: list[tuple[float, float]]
    label: Label
    source: str = ""
    target: str = ""
    is_default: bool = False
    conditional: bool = False
    direction: str = "None"  # associations: None | One | Both


@dataclass
class Diagram:
    """The shapes and edges of one BPMNDiagram, in document order, and what could not be read."""

    name: str
    shapes: list[Shape] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)  # every element id -> ancestors


def read_diagram(data: bytes, index: int = 0) -> Diagram:
    """The ``index``-th diagram of a BPMN file; raises ``DiagramError`` naming what is missing."""
    try:
        root = parse(data)
    except etree.XMLSyntaxError as exc:
        raise DiagramError(f"XML is not well formed: {exc}") from exc
    diagrams = list(root.iter(f"{{{BPMNDI_NS}}}BPMNDiagram"))
    if not diagrams:
        raise DiagramError("the file has no diagram interchange (bpmndi:BPMNDiagram): it cannot be drawn")
    if not 0 <= index < len(diagrams):
        raise DiagramError(f"diagram {index} does not exist (the file has {len(diagrams)})")
    di = diagrams[index]
    model = _Model(root, di)
    diagram = Diagram(name=di.get("name") or root.get("name") or "", parents=model.parents)
    plane = di.find(f"{{{BPMNDI_NS}}}BPMNPlane")
    for el in plane if plane is not None else []:
        ns, name = qname(el)
        if ns != BPMNDI_NS:
            continue
        try:
            if name == "BPMNShape":
                diagram.shapes.append(model.shape(el))
            elif name == "BPMNEdge":
                diagram.edges.append(model.edge(el))
        except _Skip as exc:
            diagram.problems.append(str(exc))
    return diagram


class _Skip(DiagramError):
    """Raised for one DI element that cannot be drawn; the rest of the diagram still is."""


class _Model:
    """Lookups over the semantic model that shapes and edges need."""

    def __init__(self, root: etree._Element, di: etree._Element):
        self.root = root
        self.by_id: dict[str, etree._Element] = {}
        self.parents: dict[str, tuple[str, ...]] = {}
        for el in root.iter():
            ns, _ = qname(el)
            if ns == BPMN_NS and el.get("id"):
                self.by_id.setdefault(el.get("id"), el)
                self.parents[el.get("id")] = _ancestors(el)
        self.fonts = {style.get("id"): _font_size(style) for style in di.iter(f"{{{BPMNDI_NS}}}BPMNLabelStyle")}
        self.drawn = {s.get("bpmnElement") for s in di.iter(f"{{{BPMNDI_NS}}}BPMNShape")}

    def element(self, di_el: etree._Element) -> etree._Element:
        ref = (di_el.get("bpmnElement") or "").split(":")[-1]
        el = self.by_id.get(ref)
        if el is None:
            raise _Skip(f"{di_el.get('id') or 'a DI element'}: bpmnElement {ref!r} is not in the model, not drawn")
        return el

    def label(self, di_el: etree._Element) -> Label:
        node = di_el.find(f"{{{BPMNDI_NS}}}BPMNLabel")
        if node is None:
            return Label(font_size=self.fonts.get(di_el.get("labelStyle"), DEFAULT_FONT_SIZE))
        size = self.fonts.get(node.get("labelStyle")) or self.fonts.get(di_el.get("labelStyle")) or DEFAULT_FONT_SIZE
        b = node.find(f"{{{DC_NS}}}Bounds")
        return Label(bounds=_bounds(b) if b is not None else None, font_size=size)

    def shape(self, di_el: etree._Element) -> Shape:
        el = self.element(di_el)
        b = di_el.find(f"{{{DC_NS}}}Bounds")
        bounds = _bounds(b) if b is not None else None
        if bounds is None:
            raise _Skip(f"{el.get('id')}: shape without valid dc:Bounds, not drawn")
        kind = qname(el)[1]
        shape = Shape(
            di_id=di_el.get("id") or "",
            element_id=el.get("id"),
            kind=kind,
            name=self.name(el),
            bounds=bounds,
            label=self.label(di_el),
            parents=self.parents.get(el.get("id"), ()),
        )
        shape.horizontal = di_el.get("isHorizontal", "true") != "false"
        shape.marker_visible = di_el.get("isMarkerVisible") == "true"
        shape.expanded = self._expanded(di_el, el, kind)
        _semantics(self, shape, el, kind)
        return shape

    def _expanded(self, di_el: etree._Element, el: etree._Element, kind: str) -> bool:
        if kind not in SUBPROCESSES | {"callActivity"}:
            return False
        if di_el.get("isExpanded") is not None:
            return di_el.get("isExpanded") == "true"
        # NOTE: some tools omit isExpanded; a subprocess whose children are drawn here is expanded.
        return any(child.get("id") in self.drawn for child in el if child.get("id"))

    def name(self, el: etree._Element) -> str:
        kind = qname(el)[1]
        if kind == "textAnnotation":
            text = el.find(f"{{{BPMN_NS}}}text")
            return (text.text or "") if text is not None else ""
        if kind == "group":
            value = self.by_id.get(el.get("categoryValueRef") or "")
            return (value.get("value") or "") if value is not None else (el.get("name") or "")
        name = el.get("name") or ""
        if not name and kind in ("dataObjectReference", "dataStoreReference"):
            ref = self.by_id.get(el.get("dataObjectRef") or el.get("dataStoreRef") or "")
            name = (ref.get("name") or "") if ref is not None else ""
        return name

    def edge(self, di_el: etree._Element) -> Edge:
        el = self.element(di_el)
        points = [(_num(p.get("x")), _num(p.get("y"))) for p in di_el.iter(f"{{{DI_NS}}}waypoint")]
        points = [p for p in points if None not in p]
        if len(points) < 2:
            raise _Skip(f"{el.get('id')}: edge with fewer than two waypoints, not drawn")
        kind = qname(el)[1]
        edge = Edge(
            di_id=di_el.get("id") or "",
            element_id=el.get("id"),
            kind=kind,
            name=el.get("name") or "",
            points=points,
            label=self.label(di_el),
        )  # type: ignore[arg-type]
        edge.source, edge.target = _ends(el)
        source = self.by_id.get(edge.source)
        if kind == "sequenceFlow" and source is not None:
            edge.is_default = source.get("default") == edge.element_id
            has_condition = el.find(f"{{{BPMN_NS}}}conditionExpression") is not None
            edge.conditional = has_condition and qname(source)[1] in ACTIVITIES
        edge.direction = el.get("associationDirection") or "None"
        return edge


def _semantics(model: _Model, shape: Shape, el: etree._Element, kind: str) -> None:
    """Fill in what the kind of element needs: event definitions, markers, flags."""
    defs = [qname(c)[1][: -len("EventDefinition")] for c in el if qname(c)[1].endswith("EventDefinition")]
    for ref in el.iter(f"{{{BPMN_NS}}}eventDefinitionRef"):
        target = model.by_id.get((ref.text or "").strip())
        if target is not None:
            defs.append(qname(target)[1][: -len("EventDefinition")])
    shape.event_definitions = tuple(defs)
    shape.parallel_multiple = el.get("parallelMultiple") == "true"
    shape.interrupting = el.get("cancelActivity", "true") != "false" and el.get("isInterrupting", "true") != "false"
    shape.attached_to = el.get("attachedToRef")
    if el.find(f"{{{BPMN_NS}}}standardLoopCharacteristics") is not None:
        shape.loop = "loop"
    mi = el.find(f"{{{BPMN_NS}}}multiInstanceLoopCharacteristics")
    if mi is not None:
        shape.loop = "sequential" if mi.get("isSequential") == "true" else "parallel"
    shape.compensation = el.get("isForCompensation") == "true"
    shape.triggered_by_event = el.get("triggeredByEvent") == "true"
    shape.instantiate = el.get("instantiate") == "true"
    shape.gateway_type = el.get("eventGatewayType") or "Exclusive"
    if kind == "dataObjectReference":
        target = model.by_id.get(el.get("dataObjectRef") or "")
        shape.collection = target is not None and target.get("isCollection") == "true"
    elif kind in ("dataObject", "dataInput", "dataOutput"):
        shape.collection = el.get("isCollection") == "true"
    if kind == "callActivity":
        target = model.by_id.get(el.get("calledElement") or "")
        shape.calls_task = target is not None and qname(target)[1].startswith("global")
    if kind == "participant":
        shape.collapsed_pool = not el.get("processRef")
        shape.multiplicity = el.find(f"{{{BPMN_NS}}}participantMultiplicity") is not None


def _ends(el: etree._Element) -> tuple[str, str]:
    """Source and target ids (attributes, or child elements for data associations)."""
    source, target = el.get("sourceRef") or "", el.get("targetRef") or ""
    if not source:
        child = el.find(f"{{{BPMN_NS}}}sourceRef")
        source = (child.text or "").strip() if child is not None else ""
        if not source and qname(el)[1] == "dataOutputAssociation":
            source = (el.getparent().get("id") or "") if el.getparent() is not None else ""
    if not target:
        child = el.find(f"{{{BPMN_NS}}}targetRef")
        target = (child.text or "").strip() if child is not None else ""
        if qname(el)[1] == "dataInputAssociation":
            target = (el.getparent().get("id") or "") if el.getparent() is not None else target
    return source, target


def _ancestors(el: etree._Element) -> tuple[str, ...]:
    """Ids of the semantic elements containing ``el``, nearest first (processes included)."""
    out: list[str] = []
    parent = el.getparent()
    while parent is not None:
        ns, _ = qname(parent)
        if ns == BPMN_NS and parent.get("id"):
            out.append(parent.get("id"))
        parent = parent.getparent()
    return tuple(out)


def _font_size(style: etree._Element) -> float:
    font = style.find(f"{{{DC_NS}}}Font")
    size = _num(font.get("size")) if font is not None else None
    return size if size and 4 <= size <= 72 else DEFAULT_FONT_SIZE


def _bounds(b: etree._Element) -> Bounds | None:
    values = [_num(b.get(n)) for n in ("x", "y", "width", "height")]
    if any(v is None for v in values) or values[2] < 0 or values[3] < 0:  # type: ignore[operator]
        return None
    return Bounds(*values)  # type: ignore[arg-type]


def _num(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) < 1e7 else None
