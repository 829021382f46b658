"""After the request: the satisfaction question when a case closes (1-5 buttons and a comment),
booking a pickup for a return, and the deadline each open case shows in My requests. Through
the real Dispatcher and delivery worker with Telegram faked at the HTTP-session boundary."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import EditMessageReplyMarkup, SendMessage
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import DeliveryWorker
from bot.i18n import Texts
from bot.keyboards import AddressCb, CaseCb, MenuCb, NavCb, RateCb, SlotCb
from tests.factories import NOW, UTC_ZONE, act_on, add_order, case_row, context, open_case_for
from tests.fakes.telegram import FAST, Customer, FakeSession, buttons_of, texts_of
from tickets.cases.opening import open_case
from tickets.context import SYSTEM, Actor, Context
from tickets.messages.scripts import format_moment
from tickets.models import Event, FsmRecord, OutboxMessage, SlaClock, Ticket
from tickets.schemas import TicketCreate

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


def ctx_for(scripts: Any) -> Context:
    return context(scripts, tz=UTC_ZONE)


def closed_complaint(sessions: sessionmaker[Session], scripts: Any) -> Ticket:
    """T1001's complaint, answered, resolved and closed: its closing notice is in the outbox."""
    with sessions() as s:
        ticket = open_case(
            session=s,
            request=TicketCreate(kind="complaint", reason="service", order_no="T1001"),
            actor=SYSTEM,
            ctx=ctx_for(scripts),
        )
        number = ticket.number
        s.commit()
    act_on(sessions, scripts, number, action="resolve", reason="apologised, coupon sent")
    act_on(sessions, scripts, number, action="close")
    with sessions() as s:
        found = s.scalar(select(Ticket).where(Ticket.number == number))
        assert found is not None and found.status == "closed"
        s.expunge(found)
        return found


def ratings(sessions: sessionmaker[Session], ticket_id: int) -> list[dict[str, Any]]:
    with sessions() as s:
        return [
            e.data
            for e in s.scalars(
                select(Event)
                .where(Event.ticket_id == ticket_id, Event.type == "satisfaction.recorded")
                .order_by(Event.id)
            )
        ]


def state_of(sessions: sessionmaker[Session], user_id: int) -> str | None:
    with sessions() as s:
        rows = list(s.scalars(select(FsmRecord).where(FsmRecord.key.contains(f":{user_id}:"))))
        return rows[0].state if rows else None


# ---------------------------------------------------------------- satisfaction


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_the_closing_notice_carries_1_to_5_and_a_press_records_score_and_comment(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    settings: Any,
    scripts: Any,
    lang: str,
) -> None:
    add_order(sessions, lang=lang)
    case = closed_complaint(sessions, scripts)
    worker = DeliveryWorker(
        bot=bot, sessions=sessions, settings=settings, config=FAST, clock=lambda: NOW
    )
    await worker.run_once()
    fake = bot.session
    assert isinstance(fake, FakeSession)
    closing = [m for m in fake.sent() if case.number in m.text and "5" in m.text][-1]
    assert isinstance(closing.reply_markup, InlineKeyboardMarkup)
    assert [b.callback_data for b in closing.reply_markup.inline_keyboard[0]] == [
        RateCb(ticket=case.id, score=n).pack() for n in range(1, 6)
    ]
    assert closing.reply_markup.inline_keyboard[0][4].text == t(
        lang, "satisfaction.btn_score", score=5
    )
    # Only the closing notice asks; the earlier notices carry no buttons.
    assert sum(1 for m in fake.sent() if m.reply_markup is not None) == 1

    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.press(RateCb(ticket=case.id, score=4))
    assert texts_of(sent) == [t(lang, "satisfaction.ask_comment", score=4)]
    assert RateCb(ticket=case.id, score=0).pack() in buttons_of(sent)
    edits = [r for r in sent if isinstance(r, EditMessageReplyMarkup)]
    assert len(edits) == 1 and edits[0].reply_markup is None  # the notice's buttons are spent
    assert case_row(sessions, case.number).satisfaction == 4

    sent = await me.text("Quick and friendly" if lang == "en" else "处理很快，态度很好")
    assert texts_of(sent) == [t(lang, "satisfaction.thanks")]
    assert case_row(sessions, case.number).satisfaction == 4
    assert [(r["score"], r["comment"]) for r in ratings(sessions, case.id)] == [
        (4, ""),
        (4, "Quick and friendly" if lang == "en" else "处理很快，态度很好"),
    ]
    assert state_of(sessions, 5001) is None


