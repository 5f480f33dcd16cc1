"""Diagrams in a real browser: the MIWG reference files drawn (screenshots kept as artifacts,
to compare by eye with the PNG beside each file), and the two diagram views at work."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from runner.queries import tasklists as inbox
from runner.registry import HandlerContext, Registry
from runner.service.runtime import Runner
from web.svg.render import render_svg

TESTS = Path(__file__).resolve().parents[1]
CORPUS = TESTS.parents[1] / "shared" / "corpus" / "miwg"
DIAGRAMS = TESTS / "bpmn" / "diagrams"
BPMNDI = "{http://www.omg.org/spec/BPMN/20100524/DI}"

if CORPUS.is_dir():
    FILES = [pytest.param(path, id=path.name) for path in sorted(CORPUS.glob("*.bpmn"))]
else:
    FILES = [pytest.param(None, id="miwg-missing", marks=pytest.mark.skip(reason=f"MIWG corpus not found at {CORPUS}"))]
FILES.append(pytest.param(DIAGRAMS / "all_elements.bpmn", id="all_elements.bpmn"))


@pytest.mark.parametrize("path", FILES)
def test_reference_file_is_drawn_in_the_browser(page, shot, path: Path) -> None:
    data = path.read_bytes()
    svg = render_svg(data)
    root = etree.fromstring(svg.encode())
    width, height = (int(float(root.get(n))) + 1 for n in ("width", "height"))
    page.set_viewport_size({"width": min(max(width, 200), 4000), "height": min(max(height, 100), 4000)})
    page.set_content(f'<!doctype html><html><body style="margin:0;background:#fff">{svg}</body></html>')
    di_ids = {el.get("bpmnElement") for el in etree.fromstring(data).iter(f"{BPMNDI}BPMNShape", f"{BPMNDI}BPMNEdge")}
    drawn = page.eval_on_selector_all(
        ".bpmn-element", "els => els.map(e => [e.dataset.elementId, e.getBBox().width + e.getBBox().height])"
    )
    assert {element_id for element_id, _ in drawn} == di_ids
    assert all(size > 0 for _, size in drawn), [e for e, size in drawn if size <= 0]
    labels = page.eval_on_selector_all("text.bpmn-label", "els => els.filter(e => e.getBBox().width > 0).length")
    assert labels > 0
    shot(page, path.stem)


class Notify:
    def __call__(self, params: dict, ctx: HandlerContext) -> dict:
        return {"sent": True}


@pytest.fixture
def journey(live_server, registry: Registry) -> Runner:
    registry.add("test.notify", Notify())
    runner = live_server.runner
    runner.deploy([DIAGRAMS / "journey_step.bpmn", DIAGRAMS / "journey.bpmn"])
    return runner


def test_instance_diagram_highlights_the_current_task(page, live_server, sign_in, shot, staff, journey) -> None:
    first = journey.start_instance("journey", "KH1")
    task = inbox.tasks(journey, business_key="KH1")[0]
    journey.complete_task(task["id"], {"ok": True})
    journey.run_due()  # notify ran: the instance now waits in the called process (on the call activity)
    sign_in("team_leader1")  # sales1 neither owns KH1 nor has a task of it (runner.service.policy)
    page.goto(f"{live_server.url}/instances/{first}/diagram")
    active = page.locator('.bpmn-element.is-active[data-element-id="call_step"]')
    assert active.is_visible()
    assert page.locator(".bpmn-element.is-active").count() == 1
    assert page.locator('.bpmn-element.is-completed[data-element-id="verify"]').is_visible()
    assert page.locator('.bpmn-element.is-completed[data-element-id="f_no"]').count() == 0

    details = page.get_by_test_id("diagram-details")
    active.hover()
    assert "Đào tạo" in details.inner_text() and "Buổi đào tạo" in details.inner_text()
    page.locator('.bpmn-element[data-element-id="verify"]').click()  # a click pins the details
    page.locator('.bpmn-element[data-element-id="paid"]').hover()
    assert "Xác minh khách" in details.inner_text() and "sales1" not in details.inner_text()
    assert "Xong lúc" in details.inner_text()
    shot(page, "instance")

    page.get_by_role("button", name="Kích thước thật").click()
    assert page.locator(".diagram-canvas.full").count() == 1


def test_definition_diagram_is_a_heat_map(page, live_server, sign_in, shot, staff, journey) -> None:
    for key in ("KH1", "KH2", "KH3"):
        journey.start_instance("journey", key)
    task = inbox.tasks(journey, business_key="KH1")[0]
    journey.complete_task(task["id"], {"ok": True})
    sign_in("team_leader1")
    page.goto(f"{live_server.url}/processes/journey/versions/1/diagram")
    assert page.locator('.bpmn-badge-count[data-element-id="verify"] text').text_content() == "2"
    assert page.locator('.bpmn-badge-count[data-element-id="notify"] text').text_content() == "1"
    verify_fill = page.locator('.bpmn-element[data-element-id="verify"] rect').first.get_attribute("fill")
    notify_fill = page.locator('.bpmn-element[data-element-id="notify"] rect').first.get_attribute("fill")
    assert verify_fill != notify_fill and "white" not in (verify_fill, notify_fill)
    page.get_by_test_id("waiting-counts").locator('tr[data-element-id="verify"]').hover()
    assert "Đang chờ" in page.get_by_test_id("diagram-details").inner_text()
    shot(page, "definition")
