"""The panel's two interface languages: gettext catalogs and language-aware formatting.

English is the source language (the msgids); Chinese lives in
`templates/panel/i18n/zh_CN/LC_MESSAGES/panel.po` (domain `panel` of tickets/catalogs.py, the
gettext machinery the bot and the agents' cards share). The `.po` file is read with Babel when
the first page is rendered (not at start-up: a server nobody has opened the panel of keeps none
of it), so a translator edits one text file and nothing has to be compiled before the product
runs. A missing translation falls back to the English text, never to a blank.

Dates are shown in the shop's timezone and money in the case's currency, both formatted by
Babel for the agent's language.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency

from tickets import catalogs
from tickets.catalogs import N_, Catalog

__all__ = ["N_", "Catalog", "LazyCatalogs", "load_catalogs"]

LANGUAGES: Final = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"
LANGUAGE_NAMES: Final = {"zh-CN": "中文", "en": "English"}
_BABEL_LOCALE: Final = {"zh-CN": "zh_Hans_CN", "en": "en"}


def load_catalogs(i18n_dir: Path) -> dict[str, Catalog]:
    """Every language's catalog of the panel; English is the identity."""
    return catalogs.load_catalogs(i18n_dir, "panel")


class LazyCatalogs(catalogs.LazyCatalogs):
    """The panel's catalogs, read when the first page is rendered."""

    def __init__(self, i18n_dir: Path) -> None:
        super().__init__(i18n_dir, "panel")


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
