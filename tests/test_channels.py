"""No message to a customer waits on a channel nothing delivers (tickets/messages/outbox.py):
through the HTTP app (replies, lifecycle notices, the sweep's reminders) and the panel, on a desk
with the bot off, with it on, and for web-chat cases (no web chat yet)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from api.deps import context_for
from tests.conftest import Api
from tests.factories import NOW, UTC_ZONE, context, order_json
from tickets.auth import create_agent, create_token
from tickets.messages.outbox import delivered_channels
from tickets.models import OutboxMessage, Role, Ticket
from tickets.sla.sweep import run_sweep

PASSWORD = "correct horse battery"


def _desk(
    settings: Any, engine: Engine, sessions: sessionmaker[Session], scripts: Any, **over: Any
) -> Any:
    """The app as `aftersales serve` builds it from these settings (no channels given); the
    web chat off unless asked (these tests are about Telegram and the desk)."""
    from api.app import create_app

    over.setdefault("web_chat", False)

    return create_app(
        settings.model_copy(update=over),
        engine=engine,
        sessions=sessions,
        scripts=scripts,
        clock=lambda: NOW,
    )


def _agents(sessions: sessionmaker[Session]) -> dict[str, str]:
    tokens = {}
    with sessions() as s:
        for name, role in (("alice", Role.agent), ("lena", Role.lead)):
            agent = create_agent(
                session=s,
                username=name,
                role=role,
                group="service",
                password=PASSWORD,
                now=NOW,
            )
            agent.language = "en"
            tokens[name] = create_token(session=s, username=name, now=NOW)
        # The shop's integration: the token that may push orders (README, "Money").
        create_agent(session=s, username="shop", role=Role.agent, now=NOW)
        tokens["shop"] = create_token(session=s, username="shop", now=NOW, scopes=["orders"])
        s.commit()
    return tokens


@pytest.fixture
def bot_off(
    settings: Any, engine: Engine, sessions: sessionmaker[Session], scripts: Any
) -> Iterator[Api]:
    """A desk with no bot token: nothing delivers Telegram (nor the agents' chat)."""
    app = _desk(settings, engine, sessions, scripts)
    tokens = _agents(sessions)
    with TestClient(app) as client:
        yield Api(client, tokens)


@pytest.fixture
def bot_on(settings: Any, engine: Engine, sessions: sessionmaker[Session], scripts: Any) -> Api:
    """A desk with a bot token: Telegram is delivered. (The client's lifespan is not entered,
    so the bot itself does not start: only what the desk queues for it is looked at.)"""
    app = _desk(settings, engine, sessions, scripts, telegram_token="123:abc")
    assert app.state.channels == frozenset({"telegram"})  # no agents' chat set
    tokens = _agents(sessions)
    return Api(TestClient(app), tokens)


def _order(api: Api, order_no: str, *, telegram_user_id: int | None) -> None:
    customer = {"name": "李雷", "phone": "13800138000", "telegram_user_id": telegram_user_id}
    if telegram_user_id is None:
        customer = {"name": "王芳", "phone": "13900139000"}
    r = api.as_("shop").post(
        "/api/v1/orders", json={"orders": [order_json(order_no, customer=customer)]}
    )
    assert r.status_code == 200, r.text


def _case(api: Api, order_no: str, *, channel: str, reason: str = "no_reason") -> str:
    r = api.post(
        "/api/v1/tickets",
        json={
            "order_no": order_no,
            "kind": "return_refund",
            "reason": reason,
            "items": [{"sku": "SOCKS", "quantity": 1}],
            "channel": channel,
        },
    )
    assert r.status_code == 201, r.text
    number: str = r.json()["number"]
    return number


def _rows(sessions: sessionmaker[Session], number: str) -> list[OutboxMessage]:
    with sessions() as s:
        return list(
            s.scalars(
                select(OutboxMessage)
                .join(Ticket, OutboxMessage.ticket_id == Ticket.id)
                .where(Ticket.number == number)
                .order_by(OutboxMessage.id)
            )
        )


def _waiting_on_nothing(sessions: sessionmaker[Session], delivered: frozenset[str]) -> list[Any]:
    """Every pending row whose channel nothing delivers: the rule says none."""
    with sessions() as s:
        return list(
            s.execute(
                select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.kind).where(
                    OutboxMessage.status == "pending", OutboxMessage.channel.notin_(delivered)
                )
            )
        )


