"""The translation catalogs: each ``messages.po`` read at start-up and compiled in memory (no .mo files)."""

from __future__ import annotations

import io
from functools import cached_property
from pathlib import Path
from typing import Any

from babel import support
from babel.messages import mofile, pofile
from flask_babel import Babel, Domain, get_locale

CATALOGS = Path(__file__).resolve().parent / "translations"


def load_catalog(locale: str, root: Path = CATALOGS) -> support.Translations | support.NullTranslations:
    """The ``messages.po`` of a locale compiled in memory; no catalog means the Vietnamese ids."""
    path = root / locale / "LC_MESSAGES" / "messages.po"
    if not path.is_file():
        return support.NullTranslations()
    with path.open("rb") as fp:
        catalog = pofile.read_po(fp, locale=locale)
    buffer = io.BytesIO()
    mofile.write_mo(buffer, catalog)
    buffer.seek(0)
    return support.Translations(fp=buffer)


class PoDomain(Domain):
    """Flask-Babel's domain, reading the .po catalogs once per locale."""

    def __init__(self) -> None:
        super().__init__()
        self._catalogs: dict[str, Any] = {}

    def get_translations(self):
        locale = get_locale()
        if locale is None:
            return support.NullTranslations()
        key = str(locale)
        if key not in self._catalogs:
            self._catalogs[key] = load_catalog(key)
        return self._catalogs[key]


class PoBabel(Babel):
    """Babel whose default domain is a ``PoDomain``."""

    @cached_property
    def domain_instance(self):
        return PoDomain()
