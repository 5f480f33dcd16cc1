"""Malicious and broken XML, deployed through the runner, the admin page and the REST API.

Each row is a file an attacker or a careless tool could send. Whatever the channel, the
answer is a refusal naming the file (422, or 413 for a body over the request limit) or a
harmless deployment: nothing is fetched from the loopback server, no byte of the secret
file appears in any answer, and nothing answers 500.
"""

from __future__ import annotations

import io
import resource
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from runtime_helpers import row_counts
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from runner.errors import DeploymentInvalid
from runner.service import accounts as users
from runner.service.deployment import MAX_FILE_BYTES
from runner.service.runtime import Runner

SECRET = "TOPSECRET-4b1d"
MAX_GROWTH_KB = 512 * 1024  # the process's peak memory may not grow by more than this per row
BASE = """<?xml version="1.0" encoding="UTF-8"?>{doctype}
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:xi="http://www.w3.org/2001/XInclude"
    id="Defs_hostile" targetNamespace="http://bpmn.io/schema/bpmn">{extra}
  <bpmn:process id="hostile" name="{name}" isExecutable="true">{inside}
    <bpmn:startEvent id="StartEvent_1" />
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="review" />
    <bpmn:userTask id="review" name="Review" camunda:candidateGroups="sales">
      <bpmn:documentation>{text}</bpmn:documentation>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="Flow_2" sourceRef="review" targetRef="EndEvent_1" />
    <bpmn:endEvent id="EndEvent_1" />
  </bpmn:process>
</bpmn:definitions>
"""


@dataclass(frozen=True)
class Target:
    """What a row may point at: a local file holding SECRET and a loopback URL that records calls."""

    secret: Path
    url: str


def doc(doctype: str = "", extra: str = "", name: str = "Hostile", inside: str = "", text: str = "") -> str:
    """The base diagram with the parts a row replaces."""
    return BASE.format(doctype=doctype, extra=extra, name=name, inside=inside, text=text)


def _laughs(levels: int) -> str:
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, levels))
    return f'\n<!DOCTYPE bpmn:definitions [<!ENTITY l0 "lol">{entities}]>'


def _deep(depth: int) -> str:
    return "<bpmn:extensionElements>" + "<x>" * depth + "</x>" * depth + "</bpmn:extensionElements>"


REFUSED_DOCTYPE = "a DOCTYPE is not allowed"
# (row id, the file's bytes for a target, a fragment of the refusal or None when it deploys harmlessly)
ROWS: list[tuple[str, Callable[[Target], bytes], str | None]] = [
    (
        "xxe-file-in-text",
        lambda t: doc(f'\n<!DOCTYPE d [<!ENTITY x SYSTEM "file://{t.secret}">]>', text="&x;").encode(),
        REFUSED_DOCTYPE,
    ),
    (
        "xxe-file-in-attribute",
        lambda t: doc(f'\n<!DOCTYPE d [<!ENTITY x SYSTEM "file://{t.secret}">]>', name="&x;").encode(),
        "external entity",
    ),
    (
        "xxe-http",
        lambda t: doc(f'\n<!DOCTYPE d [<!ENTITY x SYSTEM "{t.url}/entity">]>', text="&x;").encode(),
        REFUSED_DOCTYPE,
    ),
    (
        "xxe-parameter-entity",
        lambda t: doc(f'\n<!DOCTYPE d [<!ENTITY % p SYSTEM "{t.url}/p.dtd"> %p;]>').encode(),
        REFUSED_DOCTYPE,
    ),
    (
        "external-dtd",
        lambda t: doc(f'\n<!DOCTYPE bpmn:definitions SYSTEM "{t.url}/bpmn.dtd">').encode(),
        REFUSED_DOCTYPE,
    ),
    (
        "external-dtd-file",
        lambda t: doc(f'\n<!DOCTYPE bpmn:definitions SYSTEM "file://{t.secret}">').encode(),
        REFUSED_DOCTYPE,
    ),
    (
        "internal-entity-in-attribute",
        lambda t: doc('\n<!DOCTYPE d [<!ENTITY n "Named">]>', name="&n;").encode(),
        REFUSED_DOCTYPE,
    ),
    # libxml2 already stops these two at its entity amplification limit, even unexpanded.
    ("billion-laughs", lambda t: doc(_laughs(10), text="&l9;").encode(), "XML is not well formed"),
    (
        "quadratic-blowup",
        lambda t: doc(f'\n<!DOCTYPE d [<!ENTITY a "{"a" * 50_000}">]>', text="&a;" * 50_000).encode(),
        "XML is not well formed",
    ),
    ("deep-nesting", lambda t: doc(inside=_deep(100_000)).encode(), "XML is not well formed"),
    ("huge-file", lambda t: doc(text="x" * (MAX_FILE_BYTES + 1)).encode(), "larger than 5 MB"),
    (
        "utf8-declared-latin1-bytes",
        lambda t: doc(name="Trường é").encode("utf-8").replace("é".encode(), b"\xe9"),
        "is not valid UTF-8",
    ),
    ("utf16-without-declaration", lambda t: doc().split("?>", 1)[1].lstrip().encode("utf-16-le"), "looks like UTF-16"),
    ("utf16-bytes-declared-utf8", lambda t: doc().encode("utf-16"), "its XML declaration says 'UTF-8'"),
    (
        "unknown-encoding",
        lambda t: doc().replace('encoding="UTF-8"', 'encoding="x-evil"').encode(),
        "unknown encoding 'x-evil'",
    ),
    ("garbage-bytes", lambda t: bytes(range(256)) * 4, "is not valid UTF-8"),
    ("nul-bytes", lambda t: doc(name="a\x00b").encode(), "XML is not well formed"),
    ("xinclude-file", lambda t: doc(text=f'<xi:include href="file://{t.secret}" parse="text"/>').encode(), None),
    ("xinclude-http", lambda t: doc(extra=f'<xi:include href="{t.url}/include" parse="xml"/>').encode(), None),
    (
        "processing-instructions",
        lambda t: doc(
            extra='<?xml-stylesheet href="http://x/y.xsl"?>', inside="<?evil rm -rf /?>", text="<?php echo 1; ?>"
        ).encode(),
        None,
    ),
]


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with the secret, and records that it was asked."""

    calls: list[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.calls.append(self.path)
        body = SECRET.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet server
        pass


@pytest.fixture
def target(tmp_path: Path) -> Iterator[tuple[Target, list[str]]]:
    """A secret file and a loopback HTTP server; yields them with the list of paths it was asked for."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    calls: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Recorder,), {"calls": calls}))
    thread = threading.Thread(target=server.serve_forever, name="xxe-recorder", daemon=True)
    thread.start()
    try:
        yield Target(secret, f"http://127.0.0.1:{server.server_address[1]}"), calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _through_runner(runner: Runner, name: str, data: bytes) -> tuple[bool, str]:
    """(deployed, every message) of a deployment through the runner's API."""
    try:
        deployed = runner.deploy({name: data})
    except DeploymentInvalid as exc:
        assert exc.problems and all(p.file == name for p in exc.problems), exc.problems
        return False, str(exc)
    return True, repr(deployed)


