"""What the notice of a failed inspection tells the customer to reply works (issue 14): its
buttons and its typed words ("Refund" / 「退款」, "Return" / 「寄回」) take the choice it offers,
through the core's lifecycle (refund_anyway: the refund less the shipping both ways, finance
refunds it; send_back: logistics ships the item back). Through the real Dispatcher and delivery
worker with Telegram faked at the HTTP-session boundary, in both languages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import SendMessage
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import CaseCb
from tests.factories import UTC_ZONE, act_on, add_order, case_row, context, open_case_for
from tests.fakes.telegram import Customer, FakeSession, buttons_of, texts_of
from tickets.cases.conversation import add_reply
from tickets.context import SYSTEM
from tickets.messages.scripts import Money, format_money
from tickets.models import Event, Message, OutboxMessage, Refund, Ticket
from tickets.schemas import ReplyCreate

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


def agent_replies(
    sessions: sessionmaker[Session],
    scripts: Any,
    number: str,
    text: str | None = None,
    script: str | None = None,
    **variables: Any,
) -> None:
    """An agent (the system here) answers case `number` with `text` or a reply script."""
    with sessions() as s:
        add_reply(
            session=s,
            number=number,
            reply=ReplyCreate(text=text, script=script, variables=variables),
            actor=SYSTEM,
            ctx=context(scripts, tz=UTC_ZONE),
        )
        s.commit()


def parcel_stuck(sessions: sessionmaker[Session], scripts: Any) -> str:
    """A case on T1001 an agent answered with delay_parcel_stuck ("reply 1 or 2")."""
    number = open_case_for(sessions, scripts)
    stuck: dict[str, Any] = {**STUCK, "last_scan_at": datetime.fromisoformat(STUCK["last_scan_at"])}
    agent_replies(sessions, scripts, number, script="delay_parcel_stuck", **stuck)
    return number


def messages_of(sessions: sessionmaker[Session], number: str) -> list[tuple[str, str]]:

    with sessions() as s:
        rows = s.scalars(
            select(Message).join(Ticket).where(Ticket.number == number).order_by(Message.id)
        )
        return [(m.author, m.text) for m in rows]


# What delay_parcel_stuck offers, as it says it back (templates/scripts/delay_parcel_stuck.*).
EXTEND = {"en": "Extend the receipt period", "zh-CN": "延长收货时间"}
STUCK = {
    "carrier": "ZTO",
    "tracking_no": "ZT7730012845561",
    "order_no": "T1001",
    "customer_name": "Li",
    "last_scan_at": "2026-11-20T18:42:00+08:00",
}


@LANGS
async def test_a_number_an_agent_s_script_asks_for_is_taken_as_that_choice(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    # "Reply 1 or 2": before, a typed "2" was one more line on the case and the customer heard
    # only "Added to your case"; a "1" could even rate a finished case one star.
    add_order(sessions, lang=lang)
    number = parcel_stuck(sessions, scripts)
    await delivered(dp, bot)
    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.text(" 2 ")
    assert texts_of(sent) == [t(lang, "cases.script_answered", case_no=number, choice=EXTEND[lang])]
    # The agent sees the customer's answer right under the script, and the case is theirs.
    assert messages_of(sessions, number)[-1] == ("customer", " 2 ")

    # Words that are none of the choices are a message as before.
    sent = await me.text("when will it arrive?")
    assert texts_of(sent) == [t(lang, "cases.message_added", case_no=number)]


@LANGS
async def test_only_the_last_message_s_question_counts(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = parcel_stuck(sessions, scripts)
    # A later plain reply: the "1 or 2" question is behind it.
    agent_replies(sessions, scripts, number, text="The parcel was found, it moves again.")
    await delivered(dp, bot)
    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.text("2")
    assert texts_of(sent) == [t(lang, "cases.message_added", case_no=number)]


# What refusal_not_resalable tells the customer to reply to keep the item.
KEEP = {"en": "Keep", "zh-CN": "保留"}


@LANGS
async def test_keep_typed_after_a_not_resalable_refusal_sends_the_item_back(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = failed_inspection(sessions, scripts, "damaged")
    agent_replies(
        sessions,
        scripts,
        number,
        script="refusal_not_resalable",
        customer_name="Li",
        case_no=number,
        finding="the tags were removed",
        shipping_both_ways=Money(1600, "CNY"),
    )
    sent = await delivered(dp, bot)
    assert KEEP[lang] in sent[-1].text
    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.text(KEEP[lang])
    assert texts_of(sent)[0] == t(lang, "cases.send_back_taken", case_no=number)
    assert events(sessions, number, "send_back.requested") == 1
