"""The outbox worker against Telegram faked at the HTTP-session boundary: limits, retry_after,
5xx and network retries, blocked customers, the agents' chat, and every row sent once."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import SendMessage
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import DeliveryConfig, DeliveryWorker
from bot.i18n import Texts
from tests.conftest import in_thread
from tests.factories import NOW, UTC_ZONE, context, order_json, outbox_row, queue
from tests.fakes.clock import Clock, VirtualTimeLoop
from tests.fakes.telegram import FAST, FakeSession
from tickets.cases.opening import open_case
from tickets.context import SYSTEM
from tickets.models import Event, OutboxMessage, Ticket
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn, TicketCreate

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


def worker(
    bot: Bot,
    sessions: sessionmaker[Session],
    settings: Any,
    clock: Clock,
    config: DeliveryConfig = FAST,
    **timing: Any,
) -> DeliveryWorker:
    return DeliveryWorker(
        bot=bot,
        sessions=sessions,
        settings=settings,
        config=config,
        texts=Texts.load(),
        clock=clock,
        **timing,
    )


def a_case(sessions: sessionmaker[Session], scripts: Any) -> Ticket:
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(order_json()), now=NOW)
        ctx = context(scripts, tz=UTC_ZONE)
        ticket = open_case(
            session=s,
            request=TicketCreate(kind="complaint", reason="service", order_no="T1001"),
            actor=SYSTEM,
            ctx=ctx,
        )
        s.commit()
        s.expunge(ticket)
        return ticket


async def test_due_rows_are_sent_with_their_text_and_marked_sent(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    due = queue(sessions, "<b>one</b>", "two")
    later = queue(sessions, "not yet", due=NOW + timedelta(minutes=5))
    web = queue(sessions, "for the web chat", channel="web")
    report = await worker(bot, sessions, settings, clock).run_once()
    assert (report.claimed, report.sent) == (2, 2)
    assert [(m.chat_id, m.text, m.parse_mode) for m in fake.sent()] == [
        (5001, "<b>one</b>", "HTML"),
        (5001, "two", "HTML"),
    ]
    for ident in due:
        r = outbox_row(sessions, ident)
        assert (r.status, r.sent_at, r.attempts) == ("sent", NOW, 1)
    assert outbox_row(sessions, later[0]).status == "pending"
    assert outbox_row(sessions, web[0]).status == "pending"  # another worker's channel

    report = await worker(bot, sessions, settings, clock).run_once()
    assert report.claimed == 0 and len(fake.sent()) == 2


async def test_retry_after_is_honoured_and_later_messages_to_the_chat_wait_in_order(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    first, second = queue(sessions, "first", "second")
    other = queue(sessions, "other chat", recipient="6001")[0]
    fake.queue_error(SendMessage, 429, "Too Many Requests: retry after 7", retry_after=7)
    w = worker(bot, sessions, settings, clock)
    report = await w.run_once()
    assert report.sent == 1  # the other chat is not held up
    r1, r2 = outbox_row(sessions, first), outbox_row(sessions, second)
    assert r1.status == "pending" and r1.next_attempt_at == NOW + timedelta(seconds=7)
    assert "retry after 7" in (r1.last_error or "") and r1.attempts == 1
    assert r2.status == "pending" and r2.next_attempt_at == NOW + timedelta(seconds=7)
    assert r2.attempts == 0  # never tried: it keeps its place behind the first
    assert outbox_row(sessions, other).status == "sent"

    clock.now = NOW + timedelta(seconds=3)
    assert (await w.run_once()).claimed == 0  # still inside the wait
    clock.now = NOW + timedelta(seconds=7)
    w.pacer.forget()  # type: ignore[attr-defined]  # the test's clock moved, not the real one
    report = await w.run_once()
    assert report.sent == 2
    texts = [m.text for m in fake.sent() if m.chat_id == 5001]
    assert texts == ["first", "first", "second"]  # the refused try, then each once, in order
    assert outbox_row(sessions, first).status == outbox_row(sessions, second).status == "sent"


async def test_a_message_queued_after_a_refused_one_does_not_overtake_it(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    """A row queued while an earlier row of the same chat waits out a 429 waits behind it,
    even though it is due itself (a later pass)."""
    [first] = queue(sessions, "first")
    fake.queue_error(SendMessage, 429, "Too Many Requests: retry after 7", retry_after=7)
    w = worker(bot, sessions, settings, clock)
    await w.run_once()
    [second] = queue(sessions, "second")
    assert (await w.run_once()).claimed == 0
    assert outbox_row(sessions, second).attempts == 0
    clock.now = NOW + timedelta(seconds=7)
    w.pacer.forget()  # type: ignore[attr-defined]  # the test's clock moved, not the real one
    await w.drain()
    assert [m.text for m in fake.sent() if m.chat_id == 5001] == ["first", "first", "second"]
    assert outbox_row(sessions, first).status == outbox_row(sessions, second).status == "sent"


async def test_a_chat_that_must_wait_does_not_hold_up_the_others(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    """Three cards for the agents' group (one per 5 s) and a customer's answer: the answer
    goes in the same pass; the pass does not sleep out the group's pace, it puts the later
    cards back, due when the group is."""
    cards = queue(sessions, "card 1", "card 2", "card 3", recipient="-1001234")
    [answer] = queue(sessions, "your answer", recipient="5001")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    config = DeliveryConfig(rate_per_second=1000, per_chat_interval=0.0, group_interval=5.0)
    w = DeliveryWorker(
        bot=bot, sessions=sessions, settings=settings, config=config, clock=clock, sleep=sleep
    )
    await w.run_once()
    assert [m.text for m in fake.sent()] == ["card 1", "your answer"]
    assert sum(slept) <= config.max_inline_wait
    assert outbox_row(sessions, answer).status == "sent"
    later = [outbox_row(sessions, c) for c in cards[1:]]
    assert all(r.status == "pending" and r.attempts == 0 for r in later)
    assert all(NOW < r.next_attempt_at <= NOW + timedelta(seconds=5) for r in later)


async def test_an_edit_telegram_calls_not_modified_counts_as_done(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    from aiogram.methods import EditMessageReplyMarkup

    from bot.replies import Replies

    replies = Replies(texts=Texts.load(), language="en", chat_id=5001)
    replies.edit_markup(77, None)

    def queue() -> None:
        with sessions() as s:
            replies.queue(s, NOW)
            s.commit()

    await in_thread(queue)
    fake.queue_error(
        EditMessageReplyMarkup,
        400,
        "Bad Request: message is not modified: specified new message content and reply "
        "markup are exactly the same as a current content and reply markup of the message",
    )
    report = await worker(bot, sessions, settings, clock).run_once()
    assert (report.sent, report.failed) == (1, 0)


async def test_server_and_network_errors_are_retried_with_backoff(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    ident = queue(sessions, "hello")[0]
    fake.queue_error(SendMessage, 502, "Bad Gateway")
    reset = TelegramNetworkError(method=SendMessage(chat_id=1, text="x"), message="reset")
    fake.queue(SendMessage, reset)
    w = worker(bot, sessions, settings, clock)
    await w.run_once()
    r = outbox_row(sessions, ident)
    assert r.status == "pending" and r.attempts == 1
    assert r.next_attempt_at == NOW + timedelta(seconds=2)
    assert "TelegramServerError" in (r.last_error or "")

    clock.now = NOW + timedelta(seconds=2)
    await w.run_once()
    r = outbox_row(sessions, ident)
    assert r.status == "pending" and r.attempts == 2
    assert r.next_attempt_at == clock.now + timedelta(seconds=4)  # doubled
    assert "TelegramNetworkError" in (r.last_error or "")

    clock.now += timedelta(seconds=4)
    await w.run_once()
    r = outbox_row(sessions, ident)
    assert (r.status, r.attempts) == ("sent", 3)
    assert [m.text for m in fake.sent()] == ["hello"] * 3


async def test_attempts_are_bounded(
    bot: Bot,
    fake: FakeSession,
    sessions: sessionmaker[Session],
    settings: Any,
    clock: Clock,
    scripts: Any,
) -> None:
    case = a_case(sessions, scripts)
    with sessions() as s:
        s.query(OutboxMessage).delete()
        s.commit()
    ident = queue(sessions, "hello", ticket_id=case.id)[0]
    config = DeliveryConfig(
        rate_per_second=1000, per_chat_interval=0, group_interval=0, max_attempts=2
    )
    w = worker(bot, sessions, settings, clock, config)
    for _ in range(2):
        fake.queue_error(SendMessage, 500, "Internal Server Error")
        await w.run_once()
        clock.now += timedelta(hours=1)
    r = outbox_row(sessions, ident)
    assert r.status == "failed" and "gave up after 2 attempts" in (r.last_error or "")
    with sessions() as s:
        events = list(s.scalars(select(Event).where(Event.type == "delivery.failed")))
        assert len(events) == 1 and events[0].data["outbox_id"] == ident


async def test_a_customer_who_blocked_the_bot_is_marked_and_the_agents_told(
    bot: Bot,
    fake: FakeSession,
    sessions: sessionmaker[Session],
    settings: Any,
    clock: Clock,
    scripts: Any,
) -> None:
    case = a_case(sessions, scripts)
    fake.queue_error(SendMessage, 403, "Forbidden: bot was blocked by the user")
    w = worker(bot, sessions, settings, clock)
    report = await w.run_once()
    assert report.failed == 1
    with sessions() as s:
        notice = s.scalar(
            select(OutboxMessage).where(
                OutboxMessage.ticket_id == case.id, OutboxMessage.channel == "telegram"
            )
        )
        assert notice is not None
        assert notice.status == "failed" and "blocked" in (notice.last_error or "")
        event = s.scalar(select(Event).where(Event.type == "delivery.failed"))
        assert event is not None and event.ticket_id == case.id and event.data["unreachable"]
        card = s.scalar(
            select(OutboxMessage).where(
                OutboxMessage.channel == "agents", OutboxMessage.kind == "customer_unreachable"
            )
        )
        assert card is not None
        assert case.number in card.payload["text"]
    # No agents' chat configured: the card is marked as skipped, with the reason.
    await w.run_once()
    with sessions() as s:
        card = s.scalar(select(OutboxMessage).where(OutboxMessage.channel == "agents"))
        assert card is not None and card.status == "sent"
        assert "AGENT_CHAT_ID" in (card.last_error or "")
    assert len(fake.sent()) == 1


async def test_agents_rows_go_to_the_agents_chat_when_set(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    settings = settings.model_copy(update={"agent_chat_id": -100123})
    ident = queue(sessions, "new case AS-1", channel="agents", recipient="agents")[0]
    await worker(bot, sessions, settings, clock).run_once()
    assert [(m.chat_id, m.text) for m in fake.sent()] == [(-100123, "new case AS-1")]
    assert outbox_row(sessions, ident).status == "sent"


async def test_each_row_is_delivered_once_by_two_workers_at_once(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    idents = []
    for chat in range(20):
        idents += queue(sessions, f"a{chat}", f"b{chat}", recipient=str(1000 + chat))
    one, two = worker(bot, sessions, settings, clock), worker(bot, sessions, settings, clock)
    reports = await asyncio.gather(one.run_once(), two.run_once(), one.run_once())
    assert sum(r.sent for r in reports) == 40
    texts = [m.text for m in fake.sent()]
    assert sorted(texts) == sorted({*texts}) and len(texts) == 40
    assert all(outbox_row(sessions, i).status == "sent" for i in idents)


def paced_pass(
    bot: Bot,
    fake: FakeSession,
    sessions: sessionmaker[Session],
    settings: Any,
    clock: Clock,
    config: DeliveryConfig,
) -> None:
    """One pass of the worker on virtual time (tests/fakes/clock.py): its pace's clock and
    the times the fake Telegram records are the loop's, which moves only by what the worker
    sleeps, so the gaps measured are the pace itself, never the machine's load."""
    loop = VirtualTimeLoop()
    fake.clock = loop.time
    w = worker(bot, sessions, settings, clock, config, monotonic=loop.time)
    loop.run(w.run_once())


