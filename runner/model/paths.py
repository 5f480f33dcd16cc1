"""The sequence-flow graph of a BPMN file, and the path an instance has taken through it.

History records the steps that wait (user tasks, handlers, timers, messages); the steps
in between (gateways, start and end events, script tasks) leave no trace. ``taken_path``
fills them in: a silent element is on the path when it lies on a chain of silent
elements between two known ones. Where the chain forks towards several end events,
none is guessed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from lxml import etree

from runner.model.document import BPMN_NS, parse, qname

# Elements where a token waits for something outside, so history knows they ran.
WAITING = frozenset(
    {
        "userTask",
        "serviceTask",
        "sendTask",
        "receiveTask",
        "manualTask",
        "intermediateCatchEvent",
        "boundaryEvent",
        "callActivity",
    }
)
CONTAINERS = frozenset({"subProcess", "transaction", "adHocSubProcess"})
_NOT_NODES = frozenset(
    {
        "sequenceFlow",
        "laneSet",
        "lane",
        "dataObject",
        "dataObjectReference",
        "dataStoreReference",
        "textAnnotation",
        "association",
        "group",
        "ioSpecification",
        "property",
    }
)


@dataclass
class FlowGraph:
    """Flow nodes, sequence flows and message waits of every process in one file."""

    kinds: dict[str, str] = field(default_factory=dict)  # flow node id -> BPMN kind
    scope: dict[str, str] = field(default_factory=dict)  # flow node id -> its process or subprocess id
    flows: dict[str, tuple[str, str]] = field(default_factory=dict)  # sequence flow id -> (source, target)
    catchers: dict[str, list[str]] = field(default_factory=dict)  # message name -> elements waiting for it
    message_starts: dict[str, list[str]] = field(default_factory=dict)  # message name -> start events
    calls: dict[str, str] = field(default_factory=dict)  # call activity id -> called process key
    attached: dict[str, str] = field(default_factory=dict)  # boundary event id -> the activity it sits on
    processes: set[str] = field(default_factory=set)

    def ancestors(self, node: str) -> list[str]:
        """The subprocesses around a node, nearest first."""
        out, current = [], self.scope.get(node)
        while current in self.kinds:
            out.append(current)
            current = self.scope.get(current)
        return out


def read_graph(xml: bytes | str) -> FlowGraph:
    """The flow graph of a BPMN file (all its processes)."""
    root = parse(xml.encode() if isinstance(xml, str) else xml)
    graph = FlowGraph()
    messages = {m.get("id"): m.get("name") or m.get("id") for m in root.iter(f"{{{BPMN_NS}}}message")}
    for process in root.iter(f"{{{BPMN_NS}}}process"):
        graph.processes.add(process.get("id") or "")
        _read_scope(graph, process, messages)
    return graph


def _read_scope(graph: FlowGraph, container: etree._Element, messages: dict[str, str]) -> None:
    scope_id = container.get("id") or ""
    for el in container:
        ns, kind = qname(el)
        if ns != BPMN_NS or not el.get("id"):
            continue
        if kind == "sequenceFlow":
            graph.flows[el.get("id")] = (el.get("sourceRef") or "", el.get("targetRef") or "")
            continue
        if kind in _NOT_NODES or kind.endswith("EventDefinition") or kind.endswith("Characteristics"):
            continue
        graph.kinds[el.get("id")] = kind
        graph.scope[el.get("id")] = scope_id
        if kind == "boundaryEvent":
            graph.attached[el.get("id")] = el.get("attachedToRef") or ""
        if kind == "callActivity":
            graph.calls[el.get("id")] = el.get("calledElement") or ""
        for name in _message_names(el, messages):
            target = graph.message_starts if kind == "startEvent" else graph.catchers
            target.setdefault(name, []).append(el.get("id"))
        if kind in CONTAINERS:
            _read_scope(graph, el, messages)


def _message_names(el: etree._Element, messages: dict[str, str]) -> list[str]:
    refs = [el.get("messageRef")] if qname(el)[1] == "receiveTask" else []
    refs += [d.get("messageRef") for d in el if qname(d)[1] == "messageEventDefinition"]
    return [messages.get(ref, ref) for ref in refs if ref]


def taken_path(
    graph: FlowGraph, visited: Iterable[str], active: Iterable[str], process_id: str, finished: bool
) -> set[str]:
    """Element and sequence-flow ids the instance has passed (``active`` ones excluded)."""
    active = {a for a in active if a in graph.kinds}
    known = {v for v in visited if v in graph.kinds} | active
    for node in list(known):
        known.update(graph.ancestors(node))
    busy = {a for node in active for a in graph.ancestors(node)} | active
    succ, pred = _adjacency(graph)
    silent = {n for n, kind in graph.kinds.items() if kind not in WAITING and kind not in CONTAINERS}
    starts = {
        n
        for n, kind in graph.kinds.items()
        if kind == "startEvent" and not pred.get(n) and (graph.scope[n] == process_id or graph.scope[n] in known)
    }
    for scope in _finished_scopes(graph, known, busy, process_id, finished):
        ends = _last_ends(graph, known | {s for s in starts if graph.scope[s] == scope}, scope, succ, silent)
        if len(ends) == 1:  # NOTE: with several reachable end events, which one was reached is unknown
            known.add(ends.pop())
    forward = _reach(known | starts, succ, silent)
    backward = _reach(known, pred, silent)
    done = (known | (forward & backward & silent)) - busy
    reached = done | active | (busy & known)
    taken = {f for f, (src, tgt) in graph.flows.items() if src in done and tgt in reached}
    return done | taken


def _adjacency(graph: FlowGraph) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    for src, tgt in graph.flows.values():
        succ.setdefault(src, []).append(tgt)
        pred.setdefault(tgt, []).append(src)
    return succ, pred


def _reach(seeds: set[str], edges: dict[str, list[str]], silent: set[str]) -> set[str]:
    """Seeds plus the silent nodes reachable from them through silent nodes only."""
    seen, todo = set(seeds), deque(seeds)
    while todo:
        for nxt in edges.get(todo.popleft(), ()):
            if nxt in silent and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _last_ends(graph: FlowGraph, known: set[str], scope: str, succ: dict[str, list[str]], silent: set[str]) -> set[str]:
    """End events of ``scope`` reachable through silent elements from a known element that leads to no other."""
    ends: set[str] = set()
    for node in known:
        if graph.scope.get(node) != scope:
            continue
        chain = _reach({node}, succ, silent)
        if any(nxt in known and nxt != node for n in chain for nxt in succ.get(n, ())):
            continue  # NOTE: the token went on from here to another known element
        ends.update(n for n in chain if graph.kinds[n] == "endEvent")
    return ends


def _finished_scopes(graph: FlowGraph, known: set[str], busy: set[str], process_id: str, finished: bool) -> list[str]:
    """Scopes whose tokens are all gone: the process when the instance ended, and finished subprocesses."""
    scopes = [process_id] if finished else []
    return scopes + [n for n in known if graph.kinds.get(n) in CONTAINERS and n not in busy]


def lift_called(ids: Iterable[str], top: FlowGraph, called: dict[str, FlowGraph]) -> dict[str, str]:
    """Map ids of elements in called processes to the call activity of ``top`` that runs them."""
    out: dict[str, str] = {}
    for element_id in ids:
        current, hops = element_id, 0
        while current not in top.kinds and hops < 10:
            key = next((k for k, g in called.items() if current in g.kinds), None)
            callers = [c for g in [top, *called.values()] for c, target in g.calls.items() if target == key]
            if key is None or not callers:
                break
            current, hops = callers[0], hops + 1
        if current in top.kinds:
            out[element_id] = current
    return out
