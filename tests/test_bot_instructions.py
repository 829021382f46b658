"""What a message tells the customer to do works (issue 14): the approval notice's buttons and
typed words, a closed order's "tell us here", a refused request asked again, "talk to a person"
as a conversation, and no raw code in anything a customer reads. Through the real Dispatcher
and delivery worker with Telegram faked at the HTTP-session boundary, in both languages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import CaseCb, ItemCb, KindCb, MenuCb, NavCb, OrderCb, ReasonCb
from tests.factories import (
    UTC_ZONE,
    act_on,
    add_order,
    case_row,
    context,
    open_case_for,
    order_json,
)
from tests.fakes.telegram import Customer, FakeSession, buttons_of, texts_of
from tickets.exceptions import Conflict
from tickets.messages.notices import ROUTES, case_facts, inspection_finding
from tickets.models import (
    CaseKind,
    CaseStatus,
    Channel,
    OrderStatus,
    OutboxMessage,
    Ticket,
    UnitStatus,
)
from tickets.policy.eligibility import policy_texts
from tickets.reasons import Reason

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()
LANGS = ["zh-CN", "en"]


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


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
    act_on(sessions, scripts, refused, action="refuse", reason="the tags were removed")
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
        act_on(sessions, scripts, refused, action="escalate", reason="the customer disagrees")
    assert case_row(sessions, refused).status == "refused"


# ---------------------------------------------------------------- the approval notice


def awaiting_return(sessions: sessionmaker[Session], scripts: Any) -> str:
    number = open_case_for(sessions, scripts)
    act_on(sessions, scripts, number, action="approve")
    assert case_row(sessions, number).status == "awaiting_return"
    return number


async def delivered(dp: Dispatcher, bot: Bot) -> list[SendMessage]:
    """What the delivery worker sends of what is queued (a notice from an agent's action)."""
    fake = bot.session
    assert isinstance(fake, FakeSession)
    before = len(fake.sent())
    await dp["delivery"].drain()
    return fake.sent()[before:]


PICKUP_TYPED = {"en": "Pickup", "zh-CN": "上门取件"}


@pytest.mark.parametrize("lang", LANGS)
async def test_the_approval_notice_carries_the_tracking_and_pickup_buttons(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = awaiting_return(sessions, scripts)
    notice = (await delivered(dp, bot))[-1]  # after the "received" notice
    assert f"RMA-{number.split('-', 1)[1]}" in notice.text
    # The word it tells the customer to type is one the bot understands (below).
    assert PICKUP_TYPED[lang] in notice.text
    assert isinstance(notice.reply_markup, InlineKeyboardMarkup)
    buttons = [b for row in notice.reply_markup.inline_keyboard for b in row]
    assert [(b.text, b.callback_data) for b in buttons] == [
        (t(lang, "cases.btn_track"), CaseCb(number=number, action="track").pack()),
        (t(lang, "cases.btn_pickup"), CaseCb(number=number, action="pickup").pack()),
    ]

    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.press(CaseCb(number=number, action="pickup"))
    assert texts_of(sent) == [t(lang, "pickup.ask_slot", case_no=number)]
    await me.press(NavCb(action="cancel"))
    sent = await me.press(CaseCb(number=number, action="track"))
    assert texts_of(sent) == [t(lang, "cases.ask_tracking", case_no=number)]
    sent = await me.text("SF 1428 8300 16625")
    assert texts_of(sent) == [
        t(lang, "cases.tracking_saved", case_no=number, tracking_no="SF1428830016625")
    ]
    assert case_row(sessions, number).status == "in_transit"
    # The notice's button, pressed again once the parcel is on its way: said so at once.
    sent = await me.press(CaseCb(number=number, action="pickup"))
    assert texts_of(sent) == [
        t(lang, "cases.not_possible", case_no=number, status=t(lang, "status.in_transit"))
    ]


@pytest.mark.parametrize("lang", LANGS)
async def test_typing_pickup_or_a_tracking_number_as_the_notice_says_sends_the_return(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = awaiting_return(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language=lang)

    # Words that are neither go to the case, as before.
    sent = await me.text("thanks" if lang == "en" else "好的，谢谢")
    assert texts_of(sent) == [t(lang, "cases.message_added", case_no=number)]

    for typed in (PICKUP_TYPED[lang], f"“{PICKUP_TYPED[lang]}”", "book a pickup"):
        sent = await me.text(typed)
        assert texts_of(sent) == [t(lang, "pickup.ask_slot", case_no=number)], typed
        await me.press(NavCb(action="cancel"))
    assert case_row(sessions, number).status == "awaiting_return"

    sent = await me.text("YT7520 0131 4456")
    assert texts_of(sent) == [
        t(lang, "cases.tracking_saved", case_no=number, tracking_no="YT752001314456")
    ]
    case = case_row(sessions, number)
    assert (case.status, case.tracking_no) == ("in_transit", "YT752001314456")
    # Nothing awaits a return any more: a number is just a message on the case.
    sent = await me.text("YT7520 0131 4457")
    assert texts_of(sent) == [t(lang, "cases.message_added", case_no=number)]
    assert case_row(sessions, number).tracking_no == "YT752001314456"


# ---------------------------------------------------------------- words for a person


def notice_of(sessions: sessionmaker[Session], case: Ticket) -> str:
    """The text of the newest notice queued to the case's customer."""
    with sessions() as s:
        payload = s.scalar(
            select(OutboxMessage.payload)
            .where(OutboxMessage.ticket_id == case.id, OutboxMessage.kind == "notice")
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
    assert payload is not None
    return str(payload["text"])


# What a "we've received your complaint" would say, and what a conversation's notice says.
COMPLAINT_WORD = {"en": "complaint", "zh-CN": "投诉"}
MESSAGE_WORD = {"en": "message", "zh-CN": "留言"}


def conversation_opened(
    sessions: sessionmaker[Session], sent: list[Any], words: str, lang: str
) -> Ticket:
    """The one case, a conversation holding `words`, and its notice (all that was sent), which
    says a message was received, not a complaint."""
    [case] = cases(sessions)
    assert (case.kind, case.reason, case.status, case.description) == (
        "complaint",
        "question",
        "submitted",
        words,
    )
    notice = notice_of(sessions, case)
    assert texts_of(sent) == [notice]
    assert MESSAGE_WORD[lang] in notice and COMPLAINT_WORD[lang] not in notice
    assert case.number in notice
    return case


@pytest.mark.parametrize("lang", LANGS)
async def test_talk_to_a_person_is_a_conversation_not_a_complaint(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    add_order(sessions, lang=lang)
    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.press(MenuCb(action="human"))
    assert texts_of(sent) == [t(lang, "human.prompt")]
    question = "When will my parcel ship?" if lang == "en" else "我的包裹什么时候发货？"
    case = conversation_opened(sessions, await me.text(question), question, lang)
    assert case.order_id is None


def closed_order(status: str) -> dict[str, Any]:
    over: dict[str, Any] = {"status": status, "shipped_at": None, "delivered_at": None}
    if status == "unpaid":
        over["paid_at"] = None
    return order_json(**over)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("status", ["cancelled", "unpaid"])
async def test_a_closed_order_says_why_once_and_what_is_typed_reaches_a_person(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str, status: str
) -> None:
    add_order(sessions, lang=lang, data=closed_order(status))
    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.press(MenuCb(action="new"))
    sent = await me.press(OrderCb(index=0))
    why = policy_texts(lang).get("verdicts", f"order_{status}", order_no="T1001")
    # One reason for the order, said once (not once per kind), and no kind to press.
    assert texts_of(sent) == [t(lang, "intake.kinds_none", why=why)]
    assert not [b for b in buttons_of(sent) if b.startswith("k:")]

    typed = "The refund has not arrived yet" if lang == "en" else "退款还没有到账"
    case = conversation_opened(sessions, await me.text(typed), typed, lang)
    with sessions() as s:
        row = s.get(Ticket, case.id)
        assert row is not None and row.order is not None and row.order.order_no == "T1001"
        # The agents hear of it like of any new case: it is in their queue.
        assert s.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.ticket_id == case.id, OutboxMessage.kind == "case.created"
            )
        )
    # The conversation goes on on that case.
    sent = await me.text("?")
    assert texts_of(sent) == [t(lang, "cases.message_added", case_no=case.number)]


# ---------------------------------------------------------------- no raw code in a customer's text


# Every code the core keeps: kinds, statuses, unit outcomes, order statuses, reasons, channels,
# payment methods and routes, product categories, and every choice a script maps to words.
def code_values(scripts: Any) -> set[str]:
    enums = (CaseKind, CaseStatus, UnitStatus, OrderStatus, Reason, Channel)
    codes = {member.value for enum in enums for member in enum}
    codes |= set(ROUTES) | set(ROUTES.values())
    codes |= set(policy_texts("en").tables["categories"])
    for script in scripts.list():
        for var in script.variables.values():
            codes |= {str(c) for c in var.choices or ()}
    return codes


def raw_codes(text: str, lang: str, codes: set[str]) -> set[str]:
    """Codes showing in a text: any snake_case word; in Chinese, any code at all (an English
    text may say "damaged" or "refund" as words)."""
    words = set(re.findall(r"[A-Za-z]+(?:_[A-Za-z]+)*", text))
    found = {w for w in words if "_" in w}
    if lang == "zh-CN":
        found |= words & codes
    return found


def fact_variants(ticket: Ticket, ctx: Any, lang: str) -> list[dict[str, Any]]:
    """The case's facts (what the core fills every script with) under every code they carry:
    each kind, reason, payment method and product category in turn."""
    order, line = ticket.order, ticket.items[0].line
    assert order is not None
    ticket.language = lang
    variants = []
    for kind in CaseKind:
        ticket.kind = kind.value
        variants.append(case_facts(ticket, ctx))
    for reason in Reason:
        ticket.reason = reason.value
        variants.append(case_facts(ticket, ctx))
    for method in [*ROUTES, "cash_on_delivery"]:
        order.payment_method = method
        variants.append(case_facts(ticket, ctx))
    for category in [*policy_texts(lang).tables["categories"], "apparel"]:
        line.category = category
        variants.append(case_facts(ticket, ctx))
    # What the inspection found, each outcome alone and all together (inspect_goods).
    for outcome in [*UnitStatus, *[list(UnitStatus)]]:
        found = outcome if isinstance(outcome, list) else [outcome]
        variants.append({"finding": inspection_finding(found, lang)})
    return variants


@pytest.mark.parametrize("lang", LANGS)
def test_no_script_a_customer_can_receive_shows_a_raw_code(
    sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = open_case_for(sessions, scripts)
    codes = code_values(scripts)
    ctx = context(scripts, tz=UTC_ZONE)
    seen: dict[str, set[str]] = {}
    with sessions() as s, s.no_autoflush:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        variants = fact_variants(ticket, ctx, lang)
        for name in scripts.names():
            script = scripts.get(name, lang)
            base = scripts.sample_variables(name, lang)
            tries = [{k: v for k, v in f.items() if k in script.accepts} for f in variants]
            tries += [
                {var.name: choice}
                for var in script.variables.values()
                for choice in var.choices or ()
            ]
            for values in tries:
                text = scripts.render(name, lang, {**base, **values}, timezone=UTC_ZONE)
                if found := raw_codes(text, lang, codes):
                    seen.setdefault(name, set()).update(found)
        s.rollback()
    assert seen == {}


@pytest.mark.parametrize("lang", LANGS)
async def test_the_inspection_failed_notice_says_what_was_found_in_words(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = awaiting_return(sessions, scripts)
    act_on(sessions, scripts, number, action="mark_received")
    act_on(
        sessions,
        scripts,
        number,
        action="inspect",
        results=[{"sku": "SOCKS", "quantity": 1, "outcome": "damaged"}],
    )
    assert case_row(sessions, number).status == "refused"
    notice = (await delivered(dp, bot))[-1]
    assert number in notice.text
    finding = policy_texts(lang).get("outcomes", "damaged")
    # "很抱歉结果未通过：damaged" no more: the finding in words, where the code was.
    said = f"</b>: {finding}." if lang == "en" else f"</b>：{finding}。"
    assert said in notice.text
