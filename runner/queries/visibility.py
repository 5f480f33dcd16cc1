"""Which customers a person may see, asked with a runner (one read each).

    visibility.may_see(runner, person, "KH0001")        # False answers 404 in the pages and the API
    visibility.visible(runner, person, ["KH1", "KH2"])  # the keys among them the person may see

The rules are the runner's ``policy`` (``runner.service.policy`` with its extensions' scopes); these only open
the read session for callers without one (the web app).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from runner.service import policy

if TYPE_CHECKING:
    from runner.service.runtime import Runner


def may_see(runner: Runner, person: policy.Person, business_key: str | None) -> bool:
    """True when the person may see the customer (or the instance without a customer) ``business_key``."""
    with runner.db.read() as s:
        return runner.policy.may_see(s, person, business_key)


def visible(runner: Runner, person: policy.Person, business_keys: Iterable[str | None]) -> set[str | None]:
    """The keys among ``business_keys`` that the person may see."""
    with runner.db.read() as s:
        return runner.policy.visible(s, person, business_keys)
