"""Settings, read once from the environment into one frozen object.

The only module that reads ``os.environ``: ``Settings.from_env()`` reads it once, and the
object is passed down (to ``Runner``, the web app, the CLI commands, the extensions' entry
points). Other code reads its variables from ``settings.environ``, the same frozen copy (the
CRM's own settings, the demo's and the CLI's passwords).

Data paths hang on the instance folder (``RUNNER_INSTANCE_PATH``, as Flask's
``instance_path``), never on where the code is installed: ``var`` under the working
directory by default, made absolute when the settings are read. It holds the default SQLite
database (``runner.db``), the secret key file and the demo's passwords.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from runner import instance_folder as instance
from runner.errors import Invalid
from runner.windows import SendingWindow

DEFAULT_INSTANCE_PATH = "var"  # NOTE: relative to the working directory; `make run` runs in the checkout
DATABASE_FILE = "runner.db"
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True)
class Settings:
    """Everything configurable; ``Settings.from_env()`` reads ``RUNNER_*`` variables."""

    # "" means the SQLite file runner.db in the instance folder.
    database_url: str = ""
    clock: str = "system"  # system | virtual
    timezone: str = DEFAULT_TIMEZONE
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # How long a worker's claimed batch of timers and jobs stays its own (wall-clock seconds).
    job_lease_seconds: float = 60.0
    # How many due timers (and as many jobs) a worker claims in one round trip.
    claim_batch: int = 50
    # A worker whose heartbeat is older than this is lost: any other worker releases its leases.
    worker_timeout_seconds: float = 30.0
    handler_timeout: float = 30.0
    # Seconds one expression, condition or script may run before it becomes an incident.
    script_timeout: float = 2.0
    retry_base_seconds: float = 10.0
    poll_seconds: float = 1.0
    webhook_url: str = ""
    # The daily window in which messages marked ``quiet_hours`` (the CRM's customer-facing ones)
    # go out, in the business zone (RUNNER_SENDING_WINDOW, e.g. 08:00-20:00; "off", None: any time).
    # It stays shut on the business calendar's days off (holidays, company days off, weekdays
    # without hours; ``Core.windows_in``); "off" sends at any time on any day.
    # NOTE: a process reading its own environment gets DEFAULT_SENDING_WINDOW when the variable
    # is unset (``from_env()``); settings built from an explicit mapping get none unless it says.
    sending_window: SendingWindow | None = None
    # PostgreSQL connections of one process (see "Scale out" in the README): SQLAlchemy's pool
    # size, the extra connections it may open for a burst, and seconds to wait for one.
    db_pool_size: int = 5
    db_max_overflow: int = 10
    db_pool_timeout: float = 30.0
    # Seconds any one statement may run on PostgreSQL before the server cancels it (0: no limit).
    db_statement_timeout: float = 0.0
    # False behind PgBouncer in transaction mode: psycopg then never prepares statements server-side.
    db_prepared_statements: bool = True
    # The web app: the largest request body in bytes (413 above it), and whether the
    # session cookie is only sent over HTTPS (true behind TLS; false for http://127.0.0.1).
    max_content_length: int = 16 * 1024 * 1024
    cookie_secure: bool = False
    # Logs: "text" (one readable line) or "json" (one JSON object per line, with the unit of
    # work's instance, business key, element and request id; see runner.logs).
    log_format: str = "text"
    # Who may read /metrics without an admin token: client networks (CIDRs, e.g. the
    # Prometheus host's "10.0.0.5/32"); empty means an admin's API token only.
    metrics_allow: tuple[str, ...] = ()
    # prometheus_client's multiprocess folder (PROMETHEUS_MULTIPROC_DIR, the library's own
    # variable, which it reads itself when it is imported); "" means one process's metrics.
    metrics_dir: str = ""
    # ``runner worker`` serves /metrics itself at this "host:port" (e.g. "0.0.0.0:9101"; port 0
    # picks a free one); "" (default): it does not, a web process on its host shows its counts.
    worker_metrics: str = ""
    # The instance folder keeps what belongs to this installation and never to the code:
    # the default database, the secret key file (created by ``runner db upgrade``, see
    # ``runner.instance_folder``), the demo's passwords. Made absolute on creation.
    instance_path: str = DEFAULT_INSTANCE_PATH
    # Signs session cookies, CSRF tokens and calendar feed addresses. RUNNER_SECRET_KEY wins;
    # else the key file of the instance folder. NOTE: never printed (repr=False).
    secret_key: str = field(default="", repr=False)
    # The environment the settings were read from, frozen: extensions (the CRM's settings,
    # the demo's passwords) and the CLI read their own variables here. NOTE: never printed.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # NOTE: derived once, when the settings are made: the working directory may change later.
        folder = os.path.abspath(self.instance_path)
        object.__setattr__(self, "instance_path", folder)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{Path(folder) / DATABASE_FILE}")
        if not isinstance(self.environ, MappingProxyType):
            object.__setattr__(self, "environ", MappingProxyType(dict(self.environ)))

    @property
    def tz(self) -> ZoneInfo:
        """The business time zone (naive dates in diagrams mean this zone)."""
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        """Settings from ``RUNNER_*`` environment variables (``os.environ`` when None), then explicit overrides."""
        if env is None:
            # NOTE: customers are not messaged at night unless a deployment says otherwise
            env = {"RUNNER_SENDING_WINDOW": DEFAULT_SENDING_WINDOW, **os.environ}
        env = dict(env)
        values: dict[str, Any] = {}
        for name, kind in (
            ("database_url", str),
            ("clock", str),
            ("timezone", str),
            ("worker_id", str),
            ("job_lease_seconds", float),
            ("claim_batch", int),
            ("worker_timeout_seconds", float),
            ("handler_timeout", float),
            ("script_timeout", float),
            ("retry_base_seconds", float),
            ("poll_seconds", float),
            ("webhook_url", str),
            ("sending_window", _window),
            ("db_pool_size", int),
            ("db_max_overflow", int),
            ("db_pool_timeout", float),
            ("db_statement_timeout", float),
            ("db_prepared_statements", _flag),
            ("max_content_length", int),
            ("cookie_secure", _flag),
            ("instance_path", str),
            ("secret_key", str),
            ("log_format", _log_format),
            ("metrics_allow", _networks),
            ("worker_metrics", _host_port),
        ):
            raw = env.get(f"RUNNER_{name.upper()}")
            if raw is not None and raw != "":
                try:
                    values[name] = kind(raw)
                except (Invalid, ValueError) as exc:
                    raise Invalid(f"RUNNER_{name.upper()}: {exc}") from exc
        if env.get("PROMETHEUS_MULTIPROC_DIR"):
            values["metrics_dir"] = env["PROMETHEUS_MULTIPROC_DIR"]
        if env.get("DATABASE_URL") and "database_url" not in values:
            values["database_url"] = env["DATABASE_URL"]
        settings = cls(**{**values, "environ": env, **overrides})
        if not settings.script_timeout > 0:
            raise Invalid(
                f"RUNNER_SCRIPT_TIMEOUT must be a number of seconds greater than 0, not {settings.script_timeout!r}"
            )
        if settings.metrics_dir and not os.path.isdir(settings.metrics_dir):
            raise Invalid(
                f"PROMETHEUS_MULTIPROC_DIR must name an existing folder (emptied when the processes start), "
                f"not {settings.metrics_dir!r}"
            )
        _check_pool(settings)
        if settings.claim_batch < 1:
            raise Invalid(f"RUNNER_CLAIM_BATCH must be a whole number of at least 1, not {settings.claim_batch!r}")
        if not settings.job_lease_seconds > 0 or not settings.worker_timeout_seconds > 0:
            raise Invalid("RUNNER_JOB_LEASE_SECONDS and RUNNER_WORKER_TIMEOUT_SECONDS must be seconds greater than 0")
        if not settings.secret_key:
            settings = replace(settings, secret_key=instance.read_secret_key(settings))
        if settings.clock not in ("system", "virtual"):
            raise Invalid(f"RUNNER_CLOCK must be 'system' or 'virtual', not {settings.clock!r}")
        return settings


def _check_pool(settings: Settings) -> None:
    """Pool sizes and timeouts that SQLAlchemy and PostgreSQL would refuse, named by their variable."""
    for name, value, least in (
        ("RUNNER_DB_POOL_SIZE", settings.db_pool_size, 1),
        ("RUNNER_DB_MAX_OVERFLOW", settings.db_max_overflow, 0),
        ("RUNNER_DB_POOL_TIMEOUT", settings.db_pool_timeout, 0),
        ("RUNNER_DB_STATEMENT_TIMEOUT", settings.db_statement_timeout, 0),
    ):
        if value < least:
            raise Invalid(f"{name} must be {least} or more, not {value!r}")


def _flag(raw: str) -> bool:
    """A yes/no environment value."""
    value = raw.strip().lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise Invalid(f"expected a yes/no value (true, false, 1, 0), not {raw!r}")
    return value in ("1", "true", "yes", "on")


DEFAULT_SENDING_WINDOW = "08:00-20:00"


def _window(raw: str) -> SendingWindow | None:
    """RUNNER_SENDING_WINDOW: ``08:00-20:00``, or ``off`` to send at any time."""
    return None if raw.strip().lower() in ("off", "none") else SendingWindow.parse(raw)


def _log_format(raw: str) -> str:
    """RUNNER_LOG_FORMAT: text or json."""
    value = raw.strip().lower()
    if value not in ("text", "json"):
        raise Invalid(f"expected 'text' or 'json', not {raw!r}")
    return value


def _networks(raw: str) -> tuple[str, ...]:
    """RUNNER_METRICS_ALLOW: comma-separated networks (CIDR or single addresses), normalised."""
    found = []
    for part in raw.split(","):
        if part.strip():
            try:
                found.append(str(ipaddress.ip_network(part.strip(), strict=False)))
            except ValueError as exc:
                raise Invalid(f"{part.strip()!r} is not an address or a network (CIDR): {exc}") from exc
    return tuple(found)


def _host_port(raw: str) -> str:
    """RUNNER_WORKER_METRICS: ``host:port`` (``[::1]:9101`` for IPv6), the port 0–65535."""
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise Invalid(f"expected host:port such as 127.0.0.1:9101, not {raw!r}")
    return raw.strip()
