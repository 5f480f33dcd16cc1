"""Drawing each kind of BPMN node and connection, in the look of Camunda Modeler (bpmn-js).

``web.svg.render`` decides the layers, overlays and element groups; the functions here draw
one shape or edge into its group, using the painter's label helpers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Protocol

from lxml import etree

from web.svg import glyphs
from web.svg.di import ACTIVITIES, DATA, EVENTS, GATEWAYS, SUBPROCESSES, Bounds, Edge, Shape
from web.svg.glyphs import fmt, node
from web.svg.text import LINE_HEIGHT, wrap

INK = "#22242a"


@dataclass
class Look:
    """Stroke and fill of one element after the overlays."""

    stroke: str = INK
    fill: str = "white"
    width_extra: float = 0.0
    classes: list[str] = field(default_factory=list)


class Painter(Protocol):
    """What the drawing functions need from the canvas: labels and the growing bounding box."""

    def grow(self, x: float, y: float, w: float = 0.0, h: float = 0.0) -> None: ...

    def text(
        self,
        g: etree._Element,
        lines: list[str],
        x: float,
        top: float,
        size: float,
        anchor: str = "middle",
        grow: bool = True,
    ) -> etree._Element: ...

    def inside_label(self, g: etree._Element, shape: Shape, b: Bounds) -> None: ...

    def outside_label(self, g: etree._Element, shape: Shape, above: bool = False) -> None: ...


def draw_shape(c: Painter, g: etree._Element, shape: Shape, look: Look) -> None:
    """Draw one node into its group ``g``."""
    b = shape.bounds
    if shape.kind in ("participant", "lane"):
        _pool(c, g, shape, look)
    elif shape.kind in ACTIVITIES:
        _activity(c, g, shape, look)
    elif shape.kind in EVENTS:
        _event(c, g, shape, look)
    elif shape.kind in GATEWAYS:
        _gateway(c, g, shape, look)
    elif shape.kind in DATA:
        _data(c, g, shape, look)
    elif shape.kind == "textAnnotation":
        node(g, "rect", x=b.x, y=b.y, width=b.w, height=b.h, fill="white", fill_opacity=0.01, stroke="none")
        node(
            g,
            "path",
            d=f"M{fmt(b.x + 10)},{fmt(b.y)} H{fmt(b.x)} V{fmt(b.y + b.h)} H{fmt(b.x + 10)}",
            fill="none",
            stroke=look.stroke,
            stroke_width=1,
        )
        size = shape.label.font_size
        c.text(g, wrap(shape.name, b.w - 10, size), b.x + 5, b.y + 5, size, anchor="start")
    elif shape.kind == "group":
        node(
            g,
            "rect",
            x=b.x,
            y=b.y,
            width=b.w,
            height=b.h,
            rx=10,
            fill="none",
            stroke=look.stroke,
            stroke_width=1,
            stroke_dasharray="8,3,1,3",
        )
        c.outside_label(g, shape, above=True)
    else:
        node(
            g,
            "rect",
            x=b.x,
            y=b.y,
            width=b.w,
            height=b.h,
            rx=4,
            fill=look.fill,
            stroke=look.stroke,
            stroke_dasharray="4,3",
        )
        c.inside_label(g, shape, b)


def _pool(c: Painter, g: etree._Element, shape: Shape, look: Look) -> None:
    b = shape.bounds
    width = 1.5 + look.width_extra
    node(
        g,
        "rect",
        x=b.x,
        y=b.y,
        width=b.w,
        height=b.h,
        fill="white" if shape.kind == "participant" else "none",
        stroke=look.stroke,
        stroke_width=width,
    )
    size = shape.label.font_size
    if shape.collapsed_pool:
        c.inside_label(g, shape, b)
        return
    if shape.horizontal:
        if shape.kind == "participant":
            node(g, "line", x1=b.x + 30, y1=b.y, x2=b.x + 30, y2=b.y + b.h, stroke=look.stroke, stroke_width=width)
        lines = wrap(shape.name, b.h - 10, size)
        cx, cy = b.x + 15, b.cy
        text = c.text(g, lines, cx, cy - len(lines) * size * LINE_HEIGHT / 2, size, grow=False)
        text.set("transform", f"rotate(-90 {fmt(cx)} {fmt(cy)})")
    else:
        if shape.kind == "participant":
            node(g, "line", x1=b.x, y1=b.y + 30, x2=b.x + b.w, y2=b.y + 30, stroke=look.stroke, stroke_width=width)
        lines = wrap(shape.name, b.w - 10, size)
        c.text(g, lines, b.cx, b.y + 15 - len(lines) * size * LINE_HEIGHT / 2, size)
    if shape.multiplicity:
        glyphs.activity_markers(g, ["parallel"], b.cx, b.y + b.h, look.stroke)


def _activity(c: Painter, g: etree._Element, shape: Shape, look: Look) -> None:
    b = shape.bounds
    width = (5.0 if shape.kind == "callActivity" else 2.0) + look.width_extra
    dash = "2,4" if shape.triggered_by_event else None
    node(
        g,
        "rect",
        x=b.x,
        y=b.y,
        width=b.w,
        height=b.h,
        rx=10,
        fill=look.fill,
        stroke=look.stroke,
        stroke_width=width,
        stroke_dasharray=dash,
        stroke_linecap="round" if dash else None,
    )
    if shape.kind == "transaction":
        node(
            g,
            "rect",
            x=b.x + 3,
            y=b.y + 3,
            width=max(b.w - 6, 0),
            height=max(b.h - 6, 0),
            rx=8,
            fill="none",
            stroke=look.stroke,
            stroke_width=1.5,
        )
    glyphs.task_icon(g, shape.kind, b.x, b.y, look.stroke)
    markers = [
        m
        for m in (
            shape.loop,
            "compensation" if shape.compensation else None,
            "adhoc" if shape.kind == "adHocSubProcess" else None,
        )
        if m
    ]
    collapsible = shape.kind in SUBPROCESSES or (shape.kind == "callActivity" and not shape.calls_task)
    if collapsible and not shape.expanded:
        markers.append("collapsed")
    if markers:
        glyphs.activity_markers(g, markers, b.cx, b.y + b.h, look.stroke)
    size = shape.label.font_size
    if shape.expanded:
        c.text(g, wrap(shape.name, b.w - 20, size), b.x + 10, b.y + 6, size, anchor="start")
        return
    lines = wrap(shape.name, b.w - 10, size)
    height = len(lines) * size * LINE_HEIGHT
    top = b.cy - height / 2
    if shape.kind in glyphs.TASK_ICONS and top < b.y + 24:
        # NOTE: a label that would run into the type icon moves down when there is room below.
        top = max(top, min(b.y + 24, b.y + b.h - (20 if markers else 4) - height))
    c.text(g, lines, b.cx, top, size)


def _event(c: Painter, g: etree._Element, shape: Shape, look: Look) -> None:
    b = shape.bounds
    r = min(b.w, b.h) / 2
    dash = None if shape.interrupting else "5.5,3"
    circle = dict(cx=b.cx, cy=b.cy, stroke=look.stroke, stroke_dasharray=dash)
    if shape.kind == "startEvent":
        node(g, "circle", r=r, fill=look.fill, stroke_width=2 + look.width_extra, **circle)
    elif shape.kind == "endEvent":
        node(g, "circle", r=r, fill=look.fill, stroke_width=4 + look.width_extra, **circle)
    else:
        node(g, "circle", r=r, fill=look.fill, stroke_width=1.5 + look.width_extra, **circle)
        node(g, "circle", r=max(r - 3, 1), fill="none", stroke_width=1.5, **circle)
    defs = shape.event_definitions
    if defs:
        kind = defs[0] if len(defs) == 1 else "multiple"
        glyphs.event_icon(g, kind, b.cx, b.cy, r, shape.throwing, look.stroke, shape.parallel_multiple)
    c.outside_label(g, shape)


def _gateway(c: Painter, g: etree._Element, shape: Shape, look: Look) -> None:
    b = shape.bounds
    diamond = [(b.cx, b.y), (b.x + b.w, b.cy), (b.cx, b.y + b.h), (b.x, b.cy)]
    node(
        g,
        "polygon",
        points=glyphs.points(diamond),
        fill=look.fill,
        stroke=look.stroke,
        stroke_width=2 + look.width_extra,
        stroke_linejoin="round",
    )
    glyphs.gateway_marker(
        g,
        shape.kind,
        b.cx,
        b.cy,
        min(b.w, b.h),
        look.stroke,
        shape.marker_visible,
        shape.instantiate,
        shape.gateway_type == "Parallel",
    )
    c.outside_label(g, shape)


def _data(c: Painter, g: etree._Element, shape: Shape, look: Look) -> None:
    b = shape.bounds
    if shape.kind == "dataStoreReference":
        ry = min(b.h * 0.12, 8.0)
        x1, bottom = b.x + b.w, b.y + b.h
        rx = fmt(b.w / 2)
        node(
            g,
            "path",
            d=f"M{fmt(b.x)},{fmt(b.y + ry)} V{fmt(bottom - ry)} A{rx},{fmt(ry)} 0 0 0 {fmt(x1)},"
            f"{fmt(bottom - ry)} V{fmt(b.y + ry)} A{rx},{fmt(ry)} 0 0 0 {fmt(b.x)},{fmt(b.y + ry)} Z",
            fill=look.fill,
            stroke=look.stroke,
            stroke_width=2 + look.width_extra,
        )
        for dy in (0, 5, 10):
            node(
                g,
                "path",
                d=f"M{fmt(b.x)},{fmt(b.y + ry + dy)} A{rx},{fmt(ry)} 0 0 0 {fmt(x1)},{fmt(b.y + ry + dy)}",
                fill="none",
                stroke=look.stroke,
                stroke_width=1.5,
            )
        node(g, "ellipse", cx=b.cx, cy=b.y + ry, rx=b.w / 2, ry=ry, fill=look.fill, stroke=look.stroke, stroke_width=2)
    else:
        fold = min(12.0, b.w * 0.35)
        x1, y1 = b.x + b.w, b.y + b.h
        node(
            g,
            "path",
            d=f"M{fmt(b.x)},{fmt(b.y)} H{fmt(x1 - fold)} L{fmt(x1)},{fmt(b.y + fold)} V{fmt(y1)} H{fmt(b.x)} Z",
            fill=look.fill,
            stroke=look.stroke,
            stroke_width=1.5 + look.width_extra,
            stroke_linejoin="round",
        )
        node(
            g,
            "path",
            d=f"M{fmt(x1 - fold)},{fmt(b.y)} V{fmt(b.y + fold)} H{fmt(x1)}",
            fill="none",
            stroke=look.stroke,
            stroke_width=1.5,
        )
        if shape.kind in ("dataInput", "dataOutput"):
            glyphs.data_arrow(g, b.x, b.y, shape.kind == "dataOutput", look.stroke)
        if shape.collection:
            glyphs.activity_markers(g, ["parallel"], b.cx, y1 + 2, look.stroke)
    c.outside_label(g, shape)


def draw_edge(c: Painter, g: etree._Element, edge: Edge, look: Look) -> None:
    """Draw one connection into its group ``g``: line, ends and label."""
    pts = edge.points
    for x, y in pts:
        c.grow(x, y)
    line = glyphs.points(pts)
    node(g, "polyline", points=line, fill="none", stroke="#000", stroke_opacity=0, stroke_width=12, class_="hit")
    style: dict[str, Any] = dict(
        fill="none", stroke=look.stroke, stroke_width=1.5 + look.width_extra, stroke_linejoin="round"
    )
    if edge.kind == "messageFlow":
        style["stroke_dasharray"] = "10,6"
    elif edge.kind in ("association", "dataInputAssociation", "dataOutputAssociation"):
        style.update(stroke_dasharray="0.5,5", stroke_linecap="round")
    node(g, "polyline", points=line, **style)
    _edge_ends(g, edge, look.stroke)
    if edge.name.strip():
        _edge_label(c, g, edge)


def _edge_ends(g: etree._Element, edge: Edge, colour: str) -> None:
    pts = edge.points
    if edge.kind == "sequenceFlow":
        glyphs.arrow_head(g, pts[-2], pts[-1], "filled", colour)
        if edge.is_default:
            glyphs.default_slash(g, pts[0], pts[1], colour)
        elif edge.conditional:
            glyphs.condition_diamond(g, pts[0], pts[1], colour)
    elif edge.kind == "messageFlow":
        glyphs.start_circle(g, pts[0], pts[1], colour)
        glyphs.arrow_head(g, pts[-2], pts[-1], "open", colour)
    elif edge.kind in ("dataInputAssociation", "dataOutputAssociation") or edge.direction in ("One", "Both"):
        glyphs.arrow_head(g, pts[-2], pts[-1], "chevron", colour)
        if edge.direction == "Both":
            glyphs.arrow_head(g, pts[1], pts[0], "chevron", colour)


def _edge_label(c: Painter, g: etree._Element, edge: Edge) -> None:
    size, lb = edge.label.font_size, edge.label.bounds
    if lb is not None and lb.w > 1:
        lines = wrap(edge.name, lb.w + 6, size)
        height = len(lines) * size * LINE_HEIGHT
        c.text(g, lines, lb.cx, lb.y + max(0.0, (lb.h - height) / 2), size)
        return
    x, y = _midpoint(edge.points)
    lines = wrap(edge.name, 90, size)
    c.text(g, lines, x, y - len(lines) * size * LINE_HEIGHT - 3, size)


def _midpoint(pts: list[tuple[float, float]]) -> tuple[float, float]:
    """The point halfway along a polyline."""
    lengths = [((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) ** 0.5 for a, b in itertools.pairwise(pts)]
    half = sum(lengths) / 2
    for (a, b), length in zip(itertools.pairwise(pts), lengths, strict=True):
        if half <= length and length:
            t = half / length
            return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
        half -= length
    return pts[-1]
