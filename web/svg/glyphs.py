"""The small pictures inside BPMN shapes: task-type icons, event-definition icons, gateway
and activity markers (the ends of connections are in ``web.svg.edges``). Drawn as SVG elements with lxml.

Every glyph is designed here in a small box of its own (about 16 px) and placed with a
``translate``/``scale`` transform, so the drawing code reads like the picture it makes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from lxml import etree

SVG_NS = "http://www.w3.org/2000/svg"
Point = tuple[float, float]


def fmt(value: float) -> str:
    """A coordinate as short text (two decimals at most)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def node(parent: etree._Element | None, tag: str, text: str | None = None, **attrs: object) -> etree._Element:
    """An SVG element (``stroke_width`` becomes ``stroke-width``); floats are rounded."""
    values = {
        k.rstrip("_").replace("_", "-"): fmt(v) if isinstance(v, float) else str(v)
        for k, v in attrs.items()
        if v is not None
    }
    if parent is None:
        el = etree.Element(f"{{{SVG_NS}}}{tag}", nsmap={None: SVG_NS})
        for key, value in values.items():
            el.set(key, value)
    else:
        el = etree.SubElement(parent, f"{{{SVG_NS}}}{tag}", values)
    if text is not None:
        el.text = text
    return el


def points(pts: Iterable[Point]) -> str:
    """An SVG ``points`` list."""
    return " ".join(f"{fmt(x)},{fmt(y)}" for x, y in pts)


def _box(parent: etree._Element, x: float, y: float, scale: float = 1.0, cls: str | None = None) -> etree._Element:
    transform = f"translate({fmt(x)} {fmt(y)})" + (f" scale({fmt(scale)})" if scale != 1 else "")
    return node(parent, "g", transform=transform, class_=cls)


# --- event definitions ----------------------------------------------------------------


def event_icon(
    parent: etree._Element, kind: str, cx: float, cy: float, r: float, filled: bool, color: str, parallel: bool = False
) -> None:
    """The icon of an event definition, centred in an event circle of radius ``r``."""
    g = _box(parent, cx, cy, r / 18, f"icon event-{kind}")
    fill = color if filled else "white"
    line = dict(stroke=color, stroke_width=1.5, stroke_linejoin="round")
    if kind == "message":
        node(g, "rect", x=-8.5, y=-6, width=17, height=12, fill=fill, **line)
        node(
            g,
            "polyline",
            points="-8.5,-6 0,1 8.5,-6",
            fill="none",
            stroke="white" if filled else color,
            stroke_width=1.3,
        )
    elif kind == "timer":
        _clock_face(g, color)
    elif kind == "terminate":
        node(g, "circle", r=10.5, fill=color, stroke="none")
    elif kind == "conditional":
        node(g, "rect", x=-6, y=-8, width=12, height=16, fill="white", **line)
        for y in (-4.5, -1.5, 1.5, 4.5):
            node(g, "line", x1=-3.5, y1=y, x2=3.5, y2=y, stroke=color, stroke_width=1.2)
    elif kind == "cancel":
        node(g, "path", d="M-7,-7 L7,7 M7,-7 L-7,7", stroke=color, stroke_width=4 if filled else 2.5, fill="none")
    else:
        shape = _EVENT_POLYGONS.get("parallelMultiple" if parallel and kind == "multiple" else kind)
        if shape is not None:
            node(g, "polygon", points=points(shape), fill=fill, **line)


def _clock_face(g: etree._Element, color: str) -> None:
    """The timer event's clock: a face, twelve ticks and two hands."""
    node(g, "circle", r=11, fill="white", stroke=color, stroke_width=2)
    for hour in range(12):
        a = hour * math.pi / 6
        node(
            g,
            "line",
            x1=8 * math.sin(a),
            y1=-8 * math.cos(a),
            x2=10 * math.sin(a),
            y2=-10 * math.cos(a),
            stroke=color,
            stroke_width=1,
        )
    node(g, "polyline", points="2.5,-7.5 0,0 6,1.5", fill="none", stroke=color, stroke_width=1.5)


def _pentagon(r: float) -> list[Point]:
    return [(r * math.sin(2 * math.pi * i / 5), -r * math.cos(2 * math.pi * i / 5)) for i in range(5)]


