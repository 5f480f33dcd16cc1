"""Camunda 7 dialect on top of SpiffWorkflow's parser: handlers, timers, forms and properties.

Everything the runner needs from an element beyond BPMN itself is kept in the task
spec's ``extensions`` dict, which SpiffWorkflow already serializes with the spec:

    extensions = {
        "properties": {"stage": "Tiếp nhận", "retries": "5"},   # camunda:properties
        "inputs": {"name": <param>}, "outputs": {"name": <param>},  # camunda:inputOutput
        "topic": "crm.add_note",                                # external service tasks
        "user_task": {...}, "form": {...},                      # user tasks
    }

A parameter is ``{"kind": "value", "value": "..."}`` (literal or ``${}`` expression),
``{"kind": "list", "items": [...]}`` or ``{"kind": "map", "entries": {...}}``.
"""

from __future__ import annotations

from copy import deepcopy
from typing import TYPE_CHECKING, Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import (
    BoundaryEventParser,
    EndEventParser,
    EventDefinitionParser,
    IntermediateCatchEventParser,
    IntermediateThrowEventParser,
    ReceiveTaskParser,
    SendTaskParser,
    StartEventParser,
)
from SpiffWorkflow.bpmn.parser.task_parsers import SubprocessParser
from SpiffWorkflow.bpmn.parser.TaskParser import TaskParser
from SpiffWorkflow.bpmn.parser.util import first
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer.config import MessageEventDefinition as DefaultMessageDefinition
from SpiffWorkflow.bpmn.serializer.default.event_definition import (
    MessageEventDefinitionConverter,
    TimerConditionalEventDefinitionConverter,
)
from SpiffWorkflow.bpmn.serializer.default.task_spec import (
    BoundaryEventConverter,
    BpmnTaskSpecConverter,
    EventJoinConverter,
    MultiInstanceTaskConverter,
)
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference
from SpiffWorkflow.bpmn.specs.defaults import (
    CallActivity,
    EndEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    ReceiveTask,
    SendTask,
    StartEvent,
)
from SpiffWorkflow.bpmn.specs.event_definitions.simple import CancelEventDefinition
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import CamundaTaskParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.exceptions import SpiffWorkflowException

from runner.engine import timers
from runner.engine.specs import (
    ExternalTask,
    ParallelCollectionLoop,
    PassThroughManualTask,
    PassThroughTask,
    RepeatingMessage,
    RunnerBoundaryEvent,
    RunnerBoundaryJoin,
    RunnerCallActivity,
    RunnerUserTask,
    SequentialCollectionLoop,
)
from runner.model import forms
from runner.sandbox import expressions

# What SpiffWorkflow's parser raises for a document it cannot turn into specs.
PARSE_ERRORS: tuple[type[Exception], ...] = (ValidationException, SpiffWorkflowException, ValueError, KeyError)

CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ACTIVITI_NS = "http://activiti.org/bpmn"


def normalize(xml: bytes) -> bytes:
    """Read the legacy activiti namespace as the camunda one (both mean the same dialect)."""
    return xml.replace(ACTIVITI_NS.encode(), CAMUNDA_NS.encode())


# --- extension parsing --------------------------------------------------------------


def _param(node: etree._Element) -> dict[str, Any]:
    """One camunda input/output parameter: a literal or expression, a list or a map."""
    for child in node:
        tag = etree.QName(child).localname
        if tag == "list":
            return {"kind": "list", "items": [_param(v) for v in child]}
        if tag == "map":
            return {"kind": "map", "entries": {e.get("key"): _param(e) for e in child}}
        if tag == "script":
            return {"kind": "script", "format": child.get("scriptFormat", ""), "value": child.text or ""}
    return {"kind": "value", "value": (node.text or "").strip()}


def parse_extensions(node: etree._Element, nsmap: dict[str, str]) -> dict[str, Any]:
    """The camunda extensions of one element (its own, not its children's)."""
    ext: dict[str, Any] = {"properties": {}, "inputs": {}, "outputs": {}}
    xp = lambda path: node.xpath(path, namespaces=nsmap)  # noqa: E731
    for prop in xp("./bpmn:extensionElements/camunda:properties/camunda:property"):
        ext["properties"][prop.get("name")] = prop.get("value")
    for param in xp("./bpmn:extensionElements/camunda:inputOutput/camunda:inputParameter"):
        ext["inputs"][param.get("name")] = _param(param)
    for param in xp("./bpmn:extensionElements/camunda:inputOutput/camunda:outputParameter"):
        ext["outputs"][param.get("name")] = _param(param)
    if node.get(f"{{{CAMUNDA_NS}}}type") == "external":
        ext["topic"] = node.get(f"{{{CAMUNDA_NS}}}topic")
    return ext


if TYPE_CHECKING:

    class _ParserBase(TaskParser):  # what the mixin below is mixed into (untyped, so Any to mypy)
        """The parser attributes the mixin uses."""

