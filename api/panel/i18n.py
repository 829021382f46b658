"""The panel's two interface languages: gettext catalogs and language-aware formatting.

English is the source language (the msgids); Chinese lives in
`templates/panel/i18n/zh_CN/LC_MESSAGES/panel.po`. The `.po` file is read with Babel when the
first page is rendered (not at start-up: a server nobody has opened the panel of keeps none of
it), so a translator edits one text file and nothing has to be compiled before the product
runs. A missing translation falls back to the English text, never to a blank.

Dates are shown in the shop's timezone and money in the case's currency, both formatted by
Babel for the agent's language.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency

LANGUAGES: Final = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"
LANGUAGE_NAMES: Final = {"zh-CN": "中文", "en": "English"}
_BABEL_LOCALE: Final = {"zh-CN": "zh_Hans_CN", "en": "en"}
_PO_DIRS: Final = {"zh-CN": "zh_CN"}


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; it is translated where shown."""
    return message


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
            # Chinese has one plural form; English is the source and has no catalog.
            return forms[0] if len(forms) == 1 or n == 1 else forms[1]
        return singular if n == 1 else plural


def load_catalogs(i18n_dir: Path) -> dict[str, Catalog]:
    """Every language's catalog; English is the identity."""
    # Babel's .po reader is loaded with the catalogs, not with the server.
    from babel.messages.pofile import read_po

    catalogs = {"en": Catalog("en")}
    for language, folder in _PO_DIRS.items():
        path = i18n_dir / folder / "LC_MESSAGES" / "panel.po"
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
        catalogs[language] = catalog
    return catalogs


class LazyCatalogs(Mapping[str, Catalog]):
    """Every language's catalog, read from `i18n_dir` when the first one is asked for (by the
    first page rendered), once, whichever request threads ask at the same time."""

    def __init__(self, i18n_dir: Path) -> None:
        self._dir = i18n_dir
        self._catalogs: dict[str, Catalog] | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> dict[str, Catalog]:
        if self._catalogs is None:
            with self._lock:
                if self._catalogs is None:
                    self._catalogs = load_catalogs(self._dir)
        return self._catalogs

    def __getitem__(self, language: str) -> Catalog:
        return self._loaded()[language]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


def pick_language(value: str | None) -> str:
    """A stored or requested language, or the default when it is not one we have."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def money(amount: str | int | Decimal | None, currency: str | None, language: str) -> str:
    """'19.99' CNY -> '¥19.99' (zh-CN) or 'CN¥19.99' (en); '' when unknown."""
    if amount is None or currency is None:
        return ""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    return str(format_currency(value, currency, locale=_BABEL_LOCALE[pick_language(language)]))


def moment(value: datetime | None, language: str, tz: ZoneInfo, style: str = "short") -> str:
    """A timestamp in the shop's timezone: '2026/11/22 10:00' or '11/22/26, 10:00 AM'."""
    if value is None:
        return ""
    locale = _BABEL_LOCALE[pick_language(language)]
    if style == "compact":
        pattern = "MM-dd HH:mm"
        return str(format_datetime(value, pattern, tzinfo=tz, locale=locale))
    return str(format_datetime(value, style, tzinfo=tz, locale=locale))


def duration(seconds: float, language: str) -> str:
    """A span as an agent reads it at a glance: '3h 20m', '2d 4h', '45m' ('3小时20分' in zh)."""
    total = int(abs(seconds)) // 60
    days, rem = divmod(total, 24 * 60)
    hours, minutes = divmod(rem, 60)
    zh = pick_language(language) == "zh-CN"
    unit = {"d": "天", "h": "小时", "m": "分"} if zh else {"d": "d", "h": "h", "m": "m"}
    sep = "" if zh else " "
    if days:
        return f"{days}{unit['d']}{sep}{hours}{unit['h']}"
    if hours:
        return f"{hours}{unit['h']}{sep}{minutes}{unit['m']}"
    return f"{minutes}{unit['m']}"
