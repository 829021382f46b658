"""Small things a customer notices in the conversation (issue 14): /help, the name they are
greeted by, why + stops, a finished request never dropped unasked, the refund estimate's
breakdown, an album counted whole. Through the real Dispatcher and delivery worker, with
Telegram faked at the HTTP-session boundary, in both languages."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import AnswerCallbackQuery
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import ItemCb, KindCb, MenuCb, NavCb, ReasonCb
from bot.routers.customer.steps import ALBUM_WAIT
from tests.factories import NOW, add_order, customer_json, order_json
from tests.fakes.clock import Clock
from tests.fakes.telegram import (
    Customer,
    buttons_of,
    dispatcher,
    jpeg,
    texts_of,
    with_delivery,
)
from tickets.messages.scripts import Money, format_money
from tickets.models import FsmRecord, Ticket
from tickets.orders.store import get_order, upsert_order
from tickets.policy.rules import Policy
from tickets.refunds.ledger import preview_refund
from tickets.schemas import OrderIn

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()
LANGS = pytest.mark.parametrize("lang", ["en", "zh-CN"])


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


def state_of(sessions: sessionmaker[Session], user_id: int) -> str | None:
    with sessions() as s:
        rows = list(s.scalars(select(FsmRecord).where(FsmRecord.key.contains(f":{user_id}:"))))
        return rows[0].state if rows else None


def cases(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(Ticket)) or 0


def toasts(sent: list[Any]) -> list[str | None]:
    """The notices shown on pressed buttons."""
    return [r.text for r in sent if isinstance(r, AnswerCallbackQuery)]


async def delivered(me: Customer) -> list[Any]:
    """What the delivery worker sends now, no update fed (a held answer come due)."""
    before = len(me.session.requests)
    await me.dp["delivery"].drain()
    return me.session.requests[before:]


async def to_summary(me: Customer, *, kind: str = "exchange") -> list[Any]:
    """T1001 (linked) walked to the summary waiting for Submit."""
    await me.text("/start T1001")
    await me.press(KindCb(kind=kind))
    await me.press(ItemCb(index=0, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="size_fit"))
    await me.press(NavCb(action="skip"))
    return await me.press(NavCb(action="done"))


# ---------------------------------------------------------------- /help


@LANGS
async def test_help_says_what_the_bot_does_and_how_to_reach_a_person(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], settings: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.text("/help")
    assert texts_of(sent) == [t(lang, "menu.help", shop=settings.shop_name)]
    assert t(lang, "menu.btn_human") in texts_of(sent)[0]  # how to reach a person
    assert MenuCb(action="human").pack() in buttons_of(sent)

    # Asked halfway through a request, it keeps the request where it was.
    await me.text("/start T1001")
    await me.press(KindCb(kind="complaint"))
    sent = await me.text("/help")
    assert texts_of(sent) == [t(lang, "menu.help", shop=settings.shop_name)]
    sent = await me.press(ReasonCb(reason="service"))
    assert texts_of(sent) == [t(lang, "intake.ask_description")]


# ---------------------------------------------------------------- the greeting


@LANGS
async def test_the_customer_is_greeted_by_their_own_name_before_and_after_the_proof(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], settings: Any, lang: str
) -> None:
    data = order_json("T2001", customer=customer_json("王小明", "+86 138-0013-8000", None))
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=NOW)
        s.commit()
    me = Customer(dp, bot, user_id=7001, language=lang, name="Alice")
    sent = await me.text("/start")
    assert texts_of(sent) == [t(lang, "menu.greeting", name="Alice", shop=settings.shop_name)]
    await me.text("/start T2001")
    sent = await me.text("8000")
    assert texts_of(sent)[0] == t(lang, "intake.proof_ok", order_no="T2001")
    # The account is the order's customer now; the order's name stays the agents'.
    sent = await me.text("/start")
    assert texts_of(sent) == [t(lang, "menu.greeting", name="Alice", shop=settings.shop_name)]
    sent = await me.text("/start T2001")
    assert texts_of(sent)[0] == t(
        lang, "menu.greeting_short", name="Alice", shop=settings.shop_name
    )


# ---------------------------------------------------------------- quantities


@LANGS
async def test_plus_past_what_was_bought_says_why_nothing_moves(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    add_order(sessions, lang=lang)
    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.text("/start T1001")
    await me.press(KindCb(kind="return_refund"))
    await me.press(ItemCb(index=1, delta=1))
    sent = await me.press(ItemCb(index=1, delta=1))
    assert toasts(sent) == [None]  # a step that moved needs no words
    sent = await me.press(ItemCb(index=1, delta=1))  # SOCKS: 2 bought, 2 chosen
    assert toasts(sent) == [TEXTS.plain(lang, "intake.items_most", bought=2, most=2)]
    assert not texts_of(sent) and not buttons_of(sent)  # no message, keyboard untouched


async def test_plus_names_the_units_another_request_holds(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions, lang="zh-CN")
    me = Customer(dp, bot, user_id=5001, language="zh-CN")
    # One pair of socks already in a submitted request.
    await me.text("/start T1001")
    await me.press(KindCb(kind="exchange"))
    await me.press(ItemCb(index=1, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="size_fit"))
    await me.press(NavCb(action="skip"))
    await me.press(NavCb(action="done"))
    await me.press(NavCb(action="confirm"))
    assert cases(sessions) == 1
    await me.press(MenuCb(action="new"))
    await me.text("T1001")
    await me.press(KindCb(kind="complaint"))
    await me.press(NavCb(action="back"))
    await me.press(KindCb(kind="return_refund"))
    await me.press(ItemCb(index=1, delta=1))
    sent = await me.press(ItemCb(index=1, delta=1))
    assert toasts(sent) == [TEXTS.plain("zh-CN", "intake.items_most_taken", bought=2, most=1)]


# ---------------------------------------------------------------- a finished request


@LANGS
async def test_an_old_new_request_button_asks_before_a_finished_request_is_dropped(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    add_order(sessions, lang=lang)
    me = Customer(dp, bot, user_id=5001, language=lang)
    summary = texts_of(await to_summary(me))[0]
    assert summary.startswith(t(lang, "intake.preview_title"))

    # The menu's "New request" of an earlier message, pressed at Submit.
    sent = await me.press(MenuCb(action="new"))
    assert texts_of(sent) == [t(lang, "intake.ready_to_send")]
    choices = [NavCb(action=a).pack() for a in ("confirm", "discard", "edit")]
    assert buttons_of(sent) == choices
    # Keep editing: the summary again, with its buttons.
    sent = await me.press(NavCb(action="edit"))
    assert texts_of(sent) == [summary]
    assert NavCb(action="back").pack() in buttons_of(sent)

    # Discard it: nothing is sent, and the new request begins.
    await me.press(MenuCb(action="new"))
    sent = await me.press(NavCb(action="discard"))
    assert texts_of(sent) == [t(lang, "intake.ready_discarded"), t(lang, "intake.ask_order_recent")]
    assert cases(sessions) == 0

    # Send it: the request goes, as its own Submit would.
    await to_summary(me)
    await me.press(MenuCb(action="new"))
    await me.press(NavCb(action="confirm"))
    assert cases(sessions) == 1
    assert state_of(sessions, 5001) is None


# ---------------------------------------------------------------- the estimate


@LANGS
async def test_the_refund_estimate_shows_its_short_breakdown_from_the_core(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    # Free shipping above 150.00: returning the jacket leaves the rest below it (MONEY.md 7).
    data = order_json(free_shipping_threshold="150.00", shipping_fee="0.00")
    add_order(sessions, lang=lang, data=data)
    me = Customer(dp, bot, user_id=5001, language=lang)
    summary = texts_of(await to_summary(me, kind="return_refund"))[0]
    with sessions() as s:
        preview = preview_refund(
            session=s,
            order=get_order(session=s, order_no="T1001"),
            kind="return_refund",
            reason="size_fit",
            items={"JACKET-M": 1},
            policy=Policy(),
            now=NOW,
        )
    assert preview is not None and preview.deductions and preview.routes

    def money(amount: int) -> str:
        return format_money(Money(amount, "CNY"), lang)

    (item,) = preview.items
    (deduction,) = preview.deductions
    (route,) = preview.routes
    assert (route.method, route.arrival_min_days, route.arrival_max_days) == ("alipay", 1, 3)
    # The breakdown's lines sit indented under the estimate.
    breakdown = [line for line in summary.split("\n") if line.startswith("  ")]
    assert breakdown == [
        "  " + line
        for line in (
            t(lang, "refund.item", title="羽绒服 M", qty=1, amount=money(item.net)),
            t(
                lang,
                "refund.deduction",
                amount=money(deduction.amount),
                what=t(lang, "refund.rule_free_shipping"),
            ),
            t(
                lang,
                "refund.route",
                amount=money(preview.amount),
                via=t(lang, "refund.via_alipay"),
                low=1,
                high=3,
            ),
        )
    ]
    assert t(lang, "intake.preview_refund", amount=money(preview.amount)) in summary
    # What was paid, less the deduction, is the estimate.
    assert item.net - deduction.amount == preview.amount


# ---------------------------------------------------------------- albums


@LANGS
async def test_a_photo_then_an_album_of_three_is_answered_once_counting_all_four(
    bot: Bot, sessions: sessionmaker[Session], settings: Any, scripts: Any, lang: str
) -> None:
    clock = Clock(NOW)
    dp = with_delivery(
        dispatcher(sessions, settings, scripts, clock), bot, sessions, settings, clock
    )
    add_order(sessions, lang=lang)
    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.text("/start T1001")
    await me.press(KindCb(kind="exchange"))
    await me.press(ItemCb(index=0, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="damaged_in_transit"))
    await me.press(NavCb(action="skip"))
    # The photo is all the request needs: the summary at once, no Done to press.
    sent = await me.photo(jpeg("red"))
    assert texts_of(sent)[0].startswith(t(lang, "intake.evidence_ready", count=1))
    held = []
    for colour in ("green", "blue", "white"):
        held += await me.photo(jpeg(colour), media_group_id="album-7")
    assert texts_of(held) == []  # held for the album's other parts
    clock.now += ALBUM_WAIT
    sent = await delivered(me)
    assert len(texts_of(sent)) == 1
    assert texts_of(sent)[0].startswith(t(lang, "intake.evidence_ready", count=4))
    assert NavCb(action="confirm").pack() in buttons_of(sent)

    # A part that comes after the answer went out is answered again, with the whole count.
    sent = await me.photo(jpeg("black"), media_group_id="album-7")
    clock.now += ALBUM_WAIT
    sent += await delivered(me)
    assert len(texts_of(sent)) == 1
    assert texts_of(sent)[0].startswith(t(lang, "intake.evidence_ready", count=5))
    # What the customer does next waits for the held answer, never overtakes it (a Done of
    # an earlier message, after the summary came: the summary again).
    await me.photo(jpeg("gray"), media_group_id="album-8")
    sent = await me.press(NavCb(action="done"))
    assert texts_of(sent) == []
    clock.now += ALBUM_WAIT
    sent = await delivered(me)
    assert texts_of(sent)[0].startswith(t(lang, "intake.evidence_ready", count=6))
    assert texts_of(sent)[1].startswith(t(lang, "intake.preview_title"))