_EVENT_POLYGONS: dict[str, list[Point]] = {
    "signal": [(0, -9.5), (8.5, 6), (-8.5, 6)],
    "escalation": [(0, -9.5), (7, 8), (0, 2), (-7, 8)],
    "error": [(-8, 8), (-3.5, -7), (1.5, 1.5), (7.5, -8.5), (3, 7), (-1.5, -1)],
    "link": [(-8, -3), (1, -3), (1, -7.5), (8.5, 0), (1, 7.5), (1, 3), (-8, 3)],
    "compensate": [(-9, 0), (-1, -6.5), (-1, 0), (7, -6.5), (7, 6.5), (-1, 0), (-1, 6.5)],
    "multiple": _pentagon(9),
    "parallelMultiple": [
        (-2.5, -9),
        (2.5, -9),
        (2.5, -2.5),
        (9, -2.5),
        (9, 2.5),
        (2.5, 2.5),
        (2.5, 9),
        (-2.5, 9),
        (-2.5, 2.5),
        (-9, 2.5),
        (-9, -2.5),
        (-2.5, -2.5),
    ],
}


# --- gateways -------------------------------------------------------------------------


def gateway_marker(
    parent: etree._Element,
    kind: str,
    cx: float,
    cy: float,
    size: float,
    color: str,
    show_x: bool,
    instantiate: bool = False,
    parallel_events: bool = False,
) -> None:
    """The marker inside a gateway diamond of width ``size``."""
    if kind == "exclusiveGateway" and not show_x:
        return
    g = _box(parent, cx, cy, size / 50, "icon gateway-marker")
    thick = dict(stroke=color, fill="none", stroke_linecap="butt")
    if kind == "exclusiveGateway":
        node(g, "path", d="M-8,-8 L8,8 M8,-8 L-8,8", stroke_width=4.5, **thick)
    elif kind == "parallelGateway":
        node(g, "path", d="M0,-12 V12 M-12,0 H12", stroke_width=4.5, **thick)
    elif kind == "inclusiveGateway":
        node(g, "circle", r=10.5, stroke_width=3, **thick)
    elif kind == "complexGateway":
        node(g, "path", d="M0,-12 V12 M-12,0 H12 M-8.5,-8.5 L8.5,8.5 M8.5,-8.5 L-8.5,8.5", stroke_width=3, **thick)
    elif kind == "eventBasedGateway":
        _event_based_marker(g, color, instantiate, parallel_events)


def _event_based_marker(g: etree._Element, color: str, instantiate: bool, parallel_events: bool) -> None:
    """An event-based gateway's marker in its circle: a pentagon (in a second circle unless it instantiates),
    or a plus for a parallel one."""
    node(g, "circle", r=11, stroke=color, stroke_width=1.2, fill="none")
    if parallel_events:
        node(
            g,
            "polygon",
            points=points(_EVENT_POLYGONS["parallelMultiple"]),
            fill="none",
            stroke=color,
            stroke_width=1.3,
            transform="scale(0.75)",
        )
        return
    if not instantiate:
        node(g, "circle", r=8.5, stroke=color, stroke_width=1.2, fill="none")
    node(
        g,
        "polygon",
        points=points(_pentagon(5.5)),
        fill="none",
        stroke=color,
        stroke_width=1.5,
        stroke_linejoin="round",
    )


# --- tasks ----------------------------------------------------------------------------

