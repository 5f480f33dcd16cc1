"""The runner's one error tree.

    RunnerError
    ├── NotFound               an instance, task, version or process key does not exist
    │   └── Missing            a user, customer, staff member, booking, order or list entry does not exist
    ├── Conflict               a concurrent writer changed the same row first
    │   ├── SlotTaken          (runner.crm.models) a staff member already has an appointment then
    │   ├── DuplicateCustomer  (runner.crm.intake) a lead's phone or e-mail already belongs to a customer
    │   ├── EditConflict       (runner.crm.editing) a customer changed since the version an edit was made on
    │   ├── InProgress         (runner.crm.capture) a form's first post with this client key is still being made
    │   └── RunActive          (runner.service.clockruns) the clock is asked to move while a run moves it
    ├── Invalid                input was rejected before anything was stored
    │   ├── Forbidden          the user may not do this (a role or object permission)
    │   ├── BadLogin           a username/password pair is wrong
    │   ├── BadValue           a field's value has the wrong type or is not allowed
    │   ├── DeploymentInvalid  a BPMN/DMN file failed validation (carries every problem)
    │   ├── EncodingInvalid    (runner.model.encoding) a file's bytes and XML declaration name no usable encoding
    │   ├── ExpressionInvalid  an expression or script breaks the restricted rules
    │   │   └── BudgetExceeded an evaluation ran over its time or size budget
    │   ├── TimerInvalid       a timer value is not ISO 8601 or does not evaluate to one
    │   ├── FormInvalid        submitted form values are wrong (carries per-field messages)
    │   ├── _Bad               (runner.model.forms) one form value is wrong; FormInvalid collects them
    │   ├── ValueRefused       (runner.model.formvalues) typed text is not a date-time or an amount
    │   ├── FileRejected       (runner.crm.import_files) a lead file cannot be imported (names file, row, column)
    │   ├── KeyReused          (runner.crm.capture) a form's client key comes again with another body
    │   ├── TextInvalid        (runner.model.inputs) a text the database or the pages cannot hold
    │   ├── SecretKeyMissing   (runner.instance_folder) the web app has no secret key to sign sessions
    │   ├── DiagramError       (web.svg.di) a BPMN file has no diagram that can be drawn
    │   │   └── _Skip          (web.svg.di) one diagram element cannot be drawn; the rest still is
    │   └── BadRequest         (web.api.errors) the request itself is malformed (not JSON, wrong types)
    ├── LoginThrottled         an account or address failed to log in too often and must wait
    ├── KeyRefused             (runner.crm.lead_keys) a website form's lead key is missing, unknown or revoked
    ├── RateLimited            (runner.crm.lead_keys) a lead key has used up this minute's posts
    ├── NotCorrelated          a message found no waiting instance and no start event
    ├── StepFailed             an engine step failed at an element (script, condition, timer)
    ├── HandlerFailed          a service-task handler raised, hung or returned bad data
    ├── Retry                  a handler met a passing problem; its job is tried again later
    ├── HandlerContextClosed   a handler used its context or session after its timeout
    ├── RegistryError          a handler registry was built wrong (a topic taken twice)
    ├── DeliveryError          a transport did not deliver an outbox message
    └── Stop                   (runner.crm.demo.story) a demo story reached the step its plan leaves open

The classes shown with a module live there, next to what raises them; every other class
is defined here. Outside the tree on purpose: ``runner.sandbox.budget``'s ``Breach`` (over
budget; reported as BudgetExceeded) and ``Interrupted`` (the worker is stopping) are
BaseExceptions, so that a script's ``except Exception`` cannot swallow them. Library
errors (SpiffWorkflow, SQLAlchemy, lxml) are translated at the module that calls the
library, with ``raise X(...) from exc``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta


class RunnerError(Exception):
    """Raised for every failure the runner reports to its callers."""


class NotFound(RunnerError):
    """Raised when an instance, task, version or process key does not exist."""


class Conflict(RunnerError):
    """Raised when another unit of work changed the same instance or task first."""


class Invalid(RunnerError):
    """Raised when input is rejected before anything is stored."""


class Forbidden(Invalid):
    """Raised when a user may not do what they asked (a role or object-level permission)."""


class Missing(NotFound):
    """Raised when a user, customer, staff member, booking, order or list entry does not exist."""


class BadValue(Invalid):
    """Raised when a field's value has the wrong type or is not allowed; the message names the field."""


