"""A reply and its parts: what the core hands a channel, and the channel's rule that cuts it
into the messages it sends (one outbox row each).

The core knows a reply as a text (with its parse mode) and the files that go with it. How
many messages that makes depends on the channel: the web chat shows a file with any text
beside it; Telegram puts a text under a file only up to its caption limit (bot/render.py).
So the rule is the channel's, given to the core in `Context.parts` by the composition root
(api/app.py, bot/middlewares.py, api/cli.py); a channel without one gets `together`.
Each part is decided when the row is written, so a row is always one message to send: a
retry never sends half of it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One reply to a customer as the core made it: the text ("" with files only), its parse
    mode ("HTML" for a script's, None for typed text) and the files, each `{kind,
    storage_key, name}`."""

    text: str
    parse_mode: str | None
    files: tuple[dict[str, Any], ...] = ()


# A channel's rule: the reply's parts, in order, each `{"text": ...}` with an `"attachment"`
# for a file (the text beside it, "" for none).
PartsRule = Callable[[Reply], list[dict[str, Any]]]


def together(reply: Reply) -> list[dict[str, Any]]:
    """The rule of a channel that shows a file with any text: a text and one file are one
    part; otherwise the text, then each file."""
    if len(reply.files) == 1:
        return [{"text": reply.text, "attachment": reply.files[0]}]
    return separately(reply)


def separately(reply: Reply) -> list[dict[str, Any]]:
    """The text (if any) on its own, then each file without a text."""
    texts = [{"text": reply.text}] if reply.text.strip() else []
    return texts + [{"text": "", "attachment": f} for f in reply.files]