async def test_the_comment_can_be_skipped_and_a_typed_number_rates_too(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    scripts: Any,
) -> None:
    add_order(sessions)
    case = closed_complaint(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="en")
    await me.press(RateCb(ticket=case.id, score=2))
    sent = await me.press(RateCb(ticket=case.id, score=0))
    assert texts_of(sent) == [t("en", "satisfaction.thanks")]
    assert [r["score"] for r in ratings(sessions, case.id)] == [2]
    assert state_of(sessions, 5001) is None

    # The closing notice says "reply with a number": a bare 5 rates the case that just closed
    # (it was rated 2 already, so it no longer waits for a rating: the 5 is just a message).
    sent = await me.text("5")
    assert texts_of(sent) == [t("en", "menu.prompt")]
    with sessions() as s:
        row = s.get(Ticket, case.id)
        assert row is not None
        row.satisfaction = None
        s.commit()
    sent = await me.text(" 5 ")
    assert texts_of(sent) == [t("en", "satisfaction.ask_comment", score=5)]
    assert case_row(sessions, case.number).satisfaction == 5


async def test_an_open_case_cannot_be_rated_and_someone_elses_is_refused(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    scripts: Any,
) -> None:
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    ticket = case_row(sessions, number)
    me = Customer(dp, bot, user_id=5001, language="en")
    sent = await me.press(RateCb(ticket=ticket.id, score=5))
    assert texts_of(sent) == [t("en", "satisfaction.not_possible")]
    stranger = Customer(dp, bot, user_id=7007, language="en", first_update=100)
    sent = await stranger.press(RateCb(ticket=ticket.id, score=1))
    assert texts_of(sent) == [t("en", "error.forbidden")]
    assert case_row(sessions, number).satisfaction is None
    assert ratings(sessions, ticket.id) == []


# ---------------------------------------------------------------- pickup and deadlines


def awaiting_return(sessions: sessionmaker[Session], scripts: Any) -> str:
    number = open_case_for(sessions, scripts)
    act_on(sessions, scripts, number, action="approve")
    assert case_row(sessions, number).status == "awaiting_return"
    return number


def collection_clock(sessions: sessionmaker[Session], number: str) -> tuple[str, str]:
    """The case's group and when its running pickup_collection clock is due (Shanghai time)."""
    with sessions() as s:
        row = s.execute(
            select(Ticket.group, SlaClock.due_at)
            .join(SlaClock, SlaClock.ticket_id == Ticket.id)
            .where(
                Ticket.number == number,
                SlaClock.clock == "pickup_collection",
                SlaClock.met_at.is_(None),
            )
        ).one()
    return row.group, row.due_at.astimezone(ZoneInfo("Asia/Shanghai")).isoformat()


