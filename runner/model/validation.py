"""Static validation of BPMN and DMN files, run before anything of a deployment is stored.

Every check family is a generator of ``(element, reason)`` findings over one parsed file;
``validate`` runs them all so a modeller sees every problem of a deployment at once.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches

from lxml import etree

from runner.errors import DeploymentInvalid, ExpressionInvalid, Problem, TimerInvalid
from runner.model import forms, timeparse, worktime
from runner.model.document import (
    BPMN_NS,
    BPMNDI_NS,
    CONTAINERS,
    DMN_NSS,
    bpmn_children,
    bpmn_iter,
    camunda_attr,
    camunda_children,
    camunda_iter,
    cycles,
    duplicate_ids,
    extensions,
    has_implementation,
    is_bpmn,
    is_camunda,
    label,
    local,
    owner,
    parse,
    qname,
    reachable,
    text,
)
from runner.sandbox.expressions import check_expression, check_script, is_wrapped
from runner.sandbox.juel import translate

Finding = tuple[etree._Element | None, str]
# A topic's deploy-time check (see runner.registry.Registry.add_check).
TopicCheck = Callable[[str, dict[str, "str | None"]], list[str]]

PYTHON_FORMATS = frozenset({"python", "py", "python3"})
JAVA_ATTRIBUTES = ("class", "delegateExpression", "expression")
EXTERNAL_HINT = 'use camunda:type="external" camunda:topic="<handler topic>"'
NO_HANDLER = {
    "serviceTask": "service task has no handler topic",
    "businessRuleTask": "business rule task has neither camunda:decisionRef nor a handler topic",
}
USER_TASK_ATTRIBUTES = ("assignee", "candidateUsers", "candidateGroups", "dueDate", "followUpDate", "priority")
CALL_BINDINGS = frozenset({"latest", "deployment", "version", "versionTag"})
HIT_POLICIES = frozenset({"UNIQUE", "FIRST", "COLLECT", "RULE ORDER", "ANY"})
NON_FLOW = frozenset(
    {
        "documentation",
        "extensionElements",
        "laneSet",
        "property",
        "ioSpecification",
        "ioBinding",
        "auditing",
        "monitoring",
        "textAnnotation",
        "association",
        "group",
    }
)
# Names SpiffWorkflow 3.2 gives the task specs it adds to every process (Start, End, the
# start-event split and join), and the suffixes of those it adds around an element (boundary
# events, multi-instance children, a process's end join): an element id among them replaces
# the engine's own step, and every start of the process then fails.
ENGINE_NAMES = frozenset({"Start", "End", "Root", "StartEventSplit", "StartEventJoin"})
ENGINE_SUFFIXES = (".EndJoin", ".BoundaryEventSplit", ".BoundaryEventJoin", " [child]")
_NOT_RUN = "{} are not supported by the runner"
UNSUPPORTED = {
    "complexGateway": _NOT_RUN.format("complex gateways") + "; use exclusive, inclusive or parallel gateways",
    "transaction": _NOT_RUN.format("transaction subprocesses") + "; use an embedded subprocess",
    "adHocSubProcess": _NOT_RUN.format("ad-hoc subprocesses"),
    "compensateEventDefinition": _NOT_RUN.format("compensation events"),
    "conditionalEventDefinition": _NOT_RUN.format("conditional events") + "; use a message or timer event",
    "dataStoreReference": _NOT_RUN.format("data stores") + "; keep data in process variables",
    "standardLoopCharacteristics": _NOT_RUN.format("loop tasks") + "; use multi-instance or a gateway loop",
    **dict.fromkeys(
        ("choreography", "choreographyTask", "subChoreography", "callChoreography"), _NOT_RUN.format("choreographies")
    ),
    **dict.fromkeys(("conversation", "subConversation", "callConversation"), _NOT_RUN.format("conversations")),
}
LISTENERS = "listeners are not executed by the runner; model the step as a task"
# Gateways whose outgoing paths SpiffWorkflow predicts as only possible, which ends the
# look-ahead; around any other loop its prediction recurses without end.
LOOP_BREAKERS = frozenset({"exclusiveGateway", "inclusiveGateway", "eventBasedGateway"})
# Handler-job properties: (parse, rule) - a bad value would only fail when the job runs.
JOB_PROPERTIES: dict[str, tuple[Callable[[str], float], str]] = {
    "retries": (int, "a whole number of tries, 1 or more"),
    "timeout": (float, "a number of seconds greater than 0"),
    "retry_backoff": (float, "a number of seconds greater than 0"),
}
RETRY_CYCLE = (
    "camunda:failedJobRetryTimeCycle is not supported; set a 'retries' extension property (camunda:properties) instead"
)


@dataclass(frozen=True)
class Doc:
    """One parsed BPMN file and what its checks need."""

    root: etree._Element
    topics: frozenset[str]
    checks: Mapping[str, Sequence[TopicCheck]] = dataclasses.field(default_factory=dict)
    lists: frozenset[str] = frozenset()  # the configured lists enum form fields may name (list:NAME)


def validate(
    files: Mapping[str, bytes],
    *,
    topics: Collection[str],
    checks: Mapping[str, Sequence[TopicCheck]] | None = None,
    lists: Collection[str] = (),
) -> list[Problem]:
    """Every problem in a set of BPMN/DMN files, found before anything is stored.

    ``checks`` are the topics' own deploy-time checks of their tasks' input parameters; ``lists``
    the configured lists (the runner's extensions') that enum form fields may name.
    """
    # dict keeps the order and drops repeats (several listeners on one task say the same thing).
    problems: dict[Problem, None] = {}
    for name, data in files.items():
        doc = functools.partial(Doc, topics=frozenset(topics), checks=checks or {}, lists=frozenset(lists))
        problems.update(dict.fromkeys(_validate_file(name, data, doc)))
    return list(problems)


def _validate_file(name: str, data: bytes, doc: Callable[[etree._Element], Doc]) -> Iterator[Problem]:
    """Problems of one file, BPMN or DMN by its extension."""
    kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind not in ("bpmn", "dmn"):
        yield Problem("", "", "unsupported file type; deploy .bpmn or .dmn files", name)
        return
    try:
        root = parse(data)
    except (etree.LxmlError, ValueError, TypeError) as exc:
        yield Problem("", "", f"XML is not well formed: {exc}", name)
        return
    if root.getroottree().docinfo.doctype:
        # NOTE: parse() never loads a DTD nor expands an entity; refusing the DOCTYPE keeps
        # entity references from reaching the engine's parser at all.
        yield Problem("", "", "a DOCTYPE is not allowed in a BPMN or DMN file; remove it", name)
    findings = _dmn_findings(root) if kind == "dmn" else _bpmn_findings(doc(root))
    for element, reason in findings:
        yield Problem(*label(element), reason, name)


def _bpmn_findings(doc: Doc) -> Iterator[Finding]:
    """All BPMN check families, in a stable order."""
    if qname(doc.root) != (BPMN_NS, "definitions"):
        ns, tag = qname(doc.root)
        yield doc.root, f"root element is <{tag}> in namespace '{ns}', not bpmn:definitions"
        return
    checks: tuple[Callable[[Doc], Iterator[Finding]], ...] = (
        _check_ids,
        _check_processes,
        _check_flows,
        _check_gateways,
        _check_loops,
        _check_parallel_merges,
        _check_implementations,
        _check_topic_parameters,
        _check_job_properties,
        _check_scripts,
        _check_conditions,
        _check_parameters,
        _check_forms,
        _check_multi_instance,
        _check_timers,
        _check_user_task_calendars,
        _check_messages,
        _check_call_activities,
        _check_starters,
        _check_unsupported,
    )
    for check in checks:
        yield from check(doc)


# ------------------------------------------------------------------ structure


def _check_ids(doc: Doc) -> Iterator[Finding]:
    """Model and diagram ids are unique within the file."""
    for el, ident in duplicate_ids(doc.root, (BPMN_NS, BPMNDI_NS)):
        yield el, f"id '{ident}' is used by more than one element"
    for container in bpmn_iter(doc.root, *CONTAINERS):
        for el in container:
            ident = el.get("id") or ""
            reserved = ident in ENGINE_NAMES or ident.endswith(ENGINE_SUFFIXES)
            if reserved and is_bpmn(el) and local(el) not in NON_FLOW:
                yield (
                    el,
                    (
                        f"id '{ident}' is a name the engine uses for a step of its own; rename the "
                        f"element (Camunda Modeler names them like '{local(el)[:1].upper()}{local(el)[1:]}_1')"
                    ),
                )


def _has_flow(container: etree._Element) -> bool:
    """Whether a process has any flow elements (empty pools are only documentation)."""
    return any(is_bpmn(c) and local(c) not in NON_FLOW for c in container)


def _check_processes(doc: Doc) -> Iterator[Finding]:
    """Processes are executable and every process and subprocess has a way to start."""
    processes = bpmn_children(doc.root, "process")
    executable = [p for p in processes if p.get("isExecutable", "").strip() == "true"]
    flagged = False
    for process in processes:
        if process in executable or not _has_flow(process):
            continue
        flagged = True
        yield process, 'process is not executable (set isExecutable="true")'
    if not executable and not flagged:
        yield doc.root, "file has no executable process"
    for process in processes:
        if _has_flow(process) and not bpmn_children(process, "startEvent"):
            yield process, "process has no start event"
    for sub in bpmn_iter(doc.root, "subProcess"):
        starts = bpmn_children(sub, "startEvent")
        if sub.get("triggeredByEvent", "").strip() != "true":
            if not starts:
                yield sub, "embedded subprocess has no start event"
        elif len(starts) != 1:
            yield sub, f"event subprocess needs exactly one start event, found {len(starts)}"
        elif not [c for c in starts[0] if local(c).endswith("EventDefinition")]:
            yield starts[0], "event subprocess start event has no trigger (message, timer, signal, error...)"


def _check_flows(doc: Doc) -> Iterator[Finding]:
    """Sequence flows and boundary events connect elements of their own process or subprocess."""
    ids = {el.get("id") for el in doc.root.iter() if is_bpmn(el) and el.get("id")}
    for container in bpmn_iter(doc.root, *CONTAINERS):
        siblings = {c.get("id") for c in container if is_bpmn(c) and c.get("id")}
        for flow in bpmn_children(container, "sequenceFlow"):
            for attr in ("sourceRef", "targetRef"):
                ref = (flow.get(attr) or "").strip()
                if not ref:
                    yield flow, f"sequence flow has no {attr}"
                elif ref not in ids:
                    yield flow, f"{attr} '{ref}' does not exist"
                elif ref not in siblings:
                    yield flow, f"{attr} '{ref}' is not in the same process or subprocess as the flow"
        for boundary in bpmn_children(container, "boundaryEvent"):
            ref = (boundary.get("attachedToRef") or "").strip()
            if ref not in siblings:
                yield (
                    boundary,
                    (
                        f"attachedToRef '{ref}' is not an activity of the same process or subprocess"
                        if ref
                        else "boundary event has no attachedToRef"
                    ),
                )


def _check_gateways(doc: Doc) -> Iterator[Finding]:
    """Branching exclusive/inclusive gateways have a condition on every non-default flow."""
    for container in bpmn_iter(doc.root, *CONTAINERS):
        flows = bpmn_children(container, "sequenceFlow")
        for gateway in bpmn_children(container, "exclusiveGateway", "inclusiveGateway"):
            outgoing = [f for f in flows if f.get("sourceRef") == gateway.get("id")]
            default = gateway.get("default")
            if default and default not in {f.get("id") for f in outgoing}:
                yield gateway, f"default flow '{default}' is not an outgoing flow of the gateway"
            if len(outgoing) < 2:
                continue
            for flow in outgoing:
                condition = bpmn_children(flow, "conditionExpression")
                if flow.get("id") != default and not (condition and text(condition[0])):
                    yield gateway, f"outgoing flow {flow.get('id')} has no condition and is not the default"


def _check_loops(doc: Doc) -> Iterator[Finding]:
    """Every loop of sequence flows passes an exclusive, inclusive or event-based gateway."""
    for container in bpmn_iter(doc.root, *CONTAINERS):
        nodes = {
            c.get("id"): c
            for c in container
            if is_bpmn(c)
            and c.get("id")
            and local(c) not in NON_FLOW | {"sequenceFlow"}
            and local(c) not in LOOP_BREAKERS
        }
        edges: dict[str, list[str]] = {}
        for flow in bpmn_children(container, "sequenceFlow"):
            source, target = flow.get("sourceRef"), flow.get("targetRef")
            if source in nodes and target in nodes:
                edges.setdefault(source, []).append(target)
        for cycle in cycles(list(nodes), edges):
            yield (
                nodes[cycle[0]],
                (
                    f"loop through {' → '.join(cycle)} has no gateway; add an exclusive "
                    "gateway so the loop can be predicted"
                ),
            )


def _check_parallel_merges(doc: Doc) -> Iterator[Finding]:
    """A parallel gateway never merges a loop-back flow with a flow from outside the loop."""
    for container in bpmn_iter(doc.root, *CONTAINERS):
        flows = bpmn_children(container, "sequenceFlow")
        edges: dict[str, list[str]] = {}
        for flow in flows:
            edges.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
        for gateway in bpmn_children(container, "parallelGateway"):
            sources = [f.get("sourceRef") for f in flows if f.get("targetRef") == gateway.get("id")]
            downstream = reachable(gateway.get("id"), edges)
            back = [src for src in sources if src in downstream]
            if back and len(back) < len(sources):
                yield (
                    gateway,
                    (
                        f"parallel gateway joins the loop-back flow from {', '.join(back)} with a flow "
                        "from outside the loop, so (as in Camunda) it would wait for both forever; "
                        "merge them with an exclusive gateway in front of it"
                    ),
                )


# ------------------------------------------------------------------ implementations


def _check_implementations(doc: Doc) -> Iterator[Finding]:
    """Service-like tasks and message throws run registered handlers, never Java code."""
    for task in bpmn_iter(doc.root, "serviceTask", "sendTask", "businessRuleTask"):
        decision = camunda_attr(task, "decisionRef")
        if local(task) == "businessRuleTask" and decision is not None:
            if not decision.strip():
                yield task, "camunda:decisionRef is empty"
            elif "${" in decision or "#{" in decision:
                yield task, "camunda:decisionRef must be a decision id, not an expression"
            continue
        yield from _implementation(task, task, doc.topics, NO_HANDLER.get(local(task)))
    for event in bpmn_iter(doc.root, "intermediateThrowEvent", "endEvent"):
        for definition in bpmn_children(event, "messageEventDefinition"):
            yield from _implementation(event, definition, doc.topics, None)


def _implementation(
    target: etree._Element, el: etree._Element, topics: frozenset[str], missing: str | None
) -> Iterator[Finding]:
    """Findings for the implementation attributes of ``el``, reported on ``target``."""
    for attr in JAVA_ATTRIBUTES:
        value = camunda_attr(el, attr)
        if value is not None:
            yield target, f'Java implementation camunda:{attr}="{value}" is not supported; {EXTERNAL_HINT}'
    if extensions(el, "connector"):
        yield target, f"camunda:connector is not supported; {EXTERNAL_HINT}"
    kind, topic = camunda_attr(el, "type"), camunda_attr(el, "topic")
    if kind is not None and kind.strip() != "external":
        yield target, f'camunda:type="{kind}" is not supported; {EXTERNAL_HINT}'
    elif kind is not None or topic is not None:
        topic = (topic or "").strip()
        if not topic:
            yield target, f"external task has no camunda:topic; {EXTERNAL_HINT}"
        elif topic not in topics:
            close = get_close_matches(topic, sorted(topics), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            yield target, f"no handler registered for topic '{topic}'{hint}"
    elif missing and not has_implementation(el):
        yield target, missing


def _raw_parameters(el: etree._Element) -> dict[str, str | None]:
    """The input parameters of an element as written: text, or None for a list, map or script."""
    params: dict[str, str | None] = {}
    for io in extensions(el, "inputOutput"):
        for param in camunda_children(io, "inputParameter"):
            name = (param.get("name") or "").strip()
            if name:
                params[name] = None if any(is_camunda(c) for c in param) else text(param)
    return params


def _check_topic_parameters(doc: Doc) -> Iterator[Finding]:
    """Each handler topic's own checks of its tasks' input parameters (templates, recipients...)."""
    if not doc.checks:
        return
    for el in doc.root.iter():
        topic = (camunda_attr(el, "topic") or "").strip() if is_bpmn(el) else ""
        if topic not in doc.checks:
            continue
        target = owner(el) if local(el).endswith("EventDefinition") else el
        params = _raw_parameters(target)
        for check in doc.checks[topic]:
            try:
                reasons = list(check(target.get("id") or "", dict(params)))
            except Exception as exc:  # noqa: BLE001 - a broken check is a problem, not a crash
                reasons = [f"the deploy-time check of topic '{topic}' failed: {type(exc).__name__}: {exc}"]
            yield from ((target, reason) for reason in reasons)


def _check_job_properties(doc: Doc) -> Iterator[Finding]:
    """The retries, timeout and retry_backoff properties of handler jobs are positive numbers."""
    for prop in camunda_iter(doc.root, "property"):
        name, value = (prop.get("name") or "").strip(), (prop.get("value") or "").strip()
        if name not in JOB_PROPERTIES or not value:
            continue
        kind, rule = JOB_PROPERTIES[name]
        try:
            valid = kind(value) > 0
        except ValueError:
            valid = False
        if not valid:
            yield owner(prop), f"property '{name}' is '{value}'; it must be {rule}"


def _script_format(fmt: str | None) -> str | None:
    """Why a scriptFormat is refused, or None for Python (the default when missing)."""
    fmt = (fmt or "").strip()
    if fmt and fmt.lower() not in PYTHON_FORMATS:
        return f"scriptFormat '{fmt}' is not supported; scripts must be Python"
    return None


def _script(target: etree._Element, el: etree._Element, body: etree._Element | None, prefix: str) -> Iterator[Finding]:
    """Findings for one script: its format, external resource and Python code."""
    refused = _script_format(el.get("scriptFormat"))
    resource = camunda_attr(el, "resource") or el.get("resource")
    if refused:
        yield target, prefix + refused
    elif resource is not None:
        yield target, f'{prefix}external script resource "{resource}" is not supported; write the Python inline'
    elif body is None or not text(body):
        yield target, f"{prefix}script is empty"
    else:
        try:
            check_script("".join(body.itertext()))
        except ExpressionInvalid as exc:
            yield target, f"{prefix}script: {exc}"


def _check_scripts(doc: Doc) -> Iterator[Finding]:
    """Script tasks hold inline Python that passes the restricted rules."""
    for task in bpmn_iter(doc.root, "scriptTask"):
        body = bpmn_children(task, "script")
        yield from _script(task, task, body[0] if body else None, "")


# ------------------------------------------------------------------ expressions


def _expression(target: etree._Element, what: str, value: str, always: bool) -> Iterator[Finding]:
    """Check one value: ``${...}`` always, plain text only when ``always`` (it is code)."""
    if not value.strip():
        if always:
            yield target, f"{what}: expression is empty"
        return
    if not is_wrapped(value) and ("${" in value or "#{" in value):
        yield target, f"{what}: mixed text and ${{...}} in {value.strip()!r} is not supported; use one ${{...}}"
    elif is_wrapped(value) or always:
        try:
            # The engine runs every expression through juel.translate (JUEL &&, ||, !).
            check_expression(translate(value))
        except ExpressionInvalid as exc:
            yield target, f"{what}: {exc}"


def _formal(target: etree._Element, el: etree._Element, what: str) -> Iterator[Finding]:
    """A bpmn formal expression (condition): Python language, inline, valid."""
    language = (el.get("language") or "").strip()
    if language and language.lower() not in PYTHON_FORMATS:
        yield target, f"{what}: language '{language}' is not supported; {what}s must be Python expressions"
    elif camunda_attr(el, "resource") is not None:
        yield target, f"{what}: external resources are not supported; write the expression inline"
    else:
        yield from _expression(target, what, text(el), always=True)


def _check_conditions(doc: Doc) -> Iterator[Finding]:
    """Sequence flow and completion conditions are Python expressions."""
    for flow in bpmn_iter(doc.root, "sequenceFlow"):
        for condition in bpmn_children(flow, "conditionExpression"):
            yield from _formal(flow, condition, "condition")
    for condition in bpmn_iter(doc.root, "completionCondition"):
        yield from _formal(owner(condition), condition, "completion condition")


def _parameter_value(target: etree._Element, what: str, el: etree._Element) -> Iterator[Finding]:
    """A parameter (or list item / map entry): a literal, ${...}, list, map or script."""
    nested = [c for c in el if is_camunda(c)]
    if not nested:
        yield from _expression(target, what, text(el), always=False)
    for child in nested:
        if is_camunda(child, "script"):
            yield from _script(target, child, child, f"{what}: ")
        elif is_camunda(child, "list", "map", "value", "entry"):
            yield from _parameter_value(target, what, child)
        else:
            yield target, f"{what}: unexpected element camunda:{local(child)}"


def _check_parameters(doc: Doc) -> Iterator[Finding]:
    """Parameters, call-activity mappings and user-task attributes hold valid expressions."""
    for io in camunda_iter(doc.root, "inputOutput"):
        target = owner(io)
        for param in camunda_children(io, "inputParameter", "outputParameter"):
            kind = "input parameter" if local(param) == "inputParameter" else "output parameter"
            name = (param.get("name") or "").strip()
            if not name:
                yield target, f"{kind} has no name"
            yield from _parameter_value(target, f"{kind} '{name}'", param)
    for mapping in camunda_iter(doc.root, "in", "out"):
        source = mapping.get("sourceExpression")
        if source is not None:
            yield from _expression(owner(mapping), f"camunda:{local(mapping)} sourceExpression", source, True)
    for task in bpmn_iter(doc.root, "userTask"):
        for attr in USER_TASK_ATTRIBUTES:
            value = camunda_attr(task, attr)
            if value is not None:
                yield from _expression(task, attr, value, always=False)


def _check_forms(doc: Doc) -> Iterator[Finding]:
    """camunda:formData follows the rules the deployment's form parser enforces."""
    parsed: set[etree._Element] = set()
    for form in camunda_iter(doc.root, "formData"):
        target = owner(form)
        if target not in parsed:
            parsed.add(target)
            try:
                parsed_form = forms.parse_form(target)
            except DeploymentInvalid as exc:
                yield from ((target, p.reason) for p in exc.problems)
            else:
                yield from _option_lists(target, parsed_form, doc.lists)
        for field in camunda_children(form, "formField"):
            default = field.get("defaultValue")
            if default is not None:
                yield from _expression(target, f"form field '{field.get('id')}' default value", default, False)


