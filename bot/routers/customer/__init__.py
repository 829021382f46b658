"""The customer's side of the bot, in private chats: menu, language, the intake of a request,
their requests, and free messages to their open case; one module per part of the conversation.

Handlers receive the update's session (`db`), the `customer`, the service context (`svc`), the
stored files of the message (`media`) and a `reply` collector from the middleware; they answer
only through `reply`, which is sent after the transaction commits.

The intake is a state per step (states.py); each step has one `ask` (steps.py) that (re)states
it, so "back", a restart and a guide after unexpected input all say the same thing. Files the
customer sends at any step (even before saying anything) are kept and attached to the request.
"""

from __future__ import annotations

from aiogram import Router

from bot.routers.customer import (
    fallbacks,
    files,
    intake,
    menu,
    my_cases,
    pickup,
    rating,
    talk,
)
from bot.routers.customer.filters import PrivateChat

# The order aiogram tries the parts in: commands and the menu first, the fallbacks last (they
# take whatever nothing before them did).
PARTS = (menu, intake, files, my_cases, pickup, rating, talk, fallbacks)


def make_router() -> Router:
    """The customer router, for private chats only, with every handler in declaration order."""
    router = Router(name="customer")
    router.message.filter(PrivateChat())
    router.callback_query.filter(PrivateChat())
    for part in PARTS:
        part.handlers.register(router)
    return router
