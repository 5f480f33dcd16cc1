"""Diagram views and the queries behind them: where an instance stands, the path it took,
its incidents, and how many instances of a version wait at each element."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree

from runner.errors import NotFound
from runner.model.paths import read_graph, taken_path
from runner.queries import diagram_state as diagrams
from runner.queries import tasklists as inbox
from runner.registry import HandlerContext, Registry
from runner.service.runtime import Runner

DIAGRAMS = Path(__file__).parent / "bpmn" / "diagrams"
NO_DI = Path(__file__).parent / "bpmn" / "runtime" / "lifecycle.bpmn"
SVG = "{http://www.w3.org/2000/svg}"


class Notify:
    """The ``test.notify`` handler: fails its first ``failures`` calls, then succeeds."""

    def __init__(self, failures: int = 0):
        self.failures = failures

    def __call__(self, params: dict, ctx: HandlerContext) -> dict:
        if self.failures:
            self.failures -= 1
            raise ValueError("Zalo không trả lời")
        return {"sent": True}


@pytest.fixture
def notify(registry: Registry) -> Notify:
    handler = Notify()
    registry.add("test.notify", handler)
    return handler


@pytest.fixture
def journey(runner: Runner, notify: Notify) -> Runner:
    runner.deploy([DIAGRAMS / "journey_step.bpmn", DIAGRAMS / "journey.bpmn"])
    return runner


def complete_open_task(runner: Runner, business_key: str, data: dict | None = None) -> None:
    task = inbox.tasks(runner, business_key=business_key)[0]
    runner.complete_task(task["id"], data or {})


def state(runner: Runner, instance_id: str) -> tuple[set[str], set[str], list[str]]:
    found = diagrams.instance_diagram(runner, instance_id)
    return found["active"], found["completed"], [i["element_id"] for i in found["incidents"]]


# --- runner.diagrams ------------------------------------------------------------------------


def test_an_instance_is_followed_along_its_diagram(journey: Runner, notify: Notify) -> None:
    notify.failures = 1
    iid = journey.start_instance("journey", "KH1")
    assert state(journey, iid) == ({"verify"}, {"start", "f1"}, [])

    complete_open_task(journey, "KH1", {"ok": True})
    journey.run_due()  # the handler fails its only try: an incident
    active, done, incidents = state(journey, iid)
    assert active == {"notify"} and incidents == ["notify"]
    assert done == {"start", "f1", "verify", "f2", "gw_ok", "f_yes"}  # the default branch was not taken

    journey.retry_incident(diagrams.instance_diagram(journey, iid)["incidents"][0]["id"])
    journey.run_due()
    active, done, incidents = state(journey, iid)
    assert active == {"call_step"} and incidents == []  # the called process's task shows on its call
    assert {"notify", "f4"} <= done

    complete_open_task(journey, "KH1")
    assert state(journey, iid)[0] == {"wait_day"}
    journey.advance_clock(timedelta(days=1, minutes=1))
    assert state(journey, iid)[0] == {"paid"}  # a message wait, found by its message name

    journey.correlate("paid", "KH1", {})
    active, done, _ = state(journey, iid)
    assert active == set()
    assert {"call_step", "f5", "wait_day", "f6", "paid", "f7", "end_done"} <= done
    assert not done & {"f_no", "end_rejected"}


def test_the_rejected_branch_ends_at_its_own_end_event(journey: Runner) -> None:
    iid = journey.start_instance("journey", "KH2")
    complete_open_task(journey, "KH2", {"ok": False})
    active, done, _ = state(journey, iid)
    assert active == set()
    assert done == {"start", "f1", "verify", "f2", "gw_ok", "f_no", "end_rejected"}


def test_waits_carry_what_the_details_panel_shows(journey: Runner) -> None:
    iid = journey.start_instance("journey", "KH3")
    found = diagrams.instance_diagram(journey, iid)
    (wait,) = found["waits"]
    assert wait["kind"] == "task" and wait["element_id"] == "verify" and wait["candidate_groups"] == ["sales"]
    assert found["instance"]["process_key"] == "journey" and found["instance"]["version"] == 1
    assert b"BPMNDiagram" in found["xml"].encode()
    complete_open_task(journey, "KH3", {"ok": True})
    journey.run_due()
    complete_open_task(journey, "KH3")
    found = diagrams.instance_diagram(journey, iid)
    assert [(w["kind"], w["element_id"]) for w in found["waits"]] == [("timer", "wait_day")]
    assert {s["element_id"] for s in found["steps"]} >= {"verify", "notify", "call_step"}
    called = [s for s in found["steps"] if s["element_id"] == "call_step"]
    assert called and called[0]["called_element"] == "train"


def test_waiting_counts_per_element(journey: Runner, registry: Registry) -> None:
    for key in ("KH1", "KH2", "KH3"):
        journey.start_instance("journey", key)
    assert diagrams.waiting_counts(journey, "journey", 1) == {"verify": 3}
    complete_open_task(journey, "KH1", {"ok": True})
    complete_open_task(journey, "KH2", {"ok": False})  # finished: counts nowhere
    assert diagrams.waiting_counts(journey, "journey", 1) == {"verify": 1, "notify": 1}
    journey.run_due()
    assert diagrams.waiting_counts(journey, "journey", 1) == {"verify": 1, "call_step": 1}
    assert [v["running"] for v in diagrams.versions(journey, "journey")] == [2]


def test_unknown_versions_and_instances_are_not_found(journey: Runner) -> None:
    with pytest.raises(NotFound, match="journey has no version 7"):
        diagrams.version_xml(journey, "journey", 7)
    with pytest.raises(NotFound, match="nope"):
        diagrams.instance_diagram(journey, "nope")


# --- runner.diagram_paths -------------------------------------------------------------------

FORK = (DIAGRAMS / "journey.bpmn").read_bytes()


def test_silent_steps_between_known_ones_are_filled_in() -> None:
    graph = read_graph(FORK)
    assert taken_path(graph, {"verify", "notify"}, {"call_step"}, "journey", False) == {
        "start",
        "f1",
        "verify",
        "f2",
        "gw_ok",
        "f_yes",
        "notify",
        "f4",
    }
    # a waiting step history knows nothing of breaks the chain: nothing is guessed across it
    assert taken_path(graph, {"verify"}, {"call_step"}, "journey", False) == {"start", "f1", "verify"}


def test_no_end_event_is_guessed_when_several_could_have_been_reached() -> None:
    graph = read_graph(FORK)
    path = taken_path(graph, set(), set(), "journey", True)
    assert not path & {"end_done", "end_rejected"}


def test_message_catchers_and_calls_are_read_from_the_file() -> None:
    graph = read_graph(FORK)
    assert graph.catchers == {"paid": ["paid"]}
    assert graph.calls == {"call_step": "journey_step"}
    assert graph.kinds["gw_ok"] == "exclusiveGateway" and graph.flows["f_no"] == ("gw_ok", "end_rejected")


# --- web/diagrams.py --------------------------------------------------------------------------


def svg_in(page: str) -> etree._Element:
    start, end = page.index("<svg"), page.index("</svg>") + len("</svg>")
    return etree.fromstring(page[start:end].encode())


def group(svg: etree._Element, element_id: str) -> etree._Element:
    return next(
        g
        for g in svg.iter(f"{SVG}g")
        if g.get("data-element-id") == element_id and "bpmn-element" in g.get("class", "")
    )


def test_instance_page_highlights_the_current_task(client, staff, journey: Runner) -> None:
    iid = journey.start_instance("journey", "KH1")
    client.login("sales1")
    response = client.get(f"/instances/{iid}/diagram")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    svg = svg_in(page)
    verify = group(svg, "verify")
    assert "is-active" in verify.get("class")
    details = json.loads(verify.get("data-details"))
    assert details["Nhóm"] == "sales" and details["Người nhận"] == "Chưa ai nhận"
    assert "is-completed" in group(svg, "start").get("class")
    assert "is-active" not in group(svg, "notify").get("class")
    assert "Xác minh khách" in page and 'data-testid="diagram-details"' in page
    assert "Tác vụ người dùng" in verify.find(f"{SVG}title").text


def test_instance_page_links_the_business_key_to_the_customer_page(client, staff, journey: Runner) -> None:
    iid = journey.start_instance("journey", "KH1")
    client.login("sales1")
    page = client.get(f"/instances/{iid}/diagram").get_data(as_text=True)
    assert '<a href="/customers/KH1">KH1</a>' in page


def test_instance_page_marks_incidents(client, staff, journey: Runner, notify: Notify) -> None:
    notify.failures = 1
    iid = journey.start_instance("journey", "KH1")
    complete_open_task(journey, "KH1", {"ok": True})
    journey.run_due()
    client.login("team_leader1")  # customer care sees post-sale customers only (runner.service.policy)
    page = client.get(f"/instances/{iid}/diagram").get_data(as_text=True)
    svg = svg_in(page)
    assert "has-incident" in group(svg, "notify").get("class")
    assert svg.find(f".//{SVG}g[@class='bpmn-badge bpmn-badge-incident']").get("data-element-id") == "notify"
    assert "Zalo không trả lời" in json.loads(group(svg, "notify").get("data-details"))["Sự cố"]
    assert 'data-testid="incidents"' in page


def test_definition_page_shows_waiting_counts_as_a_heat_map(client, staff, journey: Runner) -> None:
    for key in ("KH1", "KH2", "KH3"):
        journey.start_instance("journey", key)
    complete_open_task(journey, "KH1", {"ok": True})
    client.login("team_leader1")
    response = client.get("/processes/journey/versions/1/diagram")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    svg = svg_in(page)
    assert "is-hot" in group(svg, "verify").get("class") and "is-hot" in group(svg, "notify").get("class")
    counts = {
        b.get("data-element-id"): b.find(f"{SVG}text").text
        for b in svg.iter(f"{SVG}g")
        if b.get("class") == "bpmn-badge bpmn-badge-count"
    }
    assert counts == {"verify": "2", "notify": "1"}
    assert 'data-testid="waiting-counts"' in page


def test_definition_view_is_for_team_leaders_and_admins(client, staff, journey: Runner) -> None:
    client.login("sales1")
    assert client.get("/processes/journey/versions/1/diagram").status_code == 403


def test_missing_things_are_404(client, staff, journey: Runner) -> None:
    client.login("admin1")
    assert client.get("/processes/journey/versions/9/diagram").status_code == 404
    assert client.get("/processes/nothing/versions/1/diagram").status_code == 404
    assert client.get("/instances/nothing/diagram").status_code == 404


def test_a_file_without_diagram_interchange_still_has_a_page(client, staff, runner: Runner, registry: Registry) -> None:
    registry.add("test.flaky", lambda params, ctx: {})
    runner.deploy([NO_DI])
    key = read_graph(NO_DI.read_bytes()).processes.pop()
    client.login("admin1")
    page = client.get(f"/processes/{key}/versions/1/diagram").get_data(as_text=True)
    assert "Không vẽ được sơ đồ" in page and "BPMNDiagram" in page


def test_kind_names_are_translated_and_kept_in_step_with_the_renderer(client, staff, journey: Runner) -> None:
    from web.diagrams import KIND_LABELS
    from web.svg.render import KIND_NAMES

    assert {k: str(v) for k, v in KIND_LABELS.items()} == KIND_NAMES  # outside a request: the msgids
    iid = journey.start_instance("journey", "KH1")
    client.login("sales1")
    client.post("/lang/en")
    page = client.get(f"/instances/{iid}/diagram").get_data(as_text=True)
    assert "User task · verify" in group(svg_in(page), "verify").find(f"{SVG}title").text
    assert "Process diagram" in page and "Waiting here" in page
