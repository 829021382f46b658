"""The agents' group chat, through the real aiogram Dispatcher and the delivery worker with
Telegram faked at the HTTP-session boundary: cards with "take it" and "open in the panel",
taking a case, answering a customer by replying to a card, and strangers told what to do.
Over 500 lines as one file: one conversation (the agents' chat) and the fakes its tests share.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    EditMessageText,
    GetFile,
    SendDocument,
    SendMessage,
    SendPhoto,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import DeliveryWorker
from bot.i18n import Texts
from bot.keyboards import AgentCb
from bot.routers.agents import case_of
from tests.factories import NOW, UTC_ZONE, add_order, case_row, context, open_case_for
from tests.fakes.telegram import (
    FAST,
    STICKER,
    Customer,
    FakeSession,
    GroupMember,
    dispatcher,
    jpeg,
    texts_of,
    with_delivery,
)
from tickets.context import SYSTEM as SYSTEM_ACTOR
from tickets.context import Context
from tickets.models import (
    Agent,
    Event,
    InboundUpdate,
    OutboxMessage,
    Ticket,
)
from tickets.models import (
    Customer as CustomerRow,
)
from tickets.models import Message as MessageRow
from tickets.policy.rules import Policy
from tickets.sla.sweep import run_sweep

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()
CHAT = -100123
PANEL = "https://desk.example.com"


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


@pytest.fixture
def agents_settings(settings: Any) -> Any:
    return settings.model_copy(update={"agent_chat_id": CHAT, "public_url": PANEL + "/"})


@pytest.fixture
def dp(sessions: sessionmaker[Session], agents_settings: Any, scripts: Any, bot: Bot) -> Dispatcher:
    dp = dispatcher(sessions, agents_settings, scripts)
    return with_delivery(dp, bot, sessions, agents_settings, lambda: NOW)


def worker(bot: Bot, sessions: sessionmaker[Session], settings: Any) -> DeliveryWorker:
    return DeliveryWorker(
        bot=bot, sessions=sessions, settings=settings, config=FAST, clock=lambda: NOW
    )


def add_agent(sessions: sessionmaker[Session], telegram_user_id: int | None = 777) -> None:
    with sessions() as s:
        s.add(
            Agent(
                username="wang",
                display_name="Wang Fang",
                role="agent",
                group="service",
                language="zh-CN",
                telegram_user_id=telegram_user_id,
            )
        )
        s.commit()


def cards_sent(fake: FakeSession) -> list[SendMessage]:
    return [m for m in fake.sent() if m.chat_id == CHAT]


def buttons(markup: Any) -> list[tuple[str, str | None, str | None]]:
    assert isinstance(markup, InlineKeyboardMarkup)
    return [(b.text, b.callback_data, b.url) for row in markup.inline_keyboard for b in row]


# ---------------------------------------------------------------- cards


async def test_a_new_case_is_posted_as_a_card_with_take_and_panel_buttons(
    bot: Bot,
    fake: FakeSession,
    sessions: sessionmaker[Session],
    agents_settings: Any,
    scripts: Any,
) -> None:
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    report = await worker(bot, sessions, agents_settings).run_once()
    assert report.failed == 0
    [card] = cards_sent(fake)
    assert number in card.text
    assert buttons(card.reply_markup) == [
        (t("zh-CN", "agents.btn_take"), AgentCb(action="take", number=number).pack(), None),
        (t("zh-CN", "agents.btn_panel"), None, f"{PANEL}/panel/cases/{number}"),
    ]
    with sessions() as s:
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.channel == "agents"))
        assert row is not None and row.kind == "case.created" and row.status == "sent"


async def test_sla_warnings_and_breaches_are_cards_with_the_same_buttons(
    bot: Bot,
    fake: FakeSession,
    sessions: sessionmaker[Session],
    agents_settings: Any,
    scripts: Any,
) -> None:
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    with sessions() as s:
        s.query(OutboxMessage).delete()
        s.commit()
    for hour in range(0, 72, 2):  # the scheduler's sweeps over three days
        ctx = Context(policy=Policy(), now=NOW + timedelta(hours=hour), tz=agents_settings.tz)
        run_sweep(sessions=sessions, ctx=ctx)
    w = DeliveryWorker(
        bot=bot, sessions=sessions, settings=agents_settings, config=FAST, clock=lambda: ctx.now
    )
    await w.run_once()
    with sessions() as s:
        rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "agents")))
    assert {"sla.warning", "sla.breached"} <= {r.kind for r in rows}
    assert all(r.status == "sent" for r in rows)
    cards = cards_sent(fake)
    assert len(cards) == len(rows)  # one card per row
    for card in cards:
        assert number in card.text
        assert (
            t("zh-CN", "agents.btn_take"),
            AgentCb(action="take", number=number).pack(),
            None,
        ) in buttons(card.reply_markup)


async def test_a_panel_link_telegram_refuses_does_not_stop_the_card(
    bot: Bot,
    fake: FakeSession,
    sessions: sessionmaker[Session],
    settings: Any,
    scripts: Any,
) -> None:
    local = settings.model_copy(update={"agent_chat_id": CHAT})  # public_url: 127.0.0.1
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    with sessions() as s:
        s.query(OutboxMessage).filter(OutboxMessage.channel != "agents").delete()
        s.commit()
    fake.queue_error(SendMessage, 400, "Bad Request: BUTTON_URL_INVALID")
    report = await worker(bot, sessions, local).run_once()
    first, second = cards_sent(fake)
    assert any(url for _, _, url in buttons(first.reply_markup))
    assert buttons(second.reply_markup) == [
        (t("zh-CN", "agents.btn_take"), AgentCb(action="take", number=number).pack(), None)
    ]
    assert report.failed == 0
    with sessions() as s:
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.channel == "agents"))
        assert row is not None and row.status == "sent"


def test_the_case_of_a_message_comes_from_its_button_or_its_text() -> None:
    from aiogram.types import Chat, InlineKeyboardButton, Message

    chat = Chat(id=CHAT, type="supergroup")
    with_button = Message(
        message_id=1,
        date=NOW,
        chat=chat,
        text="🆕 something",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text="take", callback_data=AgentCb(action="take", number="AS-1").pack()
                    )
                ]
            ]
        ),
    )
    assert case_of(with_button, "AS") == "AS-1"
    text_only = Message(message_id=2, date=NOW, chat=chat, text="🔴 AS-20261122-0007: late")
    assert case_of(text_only, "AS") == "AS-20261122-0007"
    assert case_of(Message(message_id=3, date=NOW, chat=chat, text="hello"), "AS") is None
    assert (
        case_of(Message(message_id=4, date=NOW, chat=chat, text="XAS-20261122-0007"), "AS") is None
    )


# ---------------------------------------------------------------- take it


async def test_take_it_assigns_the_case_to_the_linked_agent(
    dp: Dispatcher, bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions)
    add_agent(sessions)
    number = open_case_for(sessions, scripts)
    wang = GroupMember(dp, bot, chat_id=CHAT, user_id=777)
    # The new case's card, as the worker posted it in the group.
    await dp["delivery"].drain()
    [posted] = [m for m in fake.sent() if m.chat_id == CHAT]
    with sessions() as s:
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "case.created"))
        assert row is not None
        card = wang.bots_message(
            posted.text, posted.reply_markup, message_id=row.payload["telegram_message_id"]
        )
    sent = await wang.press(AgentCb(action="take", number=number), on=card)

    [answer] = [r for r in sent if isinstance(r, AnswerCallbackQuery)]
    assert answer.text == TEXTS.plain("zh-CN", "agents.taken_toast", case_no=number)
    assert texts_of(sent) == []  # no chatter in the group: the card itself says it
    # The card now says who has the case, and offers it no more (one edit: text and buttons).
    [updated] = [r for r in sent if isinstance(r, EditMessageText)]
    assert not [r for r in sent if isinstance(r, EditMessageReplyMarkup)]
    assert (updated.chat_id, updated.message_id) == (CHAT, card.message_id)
    taken = t("zh-CN", "agents.taken", case_no=number, agent="Wang Fang")
    assert updated.text == f"{posted.text}\n\n{taken}"
    assert buttons(updated.reply_markup) == [
        (t("zh-CN", "agents.btn_panel"), None, f"{PANEL}/panel/cases/{number}")
    ]
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None and ticket.assignee is not None
        assert ticket.assignee.username == "wang"
        event = s.scalar(
            select(Event).where(Event.ticket_id == ticket.id, Event.type == "case.assigned")
        )
        assert event is not None and event.actor == "agent:wang"

    again = await wang.press(AgentCb(action="take", number=number), on=card)
    [answer] = [r for r in again if isinstance(r, AnswerCallbackQuery)]
    assert answer.text == TEXTS.plain("zh-CN", "agents.already_yours", case_no=number)
    assert texts_of(again) == []

    # A colleague pressing the same (stale) button does not take it from Wang: told who has it.
    with sessions() as s:
        s.add(Agent(username="li", display_name="Li Na", role="agent", telegram_user_id=778))
        s.commit()
    li = GroupMember(dp, bot, chat_id=CHAT, user_id=778, first_update=80_000)
    late = await li.press(AgentCb(action="take", number=number), on=card)
    [answer] = [r for r in late if isinstance(r, AnswerCallbackQuery)]
    assert answer.show_alert is True
    assert answer.text == TEXTS.plain(
        "zh-CN", "agents.taken_by_other", case_no=number, agent="Wang Fang"
    )
    assert texts_of(late) == []
    [edit] = [r for r in late if isinstance(r, EditMessageReplyMarkup)]
    assert AgentCb(action="take", number=number).pack() not in [
        b[1] for b in buttons(edit.reply_markup)
    ]
    assert case_row(sessions, number).assignee_id == ticket.assignee_id


async def test_a_case_assigned_in_the_panel_updates_its_cards_in_the_group(
    dp: Dispatcher,
    bot: Bot,
    fake: FakeSession,
    sessions: sessionmaker[Session],
    agents_settings: Any,
    scripts: Any,
) -> None:
    from tickets.cases.lifecycle import perform_action
    from tickets.context import Actor
    from tickets.schemas import ActionRequest

    add_order(sessions)
    add_agent(sessions)
    number = open_case_for(sessions, scripts)
    w = worker(bot, sessions, agents_settings)
    await w.drain()
    [card] = [m for m in fake.sent() if m.chat_id == CHAT]
    before = len(fake.requests)
    with sessions() as s:
        lead = Agent(username="lead", display_name="Lead", role="lead")
        s.add(lead)
        s.flush()
        ctx = context(scripts, tz=UTC_ZONE)
        request = ActionRequest(action="assign", assignee="wang")
        perform_action(
            session=s,
            number=number,
            request=request,
            actor=Actor(kind="agent", agent=lead),
            ctx=ctx,
        )
        s.commit()
    await w.drain()
    [edit] = [r for r in fake.requests[before:] if isinstance(r, EditMessageText)]
    taken = t("zh-CN", "agents.taken", case_no=number, agent="Wang Fang")
    assert edit.text == f"{card.text}\n\n{taken}"
    assert [b[1] for b in buttons(edit.reply_markup)] == [None]  # the panel link only
    # Assigning it to the same agent again changes nothing in the group.
    with sessions() as s:
        perform_action(session=s, number=number, request=request, actor=SYSTEM_ACTOR, ctx=ctx)
        s.commit()
    await w.drain()
    assert len([r for r in fake.requests[before:] if isinstance(r, EditMessageText)]) == 1


async def test_a_stranger_pressing_take_it_is_told_to_ask_an_admin(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions)
    add_agent(sessions)
    number = open_case_for(sessions, scripts)
    stranger = GroupMember(dp, bot, chat_id=CHAT, user_id=4242, name="Zhao")
    sent = await stranger.press(
        AgentCb(action="take", number=number), on=stranger.bots_message(number)
    )
    [answer] = [r for r in sent if isinstance(r, AnswerCallbackQuery)]
    assert answer.show_alert is True
    assert answer.text == TEXTS.plain("zh-CN", "agents.not_linked", user_id=4242)
    assert "4242" in (answer.text or "")
    assert texts_of(sent) == []  # privately, not in front of the whole group
    assert case_row(sessions, number).assignee_id is None


async def test_taking_a_finished_case_says_why_not(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    from tickets.cases.lifecycle import perform_action
    from tickets.context import SYSTEM
    from tickets.schemas import ActionRequest

    add_order(sessions)
    add_agent(sessions)
    number = open_case_for(sessions, scripts)
    with sessions() as s:
        ctx = context(scripts, tz=UTC_ZONE)
        perform_action(
            session=s, number=number, request=ActionRequest(action="cancel"), actor=SYSTEM, ctx=ctx
        )
        s.commit()
    wang = GroupMember(dp, bot, chat_id=CHAT)
    sent = await wang.press(AgentCb(action="take", number=number), on=wang.bots_message(number))
    [answer] = [r for r in sent if isinstance(r, AnswerCallbackQuery)]
    assert answer.show_alert is True
    assert (answer.text or "").startswith(
        TEXTS.plain("zh-CN", "agents.not_possible", case_no=number, why="")
    )
    assert case_row(sessions, number).assignee_id is None


# ---------------------------------------------------------------- replying to a card


async def test_a_reply_to_a_card_answers_the_customer_as_that_agent(
    dp: Dispatcher,
    bot: Bot,
    fake: FakeSession,
    sessions: sessionmaker[Session],
    agents_settings: Any,
    scripts: Any,
) -> None:
    add_order(sessions)
    add_agent(sessions)
    number = open_case_for(sessions, scripts)
    wang = GroupMember(dp, bot, chat_id=CHAT)
    card = wang.bots_message(f"🔴 {number}: 首次响应已超时")
    sent = await wang.say("您好，我们已经收到您的照片，今天内处理 <b>马上</b>", reply_to=card)
    in_group = [m for m in sent if isinstance(m, SendMessage) and m.chat_id == CHAT]
    to_customer = [m for m in sent if isinstance(m, SendMessage) and m.chat_id == 5001]
    assert texts_of(in_group) == [t("zh-CN", "agents.reply_sent", case_no=number)]
    [confirmation] = in_group
    assert confirmation.reply_parameters is not None
    assert confirmation.reply_parameters.message_id == wang.message_id
    # The customer gets the agent's words, as written (the HTML kept: agents may format).
    assert texts_of(to_customer) == ["您好，我们已经收到您的照片，今天内处理 <b>马上</b>"]

    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        [msg] = [m for m in ticket.messages if m.author == "agent"]
        assert msg.agent is not None and msg.agent.username == "wang"
        assert msg.text.startswith("您好") and not msg.internal
        out = s.scalar(
            select(OutboxMessage).where(
                OutboxMessage.ticket_id == ticket.id, OutboxMessage.kind == "reply"
            )
        )
        assert out is not None and (out.channel, out.recipient, out.status) == (
            "telegram",
            "5001",
            "sent",
        )


async def test_replies_that_cannot_go_through_are_explained(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions)
    add_agent(sessions)
    number = open_case_for(sessions, scripts)
    stranger = GroupMember(dp, bot, chat_id=CHAT, user_id=4242)
    sent = await stranger.say("hello", reply_to=stranger.bots_message(number))
    assert texts_of(sent) == [t("zh-CN", "agents.not_linked", user_id=4242)]

    wang = GroupMember(dp, bot, chat_id=CHAT, first_update=60_000)
    sent = await wang.say("hello", reply_to=wang.bots_message("早上好"))
    assert texts_of(sent) == [t("zh-CN", "agents.reply_no_case")]
    sent = await wang.say("hello", reply_to=wang.bots_message(f"{number[:-4]}9999"))
    assert texts_of(sent)[0].startswith(
        t("zh-CN", "agents.not_possible", case_no=f"{number[:-4]}9999", why="")
    )
    with sessions() as s:
        assert s.scalar(select(func.count(MessageRow.id)).where(MessageRow.author == "agent")) == 0


async def test_a_photo_replied_to_a_card_reaches_the_customer_cleaned_and_stays_on_the_case(
    dp: Dispatcher,
    bot: Bot,
    fake: FakeSession,
    sessions: sessionmaker[Session],
    agents_settings: Any,
    scripts: Any,
) -> None:
    add_order(sessions)
    add_agent(sessions)
    number = open_case_for(sessions, scripts)
    wang = GroupMember(dp, bot, chat_id=CHAT)
    card = wang.bots_message(f"🆕 {number}")
    # A photo taken on the agent's phone, its position in the EXIF, captioned for the customer.
    sent = await wang.photo(jpeg("blue", gps=True), caption="贴这个标签寄回", reply_to=card)
    in_group = [m for m in sent if isinstance(m, SendMessage) and m.chat_id == CHAT]
    assert texts_of(in_group) == [t("zh-CN", "agents.reply_sent", case_no=number)]
    [photo] = [m for m in sent if isinstance(m, SendPhoto)]
    assert (photo.chat_id, photo.caption) == (5001, "贴这个标签寄回")
    assert isinstance(photo.photo, BufferedInputFile)
    # What the customer gets is the cleaned copy: no location of the agent's phone.
    assert Image.open(io.BytesIO(photo.photo.data)).getexif().get_ifd(0x8825) == {}
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        [msg] = [m for m in ticket.messages if m.author == "agent"]
        assert msg.text == "贴这个标签寄回" and msg.agent is not None
        assert [a.kind for a in msg.attachments] == ["photo"]
        assert (
            s.scalar(
                select(func.count(OutboxMessage.id)).where(
                    OutboxMessage.ticket_id == ticket.id,
                    OutboxMessage.kind == "reply",
                    OutboxMessage.status == "sent",
                )
            )
            == 1
        )

    # A photo to the group that answers no card is the agents' own: not even downloaded.
    before = len(fake.requests)
    assert await wang.photo(jpeg("green")) == []
    assert fake.requests[before:] == []
    # Nor is one from a member who is no agent: they are told to get linked.
    stranger = GroupMember(dp, bot, chat_id=CHAT, user_id=4242, first_update=90_000)
    sent = await stranger.photo(jpeg("red"), reply_to=card)
    assert not [r for r in sent if isinstance(r, GetFile)]
    assert texts_of(sent) == [t("zh-CN", "agents.not_linked", user_id=4242)]
    # A reply with nothing for the customer is explained.
    sent = await wang.send(sticker=STICKER, reply_to_message=card)
    assert texts_of(sent) == [t("zh-CN", "agents.reply_empty")]


async def test_a_photo_telegram_refuses_as_a_photo_reaches_the_customer_as_a_file(
    dp: Dispatcher, bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], scripts: Any
) -> None:
    """A long screenshot or a 50 MP picture is refused by sendPhoto: it goes as a document."""
    add_order(sessions)
    add_agent(sessions)
    number = open_case_for(sessions, scripts)
    wang = GroupMember(dp, bot, chat_id=CHAT)
    fake.queue_error(SendPhoto, 400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
    sent = await wang.photo(jpeg("blue"), caption="看这里", reply_to=wang.bots_message(number))
    [as_file] = [m for m in sent if isinstance(m, SendDocument)]
    assert (as_file.chat_id, as_file.caption) == (5001, "看这里")
    with sessions() as s:
        status = s.scalar(select(OutboxMessage.status).where(OutboxMessage.kind == "reply"))
        assert status == "sent"


async def test_the_agents_own_talk_is_left_alone(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_agent(sessions)
    wang = GroupMember(dp, bot, chat_id=CHAT)
    sent = await wang.say("lunch?")
    other = GroupMember(dp, bot, chat_id=CHAT, user_id=778, first_update=70_000)
    sent += await other.say(
        "yes", reply_to=other.bots_message("lunch?").model_copy(update={"from_user": wang.user})
    )
    assert sent == []
    with sessions() as s:
        assert s.scalar(select(func.count(InboundUpdate.id))) == 2
        # Nobody in the group became a customer.
        assert s.scalar(select(func.count(CustomerRow.id))) == 0


async def test_without_an_agents_chat_a_group_gets_nothing(
    bot: Bot, sessions: sessionmaker[Session], settings: Any, scripts: Any
) -> None:
    plain = with_delivery(
        dispatcher(sessions, settings, scripts), bot, sessions, settings, lambda: NOW
    )
    add_order(sessions)
    add_agent(sessions)
    number = open_case_for(sessions, scripts)
    wang = GroupMember(plain, bot, chat_id=CHAT)
    assert await wang.say("hi", reply_to=wang.bots_message(number)) == []
    assert case_row(sessions, number).assignee_id is None
    # A customer in private is unaffected.
    me = Customer(plain, bot, user_id=5001, language="en")
    assert texts_of(await me.text("/start"))
