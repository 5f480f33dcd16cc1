"""What the customer-facing steps of a process need of staff members, read from the diagram and templates.

A ``zalo.send`` or ``email.send`` task names a message template (its ``template`` input
parameter); a template that prints ``{{ owner.phone }}`` stops with "owner.phone has no value"
when the customer's owner has no phone. This module finds those needs statically, per
process: every ``owner.x`` / ``teacher.x`` a template prints unguarded (a use inside
``{% if teacher.phone is defined %}`` is optional, as rendering treats an empty field as
undefined). ``runner.crm.gaps`` then tells which staff members lack them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, TemplateError, nodes
from lxml import etree

from runner.model.document import BPMN_NS, bpmn_iter, camunda_attr, camunda_children, extensions, is_camunda, text

# The message topics and the file suffix of their templates (handlers.zalo / handlers.email).
MESSAGE_TOPICS = {"zalo.send": ".txt", "email.send": ".email.txt"}
# The staff members a template sees, and the role whose members may become one.
STAFF_RECORDS = {"owner": "sales", "teacher": "teacher"}
OWNER_TOPIC = "crm.assign_owner"  # its ``role`` parameter says which role owners come from
_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass(frozen=True)
class Need:
    """A staff field a customer-facing step prints: ``owner.phone`` at ``Svc_email_demo``."""

    process_key: str
    element_id: str
    element_name: str
    template: str  # the template's file name, e.g. demo_account.email.txt
    record: str  # owner or teacher
    field: str
    role: str  # the role whose members may be that record

    @property
    def label(self) -> str:
        """``owner.phone``, as the template writes it."""
        return f"{self.record}.{self.field}"


def _defined_tests(test: nodes.Node) -> set[tuple[str, str]]:
    """The ``record.field`` pairs an ``if`` test checks with ``is defined``."""
    found = set()
    for node in [test, *test.find_all(nodes.Test)]:  # NOTE: find_all yields descendants only
        if isinstance(node, nodes.Test) and node.name == "defined" and isinstance(node.node, nodes.Getattr):
            target = node.node
            if isinstance(target.node, nodes.Name):
                found.add((target.node.name, target.attr))
    return found


def _uses(node: nodes.Node, guarded: frozenset[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """Every unguarded ``record.field`` (or ``record['field']``) of staff records below ``node``."""
    if isinstance(node, nodes.If):
        inner = guarded | _defined_tests(node.test)
        for child in node.body:
            yield from _uses(child, frozenset(inner))
        for child in [*node.elif_, *node.else_]:
            yield from _uses(child, guarded)
        return
    if isinstance(node, nodes.Test) and node.name == "defined":
        return  # asking whether a field is there is no use of it
    if isinstance(node, (nodes.Getattr, nodes.Getitem)) and isinstance(node.node, nodes.Name):
        record = node.node.name
        field = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if record in STAFF_RECORDS and isinstance(field, str) and (record, field) not in guarded:
            yield record, field
    for child in node.iter_child_nodes():
        yield from _uses(child, guarded)


def template_needs(path: Path) -> frozenset[tuple[str, str]]:
    """The (record, field) pairs a template file prints unguarded; none when it cannot be read."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return frozenset()  # NOTE: a missing template is a deployment problem, reported there
    return _template_needs(path, stamp)


@lru_cache(maxsize=256)
def _template_needs(path: Path, stamp: int) -> frozenset[tuple[str, str]]:
    try:
        ast = Environment(trim_blocks=True, lstrip_blocks=True).parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TemplateError):
        return frozenset()
    return frozenset(_uses(ast, frozenset()))


def _parameters(el: etree._Element) -> dict[str, str]:
    """An element's literal input parameters (expressions and lists are left out)."""
    found = {}
    for io in extensions(el, "inputOutput"):
        for param in camunda_children(io, "inputParameter"):
            if param.get("name") and not any(is_camunda(c) for c in param):
                found[param.get("name")] = text(param)
    return found


def _owner_role(process: etree._Element) -> str:
    """The role the process's round-robin gives the customer to (sales when it has none)."""
    for el in process.iter():
        if (camunda_attr(el, "topic") or "").strip() == OWNER_TOPIC:
            role = _parameters(el).get("role", "").strip()
            if role and "${" not in role:
                return role
    return STAFF_RECORDS["owner"]


def process_needs(xml: bytes | str, folder: Path, process_key: str | None = None) -> list[Need]:
    """Every staff field the message steps of a BPMN file's processes (or of ``process_key``) print."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    return [
        Need(key, element_id, name, file, record, field, roles[record])
        for key, element_id, name, file, roles in _message_steps(data, process_key)
        for record, field in sorted(template_needs(folder / file))
    ]


Step = tuple[str, str, str, str, dict[str, str]]  # process key, element id, name, template file, roles


@lru_cache(maxsize=64)
def _message_steps(data: bytes, process_key: str | None) -> tuple[Step, ...]:
    """The message steps of a BPMN file and the template each sends (a version's XML never changes).

    NOTE: cached on the XML itself: a lead asks for its process's owner needs, and parsing the
    diagram each time was a fifth of a lead's import; templates are read (by mtime) every time.
    """
    root = etree.fromstring(data, _SAFE)
    found: list[Step] = []
    for process in bpmn_iter(root, "process"):
        key = process.get("id") or ""
        if process_key is not None and key != process_key:
            continue
        roles = {**STAFF_RECORDS, "owner": _owner_role(process)}
        for el in process.iter():
            if not isinstance(el.tag, str) or not el.tag.startswith(f"{{{BPMN_NS}}}"):
                continue
            suffix = MESSAGE_TOPICS.get((camunda_attr(el, "topic") or "").strip())
            name = _parameters(el).get("template", "").strip() if suffix else ""
            if not name or "${" in name or "/" in name or "\\" in name:
                continue
            found.append((key, el.get("id") or "", " ".join((el.get("name") or "").split()), f"{name}{suffix}", roles))
    return tuple(found)
