"""Files a careful author may still send: other encodings, ids the engine uses, a badly encoded file on the CLI.

A UTF-16 or ISO-8859-1 diagram follows its XML declaration and runs like its UTF-8 twin;
an element id that is one of SpiffWorkflow's own task names is refused by name at deploy
(it used to deploy, and then every start failed).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

import pytest
from runtime_helpers import only_task, row_counts
from sqlalchemy import select

from runner.cli import main
from runner.errors import DeploymentInvalid
from runner.service.runtime import Runner
from runner.store.models import ProcessVersion

DIAGRAM = """<?xml version="1.0" encoding="{encoding}"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs_encoded" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="encoded" name="{name}" isExecutable="true">
    <bpmn:startEvent id="{start}" />
    <bpmn:sequenceFlow id="Flow_1" sourceRef="{start}" targetRef="{task}" />
    <bpmn:userTask id="{task}" name="{name}" camunda:candidateGroups="sales" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="{task}" targetRef="{end}" />
    <bpmn:endEvent id="{end}" />
  </bpmn:process>
</bpmn:definitions>
"""
VIETNAMESE, FRENCH = "Duyệt hồ sơ của trường", "Révision du café à Hué"

# (row id, encoding declared, the task name, the text's bytes in that encoding)
ENCODINGS: list[tuple[str, str, str, Callable[[str], bytes]]] = [
    ("utf-16-bom", "UTF-16", VIETNAMESE, lambda text: text.encode("utf-16")),
    ("utf-16le-bom", "UTF-16", VIETNAMESE, lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le")),
    ("utf-16be-bom", "UTF-16", VIETNAMESE, lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be")),
    ("utf-16le-no-bom", "UTF-16", VIETNAMESE, lambda text: text.encode("utf-16-le")),
    ("utf-16be-no-bom", "UTF-16BE", VIETNAMESE, lambda text: text.encode("utf-16-be")),
    ("iso-8859-1", "ISO-8859-1", FRENCH, lambda text: text.encode("latin-1")),
    ("windows-1252", "windows-1252", FRENCH, lambda text: text.encode("cp1252")),
    ("utf-8-bom", "UTF-8", VIETNAMESE, lambda text: codecs.BOM_UTF8 + text.encode("utf-8")),
]
# Task spec names SpiffWorkflow 3.2 adds itself (bpmn_process_spec.py, ProcessParser.py,
# TaskParser.py): (row id, element ids of start event, user task, end event)
ENGINE_NAMES: list[tuple[str, str, str, str]] = [
    ("start-event-Start", "Start", "review", "EndEvent_1"),
    ("end-event-End", "StartEvent_1", "review", "End"),
    ("task-Root", "StartEvent_1", "Root", "EndEvent_1"),
    ("task-StartEventSplit", "StartEvent_1", "StartEventSplit", "EndEvent_1"),
    ("task-StartEventJoin", "StartEvent_1", "StartEventJoin", "EndEvent_1"),
    ("end-event-process-EndJoin", "StartEvent_1", "review", "encoded.EndJoin"),
    ("task-BoundaryEventSplit", "StartEvent_1", "review.BoundaryEventSplit", "EndEvent_1"),
    ("task-BoundaryEventJoin", "StartEvent_1", "x.BoundaryEventJoin", "EndEvent_1"),
    ("task-multi-instance-child", "StartEvent_1", "review [child]", "EndEvent_1"),
]


def diagram(
    encoding: str = "UTF-8",
    name: str = "Review",
    start: str = "StartEvent_1",
    task: str = "review",
    end: str = "EndEvent_1",
) -> str:
    """The small diagram with its declaration, names and ids filled in."""
    return DIAGRAM.format(encoding=encoding, name=name, start=start, task=task, end=end)


def stored_xml(runner: Runner, key: str) -> str:
    with runner.db.read() as s:
        return s.scalars(select(ProcessVersion.xml).where(ProcessVersion.process_key == key)).one()


@pytest.mark.parametrize("row_id,encoding,name,encode", ENCODINGS, ids=[row[0] for row in ENCODINGS])
def test_a_file_in_another_encoding_deploys_and_runs_like_its_utf8_twin(
    any_runner: Runner, row_id: str, encoding: str, name: str, encode: Callable[[str], bytes]
) -> None:
    [deployed] = any_runner.deploy({f"{row_id}.bpmn": encode(diagram(encoding, name))})
    assert deployed.changed
    xml = stored_xml(any_runner, "encoded")
    assert xml.lstrip("\ufeff").startswith('<?xml version="1.0" encoding="UTF-8"?>') and name in xml
    any_runner.start_instance("encoded", "KH1")
    assert only_task(any_runner, "KH1", "review")["name"] == name
    [again] = any_runner.deploy({"utf8.bpmn": diagram("UTF-8", name).encode()})
    assert again.changed is (row_id == "utf-8-bom")  # the same content, whatever its bytes were


@pytest.mark.parametrize("row_id,start,task,end", ENGINE_NAMES, ids=[row[0] for row in ENGINE_NAMES])
def test_an_element_id_the_engine_uses_itself_is_refused_naming_it(
    runner: Runner, row_id: str, start: str, task: str, end: str
) -> None:
    before = row_counts(runner)
    with pytest.raises(DeploymentInvalid) as caught:
        runner.deploy({f"{row_id}.bpmn": diagram(start=start, task=task, end=end).encode()})
    [problem] = caught.value.problems
    reserved = next(ident for ident in (start, task, end) if ident not in ("StartEvent_1", "review", "EndEvent_1"))
    assert (problem.file, problem.element_id) == (f"{row_id}.bpmn", reserved)
    assert f"id '{reserved}' is a name the engine uses for a step of its own" in problem.reason
    assert row_counts(runner) == before


def test_the_same_diagram_with_modeler_ids_starts(runner: Runner) -> None:
    runner.deploy({"fine.bpmn": diagram().encode()})
    runner.start_instance("encoded", "KH1")
    assert only_task(runner, "KH1", "review")["name"] == "Review"


@pytest.mark.parametrize(
    "content",
    [
        diagram(name="Trường é").encode("utf-8").replace("é".encode(), b"\xe9"),  # declared UTF-8, Latin-1 bytes
        diagram("UTF-8").encode("utf-16"),  # UTF-16 bytes, declared UTF-8
        diagram().split("?>", 1)[1].lstrip().encode("utf-16-le"),  # UTF-16 without BOM or declaration
    ],
    ids=["latin1-bytes-declared-utf8", "utf16-declared-utf8", "utf16-undeclared"],
)
def test_cli_deploy_of_a_badly_encoded_file_prints_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    from runner.store import schema as db

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db.upgrade(url)
    monkeypatch.setenv("RUNNER_DATABASE_URL", url)
    bad = tmp_path / "bad.bpmn"
    bad.write_bytes(content)
    assert main(["deploy", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    [line] = err.splitlines()
    assert line.startswith("error: deployment rejected: bad.bpmn: ") and "UTF" in line
