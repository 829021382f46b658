"""What the notice of a failed inspection tells the customer to reply works (issue 14): its
buttons and its typed words ("Refund" / 「退款」, "Return" / 「寄回」) take the choice it offers,
through the core's lifecycle (refund_anyway: the refund less the shipping both ways, finance
refunds it; send_back: logistics ships the item back). Through the real Dispatcher and delivery
worker with Telegram faked at the HTTP-session boundary, in both languages."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import SendMessage
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import CaseCb
from tests.factories import act_on, add_order, case_row, open_case_for
from tests.fakes.telegram import Customer, FakeSession, buttons_of, texts_of
from tickets.messages.scripts import Money, format_money
from tickets.models import Event, OutboxMessage, Refund, Ticket

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()
LANGS = pytest.mark.parametrize("lang", ["zh-CN", "en"])
# The words the notice quotes, in each language (templates/scripts/notice_inspection_failed.*).
REFUND = {"en": "Refund", "zh-CN": "退款"}
RETURN = {"en": "Return", "zh-CN": "寄回"}


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


def failed_inspection(sessions: sessionmaker[Session], scripts: Any, outcome: str) -> str:
    """A pair of socks returned for size, back at the shop and refused on inspection."""
    number = open_case_for(sessions, scripts)
    act_on(sessions, scripts, number, action="approve")
    act_on(sessions, scripts, number, action="mark_received")
    act_on(
        sessions,
        scripts,
        number,
        action="inspect",
        results=[{"sku": "SOCKS", "quantity": 1, "outcome": outcome}],
    )
    assert case_row(sessions, number).status == "refused"
    return number


async def delivered(dp: Dispatcher, bot: Bot) -> list[SendMessage]:
    fake = bot.session
    assert isinstance(fake, FakeSession)
    before = len(fake.sent())
    await dp["delivery"].drain()
    return fake.sent()[before:]


def events(sessions: sessionmaker[Session], number: str, type_: str) -> int:
    with sessions() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(Event)
                .join(Ticket)
                .where(Ticket.number == number, Event.type == type_)
            )
            or 0
        )


@LANGS
async def test_the_inspection_failed_notice_carries_its_choices_and_refund_typed_works(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = failed_inspection(sessions, scripts, "damaged")
    sent = await delivered(dp, bot)
    notice = sent[-1:]  # the last of the case's notices: the inspection's result
    assert REFUND[lang] in notice[0].text and RETURN[lang] in notice[0].text
    assert buttons_of(notice) == [
        CaseCb(number=number, action="refund_anyway").pack(),
        CaseCb(number=number, action="send_back").pack(),
    ]

    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.text(f"{REFUND[lang]}!")
    case = case_row(sessions, number)
    # The refusal overridden at the customer's request: refund pending, with finance.
    assert (case.status, case.group) == ("refund_pending", "finance")
    assert events(sessions, number, "refusal.overridden") == 1
    shipping = format_money(Money(1600, "CNY"), lang)  # the order's ¥8.00, both ways
    assert texts_of(sent)[0] == t(
        lang, "cases.refund_anyway_taken", case_no=number, shipping=shipping
    )
    # Finance's refund counts the socks the inspection refused (less the shipping rule).
    act_on(sessions, scripts, number, action="propose_refund")
    with sessions() as s:
        refund = s.scalars(select(Refund).join(Ticket).where(Ticket.number == number)).one()
        assert 0 < refund.amount <= 4995

    # Typed again, the case has moved on: the words are only a message on it.
    sent = await me.text(REFUND[lang])
    assert texts_of(sent) == [t(lang, "cases.message_added", case_no=number)]


@LANGS
async def test_return_pressed_or_typed_asks_logistics_to_ship_the_item_back_once(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = failed_inspection(sessions, scripts, "damaged")
    await delivered(dp, bot)
    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.press(CaseCb(number=number, action="send_back"))
    assert texts_of(sent)[0] == t(lang, "cases.send_back_taken", case_no=number)
    case = case_row(sessions, number)
    assert (case.status, case.group) == ("refused", "logistics")
    sent = await me.text(f"「{RETURN[lang]}」")
    assert texts_of(sent)[0] == t(lang, "cases.send_back_taken", case_no=number)
    assert events(sessions, number, "send_back.requested") == 1
    with sessions() as s:
        cards = s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "case.send_back")
        )
        assert cards == 1


@LANGS
async def test_nothing_to_refund_is_said_when_the_parcel_came_without_the_item(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = failed_inspection(sessions, scripts, "missing")
    me = Customer(dp, bot, user_id=5001, language=lang)
    # The parcel came without the socks: nothing of theirs to refund less the shipping.
    sent = await me.press(CaseCb(number=number, action="refund_anyway"))
    assert texts_of(sent) == [
        t(lang, "cases.not_possible", case_no=number, status=t(lang, "status.refused"))
    ]
    assert case_row(sessions, number).status == "refused"


@LANGS
async def test_a_review_refusal_takes_the_words_as_a_message(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    # A request refused at review (nothing came back): "Refund" is words for a person.
    add_order(sessions, lang=lang)
    me = Customer(dp, bot, user_id=5001, language=lang)
    other = open_case_for(sessions, scripts)
    act_on(sessions, scripts, other, action="refuse", reason="the tags were removed")
    sent = await me.text(REFUND[lang])
    assert texts_of(sent) == [t(lang, "cases.message_added", case_no=other)]
    assert case_row(sessions, other).status == "refused"
