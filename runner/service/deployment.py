"""Deploying BPMN and DMN files: validate everything, then store new versions in one go."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runner.engine.parser import PARSE_ERRORS, RunnerParser, normalize
from runner.engine.serializer import WorkflowStore
from runner.errors import DeploymentInvalid, Problem
from runner.model import orphans, validation
from runner.model.encoding import EncodingInvalid, as_utf8
from runner.store.models import ProcessVersion, User

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
NS = {"bpmn": BPMN_NS}
SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False)
# NOTE: checked before a file is read or parsed, so a huge file costs neither time nor memory.
MAX_FILE_BYTES = 5 * 1024 * 1024
TOO_LARGE = f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; nothing of it was read"


@dataclass(frozen=True)
class Deployed:
    """The outcome for one process key (or decision) of a deployment."""

    process_key: str
    version: int
    version_id: int
    file_name: str
    changed: bool
    # Deployed anyway, but worth a look: user tasks nobody but an admin would see.
    warnings: tuple[Problem, ...] = ()
    # People a step of the process would fail on (an extension's review: a rep without the phone a message prints).
    people: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class _Parsed:
    process_key: str
    name: str
    file_name: str
    xml: bytes
    content_hash: str
    spec: str
    called: list[str]
    message_starts: list[str]
    timer_starts: list[dict[str, str]]
    kind: str = "bpmn"
    warnings: tuple[Problem, ...] = ()


def read_paths(paths: list[str | Path]) -> dict[str, bytes]:
    """The .bpmn/.dmn files named, or found in named folders, by file name; missing ones are problems."""
    files: dict[str, bytes] = {}
    missing: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        found = sorted(p for p in path.rglob("*") if p.suffix in (".bpmn", ".dmn")) if path.is_dir() else [path]
        for item in found:
            try:
                if item.stat().st_size > MAX_FILE_BYTES:
                    missing.append(Problem("", "", TOO_LARGE, str(item)))
                    continue
                files[item.name] = item.read_bytes()
            except OSError as exc:
                missing.append(Problem("", "", f"cannot read the file: {exc.strerror or exc}", str(item)))
    if missing:
        raise DeploymentInvalid(missing)
    return files


def _as_utf8(files: Mapping[str, bytes]) -> tuple[dict[str, bytes], list[Problem]]:
    """The files small enough and readable in the encoding they declare, as UTF-8; a problem for each other."""
    readable: dict[str, bytes] = {}
    problems: list[Problem] = []
    for name, data in files.items():
        try:
            if len(data) > MAX_FILE_BYTES:
                raise EncodingInvalid(TOO_LARGE)
            # NOTE: anything but bytes goes on to validation, which names what is wrong with it.
            readable[name] = as_utf8(data) if isinstance(data, bytes) else data
        except EncodingInvalid as exc:
            problems.append(Problem("", "", str(exc), name))
    return readable, problems


def _read(data: bytes) -> etree._Element:
    """A file as the parser should see it: camunda namespace, message refs without a prefix."""
    doc = etree.fromstring(normalize(data), SAFE_XML)
    ids = set(doc.xpath("//bpmn:message/@id", namespaces=NS))
    for el in doc.xpath("//*[contains(@messageRef, ':')]"):
        ref = el.get("messageRef")
        if ref not in ids and ref.rsplit(":", 1)[-1] in ids:
            # NOTE: some tools write tns:Message_1; SpiffWorkflow only looks ids up as written.
            el.set("messageRef", ref.rsplit(":", 1)[-1])
    return doc


def _keys(doc: etree._Element) -> set[str]:
    """The process ids and decision ids a BPMN or DMN document defines."""
    decisions = {d.get("id") for d in doc.iter("{*}decision") if d.get("id")}
    return set(doc.xpath("//bpmn:process/@id", namespaces=NS)) | decisions


def _hash(xml: bytes, key: str) -> str:
    return hashlib.sha256(key.encode() + b"\0" + xml).hexdigest()


def _start_events(process: etree._Element) -> tuple[list[str], list[dict[str, str]]]:
    messages, timers = [], []
    root = process.getroottree().getroot()
    names = {m.get("id"): m.get("name") for m in root.iter(f"{{{BPMN_NS}}}message")}
    for start in process.findall(f"{{{BPMN_NS}}}startEvent"):
        for ref in start.xpath("./bpmn:messageEventDefinition/@messageRef", namespaces=NS):
            # NOTE: a messageRef may carry a namespace prefix (tns:Message_1), as validation allows.
            name = names.get(ref) or names.get(ref.rsplit(":", 1)[-1])
            if name:
                messages.append(name)
        for timer in start.xpath("./bpmn:timerEventDefinition/*", namespaces=NS):
            kind, value = etree.QName(timer).localname, (timer.text or "").strip()
            found = {"element": start.get("id"), "kind": kind, "value": value}
            calendar = _calendar_property(start)
            timers.append({**found, "calendar": calendar} if calendar else found)
    return messages, timers


def _calendar_property(event: etree._Element) -> str | None:
    """The event's ``camunda:property name="calendar"`` (``business``; validation refused any other)."""
    for prop in event.iter(f"{{{CAMUNDA_NS}}}property"):
        if (prop.get("name") or "").strip() == "calendar":
            return (prop.get("value") or "").strip() or None
    return None


