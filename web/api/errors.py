"""The API's one place that turns runner errors into JSON answers (``{"error", "detail"}``, maybe ``errors``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from runner.errors import (
    Conflict,
    DeploymentInvalid,
    Forbidden,
    FormInvalid,
    Invalid,
    NotCorrelated,
    NotFound,
    Problem,
    RunnerError,
    StepFailed,
)

Answer = tuple[Response, int]


def error(status: int, name: str, detail: str, **extra: Any) -> Answer:
    """A JSON error answer with its status (``name``: the HTTP reason phrase)."""
    return jsonify(error=name, detail=detail, **extra), status


def _runner_error(exc: RunnerError) -> Answer:
    """Forbidden 403, NotFound/NotCorrelated 404, Conflict 409, FormInvalid/Invalid/StepFailed 422, else 400."""
    if isinstance(exc, FormInvalid):
        return error(422, "Unprocessable Entity", str(exc), errors=exc.errors)
    if isinstance(exc, DeploymentInvalid):
        return error(
            422,
            "Unprocessable Entity",
            f"{len(exc.problems)} problem(s); nothing was deployed",
            errors=[problem(p) for p in exc.problems],
        )
    for kinds, status, name in (
        ((Forbidden,), 403, "Forbidden"),
        ((NotFound, NotCorrelated), 404, "Not Found"),
        ((Conflict,), 409, "Conflict"),
        ((Invalid, StepFailed), 422, "Unprocessable Entity"),
    ):
        if isinstance(exc, kinds):
            return error(status, name, str(exc))
    return error(400, "Bad Request", str(exc))


def problem(found: Problem) -> dict[str, str]:
    """A deployment problem or warning as JSON, naming its file and element."""
    return {"file": found.file, "element": found.element_id, "name": found.name, "message": found.reason}


class BadRequest(Invalid):
    """Raised when the request itself is malformed (not JSON, wrong types)."""


def _bad_request(exc: BadRequest) -> Answer:
    return error(400, "Bad Request", str(exc))


def json_errors(blueprint: Blueprint) -> None:
    """Answer the runner's errors raised in ``blueprint``'s views as this API does (an extension's API uses it)."""
    blueprint.register_error_handler(RunnerError, _runner_error)
    blueprint.register_error_handler(BadRequest, _bad_request)
