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
from typing import Any

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
from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter, MultiInstanceTaskConverter
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    CallActivity,
    EndEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    ManualTask,
    NoneTask,
    ParallelMultiInstanceTask,
    ReceiveTask,
    SendTask,
    SequentialMultiInstanceTask,
    ServiceTask,
    StartEvent,
    UserTask,
)
from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent as BoundaryMixin
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.util import PendingBpmnEvent
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import CamundaTaskParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.task import TaskState
from SpiffWorkflow.util.deep_merge import DeepMerge

from runner import expressions, forms, timers

CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ACTIVITI_NS = "http://activiti.org/bpmn"


def normalize(xml: bytes) -> bytes:
    """Read the legacy activiti namespace as the camunda one (both mean the same dialect)."""
    return xml.replace(ACTIVITI_NS.encode(), CAMUNDA_NS.encode())


# --- task specs ---------------------------------------------------------------------


class ExternalTask(ServiceTask):
    """A service task whose work is done by a handler outside the engine step.

    Running it leaves the task STARTED; the runner records a job for its topic and
    completes the task when the handler's result is committed.
    """

    def _run_hook(self, my_task):
        return None


class RunnerUserTask(UserTask):
    """A user task; assignment, dates and form live in ``extensions``."""


class PassThroughTask(NoneTask):
    """bpmn:task: Camunda passes through it (SpiffWorkflow would wait for a person forever)."""

    def __init__(self, wf_spec, bpmn_id, **kwargs):
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.manual = False


class PassThroughManualTask(ManualTask):
    """bpmn:manualTask: done outside any system, so Camunda passes through it too."""

    def __init__(self, wf_spec, bpmn_id, **kwargs):
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.manual = False


class RunnerCallActivity(CallActivity):
    """A call activity honouring camunda:in / camunda:out variable mappings.

    Without any mapping every variable goes in and comes back (SpiffWorkflow's default);
    with mappings only the mapped variables cross, as in Camunda.
    """

    def copy_data(self, my_task, subworkflow):
        mappings = (self.extensions or {}).get("call")
        if not mappings:
            return super().copy_data(my_task, subworkflow)
        start = subworkflow.get_next_task(subworkflow.task_tree, skip_subprocesses=True, spec_name="Start")
        start.set_data(**_mapped(my_task, mappings["in"]))

    def update_data(self, my_task, subworkflow):
        mappings = (self.extensions or {}).get("call")
        if not mappings:
            return super().update_data(my_task, subworkflow)
        my_task.data.update(_mapped(subworkflow.last_task, mappings["out"]))


class _CollectionMerge(MultiInstanceTask):
    """Camunda's collection loop: an instance's variables reach the process, its element variable does not."""

    def merge_child(self, workflow, child):
        item = self.input_item.bpmn_id if self.input_item is not None else None
        DeepMerge.merge(child.parent.data, {k: v for k, v in child.data.items() if k != item})
        child.parent.internal_data["merged"].append(str(child.id))


class ParallelCollectionLoop(ParallelMultiInstanceTask, _CollectionMerge):
    """camunda:collection without isSequential: one instance per item, all at once."""


class SequentialCollectionLoop(SequentialMultiInstanceTask, _CollectionMerge):
    """camunda:collection with isSequential="true": one instance per item, in order."""


def _mapped(task, mappings: list[dict[str, Any]]) -> dict[str, Any]:
    """The variables that camunda:in/out mappings take from a task's data."""
    found: dict[str, Any] = {}
    for mapping in mappings:
        if mapping.get("all"):
            found.update(deepcopy(task.data))
        elif mapping.get("expression"):
            found[mapping["target"]] = task.workflow.script_engine.evaluate(task, mapping["expression"])
        elif mapping.get("source"):
            # NOTE: like Camunda, a missing source variable arrives as null.
            found[mapping["target"] or mapping["source"]] = deepcopy(task.data.get(mapping["source"]))
    return found


# --- timers ---------------------------------------------------------------------------


class _ClockTimer:
    """Timer behaviour shared by the three kinds: due times come from the runner's clock.

    NOTE: SpiffWorkflow's own timers compare with ``datetime.now()``. Ours fire only
    when the runner marks them, so the (possibly virtual) clock and the database decide.
    State is keyed by the timer's name because an event-based gateway holds several.
    """

    kind = ""

    @property
    def key(self) -> str:
        return f"timer:{self.name}"

    def timer_state(self, my_task) -> dict:
        """The timer's schedule on this task, computed from the clock on first sight."""
        state = my_task.internal_data.get(self.key)
        if state is None:
            state = timers.schedule(self.kind, self.expression, my_task)
            my_task.internal_data[self.key] = state
        return state

    def has_fired(self, my_task):
        return bool(self.timer_state(my_task).get("fired"))

    def details(self, my_task):
        return PendingBpmnEvent(self.name, "timer", self.timer_state(my_task).get("due"))

    def reset(self, my_task):
        my_task.internal_data.pop(self.key, None)
        super().reset(my_task)


class DateTimer(_ClockTimer, TimerEventDefinition):
    """timeDate: fires at a moment."""

    kind = "date"


class DurationTimer(_ClockTimer, TimerEventDefinition):
    """timeDuration: fires a duration after the event is reached."""

    kind = "duration"