def test_a_phone_case_without_a_chat_says_call_them(
    bot_on: Api, sessions: sessionmaker[Session]
) -> None:
    """The bot runs, but this customer never linked Telegram: the reply is kept on the case
    and answered 201 as undeliverable, with why; nothing is queued to wait for a chat."""
    _order(bot_on, "P1", telegram_user_id=None)
    number = _case(bot_on, "P1", channel="phone")
    r = bot_on.post(f"/api/v1/tickets/{number}/replies", json={"text": "We will call you."})
    assert r.status_code == 201, r.text
    delivery = r.json()["delivery"]
    assert delivery["state"] == "undeliverable"
    assert delivery["reason"] == "no_chat"
    assert "call them" in delivery["why"]
    # The notice of receipt and the reply: written undeliverable, none pending.
    rows = _rows(sessions, number)
    assert [(row.kind, row.status) for row in rows] == [
        ("notice", "undeliverable"),
        ("reply", "undeliverable"),
    ]
    assert _waiting_on_nothing(sessions, frozenset({"telegram"})) == []
    case = bot_on.get(f"/api/v1/tickets/{number}").json()
    reply = case["messages"][-1]
    assert reply["text"] == "We will call you."
    assert reply["delivery"]["state"] == "undeliverable"
    events = [e for e in case["events"] if e["type"] == "delivery.undeliverable"]
    assert [(e["data"]["kind"], e["data"]["reason"]) for e in events] == [
        ("notice", "no_chat"),
        ("reply", "no_chat"),
    ]
    assert events[0]["data"]["script"] == "notice_received"


def test_with_the_bot_on_a_linked_customer_s_reply_is_queued(
    bot_on: Api, sessions: sessionmaker[Session]
) -> None:
    _order(bot_on, "T1", telegram_user_id=5001)
    number = _case(bot_on, "T1", channel="phone")
    r = bot_on.post(f"/api/v1/tickets/{number}/replies", json={"text": "On its way."})
    assert r.status_code == 201, r.text
    assert r.json()["delivery"] == {
        "state": "queued",
        "channel": "telegram",
        "reason": None,
        "why": None,
    }
    rows = _rows(sessions, number)
    assert {(row.channel, row.recipient, row.status) for row in rows} == {
        ("telegram", "5001", "pending")
    }
    # An internal note is no message to the customer: no delivery at all.
    note = bot_on.post(
        f"/api/v1/tickets/{number}/replies", json={"text": "check stock", "internal": True}
    )
    assert note.status_code == 201 and note.json()["delivery"] is None
    # Without an agents' chat, no card waits for one (the panel shows the case).
    with sessions() as s:
        assert s.scalar(select(OutboxMessage.id).where(OutboxMessage.channel == "agents")) is None


