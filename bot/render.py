"""How a reply becomes Telegram messages: Telegram's own limits on what one message carries.

The core (tickets/messages/parts.py) makes a reply of a text and its files and asks each
channel's rule how to cut it; this is Telegram's, given to the core by the composition root.
A text goes under a file as its caption only when there is one file and the text fits
Telegram's caption limit (1024 visible characters, counted in UTF-16 units after the HTML's
tags); otherwise the text goes first as a message of its own, then each file. The markup
itself (Telegram's HTML subset) is the core's rule for every channel: tickets/messages/markup.py.
"""

from __future__ import annotations

from typing import Any, Final

from tickets.messages.markup import visible_length
from tickets.messages.parts import PartsRule, Reply, separately
from tickets.models import Channel

# Telegram's longest caption under a photo, video or document.
CAPTION_LIMIT: Final = 1024


def telegram_parts(reply: Reply) -> list[dict[str, Any]]:
    """Telegram's messages for one reply: one file with a text that fits as its caption is
    one message; anything else is the text, then each file."""
    if len(reply.files) == 1 and visible_length(reply.text, reply.parse_mode) <= CAPTION_LIMIT:
        return [{"text": reply.text, "attachment": reply.files[0]}]
    return separately(reply)


# The rules the bot's channels bring to the core's context (Context.parts).
PARTS: Final[dict[str, PartsRule]] = {Channel.telegram.value: telegram_parts}
