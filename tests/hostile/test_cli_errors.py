"""The runner command answers hostile or absurd arguments with one clear error line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main

LOOP = Path(__file__).parent.parent / "bpmn" / "loop.bpmn"
LONG = "K" * 300

# (row id, arguments, what the one line says, exit code)
ROWS = [
    ("start_long_customer", ["start", "care_loop", "--customer", LONG], "business_key: at most 200 characters", 1),
    (
        "start_nan_data",
        ["start", "care_loop", "--customer", "KH1", "--data", '{"rounds": NaN}'],
        "start data.rounds: nan is not a finite number",
        1,
    ),
    ("clock_advance_absurd", ["clock", "advance", "99999999d"], "the clock moves forward by at most", 1),
    ("clock_advance_overflow", ["clock", "advance", "9" * 30 + "d"], "longer time span than the clock can hold", 1),
    ("retry_huge_id", ["retry", "999999999999"], "incident_id: must be a whole number from 1 to 2147483647", 1),
    (
        "users_add_long_name",
        ["users", "add", "lan", "--name", "N" * 300, "--role", "sales", "--password", "mat-khau-123"],
        "full_name: at most 200 characters",
        1,
    ),
    (
        "users_add_control_name",
        ["users", "add", "lan\x1b", "--role", "sales", "--password", "mat-khau-123"],
        "username: contains a control character",
        1,
    ),
    ("complete_long_task", ["complete", "T" * 5000], "task_id: at most 36 characters", 1),
    ("correlate_control_key", ["correlate", "lead", "--customer", "KH\r\n1"], "business_key: contains a control", 1),
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNNER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("RUNNER_CLOCK", "virtual")
    assert main(["db", "upgrade"]) == 0
    assert main(["deploy", str(LOOP)]) == 0
    return tmp_path


@pytest.mark.parametrize(("argv", "fragment", "code"), [pytest.param(*r[1:], id=r[0]) for r in ROWS])
def test_each_bad_argument_is_one_error_line(env: Path, capsys, argv: list[str], fragment: str, code: int) -> None:
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err, err
    assert "Traceback" not in err and len(err) < 600


def test_an_unexpected_error_is_one_line_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("RUNNER_DATABASE_URL", f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    assert main(["incidents"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "OperationalError" in err and "--debug for the traceback" in err, err
    with pytest.raises(Exception, match="unable to open database file"):
        main(["--debug", "incidents"])


def test_a_badly_encoded_deployment_is_an_error_not_a_traceback(env: Path, capsys) -> None:
    bad = env / "latin.bpmn"
    bad.write_bytes(LOOP.read_bytes().replace(b'encoding="UTF-8"', b'encoding="UTF-16"'))
    capsys.readouterr()
    assert main(["deploy", str(bad)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_a_bad_setting_is_one_error_line(env: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("RUNNER_MAX_CONTENT_LENGTH", "lots")
    assert main(["incidents"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RUNNER_MAX_CONTENT_LENGTH" in err, err
