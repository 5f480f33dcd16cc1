"""Namespace-aware helpers for reading Camunda 7 BPMN and DMN XML with lxml.

Camunda Modeler writes extensions in ``http://camunda.org/schema/1.0/bpmn``; files made by
older Camunda/Activiti tools use ``http://activiti.org/bpmn``. Every helper here treats
the two namespaces as one, so callers never spell a namespace themselves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator, Mapping

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
CAMUNDA_NSS = ("http://camunda.org/schema/1.0/bpmn", "http://activiti.org/bpmn")
DMN_NSS = (
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",  # DMN 1.1
    "http://www.omg.org/spec/DMN/20180521/MODEL/",  # DMN 1.2
    "https://www.omg.org/spec/DMN/20191111/MODEL/",  # DMN 1.3
)
# Elements whose children are flow elements; an element's "owner" is the child of one.
CONTAINERS = frozenset({"process", "subProcess", "transaction", "adHocSubProcess"})
# Children of a subprocess that describe the subprocess itself rather than its flow.
DETAILS = frozenset(
    {
        "extensionElements",
        "multiInstanceLoopCharacteristics",
        "standardLoopCharacteristics",
        "ioSpecification",
        "property",
        "documentation",
        "dataInputAssociation",
        "dataOutputAssociation",
        "incoming",
        "outgoing",
        "auditing",
        "monitoring",
    }
)

# NOTE: entities are never expanded and nothing is fetched, so a file cannot read local
# files or reach the network (XXE); huge_tree stays off to bound memory.
_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)


def parse(data: bytes) -> etree._Element:
    """Parse untrusted XML bytes safely; raises ``etree.XMLSyntaxError`` when malformed."""
    return etree.fromstring(data, parser=etree.XMLParser(**_PARSER_OPTIONS))


def qname(el: etree._Element) -> tuple[str, str]:
    """Namespace and local name of an element ("", "" for comments and PIs)."""
    if not isinstance(el.tag, str):
        return "", ""
    q = etree.QName(el)
    return q.namespace or "", q.localname


def local(el: etree._Element) -> str:
    """Local name of an element."""
    return qname(el)[1]


def is_bpmn(el: etree._Element, *names: str) -> bool:
    """Whether the element is a BPMN model element (with one of ``names`` if given)."""
    ns, name = qname(el)
    return ns == BPMN_NS and (not names or name in names)


def is_camunda(el: etree._Element, *names: str) -> bool:
    """Whether the element is a camunda/activiti extension (with one of ``names`` if given)."""
    ns, name = qname(el)
    return ns in CAMUNDA_NSS and (not names or name in names)


def bpmn_iter(root: etree._Element, *names: str) -> Iterator[etree._Element]:
    """All BPMN elements below and including ``root`` with one of the local names."""
    return root.iter(*(f"{{{BPMN_NS}}}{n}" for n in names))


def bpmn_children(el: etree._Element, *names: str) -> list[etree._Element]:
    """Direct BPMN children of ``el`` with one of the local names."""
    return [c for c in el if is_bpmn(c, *names)]


def camunda_iter(root: etree._Element, *names: str) -> Iterator[etree._Element]:
    """All camunda/activiti extension elements below ``root`` with one of the local names."""
    return root.iter(*(f"{{{ns}}}{n}" for ns in CAMUNDA_NSS for n in names))


def camunda_children(el: etree._Element, *names: str) -> list[etree._Element]:
    """Direct camunda/activiti children of ``el`` with one of the local names."""
    return [c for c in el if is_camunda(c, *names)]


def extensions(el: etree._Element, *names: str) -> list[etree._Element]:
    """Camunda elements inside ``el``'s own ``bpmn:extensionElements``."""
    return [c for ext in bpmn_children(el, "extensionElements") for c in camunda_children(ext, *names)]


def camunda_attr(el: etree._Element, name: str) -> str | None:
    """A camunda:/activiti: attribute of ``el``, or None when absent."""
    for ns in CAMUNDA_NSS:
        value = el.get(f"{{{ns}}}{name}")
        if value is not None:
            return value
    return None


def text(el: etree._Element | None) -> str:
    """All text inside an element (CDATA included), stripped; "" for None."""
    return "".join(el.itertext()).strip() if el is not None else ""


def owner(el: etree._Element) -> etree._Element:
    """The flow element (or process, message, ...) that a nested element belongs to."""
    node: etree._Element | None = el
    while node is not None:
        parent = node.getparent()
        if parent is None:
            return node
        if is_bpmn(parent) and local(parent) in CONTAINERS | {"definitions"} and local(node) not in DETAILS:
            return node
        node = parent
    return el


def label(el: etree._Element | None) -> tuple[str, str]:
    """(id, name) naming an element in a report; without an id, its tag and line stand in."""
    if el is None:
        return "", ""
    ident = el.get("id") or f"{local(el) or 'element'} (line {el.sourceline})"
    return ident, " ".join((el.get("name") or "").split())


def duplicate_ids(root: etree._Element, namespaces: Collection[str]) -> Iterator[tuple[etree._Element, str]]:
    """Each element (of the namespaces) whose id an earlier element already uses."""
    seen: set[str] = set()
    for el in root.iter():
        ident = el.get("id") if qname(el)[0] in namespaces else None
        if ident and ident in seen:
            yield el, ident
        elif ident:
            seen.add(ident)


def has_implementation(el: etree._Element) -> bool:
    """Whether an element carries a camunda implementation (external, Java or connector)."""
    attrs = ("type", "topic", "class", "delegateExpression", "expression")
    return any(camunda_attr(el, a) is not None for a in attrs) or bool(extensions(el, "connector"))


def cycles(order: list[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """One shortest cycle (first node repeated at the end) per strongly connected part of a graph.

    Nodes are tried in ``order``, so each cycle starts at its earliest node in the file.
    """
    reach = {node: reachable(node, edges) for node in order}
    found: list[list[str]] = []
    covered: set[str] = set()
    for node in order:
        if node in covered or node not in reach[node]:
            continue
        part = {other for other in reach[node] if node in reach.get(other, ())}
        covered |= part
        found.append(_cycle_through(node, part, edges))
    return found


def reachable(start: str, edges: Mapping[str, list[str]]) -> set[str]:
    """Every node some path of edges leads to from ``start`` (``start`` only if on a cycle)."""
    seen: set[str] = set()
    stack = list(edges.get(start, ()))
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(edges.get(node, ()))
    return seen


def _cycle_through(start: str, part: set[str], edges: Mapping[str, list[str]]) -> list[str]:
    """The shortest path from ``start`` back to itself inside ``part`` (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in edges.get(node, ()):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt in part and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return [start, start]