def _option_lists(target: etree._Element, form: forms.Form, known: frozenset[str]) -> Iterator[Finding]:
    """Each enum field's ``list:NAME`` names a configured list: its options are read from it at every use."""
    for field in form.fields:
        name = field.option_list
        if name is not None and name not in known:
            close = get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"configured: {', '.join(sorted(known)) or 'none'}"
            yield target, f"form field '{field.id}': options name the list '{name}', which is not configured ({hint})"


def _check_multi_instance(doc: Doc) -> Iterator[Finding]:
    """Multi-instance activities say how many instances to create."""
    for loop in bpmn_iter(doc.root, "multiInstanceLoopCharacteristics"):
        target = owner(loop)
        collection = camunda_attr(loop, "collection")
        cardinality = bpmn_children(loop, "loopCardinality")
        if collection is None and not cardinality:
            yield target, "multi-instance needs camunda:collection or a loop cardinality"
        if collection is not None:
            yield from _expression(target, "collection", collection, always=False)
        for el in cardinality:
            yield from _expression(target, "loop cardinality", text(el), always=True)


# ------------------------------------------------------------------ events


def _is_cron(value: str) -> bool:
    """Whether a cycle looks like a Camunda/Quartz cron expression rather than ISO 8601."""
    return not value.upper().startswith("R") and len(value.split()) >= 5