async def test_my_requests_shows_the_deadline_and_a_pickup_is_booked_at_the_order_address(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    settings: Any,
    scripts: Any,
) -> None:
    from tickets.sla import clocks as sla

    add_order(sessions)
    number = awaiting_return(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="en")
    sent = await me.press(MenuCb(action="mine"))
    with sessions() as s:
        running = [
            c
            for c in sla.view(s, case_row(sessions, number), NOW)
            if c.state == "running" and c.due_at
        ]
    nearest = min(running, key=lambda c: c.due_at)  # type: ignore[arg-type, return-value]
    assert nearest.due_at is not None
    key = (
        "cases.due_customer_shipping" if nearest.clock == "customer_shipping" else "cases.due_shop"
    )
    # In the shop's timezone (Telegram does not tell a customer's own).
    due = t("en", key, due=format_moment(nearest.due_at, "en", settings.tz))
    assert due in texts_of(sent)[1]
    assert CaseCb(number=number, action="pickup").pack() in buttons_of(sent)

    sent = await me.press(CaseCb(number=number, action="pickup"))
    assert texts_of(sent) == [t("en", "pickup.ask_slot", case_no=number)]
    # NOW is Sunday 22 Nov in Shanghai: the next three working days, mornings and afternoons.
    slots = [b for b in buttons_of(sent) if b.startswith("ps:")]
    assert slots == [
        SlotCb(day=day, slot=part).pack()
        for day in ("20261123", "20261124", "20261125")
        for part in ("am", "pm")
    ]
    labels = [
        b.text
        for m in sent
        if isinstance(m, SendMessage) and isinstance(m.reply_markup, InlineKeyboardMarkup)
        for row in m.reply_markup.inline_keyboard
        for b in row
    ]
    assert "Mon 23 Nov · morning 09:00-12:00" in labels

    sent = await me.press(SlotCb(day="20261123", slot="am"))
    assert texts_of(sent) == [
        t("en", "pickup.ask_address", address="上海市浦东新区世纪大道 100 号")
    ]
    assert AddressCb().pack() in buttons_of(sent)
    sent = await me.press(AddressCb())
    assert texts_of(sent) == [
        t(
            "en",
            "pickup.booked",
            case_no=number,
            slot="Mon 23 Nov · morning 09:00-12:00",
            address="上海市浦东新区世纪大道 100 号",
        )
    ]
    case = case_row(sessions, number)
    # Booked, not yet on its way: no courier has come. Logistics has two working days from
    # the slot (Mon 09:00) before the sweep chases the courier: Tuesday 18:00.
    assert case.status == "pickup_booked"
    assert case.pickup == {
        "time": "2026-11-23 09:00-12:00",
        "address": "上海市浦东新区世纪大道 100 号",
    }
    assert collection_clock(sessions, number) == ("logistics", "2026-11-24T18:00:00+08:00")
    with sessions() as s:
        event = s.scalar(
            select(Event)
            .where(Event.ticket_id == case.id, Event.type == "status.changed")
            .order_by(Event.id.desc())
            .limit(1)
        )
        assert event is not None and event.actor == "customer" and event.data["pickup"]
    assert state_of(sessions, 5001) is None


async def test_a_pickup_at_a_typed_address_in_chinese_with_bad_input_on_the_way(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    scripts: Any,
) -> None:
    add_order(sessions, lang="zh-CN")
    number = awaiting_return(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="zh-CN")
    await me.press(CaseCb(number=number, action="pickup"))
    sent = await me.text("明天上午")  # words where a slot button is expected
    assert texts_of(sent) == [
        t("zh-CN", "intake.guide_button_expected"),
        t("zh-CN", "pickup.ask_slot", case_no=number),
    ]
    sent = await me.press(SlotCb(day="20261122", slot="am"))  # today: not offered
    assert texts_of(sent)[0] == t("zh-CN", "pickup.slot_gone")
    await me.press(SlotCb(day="20261124", slot="pm"))
    sent = await me.text("家")
    assert texts_of(sent) == [t("zh-CN", "pickup.address_too_short", min=8)]
    await me.sticker()
    sent = await me.text("上海市徐汇区漕溪北路 88 号 3 楼前台")
    assert texts_of(sent)[0].startswith("🚚")
    case = case_row(sessions, number)
    assert case.status == "pickup_booked"
    assert case.pickup == {
        "time": "2026-11-24 14:00-18:00",
        "address": "上海市徐汇区漕溪北路 88 号 3 楼前台",
    }
    # Tue 14-18, Wed 9-12, 13:30-18, Thu 9-12, 13:30-14:00: 15 working hours from the slot.
    assert collection_clock(sessions, number) == ("logistics", "2026-11-26T14:00:00+08:00")