class BadLogin(Invalid):
    """Raised when a username/password pair is wrong (deliberately not saying which)."""


class LoginThrottled(RunnerError):
    """Raised when an account or address had too many failed logins in a row and must wait ``retry_after``."""

    def __init__(self, username: str, retry_after: timedelta):
        self.username, self.retry_after = username, retry_after
        super().__init__(
            f"account {username!r} is slowed down after failed logins; "
            f"try again in {math.ceil(retry_after.total_seconds())} s"
        )


@dataclass(frozen=True)
class Problem:
    """One validation finding, tied to a BPMN element."""

    element_id: str
    name: str
    reason: str
    file: str = ""

    def __str__(self) -> str:
        parts = [self.file] if self.file else []
        if self.element_id:
            parts.append(self.element_id + (f" ({self.name})" if self.name else ""))
        return ": ".join([*parts, self.reason])


class DeploymentInvalid(Invalid):
    """Raised when a deployment has problems; nothing of it is stored."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        if len(self.problems) == 1:  # one line, as a terminal or a log shows it best
            super().__init__(f"deployment rejected: {self.problems[0]}")
            return
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"deployment rejected, {len(self.problems)} problem(s):\n{lines}")


class ExpressionInvalid(Invalid):
    """Raised when an expression or script breaks the restricted rules or does not compile."""


class BudgetExceeded(ExpressionInvalid):
    """Raised when an expression or script runs over its time or size budget; ``budget`` says which."""

    def __init__(self, message: str, budget: str = ""):
        self.budget = budget
        super().__init__(message)


class TimerInvalid(Invalid):
    """Raised when a timer value is not an ISO 8601 date, duration or cycle."""


class FormInvalid(Invalid):
    """Raised when submitted form values are wrong; ``errors`` maps field id to message."""

    codes: dict[str, str]  # field id -> the rule it broke, when the form checker set it

    def __init__(self, errors: dict[str, str], task: str = ""):
        self.errors = dict(errors)
        detail = "; ".join(f"{k}: {v}" for k, v in self.errors.items())
        super().__init__(f"form of task {task!r} rejected: {detail}" if task else detail)


class NotCorrelated(RunnerError):
    """Raised when a message matches no waiting instance and no message start event."""


class HandlerFailed(RunnerError):
    """Raised when a service-task handler raised, timed out or returned non-JSON data."""


class Retry(RunnerError):
    """Raised by a handler when a passing problem should be tried again later."""


class HandlerContextClosed(RunnerError):
    """Raised when a handler uses its context or its session after its timeout."""


class RegistryError(RunnerError):
    """Raised when a handler registry is built wrong: a topic taken twice, an entry point that is no callable."""


class DeliveryError(RunnerError):
    """Raised by a transport when a message was not delivered; ``transient`` failures are tried again later.

    ``uncertain``: the message may have arrived (no answer after it was sent); it is
    not tried again by itself but becomes ``unknown`` for an admin to decide.
    """

    def __init__(self, message: str, transient: bool, *, uncertain: bool = False):
        super().__init__(message)
        self.transient = transient and not uncertain
        self.uncertain = uncertain


class StepFailed(RunnerError):
    """Raised when an engine step fails at an element (a script, condition or timer value)."""

    def __init__(self, message: str, element_id: str = "", element_name: str = ""):
        self.element_id = element_id
        self.element_name = element_name
        where = f"{element_id} ({element_name})" if element_name else element_id
        super().__init__(f"{where}: {message}" if where else message)


def caused_by(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """The first exception of ``kind`` in ``exc``'s chain of causes and contexts, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