def _check_timers(doc: Doc) -> Iterator[Finding]:
    """Timer values are ISO 8601 (or a ${...} expression) and there is exactly one."""
    for definition in bpmn_iter(doc.root, "timerEventDefinition"):
        event = owner(definition)
        values = bpmn_children(definition, "timeDate", "timeDuration", "timeCycle")
        if not values:
            yield event, "timer has no timeDate, timeDuration or timeCycle"
        elif len(values) > 1:
            yield event, "timer has more than one of timeDate, timeDuration and timeCycle"
        yield from _timer_calendar(event)
        for el in values:
            tag, value = local(el), text(el)
            kind = tag[len("time") :].lower()
            if not value:
                yield event, f"timer {tag} is empty"
            elif "${" in value or "#{" in value:
                yield from _expression(event, f"timer {tag}", value, always=False)
            elif kind == "cycle" and _is_cron(value):
                yield event, "cron timer cycles are not supported; use ISO 8601 R/... (e.g. R/P1D)"
            else:
                try:
                    timeparse.check(kind, value)
                # NOTE: timeparse lets ValueError/OverflowError escape for extreme values.
                except (TimerInvalid, ValueError, OverflowError) as exc:
                    yield event, f"timer {tag}: {exc}"


def _timer_calendar(event: etree._Element) -> Iterator[Finding]:
    """A timer's ``calendar`` property names a calendar the runner has (``business``) or is absent."""
    for prop in camunda_iter(event, "property"):
        value = (prop.get("value") or "").strip()
        if (prop.get("name") or "").strip() == "calendar" and value not in worktime.CALENDAR_NAMES:
            yield event, f"property 'calendar' is '{value}'; it must be 'business' (count working time only) or absent"


