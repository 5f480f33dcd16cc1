"""Drawing BPMN connections (sequence and message flows, associations): the line, its ends and its label.

``web.svg.render`` decides the layers and overlays; ``draw_edge`` draws one connection into its group.
The ends (arrowheads, the default slash, the condition diamond, the message flow's circle) are
designed along the connection's direction at its first or last point.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

from lxml import etree

from web.svg.di import Edge
from web.svg.glyphs import Point, node, points
from web.svg.shapes import Look, Painter
from web.svg.text import LINE_HEIGHT, wrap


def draw_edge(c: Painter, g: etree._Element, edge: Edge, look: Look) -> None:
    """Draw one connection into its group ``g``: line, ends and label."""
    pts = edge.points
    for x, y in pts:
        c.grow(x, y)
    line = points(pts)
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
        arrow_head(g, pts[-2], pts[-1], "filled", colour)
        if edge.is_default:
            default_slash(g, pts[0], pts[1], colour)
        elif edge.conditional:
            condition_diamond(g, pts[0], pts[1], colour)
    elif edge.kind == "messageFlow":
        start_circle(g, pts[0], pts[1], colour)
        arrow_head(g, pts[-2], pts[-1], "open", colour)
    elif edge.kind in ("dataInputAssociation", "dataOutputAssociation") or edge.direction in ("One", "Both"):
        arrow_head(g, pts[-2], pts[-1], "chevron", colour)
        if edge.direction == "Both":
            arrow_head(g, pts[1], pts[0], "chevron", colour)


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
    lengths = [((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) ** 0.5 for a, b in pairwise(pts)]
    half = sum(lengths) / 2
    for (a, b), length in zip(pairwise(pts), lengths, strict=True):
        if half <= length and length:
            t = half / length
            return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
        half -= length
    return pts[-1]


# --- connection ends ------------------------------------------------------------------


def _direction(a: Point, b: Point) -> tuple[Point, Point]:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = math.hypot(dx, dy) or 1.0
    u = (dx / length, dy / length)
    return u, (-u[1], u[0])


def arrow_head(parent: etree._Element, before: Point, tip: Point, style: str, color: str) -> None:
    """An arrowhead at ``tip``: ``filled`` (sequence flow), ``open`` (message flow) or ``chevron``."""
    u, n = _direction(before, tip)
    length, half = (11.0, 4.0) if style != "chevron" else (10.0, 5.5)
    base = (tip[0] - u[0] * length, tip[1] - u[1] * length)
    left = (base[0] + n[0] * half, base[1] + n[1] * half)
    right = (base[0] - n[0] * half, base[1] - n[1] * half)
    if style == "chevron":
        node(parent, "polyline", points=points([left, tip, right]), fill="none", stroke=color, stroke_width=1.5)
    else:
        node(
            parent,
            "polygon",
            points=points([left, tip, right]),
            fill=color if style == "filled" else "white",
            stroke=color,
            stroke_width=1.2,
            stroke_linejoin="round",
        )


def start_circle(parent: etree._Element, start: Point, after: Point, color: str) -> None:
    """The small open circle at the source of a message flow."""
    u, _ = _direction(start, after)
    node(
        parent,
        "circle",
        cx=start[0] + u[0] * 4,
        cy=start[1] + u[1] * 4,
        r=4,
        fill="white",
        stroke=color,
        stroke_width=1.2,
    )


def default_slash(parent: etree._Element, start: Point, after: Point, color: str) -> None:
    """The slash across the start of a default sequence flow."""
    u, n = _direction(start, after)
    c = (start[0] + u[0] * 12, start[1] + u[1] * 12)
    d = ((n[0] + u[0]) * 4.5, (n[1] + u[1]) * 4.5)
    node(parent, "line", x1=c[0] - d[0], y1=c[1] - d[1], x2=c[0] + d[0], y2=c[1] + d[1], stroke=color, stroke_width=1.5)


def condition_diamond(parent: etree._Element, start: Point, after: Point, color: str) -> None:
    """The small diamond at the source of a conditional sequence flow leaving an activity."""
    u, n = _direction(start, after)

    def at(along: float, across: float) -> Point:
        return start[0] + u[0] * along + n[0] * across, start[1] + u[1] * along + n[1] * across

    pts = [start, at(8, 5), at(16, 0), at(8, -5)]
    node(parent, "polygon", points=points(pts), fill="white", stroke=color, stroke_width=1.2)
