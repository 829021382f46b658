"""The bot's own words per language: the texts of bot/messages.py through gettext catalogs.

English is written in bot/messages.py (the msgids); Chinese in
bot/texts/zh_CN/LC_MESSAGES/bot.po, the `bot` domain of tickets/catalogs.py (the machinery the
panel and the agents' cards share). A translation whose {placeholders} differ from its English
text is refused when the bot starts, never discovered by a customer; a text with no translation
shows in English (the catalog test keeps every text translated).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.messages import MESSAGES
from tickets.bundled import bundled
from tickets.catalogs import Catalog, Plural, load_catalogs, mismatched

LANGUAGES = ("zh-CN", "en")
TEXTS_DIR = bundled("bot", "texts")
DOMAIN = "bot"


class Html(str):
    """A value that is already safe Telegram HTML (not escaped again when filled in)."""

    __slots__ = ()


class Texts:
    """Look up and fill a text: `texts.get("en", "intake.ask_order")`."""

    def __init__(
        self, catalogs: Mapping[str, Catalog], messages: Mapping[str, str | Plural] = MESSAGES
    ) -> None:
        self._catalogs = dict(catalogs)
        self._messages = dict(messages)
        problems = mismatched(self._catalogs, self._messages)
        if problems:
            raise ValueError("bot texts do not match: " + "; ".join(problems))

    @classmethod
    def load(cls, directory: Path = TEXTS_DIR) -> Texts:
        """Read every language's catalog; raises ValueError naming what does not match."""
        return cls(load_catalogs(directory, DOMAIN))

    def has(self, key: str) -> bool:
        """Whether a text key exists."""
        return key in self._messages

    def _template(self, language: str, key: str, values: Mapping[str, Any]) -> str:
        catalog = self._catalogs.get(language) or self._catalogs["en"]
        message = self._messages[key]
        if isinstance(message, Plural):
            return catalog.ngettext(message.singular, message.plural, int(values[message.count]))
        return catalog.gettext(message)

    def get(self, language: str, key: str, **values: Any) -> str:
        """The text in `language` (English when the language is unknown), values HTML-escaped
        unless they are `Html`."""
        safe = {k: v if isinstance(v, Html) else html.escape(str(v)) for k, v in values.items()}
        return self._template(language, key, values).format_map(safe)

    def plain(self, language: str, key: str, **values: Any) -> str:
        """The text filled in without escaping, for places Telegram shows as plain text (a
        button's notice); the text itself must hold no HTML."""
        template = self._template(language, key, values)
        return template.format_map({k: str(v) for k, v in values.items()})
