"""The bot's own words: UI strings per language, read from bot/texts/<language>.toml.

Texts live in files so a shop can read and correct them without reading code. Every language
must have the same keys with the same placeholders: a missing translation is refused when the
bot starts, never discovered by a customer.
"""

from __future__ import annotations

import html
import string
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tickets.bundled import bundled

LANGUAGES = ("zh-CN", "en")
TEXTS_DIR = bundled("bot", "texts")


class Html(str):
    """A value that is already safe Telegram HTML (not escaped again when filled in)."""

    __slots__ = ()


def _flatten(prefix: str, table: Mapping[str, Any], out: dict[str, str]) -> None:
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            _flatten(name, value, out)
        elif isinstance(value, str):
            out[name] = value
        else:
            raise ValueError(f"{name}: a text must be a string, not {type(value).__name__}")


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


class Texts:
    """Look up and fill a text: `texts.get("en", "intake.ask_order")`."""

    def __init__(self, tables: Mapping[str, Mapping[str, str]]) -> None:
        self._tables = {lang: dict(table) for lang, table in tables.items()}
        self._check()

    @classmethod
    def load(cls, directory: Path = TEXTS_DIR) -> Texts:
        """Read every language's file; raises ValueError naming what does not match."""
        tables: dict[str, dict[str, str]] = {}
        for lang in LANGUAGES:
            path = directory / f"{lang}.toml"
            flat: dict[str, str] = {}
            _flatten("", tomllib.loads(path.read_text(encoding="utf-8")), flat)
            tables[lang] = flat
        return cls(tables)

    def _check(self) -> None:
        problems: list[str] = []
        reference = self._tables[LANGUAGES[-1]]
        for lang, table in self._tables.items():
            for key in sorted(set(reference) ^ set(table)):
                problems.append(f"{lang}: key {key} is in one language only")
            for key in set(reference) & set(table):
                if _placeholders(reference[key]) != _placeholders(table[key]):
                    problems.append(f"{lang}: {key} has other placeholders than {LANGUAGES[-1]}")
        if problems:
            raise ValueError("bot texts do not match: " + "; ".join(problems))

    def has(self, key: str) -> bool:
        """Whether a text key exists."""
        return key in self._tables[LANGUAGES[0]]

    def get(self, language: str, key: str, **values: Any) -> str:
        """The text in `language` (English when the language is unknown), values HTML-escaped
        unless they are `Html`."""
        table = self._tables.get(language) or self._tables["en"]
        template = table[key]
        safe = {k: v if isinstance(v, Html) else html.escape(str(v)) for k, v in values.items()}
        return template.format_map(safe)

    def plain(self, language: str, key: str, **values: Any) -> str:
        """The text filled in without escaping, for places Telegram shows as plain text (a
        button's notice); the text itself must hold no HTML."""
        table = self._tables.get(language) or self._tables["en"]
        return table[key].format_map({k: str(v) for k, v in values.items()})
