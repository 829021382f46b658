"""The outbox's payloads as typed values (tickets/messages/payloads.py): rows stored by the
previous version, as it wrote them, are still sent as they were and keep their stored shape;
a row whose payload is not its kind's fails visibly instead of stalling its chat (or every
webhook delivery)."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot
from aiogram.methods import SendMessage
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import DeliveryWorker
from bot.i18n import Texts
from bot.keyboards import AgentCb, CaseCb
from tests.factories import NOW, outbox_row, queue
from tests.fakes.clock import Clock
from tests.fakes.telegram import FAST, FakeSession, buttons_of
from tickets.messages import payloads
from tickets.models import OutboxMessage, WebhookSubscription
from tickets.webhooks import claim

pytestmark = pytest.mark.usefixtures("db_guard")

AGENTS_CHAT = -100123

# Payloads exactly as the previous release wrote them (dicts built in place), one per kind,
# with keys this version does not read (they must survive a load and a write).
OLD_NOTICE = {
    "language": "en",
    "script": "notice_approved",
    "text": "Approved: please ship the item back.",
    "parse_mode": "HTML",
    "keyboard": "return_shipping",
    "case_no": "AS-20261123-0001",
}
OLD_ANSWER = {
    "method": "sendMessage",
    "params": {
        "chat_id": 5001,
        "text": "Which order?",
        "reply_markup": {"inline_keyboard": [[{"text": "T1001", "callback_data": "o:0"}]]},
    },
}
# A card of an older version: its number under "case_no", facts for machines beside it.
OLD_CARD = {
    "type": "case.created",
    "case_no": "AS-20261123-0002",
    "group": "returns",
    "priority": "normal",
    "text": "New case AS-20261123-0002",
}
# A kind this version has no model for: its text goes out as the worker always sent it.
OLD_OTHER = {"language": "en", "text": "A message of a kind retired since", "parse_mode": None}


def add_row(
    sessions: sessionmaker[Session], kind: str, payload: dict[str, Any], channel: str = "telegram"
) -> int:
    with sessions() as s:
        row = OutboxMessage(
            channel=channel,
            recipient="agents" if channel == "agents" else "5001",
            kind=kind,
            payload=payload,
            next_attempt_at=NOW,
            created_at=NOW,
        )
        s.add(row)
        s.commit()
        return row.id


def worker(bot: Bot, sessions: sessionmaker[Session], settings: Any) -> DeliveryWorker:
    return DeliveryWorker(
        bot=bot,
        sessions=sessions,
        settings=settings.model_copy(update={"agent_chat_id": AGENTS_CHAT}),
        config=FAST,
        texts=Texts.load(),
        clock=Clock(NOW),
    )


async def test_rows_stored_by_the_previous_version_are_sent_as_they_were(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any
) -> None:
    notice = add_row(sessions, "notice", OLD_NOTICE)
    answer = add_row(sessions, "bot_answer", OLD_ANSWER)
    other = add_row(sessions, "legacy_kind", OLD_OTHER)
    card = add_row(sessions, "case.created", OLD_CARD, channel="agents")

    report = await worker(bot, sessions, settings).drain()

    assert report.sent == 4 and report.failed == 0
    sent: dict[int, list[SendMessage]] = {}
    for m in fake.sent():
        sent.setdefault(m.chat_id, []).append(m)
    to_customer = sent[5001]
    assert [m.text for m in to_customer] == [
        OLD_NOTICE["text"],
        "Which order?",
        OLD_OTHER["text"],
    ]
    # The notice still carries "tracking number" and "book a pickup" for its case.
    assert CaseCb(number="AS-20261123-0001", action="track").pack() in buttons_of([to_customer[0]])
    assert buttons_of([to_customer[1]]) == ["o:0"]
    # The old card still offers "take it" for the case it names under its old key.
    [to_agents] = sent[AGENTS_CHAT]
    assert AgentCb(action="take", number="AS-20261123-0002").pack() in buttons_of([to_agents])
    # Stored as they were; the card now also knows its message (for its later edits).
    assert outbox_row(sessions, notice).payload == OLD_NOTICE
    assert outbox_row(sessions, answer).payload == OLD_ANSWER
    assert outbox_row(sessions, other).payload == OLD_OTHER
    stored_card = outbox_row(sessions, card).payload
    assert {k: v for k, v in stored_card.items() if k != "telegram_message_id"} == OLD_CARD
    assert isinstance(stored_card["telegram_message_id"], int)


def test_each_old_payload_loads_as_its_kind_and_writes_back_unchanged() -> None:
    cases: list[tuple[str, str, dict[str, Any], type[payloads.Payload]]] = [
        ("telegram", "notice", OLD_NOTICE, payloads.Notice),
        ("web", "bot_answer", OLD_ANSWER, payloads.BotAnswer),
        ("agents", "case.created", OLD_CARD, payloads.AgentCard),
        ("telegram", "legacy_kind", OLD_OTHER, payloads.CustomerMessage),
        ("agents", "card.taken", {"number": "AS-1", "agent": "li"}, payloads.CardTaken),
        (
            "web",
            "web_echo",
            {
                "text": "",
                "file": {"kind": "photo", "name": "a.jpg"},
                "stored": {
                    "key": "photo/ab/x.jpg",
                    "thumb": "thumbs/ab/x.jpg",
                    "mime": "image/jpeg",
                },
            },
            payloads.WebEcho,
        ),
        (
            "webhook",
            "case.created",
            {
                "subscription_id": 3,
                "webhook_id": "msg_1",
                "body": {"type": "case.created", "data": {"case": {"number": "AS-1"}}},
            },
            payloads.WebhookDelivery,
        ),
    ]
    for channel, kind, stored, model in cases:
        loaded = payloads.load(channel=channel, kind=kind, data=stored)
        assert type(loaded) is model, kind
        assert payloads.dump(loaded) == stored, kind


async def test_a_reply_whose_file_is_unnamed_fails_visibly_and_its_chat_goes_on(
    bot: Bot, fake: FakeSession, sessions: sessionmaker[Session], settings: Any
) -> None:
    """A reply row whose attachment has no storage key (a hand-edited or damaged row) is
    marked failed as unreadable; the message queued behind it to the same chat still goes."""
    broken = add_row(
        sessions,
        "reply",
        {"language": "en", "message_id": 1, "text": "", "attachment": {"kind": "photo"}},
    )
    [after] = queue(sessions, "the next message")

    await worker(bot, sessions, settings).drain()

    row = outbox_row(sessions, broken)
    assert row.status == "failed" and "unreadable" in (row.last_error or "")
    assert outbox_row(sessions, after).status == "sent"
    assert [m.text for m in fake.sent()] == ["the next message"]


def test_a_webhook_row_that_does_not_read_fails_and_the_next_is_claimed(
    sessions: sessionmaker[Session],
) -> None:
    """A webhook delivery row without its id (damaged by hand) fails unsent with why; the
    claim goes on to the next row instead of stopping every delivery."""
    with sessions() as s:
        sub = WebhookSubscription(
            url="https://erp.example.com/h", events=["case.created"], secret="whsec_AAAA"
        )
        s.add(sub)
        s.flush()
        body = {"type": "case.created", "timestamp": NOW.isoformat(), "data": {}}
        rows = [
            OutboxMessage(
                channel="webhook",
                recipient=f"{sub.id}:{n}",
                kind="case.created",
                payload=payload,
                next_attempt_at=NOW,
                created_at=NOW,
            )
            for n, payload in enumerate(
                [
                    {"subscription_id": sub.id, "body": body},
                    {"subscription_id": sub.id, "webhook_id": "msg_2", "body": body},
                ]
            )
        ]
        s.add_all(rows)
        s.commit()
        damaged, good = rows[0].id, rows[1].id

    with sessions() as s:
        claimed = claim(s, now=NOW, worker_id="w1", lease_seconds=60, limit=10)
        s.commit()

    assert [(c.id, c.webhook_id) for c in claimed] == [(good, "msg_2")]
    row = outbox_row(sessions, damaged)
    assert row.status == "failed" and "does not read" in (row.last_error or "")
