"""The desk's message markup: the small HTML subset a reply script may produce, its checker,
and the length of what a reader sees.

Every channel shows a script's text with its markup: Telegram (its HTML parse mode), the web
chat (which puts the text into the page as it is) and the panel (which restores these tags
only). So the subset is the core's own rule, not a channel's: a script that steps outside it
would be refused by Telegram and would be markup injected into the web page. The subset is
Telegram's HTML minus links (b, i, u, s, code, pre, blockquote and their synonyms, no
attributes, four named entities): the narrowest any channel takes, so every channel can show
any valid text. How a channel then sends a text (a photo's caption and its limit, a long text
split) is that channel's business: Telegram's is bot/render.py.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Final

# The tags (without attributes) and the named entities a message may use.
TAGS: Final = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "blockquote"}
)
ENTITIES: Final = frozenset({"lt", "gt", "amp", "quot"})


class _Markup(HTMLParser):
    """Checks a text against the subset and collects its visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.visible: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            self.problems.append(f"tag <{tag}> is not allowed (use b, i, u, s, code, pre)")
        elif attrs:
            self.problems.append(f"tag <{tag}> must not have attributes")
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problems.append(f"self-closing tag <{tag}/> is not allowed")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"closing </{tag}> does not match an open tag")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if any(ch in data for ch in "<>&"):
            self.problems.append(f"unescaped <, > or & in {data.strip()[:40]!r}")
        self.visible.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in ENTITIES:
            self.problems.append(f"entity &{name}; is not allowed (only &lt; &gt; &amp; &quot;)")
        self.visible.append("x")

    def handle_charref(self, name: str) -> None:
        self.visible.append("x")

    def handle_comment(self, data: str) -> None:
        self.problems.append("HTML comments are not allowed")

    def handle_decl(self, decl: str) -> None:
        self.problems.append("declarations are not allowed")

    def handle_pi(self, data: str) -> None:
        self.problems.append("processing instructions are not allowed")

    def unknown_decl(self, data: str) -> None:
        self.problems.append("declarations are not allowed")


def utf16_length(text: str) -> int:
    """A text's length in UTF-16 code units (how Telegram, and JavaScript, count)."""
    return len(text.encode("utf-16-le")) // 2


def markup_length(html: str) -> tuple[int, list[str]]:
    """(the visible length in UTF-16 code units, the problems with the markup)."""
    parser = _Markup()
    parser.feed(html)
    parser.close()
    if parser.stack:
        parser.problems.append(f"unclosed tag <{parser.stack[-1]}>")
    return utf16_length("".join(parser.visible)), parser.problems


def visible_length(text: str, parse_mode: str | None) -> int:
    """What a reader sees of a message, in UTF-16 code units: its markup aside when it is
    HTML (a script's), the text as it is otherwise (an agent's typed words)."""
    return markup_length(text)[0] if parse_mode == "HTML" else utf16_length(text)