TASK_ICONS = frozenset(
    {"userTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "manualTask", "businessRuleTask"}
)


def task_icon(parent: etree._Element, kind: str, x: float, y: float, color: str) -> None:
    """The task-type icon in the top-left corner of a task whose box starts at ``x``, ``y``."""
    if kind not in TASK_ICONS:
        return
    g = _box(parent, x + 6, y + 6, cls=f"icon task-{kind}")
    line = dict(stroke=color, stroke_width=1.2, stroke_linejoin="round")
    if kind == "userTask":
        node(g, "path", d="M1,17 C1,11.5 4,10 9,10 C14,10 17,11.5 17,17 Z", fill="white", **line)
        node(g, "path", d="M5.5,13.5 V17 M12.5,13.5 V17", fill="none", **line)
        node(g, "circle", cx=9, cy=5.5, r=4, fill="white", **line)
        node(g, "path", d="M5,5 C5.5,1.5 12.5,1.5 13,5 C11,3.8 7,3.8 5,5 Z", fill=color, stroke="none")
    elif kind == "serviceTask":
        for cx, cy, fill in ((11.5, 11.5, "white"), (7, 7, "white")):
            node(g, "polygon", points=points(_gear(cx, cy)), fill=fill, **line)
            node(g, "circle", cx=cx, cy=cy, r=2.2, fill="white", **line)
    elif kind == "scriptTask":
        node(
            g,
            "path",
            d="M4,1 H15 C12,4 12,6.5 13.5,9 C15,11.5 14.5,14 12,17 H1 C3.5,14 4,11.5 2.5,9 C1,6.5 1.5,4 4,1 Z",
            fill="white",
            **line,
        )
        node(g, "path", d="M5.5,5 H11.5 M5.5,9 H12 M5,13 H11", fill="none", **line)
    elif kind in ("sendTask", "receiveTask"):
        filled = kind == "sendTask"
        node(g, "rect", x=0, y=2, width=18, height=12.5, fill=color if filled else "white", **line)
        node(g, "polyline", points="0,2 9,9 18,2", fill="none", stroke="white" if filled else color, stroke_width=1.2)
    elif kind == "manualTask":
        _hand(g, line)
    elif kind == "businessRuleTask":
        node(g, "rect", x=0, y=2, width=18, height=13, fill="white", **line)
        node(g, "rect", x=0, y=2, width=18, height=3.8, fill=color, **line)
        node(g, "path", d="M0,10.2 H18 M5.5,5.8 V15", fill="none", **line)


def _hand(g: etree._Element, line: dict[str, Any]) -> None:
    """The manual task's icon: an open hand."""
    node(
        g,
        "path",
        d="M1,7.5 C1,5 2.5,3.5 5,3.5 L10.5,1.2 C12,0.7 12.8,2.8 11.3,3.5 L9,4.5 H18 C19.6,4.5 19.6,7.3"
        " 18,7.3 H19 C20.6,7.3 20.6,10.1 19,10.1 H18 C19.6,10.1 19.6,12.9 18,12.9 H16 C17.5,12.9"
        " 17.5,15.7 16,15.7 H5 C2.5,15.7 1,14 1,12 Z",
        fill="white",
        **line,
    )
    node(g, "path", d="M11,7.3 H18 M11,10.1 H18 M11,12.9 H16", fill="none", **line)


def _gear(cx: float, cy: float, teeth: int = 8, outer: float = 6.5, inner: float = 4.6) -> list[Point]:
    step = 2 * math.pi / teeth
    pts: list[Point] = []
    for k in range(teeth):
        a = k * step
        for radius, offset in ((inner, -0.5), (outer, -0.22), (outer, 0.22), (inner, 0.5)):
            pts.append((cx + radius * math.cos(a + offset * step), cy + radius * math.sin(a + offset * step)))
    return pts


MARKER_SIZE = 14.0


def activity_markers(parent: etree._Element, markers: list[str], cx: float, bottom: float, color: str) -> None:
    """Markers (loop, multi-instance, compensation, ad hoc, collapsed) centred along the bottom edge."""
    gap = 4.0
    total = len(markers) * MARKER_SIZE + (len(markers) - 1) * gap
    x = cx - total / 2
    for marker in markers:
        g = _box(parent, x, bottom - MARKER_SIZE - 4, cls=f"marker marker-{marker}")
        _marker(g, marker, color)
        x += MARKER_SIZE + gap


def _marker(g: etree._Element, marker: str, color: str) -> None:
    line = dict(stroke=color, fill="none", stroke_width=1.5)
    if marker == "collapsed":
        node(g, "rect", x=0, y=0, width=14, height=14, fill="white", stroke=color, stroke_width=1.2)
        node(g, "path", d="M7,3 V11 M3,7 H11", **line)
    elif marker == "parallel":
        node(g, "path", d="M3,1 V13 M7,1 V13 M11,1 V13", **dict(line, stroke_width=2))
    elif marker == "sequential":
        node(g, "path", d="M1,3 H13 M1,7 H13 M1,11 H13", **dict(line, stroke_width=2))
    elif marker == "loop":
        node(g, "path", d="M3.6,11.6 A5.5,5.5 0 1 1 10.4,11.6", **line)
        node(g, "path", d="M0.8,10 L3.8,11.9 L4.6,8.4", stroke_linejoin="round", **line)
    elif marker == "compensation":
        node(g, "polygon", points="0,7 7,1.5 7,12.5", **dict(line, stroke_width=1.2))
        node(g, "polygon", points="7,7 14,1.5 14,12.5", **dict(line, stroke_width=1.2))
    elif marker == "adhoc":
        node(g, "path", d="M1,9 C3,4 5.5,4 7,7 C8.5,10 11,10 13,5", **line)


def data_arrow(parent: etree._Element, x: float, y: float, filled: bool, color: str) -> None:
    """The input (open) or output (filled) arrow in the corner of a data object."""
    g = _box(parent, x + 4, y + 5, cls="icon data-output" if filled else "icon data-input")
    node(
        g,
        "polygon",
        points="0,3 7,3 7,0 13,5 7,10 7,7 0,7",
        fill=color if filled else "white",
        stroke=color,
        stroke_width=1,
    )
