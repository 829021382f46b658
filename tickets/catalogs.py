"""Gettext catalogs, one text system for every part: the panel, the bot, the agents' cards and
the policy's words.

English is the source language: a text in code is its English wording (the msgid), marked
`N_(...)` (or `Nn_(singular, plural)` where it is about a count) so `pybabel extract` finds it.
Each part keeps its translations in its own domain, `<dir>/<folder>/LC_MESSAGES/<domain>.po`:
the panel's in templates/panel/i18n (`panel`), the bot's in bot/texts (`bot`), the agents'
cards' in templates/agents (`agents`), the eligibility and risk rules' in templates/policy
(`policy`). The `.po` files are read with Babel (the bot's when it starts, so a translation
with wrong placeholders stops it there; the others when first needed), so a translator edits
one text file and nothing is compiled before the product runs.

A missing translation falls back to the English text, never to a blank. English has no catalog
of its own unless a shop adds one (`en/LC_MESSAGES/<domain>.po`) to reword the English texts.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

# The folder of each language's catalog; English is optional (the msgids are English).
FOLDERS: Final = {"zh-CN": "zh_CN", "en": "en"}
# What `pybabel extract` must be told besides its defaults (which already know `N_`):
# `pybabel extract -k Nn_:1,2 ...` (the Makefile's `messages` target).
KEYWORDS: Final[dict[str, Any]] = {"N_": None, "Nn_": (1, 2)}


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; it is translated where shown."""
    return message


@dataclass(frozen=True)
class Plural:
    """A text about a count: English singular and plural, and the value that is the count."""

    singular: str
    plural: str
    count: str


def Nn_(singular: str, plural: str, count: str) -> Plural:
    """Mark a text with plural forms; `count` names the value that picks the form."""
    return Plural(singular, plural, count)


@dataclass
class Catalog:
    """One language's translations: msgid -> text, and plural forms."""

    language: str
    messages: dict[str, str] = field(default_factory=dict)
    plurals: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def gettext(self, message: str) -> str:
        return self.messages.get(message) or message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        forms = self.plurals.get(singular)
        if forms and all(forms):
            # Chinese has one plural form; English (when reworded) has two.
            return forms[0] if len(forms) == 1 or n == 1 else forms[1]
        return singular if n == 1 else plural


def read_catalog(path: Path, language: str, folder: str) -> Catalog:
    """One `.po` file; fuzzy and untranslated entries are left out (English shows)."""
    # Babel's .po reader is loaded with the catalogs, not with the process.
    from babel.messages.pofile import read_po

    catalog = Catalog(language)
    with path.open("rb") as fh:
        po = read_po(fh, locale=folder)
    for message in po:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, tuple | list):
            forms = tuple(str(s) for s in message.string or ())
            catalog.plurals[str(message.id[0])] = forms
        elif message.string:
            catalog.messages[str(message.id)] = str(message.string)
    return catalog


def load_catalogs(directory: Path, domain: str) -> dict[str, Catalog]:
    """Every language's catalog of `domain`; English is the identity unless reworded."""
    catalogs = {"en": Catalog("en")}
    for language, folder in FOLDERS.items():
        path = directory / folder / "LC_MESSAGES" / f"{domain}.po"
        if language == "en" and not path.exists():
            continue
        catalogs[language] = read_catalog(path, language, folder)
    return catalogs


class LazyCatalogs(Mapping[str, Catalog]):
    """Every language's catalog, read from `directory` when the first one is asked for, once,
    whichever threads ask at the same time."""

    def __init__(self, directory: Path, domain: str) -> None:
        self._dir = directory
        self._domain = domain
        self._catalogs: dict[str, Catalog] | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> dict[str, Catalog]:
        if self._catalogs is None:
            with self._lock:
                if self._catalogs is None:
                    self._catalogs = load_catalogs(self._dir, self._domain)
        return self._catalogs

    def __getitem__(self, language: str) -> Catalog:
        return self._loaded()[language]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


def braces(template: str) -> set[str]:
    """The `{placeholders}` of a text filled with str.format."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def mismatched(catalogs: Mapping[str, Catalog], messages: Mapping[str, str | Plural]) -> list[str]:
    """Translations whose `{placeholders}` differ from their English text: filling them in
    would fail or drop a value, so the part refuses to start on them."""
    problems: list[str] = []
    for language, catalog in catalogs.items():
        for key, message in messages.items():
            if isinstance(message, Plural):
                # A form may leave the count out ("one attempt left"), never add a value.
                english = braces(message.singular) | braces(message.plural)
                forms = catalog.plurals.get(message.singular) or ()
                wrong = any(not braces(form) <= english for form in forms if form)
            else:
                text = catalog.messages.get(message)
                wrong = text is not None and braces(text) != braces(message)
            if wrong:
                problems.append(f"{language}: {key} has other placeholders than the English")
    return problems