def _check_user_task_calendars(doc: Doc) -> Iterator[Finding]:
    """A user task's ``calendar`` property (its due date in working time) is ``business`` or absent."""
    for task in bpmn_iter(doc.root, "userTask"):
        # NOTE: only the task's own properties: a form field's camunda:properties are not the task's.
        for props in extensions(task, "properties"):
            for prop in camunda_children(props, "property"):
                value = (prop.get("value") or "").strip()
                if (prop.get("name") or "").strip() == "calendar" and value not in worktime.CALENDAR_NAMES:
                    yield (
                        task,
                        f"property 'calendar' is '{value}'; it must be 'business' (due date in working time) or absent",
                    )


def _check_messages(doc: Doc) -> Iterator[Finding]:
    """Message events and tasks refer to a named bpmn:message of this file."""
    messages = {m.get("id"): (m.get("name") or "").strip() for m in bpmn_children(doc.root, "message")}
    for el in bpmn_iter(doc.root, "messageEventDefinition", "receiveTask", "sendTask"):
        target, ref = owner(el), (el.get("messageRef") or "").strip()
        if not ref:
            if local(el) == "receiveTask":
                yield target, "receive task has no messageRef"
            elif not has_implementation(el):
                what = (
                    "send task has neither a messageRef nor a handler topic"
                    if local(el) == "sendTask"
                    else "message event has no messageRef"
                )
                yield target, what
            continue
        key = ref if ref in messages else ref.rsplit(":", 1)[-1]
        if key not in messages:
            yield target, f"messageRef '{ref}' does not exist"
        elif not messages[key]:
            yield target, f"message '{key}' has no name"


