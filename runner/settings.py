"""Settings, read once from the environment into one frozen object."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo

from runner.errors import Invalid

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Everything configurable; ``Settings.from_env()`` reads ``RUNNER_*`` variables."""

    database_url: str = f"sqlite:///{ROOT / 'var' / 'runner.db'}"
    clock: str = "system"  # system | virtual
    timezone: str = "Asia/Ho_Chi_Minh"
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    job_lease_seconds: float = 60.0
    handler_timeout: float = 30.0
    retry_base_seconds: float = 10.0
    poll_seconds: float = 1.0
    webhook_url: str = ""

    @property
    def tz(self) -> ZoneInfo:
        """The business time zone (naive dates in diagrams mean this zone)."""
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        """Settings from ``RUNNER_*`` environment variables, then explicit overrides."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for name, kind in (("database_url", str), ("clock", str), ("timezone", str), ("worker_id", str),
                           ("job_lease_seconds", float), ("handler_timeout", float),
                           ("retry_base_seconds", float), ("poll_seconds", float), ("webhook_url", str)):
            raw = env.get(f"RUNNER_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = kind(raw)
        if env.get("DATABASE_URL") and "database_url" not in values:
            values["database_url"] = env["DATABASE_URL"]
        settings = replace(cls(), **values, **overrides)
        if settings.clock not in ("system", "virtual"):
            raise Invalid(f"RUNNER_CLOCK must be 'system' or 'virtual', not {settings.clock!r}")
        return settings