else:
    _ParserBase = object


class _Extensions(_ParserBase):
    """Mixin for parsers: read our extensions instead of Camunda's flat property map."""

    task: Any  # the spec being built, set by TaskParser

    def parse_extensions(self, node=None):
        return parse_extensions(node if node is not None else self.node, self.nsmap)

    def _add_boundary_event(self, children):
        # As SpiffWorkflow's own, with a join that lets repeating events' paths run on.
        split = BoundaryEventSplit(self.spec, f"{self.bpmn_id}.BoundaryEventSplit", lane=self.task.lane)
        join = RunnerBoundaryJoin(
            self.spec, f"{self.bpmn_id}.BoundaryEventJoin", lane=self.task.lane, split_task=split.name, cancel=True
        )
        split.connect(self.task)
        self.task.connect(join)
        for event in children:
            child = self.process_parser.parse_node(event)
            if isinstance(child.event_definition, CancelEventDefinition):
                self.raise_validation_exception("cancel events may only be used with transactions")
            split.connect(child)
            child.connect(join)
        return split

    def _add_multiinstance_task(self, loop_characteristics):
        collection = loop_characteristics.get(f"{{{CAMUNDA_NS}}}collection")
        if collection is None or self.xpath("./bpmn:multiInstanceLoopCharacteristics/bpmn:loopCardinality"):
            return super()._add_multiinstance_task(loop_characteristics)
        # Camunda Modeler writes camunda:collection="${items}" (or just "items").
        name = expressions.unwrap(collection)
        if not name.isidentifier():
            raise ValidationException(
                f"multi-instance collection {collection!r} must name a variable, e.g. ${{items}}",
                node=self.node,
                file_name=self.filename,
            )
        element = loop_characteristics.get(f"{{{CAMUNDA_NS}}}elementVariable")
        condition = first(self.xpath("./bpmn:multiInstanceLoopCharacteristics/bpmn:completionCondition"))
        original = self.spec.task_specs.pop(self.task.name)
        cls = SequentialCollectionLoop if loop_characteristics.get("isSequential") == "true" else ParallelCollectionLoop
        # NOTE: everything is fixed here, at parse time, so that a restored spec behaves the same.
        self.task = cls(
            self.spec,
            original.name,
            task_spec="",
            data_input=TaskDataReference(name),
            input_item=TaskDataReference(element) if element else None,
            condition=condition.text if condition is not None else None,
        )
        self._copy_task_attrs(original, loop_characteristics)


class TaskSpecParser(_Extensions, CamundaTaskParser):
    """Plain tasks, gateways and manual tasks."""


class ExternalTaskParser(_Extensions, CamundaTaskParser):
    """serviceTask / sendTask / businessRuleTask with camunda:type="external"."""


def _lane_group(parser: TaskParser) -> str | None:
    """The candidate group a lane stands for: its ``group`` property, else its name."""
    # NOTE: the id goes in as an XPath variable, never pasted into the expression.
    lanes = parser.node.xpath("//bpmn:lane[bpmn:flowNodeRef/text()=$id]", namespaces=parser.nsmap, id=parser.bpmn_id)
    if not lanes:
        return None
    group = first(
        lanes[0].xpath(
            "./bpmn:extensionElements/camunda:properties/camunda:property[@name='group']/@value",
            namespaces=parser.nsmap,
        )
    )
    return group or lanes[0].get("name") or lanes[0].get("id")


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


class UserTaskParser(_Extensions, CamundaTaskParser):
    """userTask with camunda assignment attributes, dates and formData."""

    def create_task(self):
        return self.spec_class(self.spec, self.bpmn_id, **self.bpmn_attributes)

    def parse_extensions(self, node=None):
        ext = super().parse_extensions(node)
        attr = lambda name: self.node.get(f"{{{CAMUNDA_NS}}}{name}")  # noqa: E731
        groups = _split(attr("candidateGroups"))
        lane_group = _lane_group(self)
        if not groups and lane_group:
            groups = [lane_group]
        ext["user_task"] = {
            "assignee": attr("assignee"),
            "candidate_users": _split(attr("candidateUsers")),
            "candidate_groups": groups,
            "due_date": attr("dueDate"),
            "follow_up_date": attr("followUpDate"),
            "priority": attr("priority"),
            "form_key": attr("formKey"),
        }
        ext["form"] = forms.parse_form(self.node).to_dict()
        return ext


class _EventParsing(EventDefinitionParser):
    """Clock-driven timers; cycles and messages repeat on non-interrupting boundary events."""

    def _repeats(self) -> bool:
        return etree.QName(self.node).localname == "boundaryEvent" and self.node.get("cancelActivity") == "false"

    def parse_timer_event(self, event):
        name = self.node.get("name", self.node.get("id"))
        for tag, cls in timers.TIMER_CLASSES.items():
            node = first(event.xpath(f"./bpmn:{tag}", namespaces=self.nsmap))
            if node is not None:
                cls = timers.OnceCycleTimer if cls is timers.CycleTimer and not self._repeats() else cls
                return cls(name, (node.text or "").strip(), description=tag)
        raise ValidationException(
            "timer has no timeDate, timeDuration or timeCycle", node=self.node, file_name=self.filename
        )

    def parse_message_event(self, message_event):
        definition = super().parse_message_event(message_event)
        if not self._repeats():
            return definition
        return RepeatingMessage(definition.name, definition.correlation_properties, description=definition.description)


