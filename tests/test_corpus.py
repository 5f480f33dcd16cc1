"""The validator against the BPMN MIWG reference files: it reports, it never crashes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.model.validation import validate  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "miwg"
FILE_LEVEL = ("XML is not well formed", "unsupported file type")

if CORPUS.is_dir():
    FILES = [pytest.param(path, id=path.name) for path in sorted(CORPUS.glob("*.bpmn"))]
else:
    FILES = [pytest.param(None, id="miwg-missing", marks=pytest.mark.skip(reason=f"MIWG corpus not found at {CORPUS}"))]


@pytest.mark.parametrize("path", FILES)
def test_corpus_file_is_validated_without_crashing(path: Path) -> None:
    data = path.read_bytes()
    problems = validate({path.name: data}, topics=set())
    assert isinstance(problems, list)
    ids = {el.get("id") for el in etree.fromstring(data).iter() if el.get("id")}
    for problem in problems:
        assert problem.reason.strip()
        assert problem.file == path.name
        if problem.element_id == "":
            assert problem.reason.startswith(FILE_LEVEL), problem
        else:
            assert problem.element_id in ids, problem
