"""Diagram views: one instance on its diagram, and one version with its waiting instances.

The SVG comes from ``web.svg.render`` (drawn on the server from the file's diagram
interchange); this module only gathers what the runner knows (``runner.queries.diagram_state``) into
overlays and the details shown when hovering or clicking an element.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from lxml import etree
from markupsafe import Markup

from runner.errors import NotFound
from runner.model.document import parse
from runner.queries import diagram_state as diagrams
from web import permissions
from web.auth import roles_required
from web.extensions import get_runner
from web.i18n import show_datetime
from web.people import person
from web.svg.di import DiagramError
from web.svg.render import Overlays, heat_colour, render_svg

bp = Blueprint("diagrams", __name__)
OVERSEERS = ("admin", "team_leader")
# NOTE: the same texts as web.bpmn_svg.KIND_NAMES (a test keeps them equal), here for translation.
KIND_LABELS = {
    "participant": _l("Bể (pool)"),
    "lane": _l("Làn (lane)"),
    "task": _l("Tác vụ"),
    "userTask": _l("Tác vụ người dùng"),
    "serviceTask": _l("Tác vụ dịch vụ"),
    "scriptTask": _l("Tác vụ kịch bản"),
    "sendTask": _l("Tác vụ gửi"),
    "receiveTask": _l("Tác vụ nhận"),
    "manualTask": _l("Tác vụ thủ công"),
    "businessRuleTask": _l("Tác vụ quy tắc nghiệp vụ"),
    "callActivity": _l("Hoạt động gọi"),
    "subProcess": _l("Quy trình con"),
    "transaction": _l("Giao dịch"),
    "adHocSubProcess": _l("Quy trình con ad hoc"),
    "startEvent": _l("Sự kiện bắt đầu"),
    "endEvent": _l("Sự kiện kết thúc"),
    "intermediateCatchEvent": _l("Sự kiện trung gian (bắt)"),
    "intermediateThrowEvent": _l("Sự kiện trung gian (ném)"),
    "boundaryEvent": _l("Sự kiện biên"),
    "exclusiveGateway": _l("Cổng loại trừ (XOR)"),
    "parallelGateway": _l("Cổng song song"),
    "inclusiveGateway": _l("Cổng bao hàm (OR)"),
    "eventBasedGateway": _l("Cổng dựa trên sự kiện"),
    "complexGateway": _l("Cổng phức hợp"),
    "dataObjectReference": _l("Đối tượng dữ liệu"),
    "dataStoreReference": _l("Kho dữ liệu"),
    "textAnnotation": _l("Chú thích"),
    "group": _l("Nhóm"),
    "sequenceFlow": _l("Luồng tuần tự"),
    "messageFlow": _l("Luồng thông điệp"),
    "association": _l("Liên kết"),
    "dataInputAssociation": _l("Liên kết dữ liệu vào"),
    "dataOutputAssociation": _l("Liên kết dữ liệu ra"),
}


@bp.get("/processes/<key>/versions/<int:version>/diagram")
@roles_required(*OVERSEERS)
def definition(key: str, version: int):
    """A deployed version's diagram, coloured by how many running instances wait at each element."""
    runner = get_runner()
    try:
        row = diagrams.version_xml(runner, key, version)
        counts = diagrams.waiting_counts(runner, key, version)
    except NotFound as exc:
        abort(404, description=str(exc))
    details = {element: {_("Đang chờ"): n} for element, n in counts.items()}
    svg, problem = _svg(row["xml"], Overlays(counts=counts, heat=True, details=details))
    top = max(counts.values(), default=0)
    legend = [(heat_colour(n, top), str(n)) for n in _legend_steps(top)]
    return render_template(
        "diagrams/definition.html",
        row=row,
        svg=svg,
        problem=problem,
        counts=counts,
        heat_legend=legend,
        versions=diagrams.versions(runner, key),
        names=_names(row["xml"]),
    )