def _check_call_activities(doc: Doc) -> Iterator[Finding]:
    """Call activities name the called process statically."""
    for call in bpmn_iter(doc.root, "callActivity"):
        called = (call.get("calledElement") or "").strip()
        if not called:
            yield (
                call,
                (
                    "CMMN cases (camunda:caseRef) are not supported"
                    if camunda_attr(call, "caseRef")
                    else "call activity has no calledElement"
                ),
            )
        elif "${" in called or "#{" in called:
            yield call, "calledElement must be a process id, not an expression"
        binding = camunda_attr(call, "calledElementBinding")
        if binding is not None and binding.strip() not in CALL_BINDINGS:
            yield call, f"camunda:calledElementBinding '{binding}' is not one of {', '.join(sorted(CALL_BINDINGS))}"


def _check_starters(doc: Doc) -> Iterator[Finding]:
    """Who may start a process is a plain list of groups or users (``runner.service.policy`` reads it)."""
    for process in bpmn_iter(doc.root, "process"):
        for name in ("candidateStarterGroups", "candidateStarterUsers"):
            value = camunda_attr(process, name) or ""
            if "${" in value or "#{" in value:
                yield process, f"camunda:{name} must list names separated by commas, not an expression"


def _check_unsupported(doc: Doc) -> Iterator[Finding]:
    """BPMN constructs and Camunda extensions the runner cannot execute."""
    for el in bpmn_iter(doc.root, *UNSUPPORTED):
        nested = local(el).endswith(("EventDefinition", "LoopCharacteristics"))
        yield (owner(el) if nested else el), UNSUPPORTED[local(el)]
    for el in doc.root.iter():
        if is_bpmn(el) and el.get("isForCompensation", "").strip() == "true":
            yield el, "compensation handlers are not supported by the runner"
    for el in camunda_iter(doc.root, "executionListener", "taskListener"):
        yield owner(el), LISTENERS
    for el in camunda_iter(doc.root, "failedJobRetryTimeCycle"):
        yield owner(el), RETRY_CYCLE