class Deployer:
    """Validates and stores deployments; used by ``Runner.deploy``."""

    def __init__(
        self,
        store: WorkflowStore,
        topics: Callable[[], set[str]],
        checks: Callable[[], Mapping[str, list]] | None = None,
        lists: Callable[[], Collection[str]] = frozenset,
    ):
        self.store = store
        self.topics = topics
        self.checks = checks or dict  # each topic's deploy-time checks, see runner.registry.Registry
        self.lists = lists  # the configured lists enum form fields may name (the extensions')

    def parse(
        self, files: Mapping[str, bytes], known: Mapping[str, bytes], staff: Collection[str] = ()
    ) -> list[_Parsed]:
        """Every process and decision in ``files``; raises DeploymentInvalid with all problems.

        ``staff`` are the usernames that exist, to warn about tasks assigned to anyone else.
        """
        files, problems = _as_utf8(files)
        problems += validation.validate(files, topics=self.topics(), checks=self.checks(), lists=self.lists())
        if not files and not problems:
            problems.append(Problem("", "", "nothing to deploy: give .bpmn or .dmn files"))
        if problems:
            raise DeploymentInvalid(problems)
        parser = RunnerParser()
        docs = {name: _read(data) for name, data in files.items()}
        new_keys = {key for doc in docs.values() for key in _keys(doc)}
        # Deployed processes and decisions that the new files may call, unless a new file
        # replaces them (the parser keeps the last decision added under an id).
        for name, data in known.items():
            doc = _read(data)
            for process in doc.xpath("//bpmn:process", namespaces=NS):
                if process.get("id") in new_keys:
                    process.getparent().remove(process)
            if _keys(doc) and not new_keys & _keys(doc):
                problems += self._add(parser, name, doc)
        for name, doc in docs.items():
            problems += self._add(parser, name, doc)
        if problems:
            raise DeploymentInvalid(problems)
        parsed = [p for name, doc in docs.items() for p in self._specs(parser, name, files[name], doc, problems, staff)]
        if problems:
            raise DeploymentInvalid(problems)
        return parsed

    @staticmethod
    def _add(parser: RunnerParser, name: str, doc: etree._Element) -> list[Problem]:
        try:
            if name.endswith(".dmn"):
                parser.add_dmn_xml(doc, filename=name)
            else:
                parser.add_bpmn_xml(doc, filename=name)
        except PARSE_ERRORS as exc:
            return [_problem(exc, name)]
        return []

    def _specs(
        self,
        parser: RunnerParser,
        name: str,
        raw: bytes,
        doc: etree._Element,
        problems: list[Problem],
        staff: Collection[str],
    ) -> list[_Parsed]:
        if name.endswith(".dmn"):
            return [
                _Parsed(d.get("id"), d.get("name") or "", name, raw, _hash(raw, d.get("id")), "", [], [], [], "dmn")
                for d in doc.iter("{*}decision")
            ]
        found = []
        for process in doc.xpath("//bpmn:process[@isExecutable='true']", namespaces=NS):
            key = process.get("id")
            try:
                spec = parser.get_spec(key)
                subs = parser.get_subprocess_specs(key)
            except PARSE_ERRORS as exc:
                problems.append(_problem(exc, name, key))
                continue
            messages, timers = _start_events(process)
            called = sorted(set(process.xpath(".//bpmn:callActivity/@calledElement", namespaces=NS)))
            found.append(
                _Parsed(
                    key,
                    process.get("name") or "",
                    name,
                    raw,
                    _hash(raw, key),
                    self.store.dump_spec(spec, subs),
                    called,
                    messages,
                    timers,
                    warnings=tuple(orphans.deploy_warnings(process, staff, name)),
                )
            )
        return found

    def store_versions(self, session: Session, parsed: list[_Parsed], now, actor: str) -> list[Deployed]:
        """Store a version for each changed process key; identical content adds nothing."""
        out = []
        for item in parsed:
            latest = session.scalars(
                select(ProcessVersion)
                .where(ProcessVersion.process_key == item.process_key)
                .order_by(ProcessVersion.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.content_hash == item.content_hash:
                out.append(Deployed(item.process_key, latest.version, latest.id, item.file_name, False, item.warnings))
                continue
            row = ProcessVersion(
                process_key=item.process_key,
                version=(latest.version + 1) if latest else 1,
                name=item.name,
                content_hash=item.content_hash,
                file_name=item.file_name,
                kind=item.kind,
                xml=item.xml.decode("utf-8"),
                spec=item.spec,
                called=item.called,
                message_starts=item.message_starts,
                timer_starts=item.timer_starts,
                deployed_at=now,
                deployed_by=actor,
            )
            session.add(row)
            session.flush()
            out.append(Deployed(item.process_key, row.version, row.id, item.file_name, True, item.warnings))
        return out


def staff_usernames(session: Session) -> set[str]:
    """The usernames of active users: the people a task can reach."""
    return set(session.scalars(select(User.username).where(User.active)))


def latest_files(session: Session) -> dict[str, bytes]:
    """The deployed models new files may call: each stored file with only what it holds the latest version of."""
    newest = (
        select(ProcessVersion.process_key, func.max(ProcessVersion.version).label("v"))
        .group_by(ProcessVersion.process_key)
        .subquery()
    )
    rows = session.execute(
        select(ProcessVersion.process_key, ProcessVersion.file_name, ProcessVersion.xml).join(
            newest, (ProcessVersion.process_key == newest.c.process_key) & (ProcessVersion.version == newest.c.v)
        )
    )
    files: dict[str, tuple[str, set[str]]] = {}
    for key, file_name, xml in rows:
        files.setdefault(xml, (file_name, set()))[1].add(key)
    # NOTE: named by position too: two deployments may both have used "process.bpmn".
    return {
        f"deployed:{n}:{name}": _keep(xml.encode("utf-8"), keys) for n, (xml, (name, keys)) in enumerate(files.items())
    }


def _keep(xml: bytes, keys: set[str]) -> bytes:
    """A stored BPMN file without the processes a later deployment moved elsewhere."""
    doc = _read(xml)
    stale = [p for p in doc.xpath("//bpmn:process", namespaces=NS) if p.get("id") not in keys]
    if not stale:
        return xml
    for process in stale:
        process.getparent().remove(process)
    return etree.tostring(doc)


def _problem(exc: Exception, file_name: str, fallback: str = "") -> Problem:
    element = getattr(exc, "id", "") or fallback
    name = getattr(exc, "name", "") or ""
    message = str(exc).split("\n")[0] or type(exc).__name__
    return Problem(element, name, message, file_name)