@bp.get("/instances/<instance_id>/diagram")
@roles_required()
def instance(instance_id: str):
    """An instance on its diagram: where it waits, the path it took, and its incidents."""
    permissions.require_instance(instance_id)
    try:
        state = diagrams.instance_diagram(get_runner(), instance_id)
    except NotFound as exc:
        abort(404, description=str(exc))
    incidents: dict[str, int] = {}
    for incident in state["incidents"]:
        if incident["element_id"]:
            incidents[incident["element_id"]] = incidents.get(incident["element_id"], 0) + 1
    overlays = Overlays(
        active=frozenset(state["active"]),
        completed=frozenset(state["completed"]),
        incidents=incidents,
        details=_instance_details(state),
    )
    svg, problem = _svg(state["xml"], overlays)
    return render_template(
        "diagrams/instance.html",
        info=state["instance"],
        svg=svg,
        problem=problem,
        waits=state["waits"],
        incidents=state["incidents"],
        names=_names(state["xml"]),
        task_url=_task_url,
    )


def _svg(xml: str, overlays: Overlays) -> tuple[Markup | None, str | None]:
    """The drawing, or why there is none (a file without diagram interchange still has a page)."""
    try:
        # NOTE: the SVG is built with lxml, which escapes every name taken from the file.
        kinds = {kind: str(label) for kind, label in KIND_LABELS.items()}
        return Markup(render_svg(xml.encode("utf-8"), overlays, kind_names=kinds)), None
    except DiagramError as exc:
        return None, str(exc)


def _instance_details(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per element, the facts shown on hover or click, in the user's language."""
    details: dict[str, dict[str, Any]] = {}

    def add(element: str | None, label: str, value: Any) -> None:
        if element and value not in (None, "", []):
            details.setdefault(element, {})[label] = value

    for step in state["steps"]:
        add(step["element_id"], _("Xong lúc"), show_datetime(step["at"]))
        add(step["element_id"], _("Người làm"), person(step["actor"]))
    for wait in state["waits"]:
        _wait_details(add, wait)
    for incident in state["incidents"]:
        add(incident["element_id"], _("Sự cố"), incident["error"][:300])
        add(incident["element_id"], _("Sự cố từ"), show_datetime(incident["created_at"]))
    return details


def _wait_details(add, wait: dict[str, Any]) -> None:
    element, kind = wait["element_id"], wait.get("kind_of_wait", wait["kind"])
    if kind == "task":
        add(element, _("Trạng thái"), _("Đang chờ người làm"))
        add(element, _("Người nhận"), person(wait["assignee"]) or _("Chưa ai nhận"))
        add(element, _("Nhóm"), ", ".join(wait["candidate_groups"]))
        add(element, _("Hạn"), show_datetime(wait["due_at"]))
    elif kind == "job":
        add(element, _("Trạng thái"), _("Lỗi, chờ xử lý") if wait["state"] == "incident" else _("Đang chạy"))
        add(element, _("Dịch vụ"), wait["topic"])
        add(element, _("Số lần thử"), wait["attempts"])
        add(element, _("Lỗi gần nhất"), (wait["last_error"] or "")[:300])
    elif kind == "timer":
        add(element, _("Hẹn giờ"), show_datetime(wait["due_at"]))
    elif kind == "message":
        add(element, _("Chờ thông điệp"), wait["message"])
    if wait.get("called_element"):
        add(element, _("Bước trong quy trình con"), wait.get("name") or wait["called_element"])


def _names(xml: str) -> dict[str, str]:
    """Element id -> name, for the lists beside the diagram."""
    try:
        root = parse(xml.encode("utf-8"))
    except etree.XMLSyntaxError:  # NOTE: the page already says why there is no drawing
        return {}
    return {
        el.get("id"): el.get("name")
        for el in root.iter()
        if isinstance(el.tag, str) and el.get("id") and el.get("name")
    }


def _legend_steps(top: int) -> list[int]:
    """A few counts from 1 to the highest, for the heat-map legend."""
    if top <= 0:
        return []
    return sorted({1, max(1, round(top * 0.25)), max(1, round(top * 0.5)), max(1, round(top * 0.75)), top})


def _task_url(task_id: str) -> str:
    return url_for("inbox.task", task_id=task_id)
