"""Retry timing for handler jobs and outbox deliveries: pure arithmetic."""

from __future__ import annotations

from datetime import timedelta

MAX_BACKOFF_SECONDS = 6 * 3600.0


def compute_backoff(attempt: int, base: float = 10.0, cap: float = MAX_BACKOFF_SECONDS) -> timedelta:
    """Delay before try ``attempt + 1`` after ``attempt`` failed tries: base·2^(attempt-1), capped."""
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, not {attempt}")
    return timedelta(seconds=min(cap, base * 2 ** (attempt - 1)))


def max_tries(properties: dict[str, str], default: int = 3) -> int:
    """Total tries of a service task: its ``retries`` property (at least 1), else ``default``."""
    raw = properties.get("retries")
    if raw is None or str(raw).strip() == "":
        return default
    try:
        return max(1, int(str(raw).strip()))
    except ValueError:
        return default