def _event_parser(base: type) -> type:
    return type(f"Runner{base.__name__}", (_Extensions, _EventParsing, base), {})


class SubWorkflowParser(_Extensions, CamundaTaskParser):
    """Embedded (and event) subprocesses, with our extensions."""

    def create_task(self):
        spec = SubprocessParser.get_subprocess_spec(self)
        cls = self.EVENT_SUBPROCESS_CLASS if self.node.get("triggeredByEvent") == "true" else self.spec_class
        return cls(self.spec, self.bpmn_id, subworkflow_spec=spec, **self.bpmn_attributes)


class CallActivityParser(_Extensions, CamundaTaskParser):
    """Call activities (latest deployed version of the called process) with camunda:in/out."""

    def create_task(self):
        spec = SubprocessParser.get_call_activity_spec(self)
        return self.spec_class(self.spec, self.bpmn_id, subworkflow_spec=spec, **self.bpmn_attributes)

    def parse_extensions(self, node=None):
        ext = super().parse_extensions(node)
        found: dict[str, list[dict[str, Any]]] = {"in": [], "out": []}
        for el in self.node.xpath(
            "./bpmn:extensionElements/camunda:in | ./bpmn:extensionElements/camunda:out", namespaces=self.nsmap
        ):
            if el.get("businessKey") is None:
                found[etree.QName(el).localname].append(
                    {
                        "all": el.get("variables") == "all",
                        "source": el.get("source"),
                        "expression": el.get("sourceExpression"),
                        "target": el.get("target"),
                    }
                )
        if found["in"] or found["out"]:
            ext["call"] = found
        return ext


def _is_external(node: etree._Element) -> bool:
    return node.get(f"{{{CAMUNDA_NS}}}type") == "external"


class RunnerParser(CamundaParser):
    """CamundaParser with external tasks, clock timers and plain message events."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("userTask"): (UserTaskParser, RunnerUserTask),
        full_tag("serviceTask"): (ExternalTaskParser, ExternalTask),
        full_tag("task"): (TaskSpecParser, PassThroughTask),
        full_tag("manualTask"): (TaskSpecParser, PassThroughManualTask),
        full_tag("startEvent"): (_event_parser(StartEventParser), StartEvent),
        full_tag("intermediateCatchEvent"): (_event_parser(IntermediateCatchEventParser), IntermediateCatchEvent),
        full_tag("boundaryEvent"): (_event_parser(BoundaryEventParser), RunnerBoundaryEvent),
        full_tag("intermediateThrowEvent"): (_event_parser(IntermediateThrowEventParser), IntermediateThrowEvent),
        full_tag("endEvent"): (_event_parser(EndEventParser), EndEvent),
        full_tag("receiveTask"): (_event_parser(ReceiveTaskParser), ReceiveTask),
        full_tag("sendTask"): (_event_parser(SendTaskParser), SendTask),
        full_tag("subProcess"): (SubWorkflowParser, CallActivity),
        full_tag("callActivity"): (CallActivityParser, RunnerCallActivity),
    }

    def create_parser(self, node, filename=None, lane=None):
        # NOTE: external sendTask / businessRuleTask run handlers like service tasks.
        for el in node.iter(full_tag("sendTask"), full_tag("businessRuleTask")):
            if _is_external(el):
                el.tag = full_tag("serviceTask")
        return super().create_parser(node, filename, lane)


# --- serialization of our specs -----------------------------------------------------


def serializer_config() -> dict:
    """SpiffWorkflow serializer config covering the runner's spec classes."""
    config = deepcopy(CAMUNDA_CONFIG)
    config[DefaultMessageDefinition] = MessageEventDefinitionConverter
    for spec_class in (ExternalTask, RunnerUserTask, PassThroughTask, PassThroughManualTask):
        config[spec_class] = BpmnTaskSpecConverter
    config[RunnerCallActivity] = config[CallActivity]
    config[RunnerBoundaryEvent] = BoundaryEventConverter
    config[RunnerBoundaryJoin] = EventJoinConverter
    config[RepeatingMessage] = MessageEventDefinitionConverter
    config[ParallelCollectionLoop] = MultiInstanceTaskConverter
    config[SequentialCollectionLoop] = MultiInstanceTaskConverter
    for cls in (*timers.TIMER_CLASSES.values(), timers.OnceCycleTimer):
        config[cls] = TimerConditionalEventDefinitionConverter
    return config
