"""BPMN diagrams as SVG, drawn on the server from the file's diagram interchange (DI).

``render_svg(xml, overlays)`` is a pure function: BPMN XML bytes in, an SVG document out.
The look follows Camunda Modeler (bpmn-js): rounded tasks with type icons, events with
their definition icons, gateway markers, pools and lanes with rotated labels. Overlays add
what a running system knows: active elements, the completed path, incidents, and a count
per element that can colour the diagram as a heat map.

Every drawn element is a ``<g class="bpmn-element">`` with ``data-element-id``, a
``<title>`` for hovering and a ``data-details`` JSON payload for a details panel.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from lxml import etree

from web.svg.di import ACTIVITIES, Bounds, Diagram, Edge, Shape, read_diagram
from web.svg.edges import draw_edge
from web.svg.glyphs import fmt, node
from web.svg.shapes import INK, Look, draw_shape
from web.svg.text import LINE_HEIGHT, text_width, wrap

ACTIVE = ("#1565c0", "#dcebfd")  # stroke, fill
DONE = ("#2f7d32", "#e3f1e1")
INCIDENT = "#d32f2f"
# NOTE: light enough at the hot end for black labels to stay readable.
HEAT_STOPS = ((0.0, (255, 243, 191)), (0.5, (255, 196, 110)), (1.0, (240, 110, 95)))
FONT = "Arial, Helvetica, sans-serif"
PADDING = 20.0

KIND_NAMES = {
    "participant": "Bể (pool)",
    "lane": "Làn (lane)",
    "task": "Tác vụ",
    "userTask": "Tác vụ người dùng",
    "serviceTask": "Tác vụ dịch vụ",
    "scriptTask": "Tác vụ kịch bản",
    "sendTask": "Tác vụ gửi",
    "receiveTask": "Tác vụ nhận",
    "manualTask": "Tác vụ thủ công",
    "businessRuleTask": "Tác vụ quy tắc nghiệp vụ",
    "callActivity": "Hoạt động gọi",
    "subProcess": "Quy trình con",
    "transaction": "Giao dịch",
    "adHocSubProcess": "Quy trình con ad hoc",
    "startEvent": "Sự kiện bắt đầu",
    "endEvent": "Sự kiện kết thúc",
    "intermediateCatchEvent": "Sự kiện trung gian (bắt)",
    "intermediateThrowEvent": "Sự kiện trung gian (ném)",
    "boundaryEvent": "Sự kiện biên",
    "exclusiveGateway": "Cổng loại trừ (XOR)",
    "parallelGateway": "Cổng song song",
    "inclusiveGateway": "Cổng bao hàm (OR)",
    "eventBasedGateway": "Cổng dựa trên sự kiện",
    "complexGateway": "Cổng phức hợp",
    "dataObjectReference": "Đối tượng dữ liệu",
    "dataStoreReference": "Kho dữ liệu",
    "textAnnotation": "Chú thích",
    "group": "Nhóm",
    "sequenceFlow": "Luồng tuần tự",
    "messageFlow": "Luồng thông điệp",
    "association": "Liên kết",
    "dataInputAssociation": "Liên kết dữ liệu vào",
    "dataOutputAssociation": "Liên kết dữ liệu ra",
}


@dataclass(frozen=True)
class Overlays:
    """What to show on top of the plain diagram; every key is a BPMN element id.

    Ids not drawn in the diagram (elements of a collapsed subprocess) count for the
    nearest drawn ancestor.
    """

    active: frozenset[str] = frozenset()
    completed: frozenset[str] = frozenset()  # elements and sequence flows
    incidents: Mapping[str, int] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    heat: bool = False  # colour shapes by ``counts`` (definition view)
    details: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def render_svg(
    xml: bytes, overlays: Overlays | None = None, *, index: int = 0, kind_names: Mapping[str, str] | None = None
) -> str:
    """The SVG document of one diagram of a BPMN file; raises ``DiagramError`` if it has none.

    ``kind_names`` names the element kinds in hover titles (default: Vietnamese ``KIND_NAMES``).
    """
    diagram = read_diagram(xml, index)
    canvas = _Canvas(diagram, overlays or Overlays(), kind_names or KIND_NAMES)
    return etree.tostring(canvas.draw(), encoding="unicode")


def heat_colour(count: int, highest: int) -> str | None:
    """The heat-map fill for ``count`` out of ``highest`` (None for zero)."""
    if count <= 0 or highest <= 0:
        return None
    ratio = min(count / highest, 1.0)
    for (r0, c0), (r1, c1) in pairwise(HEAT_STOPS):
        if ratio <= r1:
            t = (ratio - r0) / (r1 - r0)
            return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(c0, c1, strict=True))
    red, green, blue = HEAT_STOPS[-1][1]
    return f"#{red:02x}{green:02x}{blue:02x}"


class _Canvas:
    """One drawing: layers, the running bounding box, and the resolved overlays."""

    def __init__(self, diagram: Diagram, overlays: Overlays, kind_names: Mapping[str, str]):
        self.diagram = diagram
        self.kind_names = kind_names
        self.overlays = overlays
        drawn = {s.element_id for s in diagram.shapes} | {e.element_id for e in diagram.edges}
        self.active = self._lift(overlays.active, drawn)
        self.completed = self._lift(overlays.completed, drawn)
        self.incidents = self._sum(overlays.incidents, drawn)
        self.counts = self._sum(overlays.counts, drawn)
        self.highest = max(self.counts.values(), default=0)
        self.box = [float("inf"), float("inf"), float("-inf"), float("-inf")]
        self.root = node(None, "svg", class_="bpmn-diagram", font_family=FONT, font_size=12)
        self.layers = {
            name: node(self.root, "g", class_=f"layer-{name}")
            for name in ("pools", "lanes", "containers", "edges", "nodes", "boundary", "badges")
        }

    def _owner(self, element_id: str, drawn: set[str]) -> str | None:
        if element_id in drawn:
            return element_id
        return next((p for p in self.diagram.parents.get(element_id, ()) if p in drawn), None)

    def _lift(self, ids: frozenset[str], drawn: set[str]) -> set[str]:
        return {owner for i in ids if (owner := self._owner(i, drawn))}

    def _sum(self, values: Mapping[str, int], drawn: set[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for element_id, n in values.items():
            owner = self._owner(element_id, drawn)
            if owner and n:
                out[owner] = out.get(owner, 0) + int(n)
        return out

    def grow(self, x: float, y: float, w: float = 0.0, h: float = 0.0) -> None:
        """Extend the drawing's bounding box."""
        b = self.box
        b[0], b[1], b[2], b[3] = min(b[0], x), min(b[1], y), max(b[2], x + w), max(b[3], y + h)

    def draw(self) -> etree._Element:
        """Every shape and edge in its layer, then the view box around all of it."""
        for shape in sorted(self.diagram.shapes, key=_layer_order):
            self._shape(shape)
        for edge in self.diagram.edges:
            self._edge(edge)
        if self.box[0] == float("inf"):
            self.grow(0, 0, 100, 50)
        x0, y0 = self.box[0] - PADDING, self.box[1] - PADDING
        w, h = self.box[2] - self.box[0] + 2 * PADDING, self.box[3] - self.box[1] + 2 * PADDING
        self.root.set("viewBox", f"{fmt(x0)} {fmt(y0)} {fmt(w)} {fmt(h)}")
        self.root.set("width", fmt(w))
        self.root.set("height", fmt(h))
        self.root.set("role", "img")
        self.root.set("aria-label", self.diagram.name or "BPMN")
        if self.diagram.problems:
            self.root.insert(
                0, etree.Comment(" not drawn: " + "; ".join(self.diagram.problems).replace("--", "- -") + " ")
            )
        return self.root

    # --- looks and element groups -----------------------------------------------------

    def look(self, element_id: str) -> Look:
        """Stroke/fill for an element: incident over active over heat over completed."""
        look = Look()
        if element_id in self.completed:
            look.stroke, look.fill = DONE
            look.classes.append("is-completed")
        if self.overlays.heat and (colour := heat_colour(self.counts.get(element_id, 0), self.highest)):
            look.fill = colour
            look.classes.append("is-hot")
        if element_id in self.active:
            look.stroke, look.fill, look.width_extra = ACTIVE[0], ACTIVE[1], 1.5
            look.classes.append("is-active")
        if element_id in self.incidents:
            look.stroke, look.width_extra = INCIDENT, 1.5
            look.classes.append("has-incident")
        return look

    def group(self, layer: str, element_id: str, kind: str, name: str, look: Look) -> etree._Element:
        """The ``<g>`` of one element, with its hover title and details payload."""
        details = {str(k): v for k, v in (self.overlays.details.get(element_id) or {}).items()}
        g = node(
            self.layers[layer],
            "g",
            class_=" ".join(["bpmn-element", f"bpmn-{kind}", *look.classes]),
            data_element_id=element_id,
            data_element_type=kind,
            data_name=name,
            data_count=self.counts.get(element_id),
            data_incidents=self.incidents.get(element_id),
        )
        if details:
            g.set("data-details", json.dumps(details, ensure_ascii=False, default=str))
        lines = [name or "(không tên)", f"{self.kind_names.get(kind, kind)} · {element_id}"]
        lines += [f"{k}: {v}" for k, v in details.items()]
        node(g, "title", "\n".join(lines))
        return g

    def _shape(self, shape: Shape) -> None:
        b, look = shape.bounds, self.look(shape.element_id)
        self.grow(b.x, b.y, b.w, b.h)
        g = self.group(_layer(shape), shape.element_id, shape.kind, shape.name, look)
        draw_shape(self, g, shape, look)
        self._badges(shape)

    def _edge(self, edge: Edge) -> None:
        look = self.look(edge.element_id)
        if edge.element_id in self.completed:
            look.width_extra = 1.0
        draw_edge(self, self.group("edges", edge.element_id, edge.kind, edge.name, look), edge, look)

    # --- labels -------------------------------------------------------------------------

    def text(
        self,
        g: etree._Element,
        lines: list[str],
        x: float,
        top: float,
        size: float,
        anchor: str = "middle",
        grow: bool = True,
    ) -> etree._Element:
        """A block of lines, the first one's top at ``top`` (``grow``: count it in the drawing's size)."""
        text = node(g, "text", x=x, y=top, font_size=fmt(size), text_anchor=anchor, fill=INK, class_="bpmn-label")
        step = size * LINE_HEIGHT
        for i, line in enumerate(lines):
            node(text, "tspan", line, x=x, y=top + size * 0.9 + i * step)
        if lines and grow:
            widest = max(text_width(line, size) for line in lines)
            left = x - widest / 2 if anchor == "middle" else x
            self.grow(left, top, widest, len(lines) * step)
        return text

    def inside_label(self, g: etree._Element, shape: Shape, b: Bounds) -> None:
        """A name centred in a box (tasks, collapsed subprocesses and pools)."""
        size = shape.label.font_size
        lines = wrap(shape.name, b.w - 10, size)
        self.text(g, lines, b.cx, b.cy - len(lines) * size * LINE_HEIGHT / 2, size)

    def outside_label(self, g: etree._Element, shape: Shape, above: bool = False) -> None:
        """A name in its DI label bounds, or centred below (above for groups) the shape."""
        if not shape.name.strip():
            return
        size, b, lb = shape.label.font_size, shape.bounds, shape.label.bounds
        if lb is not None and lb.w > 1:
            lines = wrap(shape.name, lb.w + 6, size)
            height = len(lines) * size * LINE_HEIGHT
            self.text(g, lines, lb.cx, lb.y + max(0.0, (lb.h - height) / 2), size)
            return
        lines = wrap(shape.name, 90, size)
        top = b.y + 4 if above else b.y + b.h + 5
        self.text(g, lines, b.cx, top, size)

    # --- badges -------------------------------------------------------------------------

    def _badges(self, shape: Shape) -> None:
        b = shape.bounds
        count = self.counts.get(shape.element_id, 0)
        if count and shape.kind not in ("participant", "lane"):
            self._badge(shape.element_id, "bpmn-badge-count", str(count), b.x - 6, b.y + b.h - 10, ACTIVE[0])
        incidents = self.incidents.get(shape.element_id, 0)
        if incidents:
            self._badge(
                shape.element_id, "bpmn-badge-incident", f"⚠ {incidents}", b.x + b.w - 14, b.y + b.h - 10, INCIDENT
            )

    def _badge(self, element_id: str, kind: str, text: str, x: float, y: float, colour: str) -> None:
        width = max(20.0, 10 + 7 * len(text))
        g = node(self.layers["badges"], "g", class_=f"bpmn-badge {kind}", data_element_id=element_id)
        node(g, "rect", x=x, y=y, width=width, height=18, rx=9, fill=colour, stroke="white", stroke_width=1.5)
        node(
            g,
            "text",
            text,
            x=x + width / 2,
            y=y + 13,
            text_anchor="middle",
            font_size=11,
            font_weight="bold",
            fill="white",
        )
        self.grow(x, y, width, 18)


def _layer(shape: Shape) -> str:
    if shape.kind == "participant":
        return "pools"
    if shape.kind == "lane":
        return "lanes"
    if shape.kind == "group" or (shape.kind in ACTIVITIES and shape.expanded):
        return "containers"
    return "boundary" if shape.kind == "boundaryEvent" else "nodes"


def _layer_order(shape: Shape) -> tuple[int, float]:
    """Bigger containers first, so nested lanes and subprocesses are drawn over their parents."""
    big = shape.kind in ("participant", "lane", "group") or (shape.kind in ACTIVITIES and shape.expanded)
    return (0, -shape.bounds.w * shape.bounds.h) if big else (1, 0.0)