def sent_at(fake: FakeSession, chat_id: int) -> list[float]:
    """When each message to `chat_id` went (seconds on the fake's clock)."""
    return [
        t
        for t, m in zip(fake.times, fake.requests, strict=True)
        if isinstance(m, SendMessage) and m.chat_id == chat_id
    ]


def test_rate_limits_overall_and_per_chat(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    queue(sessions, "1", "2", "3", recipient="5001")
    for chat in range(6):
        queue(sessions, "x", recipient=str(2000 + chat))
    config = DeliveryConfig(rate_per_second=40, per_chat_interval=0.2)
    paced_pass(bot, fake, sessions, settings, clock, config)
    times = fake.times
    assert len(times) == 9
    span = times[-1] - times[0]
    assert span >= 8 / 40 * 0.9  # no burst: one message per 1/rate seconds
    same_chat = sent_at(fake, 5001)
    gaps = [b - a for a, b in itertools.pairwise(same_chat)]
    assert all(g >= 0.19 for g in gaps), gaps


def test_a_group_gets_at_most_one_message_per_group_interval(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    """Telegram allows a group about 20 messages a minute: cards to the agents' group (a
    negative chat id) are spaced by `group_interval`, a private chat by its own interval."""
    queue(sessions, "a", "b", "c", recipient="-1001234")
    queue(sessions, "1", "2", recipient="5001")
    config = DeliveryConfig(rate_per_second=1000, per_chat_interval=0.0, group_interval=0.25)
    paced_pass(bot, fake, sessions, settings, clock, config)
    group = sent_at(fake, -1001234)
    private = sent_at(fake, 5001)
    assert len(group) == 3 and len(private) == 2
    assert all(b - a >= 0.24 for a, b in itertools.pairwise(group))
    # The private chat did not wait behind the group.
    assert private[-1] < group[1]


async def test_a_row_without_text_fails_visibly(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    with sessions() as s:
        r = OutboxMessage(
            channel="telegram",
            recipient="5001",
            kind="notice",
            payload={"script": "notice_received", "variables": {}},
            next_attempt_at=NOW,
            created_at=NOW,
        )
        s.add(r)
        s.commit()
        ident = r.id
    await worker(bot, sessions, settings, clock).run_once()
    assert outbox_row(sessions, ident).status == "failed"
    assert "no rendered text" in (outbox_row(sessions, ident).last_error or "")
    assert fake.sent() == []


async def test_the_loop_runs_until_stopped(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    queue(sessions, "hi")
    stop = asyncio.Event()
    w = worker(bot, sessions, settings, clock, DeliveryConfig(idle_seconds=0.01))
    task = asyncio.create_task(w.run(stop))
    for _ in range(100):
        if fake.sent():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert [m.text for m in fake.sent()] == ["hi"]


async def test_rows_queued_behind_a_waiting_row_do_not_stall_the_claim(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any, clock: Clock
) -> None:
    """A chat's first row waits out a retry; its later rows are due earlier than another
    chat's row and fill a whole batch. They must not be claimed (they would overtake it),
    and must not stop the other chat's row from going (issue 18: the claim read the same
    blocked batch on every pass, and nothing was sent again)."""
    [waiting] = queue(sessions, "first", due=NOW + timedelta(seconds=30))
    behind = queue(sessions, "second", "third", due=NOW - timedelta(seconds=10))
    [other] = queue(sessions, "another chat", recipient="6001", due=NOW)
    w = worker(bot, sessions, settings, clock, DeliveryConfig(**{**vars(FAST), "batch_size": 2}))
    report = await w.drain()
    assert report.sent == 1
    assert [(m.chat_id, m.text) for m in fake.sent()] == [(6001, "another chat")]
    assert outbox_row(sessions, other).status == "sent"
    assert all(outbox_row(sessions, r).status == "pending" for r in (waiting, *behind))

    clock.now = NOW + timedelta(seconds=30)
    await w.drain()
    assert [m.text for m in fake.sent() if m.chat_id == 5001] == ["first", "second", "third"]
