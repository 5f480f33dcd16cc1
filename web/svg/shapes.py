"""Drawing each kind of BPMN node, in the look of Camunda Modeler (bpmn-js); connections are in ``web.svg.edges``.

``web.svg.render`` decides the layers, overlays and element groups; the functions here draw
one shape into its group, using the painter's label helpers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from lxml import etree

from web.svg import glyphs
from web.svg.di import ACTIVITIES, DATA, EVENTS, GATEWAYS, SUBPROCESSES, Bounds, Shape
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
        _annotation(c, g, shape, look)
    elif shape.kind == "group":
        _group(c, g, shape, look)
    else:
        _unknown(c, g, shape, look)


def _annotation(c: Painter, g: etree._Element, shape: Shape, look: Look) -> None:
    b = shape.bounds
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


def _group(c: Painter, g: etree._Element, shape: Shape, look: Look) -> None:
    b = shape.bounds
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


def _unknown(c: Painter, g: etree._Element, shape: Shape, look: Look) -> None:
    """An element kind this renderer does not know: a dashed box with its name."""
    b = shape.bounds
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
    markers = _markers(shape)
    if markers:
        glyphs.activity_markers(g, markers, b.cx, b.y + b.h, look.stroke)
    _activity_label(c, g, shape, bool(markers))


def _markers(shape: Shape) -> list[str]:
    """The markers along an activity's bottom edge: loop, compensation, ad hoc, collapsed."""
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
    return markers


def _activity_label(c: Painter, g: etree._Element, shape: Shape, has_markers: bool) -> None:
    """The name: top-left in an expanded subprocess, else centred and clear of the type icon."""
    b = shape.bounds
    size = shape.label.font_size
    if shape.expanded:
        c.text(g, wrap(shape.name, b.w - 20, size), b.x + 10, b.y + 6, size, anchor="start")
        return
    lines = wrap(shape.name, b.w - 10, size)
    height = len(lines) * size * LINE_HEIGHT
    top = b.cy - height / 2
    if shape.kind in glyphs.TASK_ICONS and top < b.y + 24:
        # NOTE: a label that would run into the type icon moves down when there is room below.
        top = max(top, min(b.y + 24, b.y + b.h - (20 if has_markers else 4) - height))
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
    if shape.kind == "dataStoreReference":
        _data_store(g, shape.bounds, look)
    else:
        _data_object(g, shape, look)
    c.outside_label(g, shape)


def _data_store(g: etree._Element, b: Bounds, look: Look) -> None:
    """A cylinder."""
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


def _data_object(g: etree._Element, shape: Shape, look: Look) -> None:
    """A page with a folded corner, with its input/output arrow and collection marker."""
    b = shape.bounds
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