def test_with_the_bot_off_nothing_waits_for_it(
    bot_off: Api, sessions: sessionmaker[Session]
) -> None:
    """No token: every message to the customer (notices, replies, a script) and every card
    for the agents' chat would wait forever. None is left pending; each shows why."""
    _order(bot_off, "T2", telegram_user_id=5002)
    number = _case(bot_off, "T2", channel="telegram")
    r = bot_off.post(f"/api/v1/tickets/{number}/replies", json={"text": "Hello"})
    assert r.status_code == 201, r.text
    assert r.json()["delivery"]["reason"] == "channel_off:telegram"
    assert "Telegram bot is off" in r.json()["delivery"]["why"]
    r = bot_off.post(
        f"/api/v1/tickets/{number}/replies",
        json={"script": "info_return_policy", "language": "en"},
    )
    assert r.status_code == 201 and r.json()["delivery"]["state"] == "undeliverable"
    r = bot_off.as_("lena").post(f"/api/v1/tickets/{number}/actions", json={"action": "approve"})
    assert r.status_code == 200, r.text
    rows = _rows(sessions, number)
    assert [row.kind for row in rows] == ["notice", "reply", "reply", "notice"]
    assert {row.status for row in rows} == {"undeliverable"}
    # Kept for whoever reads the case: what the customer would have read, and on which chat.
    assert all(row.channel == "telegram" and row.recipient == "5002" for row in rows)
    assert "RMA-" in rows[-1].payload["text"]
    assert _waiting_on_nothing(sessions, frozenset()) == []


def test_the_sweep_s_reminders_follow_the_same_rule(
    bot_off: Api, sessions: sessionmaker[Session]
) -> None:
    """A case waiting for the customer's photo: the sweep's reminder is undeliverable too
    (never a pending row for a bot that is off), once, and shown on the case."""
    _order(bot_off, "T3", telegram_user_id=5003)
    number = _case(bot_off, "T3", channel="telegram", reason="quality_defect")
    state = bot_off.client.app.state
    assert bot_off.get(f"/api/v1/tickets/{number}").json()["status"] == "needs_info"
    for hours in (25, 26):  # the first reminder is due after 24 h; the second pass sends none
        report = run_sweep(sessions=sessions, ctx=context_for(state, NOW + timedelta(hours=hours)))
        assert not report.failed
    rows = _rows(sessions, number)
    scripts = [(row.payload.get("script"), row.status) for row in rows]
    assert scripts == [
        ("notice_received", "undeliverable"),
        ("notice_needs_info", "undeliverable"),
        ("notice_needs_info", "undeliverable"),  # the reminder
    ]
    assert _waiting_on_nothing(sessions, frozenset()) == []


def test_a_web_chat_case_goes_to_telegram_or_says_why_not(
    bot_on: Api, sessions: sessionmaker[Session]
) -> None:
    """The web chat off: a web case's customer who linked Telegram is answered there; one
    with no chat at all is told undeliverable, never queued on `web`."""
    _order(bot_on, "W1", telegram_user_id=5004)
    linked = _case(bot_on, "W1", channel="web")
    r = bot_on.post(f"/api/v1/tickets/{linked}/replies", json={"text": "Hi"})
    assert r.json()["delivery"]["state"] == "queued"
    assert r.json()["delivery"]["channel"] == "telegram"
    _order(bot_on, "W2", telegram_user_id=None)
    web_only = _case(bot_on, "W2", channel="web")
    r = bot_on.post(f"/api/v1/tickets/{web_only}/replies", json={"text": "Hi"})
    assert r.status_code == 201
    assert r.json()["delivery"]["reason"] == "no_chat"
    with sessions() as s:
        assert (
            s.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.channel == "web", OutboxMessage.status == "pending"
                )
            )
            is None
        )


def test_the_web_chat_only_has_to_register_its_channel(settings: Any) -> None:
    """The web chat registers its channel: delivered unless AFTERSALES_WEB_CHAT is off."""
    assert "web" in delivered_channels(settings)
    assert "web" not in delivered_channels(settings.model_copy(update={"web_chat": False}))