def _multipart(field: str, name: str, data: bytes, **fields: str) -> dict[str, Any]:
    """A multipart body built in memory (the test client would spool a large one to a file it never closes)."""
    boundary, body = encode_multipart({**fields, field: FileStorage(io.BytesIO(data), name)})
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def _through_admin_page(flask_app: Flask, name: str, data: bytes) -> tuple[int, str]:
    client = flask_app.test_client()
    assert client.login("admin1").status_code == 302
    response = client.post(
        "/admin/deploy", csrf=False, **_multipart("files", name, data, csrf_token=client.csrf_token())
    )
    return response.status_code, response.get_data(as_text=True)


def _through_api(flask_app: Flask, runner: Runner, name: str, data: bytes) -> tuple[int, str]:
    token = users.issue_token(runner, "admin1", label="hostile")
    response = flask_app.test_client().post(
        "/api/deployments", csrf=False, headers={"Authorization": f"Bearer {token}"}, **_multipart("file", name, data)
    )
    return response.status_code, response.get_data(as_text=True)


@pytest.mark.parametrize("row_id,make,refusal", ROWS, ids=[row[0] for row in ROWS])
def test_hostile_xml_is_refused_or_harmless_on_every_channel(
    app: Flask,
    runner: Runner,
    staff,
    target,
    row_id: str,
    make: Callable[[Target], bytes],
    refusal: str | None,
) -> None:
    where, calls = target
    data, name = make(where), f"{row_id}.bpmn"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before = row_counts(runner)
    deployed, message = _through_runner(runner, name, data)
    assert deployed == (refusal is None), message
    if refusal is not None:
        assert refusal in message and row_counts(runner) == before
    for status, body in (_through_admin_page(app, name, data), _through_api(app, runner, name, data)):
        assert status in ((200, 201) if refusal is None else (413, 422)), body[:500]
        assert status == 413 or name in body
        assert SECRET not in body
    assert SECRET not in message and calls == []
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < MAX_GROWTH_KB


def test_a_huge_file_on_disk_is_refused_before_it_is_read(runner: Runner, tmp_path: Path) -> None:
    huge = tmp_path / "huge.bpmn"
    with huge.open("wb") as fh:
        fh.truncate(64 * 1024**3)  # 64 GB, sparse: reading it would exhaust the memory
    with pytest.raises(DeploymentInvalid) as caught:
        runner.deploy([huge])
    [problem] = caught.value.problems
    assert problem.file == str(huge) and "larger than 5 MB" in problem.reason
