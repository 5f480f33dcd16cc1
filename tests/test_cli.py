"""The runner command, end to end on a SQLite file and the virtual clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_runner

from runner.cli import main
from runner.crm import customers as crm
from runner.registry import Registry

LOOP = Path(__file__).parent / "bpmn" / "loop.bpmn"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNNER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("RUNNER_CLOCK", "virtual")
    assert main(["db", "upgrade"]) == 0
    return tmp_path


def _out(capsys) -> str:
    return capsys.readouterr().out


def test_deploy_start_complete_advance(env: Path, capsys) -> None:
    assert main(["deploy", str(LOOP)]) == 0
    assert "care_loop: version 1 (new version" in _out(capsys)
    assert main(["deploy", str(LOOP)]) == 0
    assert "version 1 (unchanged" in _out(capsys)

    assert main(["start", "care_loop", "--customer", "KH9", "--data", '{"rounds": 0, "limit": 5}']) == 0
    instance_id = _out(capsys).strip()
    assert main(["tasks", "--group", "customer_care", "--customer", "KH9"]) == 0
    tasks = json.loads(_out(capsys))
    assert [t["element_id"] for t in tasks] == ["call"]

    assert main(["complete", tasks[0]["id"], "--data", '{"note": "xin chào"}', "--actor", "lan"]) == 0
    _out(capsys)
    assert main(["clock", "advance", "32d"]) == 0
    _out(capsys)
    assert main(["instances", instance_id]) == 0
    shown = json.loads(_out(capsys))
    assert shown["data"]["rounds"] == 1 and shown["data"]["note"] == "xin chào"
    assert main(["history", "--customer", "KH9"]) == 0
    events = [e["event"] for e in json.loads(_out(capsys))]
    assert {"instance.started", "task.completed", "timer.fired", "handler.succeeded"} <= set(events)


def test_deploy_errors_list_every_problem_and_exit_2(env: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.bpmn"
    bad.write_text(LOOP.read_text().replace("demo.echo", "no.such.topic").replace("P1M", "P1X"))
    assert main(["deploy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "no handler registered for topic 'no.such.topic'" in err
    assert "wait" in err and "P1X" in err


def test_bad_json_data_is_refused(env: Path) -> None:
    with pytest.raises(SystemExit, match="--data is not JSON"):
        main(["start", "care_loop", "--data", "{nope"])


def test_unknown_process_is_a_clear_error(env: Path, capsys) -> None:
    assert main(["start", "nope"]) == 1
    assert "process 'nope' is not deployed" in capsys.readouterr().err


def test_clock_cannot_move_on_the_system_clock(env: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("RUNNER_CLOCK", "system")
    assert main(["clock", "advance", "1d"]) == 1
    assert "RUNNER_CLOCK=virtual" in capsys.readouterr().err


def test_incidents_are_listed_and_retried(env: Path, capsys) -> None:
    broken = Path(__file__).parent / "bpmn" / "scheduler" / "nightly_broken.bpmn"
    assert main(["deploy", str(broken)]) == 0
    assert main(["clock", "advance", "25h"]) == 0
    _out(capsys)
    assert main(["incidents"]) == 0
    [incident] = json.loads(_out(capsys))
    assert incident["element_id"] == "compute" and incident["state"] == "open"
    assert main(["retry", str(incident["id"])]) == 0
    assert f"incident {incident['id']} resolved" in _out(capsys)
    assert main(["retry", str(incident["id"])]) == 1
    assert "already resolved" in capsys.readouterr().err


def test_customers_are_listed_a_page_at_a_time(env: Path, capsys) -> None:
    runner = make_runner(f"sqlite:///{env / 'cli.db'}", Registry())
    with runner.db.unit() as s:
        for n in range(5):
            crm.add_customer(s, f"KH{n}", f"Trung tâm Đức Trí {n}", now=runner.now(), phone=f"+84 90 000 000{n}")
    runner.db.engine.dispose()
    seen, after = [], []
    while True:
        assert main(["customers", "duc tri", "--limit", "2", *after]) == 0
        page = json.loads(_out(capsys))
        seen += [c["id"] for c in page["customers"]]
        if page["next"] is None:
            break
        after = ["--after", page["next"]]
    assert seen == ["KH0", "KH1", "KH2", "KH3", "KH4"]
    assert main(["customers", "0900000003"]) == 0
    assert [c["id"] for c in json.loads(_out(capsys))["customers"]] == ["KH3"]
    with pytest.raises(SystemExit):
        main(["customers", "--limit", "0"])
    assert "--limit: a whole number from 1 to 200" in capsys.readouterr().err
