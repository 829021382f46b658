"""What a message tells the customer to do works (issue 14): the approval notice's buttons and
typed words, a closed order's "tell us here", a refused request asked again, "talk to a person"
as a conversation, and no raw code in anything a customer reads. Through the real Dispatcher
and delivery worker with Telegram faked at the HTTP-session boundary, in both languages."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import ItemCb, KindCb, MenuCb, NavCb, OrderCb, ReasonCb
from tests.factories import UTC_ZONE, add_order, case_row, context, open_case_for
from tests.fakes.telegram import Customer, texts_of
from tickets.cases.lifecycle import perform_action
from tickets.context import SYSTEM, Actor
from tickets.exceptions import Conflict
from tickets.models import Ticket
from tickets.schemas import ActionRequest

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()
LANGS = ["zh-CN", "en"]


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


def act(
    sessions: sessionmaker[Session],
    scripts: Any,
    number: str,
    actor: Actor = SYSTEM,
    **request: Any,
) -> None:
    with sessions() as s:
        perform_action(
            session=s,
            number=number,
            request=ActionRequest(**request),
            actor=actor,
            ctx=context(scripts, tz=UTC_ZONE),
        )
        s.commit()


def labels(sent: list[Any]) -> list[str]:
    """The labels of every inline button sent."""
    return [
        b.text
        for m in sent
        if isinstance(m, SendMessage) and isinstance(m.reply_markup, InlineKeyboardMarkup)
        for row in m.reply_markup.inline_keyboard
        for b in row
    ]


def cases(sessions: sessionmaker[Session]) -> list[Ticket]:
    with sessions() as s:
        rows = list(s.scalars(select(Ticket).order_by(Ticket.id)))
        for row in rows:
            s.expunge(row)
        return rows


# ---------------------------------------------------------------- a refused request, asked again


@pytest.mark.parametrize("lang", LANGS)
async def test_a_refused_request_frees_its_items_for_the_request_its_notice_invites(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    refused = open_case_for(sessions, scripts)  # one pair of socks, size or fit
    act(sessions, scripts, refused, action="refuse", reason="the tags were removed")
    assert case_row(sessions, refused).status == "refused"

    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.press(MenuCb(action="new"))
    await me.press(OrderCb(index=0))
    sent = await me.press(KindCb(kind="return_refund"))
    # Both pairs are free again: the refusal let go of the one it named.
    assert t(lang, "intake.item_button", title="袜子", qty=0, max=2) in labels(sent)
    assert t(lang, "intake.item_none_left", title="袜子") not in labels(sent)
    await me.press(ItemCb(index=1, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="size_fit"))
    await me.press(NavCb(action="skip"))
    await me.press(NavCb(action="done"))
    sent = await me.press(NavCb(action="confirm"))
    assert t(lang, "intake.duplicate", order_no="T1001", case_no=refused) not in texts_of(sent)

    old, new = cases(sessions)
    assert (old.number, old.status) == (refused, "refused")
    assert (new.kind, new.status) == ("return_refund", "submitted")
    with sessions() as s:
        again = s.get(Ticket, new.id)
        before = s.get(Ticket, old.id)
        assert again is not None and before is not None
        # The same pair the refused case named (the lowest free unit).
        assert [u.unit_id for u in again.units] == [u.unit_id for u in before.units]
    # The refused case cannot take the pair back while the new request holds it.
    with pytest.raises(Conflict, match=new.number):
        act(sessions, scripts, refused, action="escalate", reason="the customer disagrees")
    assert case_row(sessions, refused).status == "refused"
