"""The instance folder: what belongs to one installation and never to the code (its secret key).

``Settings.instance_path`` names the folder (``var/`` beside the default SQLite database,
or ``RUNNER_INSTANCE_PATH``). ``runner db upgrade`` (and so ``make run``) creates the key
file once; nothing ever overwrites it, since a new key signs everyone out and retires every
calendar feed address. ``RUNNER_SECRET_KEY``, when set, wins over the file.

    path = instance.create_secret_key(settings)    # once; later calls leave the file alone
    settings = Settings.from_env()                  # reads it into settings.secret_key
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

from runner.errors import Invalid


class Settings(Protocol):
    """What this module reads of ``runner.settings.Settings`` (which imports this module)."""

    @property
    def instance_path(self) -> str: ...


KEY_FILE = "secret_key"
KEY_BYTES = 32  # NOTE: 256 random bits, as hex


class SecretKeyMissing(Invalid):
    """Raised when the web app would start without a secret key to sign sessions with."""

    def __init__(self, path: Path):
        self.path = path
        super().__init__(
            f"no secret key: {path} does not exist and RUNNER_SECRET_KEY is not set. "
            "Run `runner db upgrade` (it creates the key file once) or set RUNNER_SECRET_KEY, "
            "e.g. to the output of: python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )


def secret_key_path(settings: Settings) -> Path:
    """Where the instance's secret key file is (it may not exist yet)."""
    return Path(settings.instance_path) / KEY_FILE


def read_secret_key(settings: Settings) -> str:
    """The key in the instance's key file, or "" when there is none."""
    try:
        return secret_key_path(settings).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return ""


def create_secret_key(settings: Settings) -> Path | None:
    """Create the key file with a random key, readable by its owner only; None when it exists.

    NOTE: O_EXCL makes creation atomic, so two ``db upgrade`` runs cannot both write a key,
    and an existing key is never replaced.
    """
    path = secret_key_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        os.fchmod(out.fileno(), 0o600)  # whatever the umask says
        out.write(secrets.token_hex(KEY_BYTES) + "\n")
    return path
