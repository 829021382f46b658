"""Lost or unreachable: one person with two phones keeps every case (My requests, agents'
replies, a message naming a case), and the language Telegram says they read until they choose
one. Through the real Dispatcher (Telegram faked at the HTTP-session boundary) and, for the
agents' replies, the real HTTP app."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import DeliveryWorker
from bot.i18n import Texts
from bot.keyboards import KindCb, LangCb, MenuCb, NavCb
from tests.factories import NOW, add_order, case_row, context, open_case_for, order_json
from tests.fakes.telegram import FAST, Customer, texts_of
from tickets.cases.lifecycle import perform_action
from tickets.context import SYSTEM
from tickets.models import Customer as CustomerRow
from tickets.models import Message as MessageRow
from tickets.models import Ticket
from tickets.orders.store import upsert_order
from tickets.schemas import ActionRequest, OrderIn

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()
LANGS = ["zh-CN", "en"]


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


def add_other_phones_order(sessions: sessionmaker[Session], order_no: str = "T3003") -> None:
    """An order of the same person, bought with their other phone (no Telegram account on it)."""
    data = order_json(order_no)
    data["customer"] = {"name": "Li Lei", "phone": "13900139000"}
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=NOW)
        s.commit()


async def prove_other_phone(me: Customer, lang: str, order_no: str = "T3003") -> None:
    sent = await me.text(f"/start {order_no}")
    assert t(lang, "intake.ask_proof") in texts_of(sent)
    sent = await me.text("9000")  # the last four digits of the other phone
    assert texts_of(sent)[0] == t(lang, "intake.proof_ok", order_no=order_no)


async def complaint_on_the_order(me: Customer, lang: str) -> None:
    """The kind picker is showing: a complaint, described, confirmed."""
    await me.press(KindCb(kind="complaint"))
    sent = await me.press("r:service")
    assert texts_of(sent) == [t(lang, "intake.ask_description")]
    await me.text("the courier was rude" if lang == "en" else "快递员态度很差")
    sent = await me.press(NavCb(action="done"))
    assert texts_of(sent)[0].startswith(t(lang, "intake.preview_title"))
    await me.press(NavCb(action="confirm"))


def number_of(sessions: sessionmaker[Session], order_no: str) -> str:
    with sessions() as s:
        number = s.scalar(select(Ticket.number).where(Ticket.order.has(order_no=order_no)))
        assert number is not None
        return number


def customer_messages(sessions: sessionmaker[Session], number: str) -> list[str]:
    with sessions() as s:
        return list(
            s.scalars(
                select(MessageRow.text)
                .join(Ticket)
                .where(Ticket.number == number, MessageRow.author == "customer")
                .order_by(MessageRow.id)
            )
        )


# ---------------------------------------------------------------- two phones, one person


@pytest.mark.parametrize("lang", LANGS)
async def test_proving_an_order_of_another_phone_keeps_every_case_reachable(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    settings: Any,
    scripts: Any,
    api: Any,
    lang: str,
) -> None:
    add_order(sessions, lang=lang)  # T1001, bought with the first phone, linked to 5001
    first = open_case_for(sessions, scripts)
    add_other_phones_order(sessions)
    me = Customer(dp, bot, user_id=5001, language=lang)

    await prove_other_phone(me, lang)
    await complaint_on_the_order(me, lang)
    second = number_of(sessions, "T3003")

    # My requests: the cases of both phones.
    sent = await me.press(MenuCb(action="mine"))
    assert texts_of(sent)[0] == t(lang, "cases.header")
    listed = "\n".join(texts_of(sent)[1:])
    assert first in listed and second in listed

    # The first phone's order needs no proof again, and neither does the second's.
    # Both cases were just opened, so each order's case is named at once (a duplicate within
    # the half hour), to a customer who proves nothing again.
    for order_no, case_no in (("T1001", first), ("T3003", second)):
        sent = await me.text(f"/start {order_no}")
        assert t(lang, "intake.ask_proof") not in texts_of(sent)
        assert case_no in "\n".join(texts_of(sent))
        await me.text("/cancel")

    # An agent's reply on either case reaches the same chat.
    for number, text in ((first, "Parcel found"), (second, "Sorry about the courier")):
        r = api.post(f"/api/v1/tickets/{number}/replies", json={"text": text})
        assert r.status_code == 201
        assert r.json()["delivery"]["state"] == "queued"
        assert r.json()["delivery"]["channel"] == "telegram"
    worker = DeliveryWorker(
        bot=bot, sessions=sessions, settings=settings, config=FAST, clock=lambda: NOW
    )
    await worker.run_once()
    to_me = [m.text for m in me.session.sent() if m.chat_id == 5001]
    assert "Parcel found" in to_me and "Sorry about the courier" in to_me
    for number in (first, second):
        assert api.get(f"/api/v1/tickets/{number}").json()["customer"]["telegram_user_id"] == 5001

    # Naming the older case, in lower case with spaces, puts the message there (not on the
    # newer case free words would go to).
    spaced = first.lower().replace("-", " ")
    sent = await me.text(f"Any news on {spaced}?")
    assert texts_of(sent) == [t(lang, "cases.message_added", case_no=first)]
    assert customer_messages(sessions, first) == [f"Any news on {spaced}?"]
    sent = await me.text("and the refund?")
    assert texts_of(sent) == [t(lang, "cases.message_added", case_no=second)]
    assert customer_messages(sessions, second) == ["and the refund?"]


@pytest.mark.parametrize("lang", LANGS)
async def test_a_first_contact_proving_an_order_becomes_its_customer_and_others_are_refused(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    """Nothing on a first contact's own row: it is merged into the order's customer, as
    before. Once an account reaches a customer, another account proving the same phone is
    refused."""
    add_order(sessions, lang=lang)
    add_other_phones_order(sessions)
    newcomer = Customer(dp, bot, user_id=6006, language=lang, first_update=500)
    await prove_other_phone(newcomer, lang)
    with sessions() as s:
        owner = s.scalar(select(CustomerRow).where(CustomerRow.phone == "13900139000"))
        assert owner is not None and owner.telegram_user_id == 6006
        assert owner.linked_to_id is None

    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.text("/start T3003")
    sent = await me.text("9000")
    assert texts_of(sent)[0] == t(lang, "intake.linked_elsewhere")


@pytest.mark.parametrize("lang", LANGS)
async def test_a_case_number_of_someone_else_or_of_nobody_gets_the_same_answer(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    theirs = open_case_for(sessions, scripts)
    stranger = Customer(dp, bot, user_id=7007, language=lang, first_update=100)
    await stranger.press(MenuCb(action="human"))
    await stranger.text("my own question" if lang == "en" else "我自己的问题")

    nobodys = theirs[:-4] + "9999"
    for number in (theirs, nobodys):
        sent = await stranger.text(f"what about {number}?")
        assert texts_of(sent) == [t(lang, "cases.named_unknown", case_no=number)]
    assert customer_messages(sessions, theirs) == []

    # Their own finished case: told it is finished, nothing written where nobody reads it.
    mine = number_of_latest(sessions)
    with sessions() as s:
        for action in ("resolve", "close"):
            perform_action(
                session=s,
                number=mine,
                request=ActionRequest(action=action, reason="answered"),
                actor=SYSTEM,
                ctx=context(scripts),
            )
        s.commit()
    sent = await stranger.text(f"{mine} again")
    assert texts_of(sent) == [
        t(lang, "cases.named_finished", case_no=mine, status=t(lang, "status.closed"))
    ]
    assert customer_messages(sessions, mine) == []


def number_of_latest(sessions: sessionmaker[Session]) -> str:
    with sessions() as s:
        number = s.scalar(select(Ticket.number).order_by(Ticket.id.desc()).limit(1))
        assert number is not None
        return number


# ---------------------------------------------------------------- language


@pytest.mark.parametrize(("telegram", "other"), [("en", "zh-CN"), ("zh-CN", "en")])
async def test_telegrams_language_until_the_customer_chooses_one(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    settings: Any,
    telegram: str,
    other: str,
) -> None:
    """The shop's import links the account without a language (zh-CN by default), or with
    one of its own: the bot speaks what Telegram says the customer reads until they choose."""
    data = order_json()
    if telegram == "zh-CN":
        data["customer"]["language"] = "en"  # the shop's guess, not the customer's choice
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=NOW)
        s.commit()
    me = Customer(dp, bot, user_id=5001, language=telegram)

    sent = await me.text("/start")
    assert texts_of(sent) == [t(telegram, "menu.greeting", name="Li Lei", shop=settings.shop_name)]
    sent = await me.text("/start T1001")
    await complaint_on_the_order(me, telegram)
    assert case_row(sessions, number_of(sessions, "T1001")).language == telegram

    await me.text("/language")
    sent = await me.press(LangCb(code=other))
    assert texts_of(sent) == [t(other, "language.set")]
    # Telegram still says `telegram`: the choice stands.
    sent = await me.text("/start")
    assert texts_of(sent) == [t(other, "menu.greeting", name="Li Lei", shop=settings.shop_name)]


@pytest.mark.parametrize("lang", LANGS)
async def test_a_language_chosen_follows_to_the_other_phones_customer(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    open_case_for(sessions, scripts)
    add_other_phones_order(sessions)
    me = Customer(dp, bot, user_id=5001, language=lang)
    await prove_other_phone(me, lang)
    other = "en" if lang == "zh-CN" else "zh-CN"
    await me.text("/language")
    await me.press(LangCb(code=other))
    with sessions() as s:
        rows = list(s.scalars(select(CustomerRow).order_by(CustomerRow.id)))
        assert [(r.phone, r.language, r.language_chosen) for r in rows] == [
            ("13800138000", other, True),
            ("13900139000", other, True),
        ]