async def test_a_pickup_can_be_cancelled_and_is_refused_once_the_parcel_moved(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    scripts: Any,
) -> None:
    add_order(sessions)
    number = awaiting_return(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="en")
    await me.press(CaseCb(number=number, action="pickup"))
    sent = await me.press(NavCb(action="cancel"))
    assert texts_of(sent) == [t("en", "nav.cancelled")]
    assert case_row(sessions, number).status == "awaiting_return"

    await me.press(CaseCb(number=number, action="pickup"))
    await me.press(SlotCb(day="20261123", slot="pm"))
    owner = Actor(kind="customer", customer_id=case_row(sessions, number).customer_id)
    # Meanwhile the customer sent a tracking number (from another device, say).
    act_on(sessions, scripts, number, owner, action="mark_in_transit", tracking_no="SF0001112223")
    sent = await me.press(AddressCb())
    assert texts_of(sent) == [
        t("en", "cases.not_possible", case_no=number, status=t("en", "status.in_transit"))
    ]
    case = case_row(sessions, number)
    assert case.tracking_no == "SF0001112223" and case.pickup is None


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
async def test_a_pickup_address_a_courier_cannot_find_is_refused_with_why(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = awaiting_return(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.press(CaseCb(number=number, action="pickup"))
    await me.press(SlotCb(day="20261124", slot="pm"))
    sent = await me.text("short")
    assert texts_of(sent) == [t(lang, "pickup.address_too_short", min=8)]
    sent = await me.text("12 34 56 78 90")  # digits alone name no street
    assert texts_of(sent) == [t(lang, "pickup.address_no_letters")]
    sent = await me.text("x" * 301)
    assert texts_of(sent) == [t(lang, "pickup.address_too_long", max=300)]
    assert case_row(sessions, number).status == "awaiting_return"
    sent = await me.text("Flat 3, 88 Caoxi North Road, Xuhui")
    assert texts_of(sent)[0].startswith("🚚")
    assert case_row(sessions, number).status == "pickup_booked"


async def test_a_pickup_stays_booked_until_the_courier_collects_it(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions, lang="zh-CN")
    number = awaiting_return(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="zh-CN")
    await me.press(CaseCb(number=number, action="pickup"))
    await me.press(SlotCb(day="20261123", slot="am"))
    await me.press(AddressCb())
    sent = await me.press(MenuCb(action="mine"))
    assert t("zh-CN", "status.pickup_booked") in texts_of(sent)[1]
    assert t("zh-CN", "next.pickup_booked") in texts_of(sent)[1]
    # Another slot: booked again, still waiting for the courier, on the record.
    await me.press(CaseCb(number=number, action="pickup"))
    await me.press(SlotCb(day="20261125", slot="pm"))
    await me.press(AddressCb())
    case = case_row(sessions, number)
    assert case.status == "pickup_booked" and case.pickup is not None
    assert case.pickup["time"] == "2026-11-25 14:00-18:00"
    with sessions() as s:
        types = list(s.scalars(select(Event.type).where(Event.ticket_id == case.id)))
    assert "pickup.rebooked" in types

    # The courier came: an agent (or the carrier's feed) marks it collected.
    act_on(sessions, scripts, number, action="mark_collected", tracking_no="JD0001", carrier="JD")
    case = case_row(sessions, number)
    assert (case.status, case.tracking_no, case.carrier) == ("in_transit", "JD0001", "JD")
    assert case.pickup is not None  # where it was collected stays on the case
    sent = await me.press(MenuCb(action="mine"))
    assert t("zh-CN", "status.in_transit") in texts_of(sent)[1]


async def test_a_submitted_case_shows_when_we_answer(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    scripts: Any,
) -> None:
    add_order(sessions, lang="zh-CN")
    number = open_case_for(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="zh-CN")
    sent = await me.press(MenuCb(action="mine"))
    line = texts_of(sent)[1]
    assert number in line
    prefix = t("zh-CN", "cases.due_shop", due="")
    assert prefix in line
    # In the shop's timezone: Sunday 10:00 in Shanghai, the desk opens on Monday.
    assert "2026年11月23日" in line
    assert CaseCb(number=number, action="pickup").pack() not in buttons_of(sent)
    with sessions() as s:
        assert s.scalar(select(OutboxMessage.id).where(OutboxMessage.kind == "reply")) is None
