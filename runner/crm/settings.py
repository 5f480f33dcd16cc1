"""The CRM's own settings: which transport sends Zalo and e-mail messages, and their servers.

Read from the environment the core's ``runner.settings.Settings`` was read from (its frozen
``settings.environ``; this module never reads ``os.environ`` itself), by ``easyedu(settings)``:

    RUNNER_TRANSPORTS           "zalo=zalo_oa,email=smtp"; a channel not named only records (``log``)
    RUNNER_ZALO_BASE_URL        the Zalo OA API (https://openapi.zalo.me)
    RUNNER_ZALO_ACCESS_TOKEN    the OA access token (never printed)
    RUNNER_SMTP_HOST, _PORT, _USER, _PASSWORD, _FROM, _STARTTLS
    RUNNER_TEMPLATES            the message templates' folder (processes/templates, under the working directory)
    RUNNER_IMPORT_MAX_BYTES, _MAX_ROWS, _MAX_CELL   caps of one uploaded file of leads (5 MB, 10000 rows, 1000 chars)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from runner.errors import Invalid

if TYPE_CHECKING:
    from runner.extension import Extensions
    from runner.service.runtime import Runner

NAME = "easyedu"  # the CRM extension's name among a runner's extensions


@dataclass(frozen=True)
class CrmSettings:
    """The Zalo, SMTP and template settings; ``CrmSettings.from_env(environ)`` reads ``RUNNER_*`` variables."""

    # Which transport delivers each of the CRM's outbox channels: "zalo=zalo_oa,email=smtp"; a
    # channel not named here only records (the ``log`` transport, the demo default).
    transports: str = ""
    zalo_base_url: str = "https://openapi.zalo.me"
    zalo_access_token: str = field(default="", repr=False)  # NOTE: secrets are never printed
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = ""
    smtp_starttls: bool = False
    # The Jinja2 message templates (zalo.send, email.send). NOTE: relative paths are resolved
    # against the working directory when a template is read: the runner runs from the folder
    # that holds its processes, as ``make run`` does in the checkout.
    templates: str = "processes/templates"
    # One uploaded file of leads (runner.crm.lead_imports): its bytes, data rows and characters per cell.
    import_max_bytes: int = 5_000_000
    import_max_rows: int = 10_000
    import_max_cell: int = 1_000

    def transport_for(self, channel: str) -> str:
        """The transport kind named for ``channel`` by RUNNER_TRANSPORTS (default ``log``)."""
        return _pairs(self.transports).get(channel, "log")

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> CrmSettings:
        """Settings from the ``RUNNER_*`` variables of ``env`` (the core settings' ``environ``), then overrides."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            kind = _PARSERS.get(str(item.type), str)
            raw = env.get(f"RUNNER_{item.name.upper()}")
            if raw is not None and raw != "":
                try:
                    values[item.name] = kind(raw)
                except (Invalid, ValueError) as exc:
                    raise Invalid(f"RUNNER_{item.name.upper()}: {exc}") from exc
        settings = replace(cls(), **values, **overrides)
        _pairs(settings.transports)  # says what is wrong with RUNNER_TRANSPORTS now, not at delivery
        return settings


_PARSERS: dict[str, Callable[[str], Any]] = {"int": int, "bool": lambda raw: _flag(raw)}


def of(runner: Runner) -> CrmSettings:
    """The CRM settings ``runner`` was built with (the defaults when it has no CRM extension)."""
    return among(runner.extensions)


def among(extensions: Extensions | None) -> CrmSettings:
    """The CRM extension's settings among ``extensions`` (a handler's ``ctx.extensions``), else the defaults."""
    extension = extensions.get(NAME) if extensions is not None else None
    return extension.config if extension is not None else CrmSettings()


def _flag(raw: str) -> bool:
    """A yes/no environment value."""
    value = raw.strip().lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise Invalid(f"expected a yes/no value (true, false, 1, 0), not {raw!r}")
    return value in ("1", "true", "yes", "on")


def _pairs(raw: str) -> dict[str, str]:
    """``"zalo=zalo_oa, email=smtp"`` as a dict; Invalid names a malformed item."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        channel, sep, kind = (x.strip() for x in item.partition("="))
        if not sep or not channel or not kind:
            raise Invalid(f"RUNNER_TRANSPORTS item {item!r} must look like channel=transport, e.g. zalo=zalo_oa")
        pairs[channel] = kind
    return pairs