class CycleTimer(_ClockTimer, CycleTimerEventDefinition):
    """timeCycle on a non-interrupting boundary event: fires each repetition.

    NOTE: SpiffWorkflow never predicts the outputs of a cycle timer event (they are added
    per firing below), so only repeating events may use this class; see OnceCycleTimer.
    """

    kind = "cycle"

    def update_task(self, my_task):
        state = self.timer_state(my_task)
        while state.get("pending", 0) > 0:
            state["pending"] -= 1
            for output in my_task.task_spec.outputs:
                child = my_task._add_child(output, TaskState.FUTURE)
                child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
                child.task_spec._update(child)


class OnceCycleTimer(_ClockTimer, TimerEventDefinition):
    """timeCycle where BPMN fires once (catch, start, interrupting boundary): the first due time."""

    kind = "cycle"


def repeats(my_task) -> bool:
    """True where BPMN lets a cycle fire more than once: non-interrupting boundary events."""
    spec = my_task.task_spec
    return isinstance(spec, BoundaryMixin) and not spec.cancel_activity


TIMER_CLASSES = {"timeDate": DateTimer, "timeDuration": DurationTimer, "timeCycle": CycleTimer}


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


class _Extensions:
    """Mixin for parsers: read our extensions instead of Camunda's flat property map."""

    def parse_extensions(self, node=None):
        return parse_extensions(node if node is not None else self.node, self.nsmap)

    def _add_multiinstance_task(self, loop_characteristics):
        collection = loop_characteristics.get(f"{{{CAMUNDA_NS}}}collection")
        if collection is None or self.xpath("./bpmn:multiInstanceLoopCharacteristics/bpmn:loopCardinality"):
            return super()._add_multiinstance_task(loop_characteristics)
        # Camunda Modeler writes camunda:collection="${items}" (or just "items").
        name = expressions.unwrap(collection)
        if not name.isidentifier():
            raise ValidationException(f"multi-instance collection {collection!r} must name a variable, e.g. ${{items}}",
                                      node=self.node, file_name=self.filename)
        element = loop_characteristics.get(f"{{{CAMUNDA_NS}}}elementVariable")
        condition = first(self.xpath("./bpmn:multiInstanceLoopCharacteristics/bpmn:completionCondition"))
        original = self.spec.task_specs.pop(self.task.name)
        cls = SequentialCollectionLoop if loop_characteristics.get("isSequential") == "true" else ParallelCollectionLoop
        # NOTE: everything is fixed here, at parse time, so that a restored spec behaves the same.
        self.task = cls(self.spec, original.name, task_spec="", data_input=TaskDataReference(name),
                        input_item=TaskDataReference(element) if element else None,
                        condition=condition.text if condition is not None else None)
        self._copy_task_attrs(original, loop_characteristics)


class TaskSpecParser(_Extensions, CamundaTaskParser):
    """Plain tasks, gateways and manual tasks."""


class ExternalTaskParser(_Extensions, CamundaTaskParser):
    """serviceTask / sendTask / businessRuleTask with camunda:type="external"."""


def _lane_group(parser: TaskParser) -> str | None:
    """The candidate group a lane stands for: its ``group`` property, else its name."""
    lanes = parser.node.xpath(
        f"//bpmn:lane[bpmn:flowNodeRef/text()='{parser.bpmn_id}']", namespaces=parser.nsmap
    )
    if not lanes:
        return None
    group = first(lanes[0].xpath(
        "./bpmn:extensionElements/camunda:properties/camunda:property[@name='group']/@value",
        namespaces=parser.nsmap,
    ))
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


class _TimerParsing(EventDefinitionParser):
    """Build clock-driven timer definitions instead of wall-clock ones."""

    def parse_timer_event(self, event):
        name = self.node.get("name", self.node.get("id"))
        for tag, cls in TIMER_CLASSES.items():
            node = first(event.xpath(f"./bpmn:{tag}", namespaces=self.nsmap))
            if node is not None:
                repeating = etree.QName(self.node).localname == "boundaryEvent" \
                    and self.node.get("cancelActivity") == "false"
                cls = OnceCycleTimer if cls is CycleTimer and not repeating else cls
                return cls(name, (node.text or "").strip(), description=tag)
        raise ValidationException("timer has no timeDate, timeDuration or timeCycle",
                                  node=self.node, file_name=self.filename)


def _event_parser(base: type) -> type:
    return type(f"Runner{base.__name__}", (_Extensions, _TimerParsing, base), {})


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
        found = {"in": [], "out": []}
        for el in self.node.xpath("./bpmn:extensionElements/camunda:in | ./bpmn:extensionElements/camunda:out",
                                  namespaces=self.nsmap):
            if el.get("businessKey") is None:
                found[etree.QName(el).localname].append({
                    "all": el.get("variables") == "all", "source": el.get("source"),
                    "expression": el.get("sourceExpression"), "target": el.get("target")})
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
        full_tag("boundaryEvent"): (_event_parser(BoundaryEventParser), BoundaryEvent),
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
    for cls in (ExternalTask, RunnerUserTask, PassThroughTask, PassThroughManualTask):
        config[cls] = BpmnTaskSpecConverter
    config[RunnerCallActivity] = config[CallActivity]
    config[ParallelCollectionLoop] = MultiInstanceTaskConverter
    config[SequentialCollectionLoop] = MultiInstanceTaskConverter
    for cls in (*TIMER_CLASSES.values(), OnceCycleTimer):
        config[cls] = TimerConditionalEventDefinitionConverter
    return config
