"""Reference files from the BPMN interchange test suite: deployed, or refused element by element."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import DeploymentInvalid
from runner.service.runtime import Runner
from runner.store.models import ProcessVersion

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "miwg"
FILES = sorted(CORPUS.glob("*.bpmn")) if CORPUS.is_dir() else []


@pytest.mark.skipif(not FILES, reason=f"MIWG corpus not found at {CORPUS}")
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus_file_deploys_or_is_refused_with_reasons(runner: Runner, path: Path) -> None:
    data = path.read_bytes()
    try:
        deployed = runner.deploy({path.name: data})
    except DeploymentInvalid as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.reason
            assert problem.element_id == "" or problem.element_id.encode() in data or "line" in problem.element_id
        with runner.db.read() as s:
            assert s.query(ProcessVersion).count() == 0
        return
    assert deployed


@pytest.mark.skipif(not FILES, reason=f"MIWG corpus not found at {CORPUS}")
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus_file_made_executable_never_crashes_the_parser(runner: Runner, path: Path) -> None:
    """Past the executable check the parser sees every construct; it must answer, not crash."""
    data = path.read_bytes().replace(b'isExecutable="false"', b'isExecutable="true"')
    data = data.replace(b"<process ", b'<process isExecutable="true" ') if b"isExecutable" not in data else data
    try:
        runner.deploy({path.name: data})
    except DeploymentInvalid as exc:
        assert all(problem.reason for problem in exc.problems)