def test_the_panel_shows_a_reply_that_was_not_sent(
    bot_on: Api, sessions: sessionmaker[Session]
) -> None:
    _order(bot_on, "P2", telegram_user_id=None)
    number = _case(bot_on, "P2", channel="phone")
    panel = TestClient(bot_on.client.app, follow_redirects=False)
    login = panel.get("/panel/login")
    token = re.search(r'name="login_token" value="([^"]+)"', login.text)
    assert token
    r = panel.post(
        "/panel/login",
        data={
            "username": "alice",
            "password": PASSWORD,
            "login_token": token.group(1),
            "lang": "en",
        },
    )
    assert r.status_code == 303, r.text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', panel.get("/panel").text)
    assert csrf
    url = f"/panel/cases/{number}"
    r = panel.post(f"{url}/reply", data={"csrf_token": csrf.group(1), "text": "Please call us"})
    assert r.status_code == 303
    assert r.headers["location"] == f"{url}?done=unsent&why=no_chat"
    page = panel.get(r.headers["location"]).text
    # The flash says so at once, the reply carries it, and the notice of receipt's event too.
    assert "Reply kept on the case." in page
    assert page.count("Not sent: the customer has no chat with us. Call them.") == 3
    assert '<span class="tag delivery undeliverable">not sent</span>' in page
    assert "Message not sent" in page  # the notice of receipt, on the timeline
    # The reason in the address is text, never markup.
    page = panel.get(url, params={"done": "unsent", "why": "<b>x</b>"}).text
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    # In Chinese for a Chinese-speaking agent.
    panel.cookies.set("lang", "zh-CN")
    with sessions() as s:
        from tickets.models import Agent

        agent = s.scalar(select(Agent).where(Agent.username == "alice"))
        assert agent is not None
        agent.language = "zh-CN"
        s.commit()
    page = panel.get(url).text
    assert "未发出：该客户没有与我们的聊天渠道，请致电联系。" in page


def test_the_sweep_settles_rows_left_waiting_on_a_channel_nothing_delivers(
    bot_off: Api, sessions: sessionmaker[Session], scripts: Any
) -> None:
    """Rows queued while the bot was on (or by an older version, or on `web`) and never sent:
    once the bot is off, the next sweep marks them undeliverable and shows them on the case;
    with the bot on, a Telegram row is left for it."""

    _order(bot_off, "S1", telegram_user_id=5005)
    # Opened while the bot ran (the default context): its notice waits for Telegram.
    with sessions() as s:
        from tickets.cases.opening import open_case
        from tickets.context import SYSTEM
        from tickets.schemas import TicketCreate

        ticket = open_case(
            session=s,
            request=TicketCreate.model_validate(
                {
                    "order_no": "S1",
                    "kind": "return_refund",
                    "reason": "no_reason",
                    "items": [{"sku": "SOCKS", "quantity": 1}],
                }
            ),
            actor=SYSTEM,
            ctx=context(scripts, tz=UTC_ZONE),
        )
        web = OutboxMessage(
            channel="web",
            recipient=str(ticket.customer_id),
            ticket_id=ticket.id,
            kind="notice",
            payload={"text": "from an older version"},
            next_attempt_at=NOW,
            created_at=NOW,
        )
        s.add(web)
        number = ticket.number
        s.commit()
    assert {(r.channel, r.status) for r in _rows(sessions, number)} == {
        ("telegram", "pending"),
        ("agents", "pending"),
        ("web", "pending"),
    }
    # A sweep where the bot runs: only the web row (nothing ever delivers web) is settled.
    on = context(scripts, tz=UTC_ZONE)
    assert run_sweep(sessions=sessions, ctx=on).undeliverable == 1
    assert {(r.channel, r.status) for r in _rows(sessions, number)} == {
        ("telegram", "pending"),
        ("agents", "pending"),
        ("web", "undeliverable"),
    }
    # The bot switched off: the desk's own sweep settles the rest.
    state = bot_off.client.app.state
    assert run_sweep(sessions=sessions, ctx=context_for(state, NOW)).undeliverable == 2
    assert _waiting_on_nothing(sessions, frozenset()) == []
    case = bot_off.get(f"/api/v1/tickets/{number}").json()
    reasons = [e["data"]["reason"] for e in case["events"] if e["type"] == "delivery.undeliverable"]
    assert reasons == ["channel_off:web", "channel_off:telegram"]  # the agents' card: no event