# ------------------------------------------------------------------ DMN


def _dmn_findings(root: etree._Element) -> Iterator[Finding]:
    """A DMN file has one decision table decision the engine can evaluate."""
    ns, tag = qname(root)
    if ns not in DMN_NSS or tag != "definitions":
        yield root, f"root element is <{tag}> in namespace '{ns}', not DMN 1.1-1.3 definitions"
        return
    for el, ident in duplicate_ids(root, (ns,)):
        yield el, f"id '{ident}' is used by more than one element"
    decisions = [c for c in root if qname(c) == (ns, "decision")]
    if not decisions:
        yield root, "DMN file has no decision"
    for extra in decisions[1:]:
        yield extra, "only one decision per DMN file is supported; move it to its own file"
    for decision in decisions:
        if not decision.get("id"):
            yield decision, "decision has no id"
        tables = [c for c in decision if qname(c) == (ns, "decisionTable")]
        if not tables:
            yield decision, "decision has no decision table (literal expressions are not supported)"
        for table in tables:
            yield from _decision_table(decision, table)


def _decision_table(decision: etree._Element, table: etree._Element) -> Iterator[Finding]:
    """Hit policy and ids of one decision table."""
    policy = (table.get("hitPolicy") or "UNIQUE").strip().upper()
    aggregation = table.get("aggregation")
    if policy not in HIT_POLICIES:
        yield decision, f"hit policy '{policy}' is not supported; use UNIQUE, FIRST, COLLECT, RULE ORDER or ANY"
    elif policy == "COLLECT" and aggregation:
        yield decision, f"COLLECT with aggregation '{aggregation}' is not supported; use plain COLLECT"
    needs_id = ("decisionTable", "input", "output", "rule", "inputEntry", "outputEntry")
    missing = Counter(local(el) for el in table.iter() if local(el) in needs_id and not el.get("id"))
    for tag, count in sorted(missing.items()):
        yield decision, f"{count} {tag} element(s) of the decision table have no id"
