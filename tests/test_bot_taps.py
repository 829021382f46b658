"""Fewer taps (issue 14): the customer's whole path from /start to a filed return with a photo,
counted action by action (a message, a button press, a photo or an album: one each), through
the real Dispatcher with Telegram faked at the HTTP-session boundary, in both languages. The
goals: at most 10 actions for a customer whose Telegram account is not linked to the order yet
(typing the order number and the digits counts two), at most 8 for a linked one."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.filters.callback_data import CallbackData
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import ItemCb, KindCb, MenuCb, NavCb, OrderCb, ReasonCb
from tests.factories import NOW, add_order, customer_json, order_json
from tests.fakes.telegram import Customer, buttons_of, jpeg, texts_of
from tickets.models import FsmRecord, Ticket
from tickets.orders.store import upsert_order
from tickets.policy.eligibility import EvidenceNeed
from tickets.policy.rules import Policy
from tickets.schemas import OrderIn

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()
LANGS = pytest.mark.parametrize("lang", ["en", "zh-CN"])
UNLINKED_GOAL = 10
LINKED_GOAL = 8


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


class Counted:
    """A customer whose every action is counted: a message, a button, a photo; an album once."""

    def __init__(self, me: Customer) -> None:
        self.me = me
        self.actions = 0

    async def text(self, text: str) -> list[Any]:
        self.actions += 1
        return await self.me.text(text)

    async def press(self, data: CallbackData) -> list[Any]:
        self.actions += 1
        return await self.me.press(data)

    async def photo(self, colour: str, caption: str | None = None) -> list[Any]:
        self.actions += 1
        return await self.me.photo(jpeg(colour), caption=caption)

    async def album(self, *colours: str) -> list[Any]:
        self.actions += 1
        sent: list[Any] = []
        for colour in colours:
            sent += await self.me.photo(jpeg(colour), media_group_id="album-1")
        return sent


def one_item_order(order_no: str, lang: str, *, linked: bool) -> dict[str, Any]:
    """A delivered order of one jacket: the usual order of a customer on a phone."""
    data = order_json(order_no)
    data["lines"] = [data["lines"][0]]
    data["order_discount"] = "0.00"
    data["customer"] = customer_json(telegram_user_id=5001 if linked else None)
    data["customer"]["language"] = lang
    return data


def add(sessions: sessionmaker[Session], data: dict[str, Any]) -> None:
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=NOW)
        s.commit()


def assert_filed(sessions: sessionmaker[Session], user_id: int, *, photos: int = 1) -> None:
    """The case is really there: the jacket, its reason, the photo(s); the chat is done."""
    with sessions() as s:
        case = s.scalars(select(Ticket)).one()
        assert (case.kind, case.reason, case.status) == (
            "return_refund",
            "quality_defect",
            "submitted",
        )
        assert [(i.sku, i.quantity) for i in case.items] == [("JACKET-M", 1)]
        assert [a.kind for a in case.attachments] == ["photo"] * photos
        assert case.customer.telegram_user_id == user_id
        rows = s.scalars(select(FsmRecord).where(FsmRecord.key.contains(f":{user_id}:")))
        assert all(row.state is None for row in rows)


@LANGS
async def test_a_linked_customer_files_a_return_with_a_photo_in_seven_actions(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    add(sessions, one_item_order("T3001", lang, linked=True))
    me = Counted(Customer(dp, bot, user_id=5001, language=lang))

    await me.text("/start")
    await me.press(MenuCb(action="new"))
    sent = await me.press(OrderCb(index=0))  # linked: no proof asked
    assert KindCb(kind="return_refund").pack() in buttons_of(sent)
    sent = await me.press(KindCb(kind="return_refund"))
    # The order's one item, one unit: chosen for them (said), no items step, no Done.
    assert texts_of(sent)[0].startswith(t(lang, "intake.ask_reason"))
    assert t(lang, "intake.item_chosen", title="羽绒服 M", qty=1) in texts_of(sent)[0]
    sent = await me.press(ReasonCb(reason="quality_defect"))
    assert texts_of(sent) == [t(lang, "intake.ask_description")]
    # A photo at the description step is the evidence and says it all: straight to the summary.
    sent = await me.photo("red")
    summary = texts_of(sent)[0]
    assert summary.startswith(t(lang, "intake.evidence_ready", count=1))
    assert t(lang, "intake.preview_title") in summary
    assert NavCb(action="confirm").pack() in buttons_of(sent)
    await me.press(NavCb(action="confirm"))

    assert me.actions == 7 <= LINKED_GOAL
    assert_filed(sessions, 5001)


@LANGS
async def test_an_unlinked_customer_files_a_return_with_a_photo_in_eight_actions(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    add(sessions, one_item_order("T3002", lang, linked=False))
    me = Counted(Customer(dp, bot, user_id=6101, language=lang))

    await me.text("/start")
    sent = await me.press(MenuCb(action="new"))
    # No order of theirs yet: the question says the digits may come with the number.
    assert texts_of(sent) == [t(lang, "intake.ask_order")]
    sent = await me.text("T3002")
    assert t(lang, "intake.ask_proof") in texts_of(sent)
    sent = await me.text("8000")
    assert texts_of(sent)[0] == t(lang, "intake.proof_ok", order_no="T3002")
    await me.press(KindCb(kind="return_refund"))
    await me.press(ReasonCb(reason="quality_defect"))
    # Words and a photo both said: the photo with its caption, still no Done.
    sent = await me.photo("red", caption="拉链坏了" if lang == "zh-CN" else "broken zip")
    assert texts_of(sent)[0].startswith(t(lang, "intake.evidence_ready", count=1))
    await me.press(NavCb(action="confirm"))

    assert me.actions == 8 <= UNLINKED_GOAL
    assert_filed(sessions, 6101)


@LANGS
async def test_the_order_number_and_its_digits_in_one_message_save_one_more(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    add(sessions, one_item_order("T3003", lang, linked=False))
    me = Counted(Customer(dp, bot, user_id=6102, language=lang))

    await me.text("/start")
    await me.press(MenuCb(action="new"))
    sent = await me.text("t3003 8000")  # as typed on a phone: any case, a space
    assert texts_of(sent)[0] == t(lang, "intake.proof_ok", order_no="T3003")
    assert KindCb(kind="return_refund").pack() in buttons_of(sent)
    await me.press(KindCb(kind="return_refund"))
    await me.press(ReasonCb(reason="quality_defect"))
    await me.album("red", "green")  # an album is one action
    await me.press(NavCb(action="confirm"))

    assert me.actions == 7 <= UNLINKED_GOAL
    assert_filed(sessions, 6102, photos=2)


@LANGS
async def test_wrong_digits_after_the_order_number_are_a_wrong_try_and_ask_again(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    add(sessions, one_item_order("T3004", lang, linked=False))
    me = Customer(dp, bot, user_id=6103, language=lang)
    await me.text("/start")
    await me.press(MenuCb(action="new"))
    sent = await me.text("T3004 1111")
    assert texts_of(sent) == [t(lang, "intake.proof_failed", left=2)]
    # Still at the proof step: the right digits alone go on.
    sent = await me.text("8000")
    assert texts_of(sent)[0] == t(lang, "intake.proof_ok", order_no="T3004")
    # A number that is no order, digits or not, is named as typed.
    await me.text("/start")
    await me.press(MenuCb(action="new"))
    sent = await me.text("NOPE 8000")
    assert texts_of(sent) == [t(lang, "intake.order_not_found", order_no="NOPE 8000")]


@LANGS
async def test_a_chosen_item_goes_back_to_the_kind_and_several_units_preselect_one(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    data = one_item_order("T3005", lang, linked=True)
    add(sessions, data)
    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.text("/start T3005")
    await me.press(KindCb(kind="return_refund"))
    # Back from the reason: there was no items step, so the kind again.
    sent = await me.press(NavCb(action="back"))
    assert texts_of(sent)[0].startswith(t(lang, "intake.ask_kind", order_no="T3005"))

    # Two socks: the one line is preselected at one, and + and Done still work.
    socks = order_json("T3006")
    socks["lines"] = [socks["lines"][1]]
    socks["order_discount"] = "0.00"
    socks["customer"]["language"] = lang
    add_order(sessions, lang=lang, data=socks)
    await me.text("/start T3006")
    sent = await me.press(KindCb(kind="return_refund"))
    assert texts_of(sent)[0].startswith(t(lang, "intake.ask_items"))
    assert ItemCb(index=0, delta=-1).pack() in buttons_of(sent)
    await me.press(ItemCb(index=0, delta=1))
    sent = await me.press(NavCb(action="done"))
    assert texts_of(sent) == [t(lang, "intake.ask_reason")]
    await me.press(ReasonCb(reason="size_fit"))
    await me.text("too small" if lang == "en" else "太小了")
    # No photo needed, none sent: the evidence step asks, Done goes on.
    sent = await me.press(NavCb(action="done"))
    assert "袜子 ×2" in texts_of(sent)[0]


@LANGS
async def test_a_photo_sent_early_needs_no_done_once_the_words_are_given(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    add(sessions, one_item_order("T3007", lang, linked=True))
    me = Counted(Customer(dp, bot, user_id=5001, language=lang))
    await me.photo("red")  # before anything
    await me.text("T3007")
    await me.press(KindCb(kind="return_refund"))
    await me.press(ReasonCb(reason="quality_defect"))
    sent = await me.text("zip broken" if lang == "en" else "拉链坏了")
    assert texts_of(sent)[0].startswith(t(lang, "intake.evidence_ready", count=1))
    # Back from the summary: the evidence step, to send more.
    sent = await me.me.press(NavCb(action="back"))
    assert texts_of(sent) == [t(lang, "intake.ask_evidence_required", count=1, need=_need(lang))]
    sent = await me.photo("blue")
    assert texts_of(sent)[0].startswith(t(lang, "intake.evidence_ready", count=2))
    await me.press(NavCb(action="confirm"))
    assert_filed(sessions, 5001, photos=2)


def _need(lang: str) -> str:
    return EvidenceNeed(photos=Policy().eligibility.evidence.min_photos).text(lang)
