"""Webhooks to the shop's systems, against a real HTTP receiver on this machine that checks
every signature with the `standardwebhooks` package: events signed, in order per case, retried
after 500s, replayed, never lost (at least once, with the same id after a crash), switched off
after a run of failures, the refund executor confirming and failing; the address checks.
Over 500 lines as one file: its tests share the real receiver and its signature checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from api.hooks_delivery import LEASE_SECONDS, HooksWorker
from tests.conftest import Api, Panel, admin_panel, in_thread, logged_in, walk_to_refund_pending
from tests.factories import NOW, add_agent_with_token, context, order_json
from tests.fakes.clock import Clock
from tickets.cases.opening import open_case
from tickets.context import SYSTEM
from tickets.exceptions import InvalidInput
from tickets.models import (
    OutboxMessage,
    Refund,
    Role,
    Ticket,
    WebhookAttempt,
    WebhookSubscription,
    utcnow,
)
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn, TicketCreate
from tickets.webhooks import HookRules, check_url

# No database call on the event loop (tickets/db.py): the worker's claims and records run in
# threads, and the guard proves it.
pytestmark = pytest.mark.usefixtures("db_guard")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A shop's endpoint: records what arrives, answers from a script per path (else 200)."""

    url: str
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    answers: dict[str, deque[tuple[int, bytes, dict[str, str]]]] = field(default_factory=dict)

    def answer(
        self, path: str, *replies: tuple[int, bytes] | tuple[int, bytes, dict[str, str]]
    ) -> None:
        """The next answers at `path`, in turn: (status, body) or (status, body, headers)."""
        queue = self.answers.setdefault(path, deque())
        for r in replies:
            queue.append((r[0], r[1], r[2] if len(r) == 3 else {}))

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def verified(self, path: str) -> list[Any]:
        """The bodies that arrived at `path`, each checked as a receiver would."""
        hook = Webhook(self.secrets[path])
        return [hook.verify(r.body, r.headers) for r in self.at(path)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            rec = box["r"]
            rec.received.append(Received(self.path, dict(self.headers.items()), body))
            queue = rec.answers.get(self.path)
            status, data, headers = queue.popleft() if queue else (200, b"ok", {})
            if headers.get("x-sleep"):
                time.sleep(float(headers["x-sleep"]))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            # The sender stops reading past its limit, or gives up waiting: its choice.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["r"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box["r"]
    server.shutdown()
    server.server_close()


@pytest.fixture
def clock() -> Clock:
    # The wall clock's now: the receiver checks the signature's timestamp (5 minutes' leeway);
    # the test moves it by hand past retries and leases.
    return Clock(utcnow())


RULES = HookRules(allow_private=True, timeout_seconds=2, max_attempts=4)


def sender(
    sessions: sessionmaker[Session], scripts: Any, clock: Clock, rules: HookRules = RULES
) -> HooksWorker:
    return HooksWorker(
        sessions=sessions,
        rules=rules,
        context=lambda now: context(scripts, now=now),
        clock=clock,
    )


@pytest.fixture
def admin(api: Api, sessions: sessionmaker[Session]) -> Api:
    with sessions() as s:
        api.tokens["root"] = add_agent_with_token(s, "root", Role.admin)
        s.commit()
    return api.as_("root")


@pytest.fixture
def dev_app(app: Any) -> Any:
    # Development: http:// and this machine's addresses allowed (the receiver is local).
    app.state.settings = app.state.settings.model_copy(update={"hooks_allow_private": True})
    return app


def subscribe(admin: Api, receiver: Receiver, path: str, **body: Any) -> dict[str, Any]:
    r = admin.post("/api/v1/webhooks", json={"url": receiver.url + path, **body})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    receiver.secrets[path] = created["secret"]
    return created


def push_order(api: Api) -> None:
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order_json()]})
    assert r.status_code == 200


def act(api: Api, number: str, action: str, **extra: Any) -> Any:
    r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": action, **extra})
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------- events


async def test_case_events_arrive_signed_in_order_with_their_facts(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    created = subscribe(
        admin,
        receiver,
        "/all",
        events=[
            "case.created",
            "case.status_changed",
            "inspection.recorded",
            "refund.proposed",
            "refund.approved",
            "refund.issued",
            "case.closed",
        ],
    )
    assert created["secret"].startswith("whsec_")
    # Shown once: reading the subscription again never shows it.
    assert "secret" not in admin.get(f"/api/v1/webhooks/{created['id']}").json()
    push_order(api)
    number = walk_to_refund_pending(api, "TEA", 2)
    for action in ("propose_refund", "approve_refund", "issue_refund"):
        act(api, number, action)

    await sender(sessions, scripts, clock).drain()

    bodies = receiver.verified("/all")  # every one signed with the subscription's secret
    types = [b["type"] for b in bodies]
    assert types == [
        "case.created",
        "case.status_changed",  # approve: awaiting_return
        "case.status_changed",  # mark_received: inspecting
        "inspection.recorded",
        "case.status_changed",  # refund_pending
        "refund.proposed",
        "refund.approved",
        "refund.issued",
        "case.status_changed",  # refunded
    ]
    assert all(b["data"]["case"]["number"] == number for b in bodies)
    assert [b["data"]["to"] for b in bodies if b["type"] == "case.status_changed"] == [
        "awaiting_return",
        "inspecting",
        "refund_pending",
        "refunded",
    ]
    inspection = bodies[3]["data"]
    assert [(u["sku"], u["outcome"]) for u in inspection["results"]] == [
        ("TEA", "resalable"),
        ("TEA", "resalable"),
    ]
    issued = bodies[7]["data"]["refund"]
    assert (issued["amount"], issued["currency"], issued["status"]) == ("35.36", "CNY", "issued")
    # The Standard Webhooks headers; each delivery its own id.
    first = receiver.at("/all")[0].headers
    assert first["webhook-id"].startswith("msg_")
    assert first["webhook-signature"].startswith("v1,")
    assert len({r.headers["webhook-id"] for r in receiver.at("/all")}) == len(bodies)

    # Closing sends case.closed with the rating known so far.
    act(api, number, "close")
    await sender(sessions, scripts, clock).drain()
    last = receiver.verified("/all")[-2:]
    assert [b["type"] for b in last] == ["case.status_changed", "case.closed"]
    assert last[1]["data"]["case"]["rating"] is None


async def test_only_the_events_subscribed_and_none_when_disabled(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    created = subscribe(admin, receiver, "/new", events=["case.created"])
    off = subscribe(admin, receiver, "/off", events=["case.created"])
    r = admin.client.patch(
        f"/api/v1/webhooks/{off['id']}",
        json={"enabled": False},
        headers={"Authorization": f"Bearer {admin.tokens['root']}"},
    )
    assert (r.status_code, r.json()["enabled"]) == (200, False)
    push_order(api)
    walk_to_refund_pending(api, "TEA", 1)
    await sender(sessions, scripts, clock).drain()
    assert [b["type"] for b in receiver.verified("/new")] == ["case.created"]
    assert receiver.at("/off") == []
    assert created["events"] == ["case.created"]


async def test_a_failing_receiver_is_retried_and_a_case_waits_its_turn(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    sub = subscribe(admin, receiver, "/flaky", events=["case.created", "case.status_changed"])
    push_order(api)
    receiver.answer("/flaky", (500, b"down"), (503, b"still down"))
    number = api.post(
        "/api/v1/tickets",
        json={"order_no": "T1001", "kind": "complaint", "reason": "service"},
    ).json()["number"]
    act(api, number, "escalate")
    worker = sender(sessions, scripts, clock)

    await worker.drain()
    # The first event failed; the case's next one waits behind it, unsent.
    assert [r.json()["type"] for r in receiver.at("/flaky")] == ["case.created"]
    clock.now += timedelta(seconds=5)
    await worker.drain()
    assert len(receiver.at("/flaky")) == 2
    clock.now += timedelta(seconds=10)
    await worker.drain()
    arrived = receiver.at("/flaky")
    assert [r.json()["type"] for r in arrived] == [
        "case.created",
        "case.created",
        "case.created",
        "case.status_changed",
    ]
    # A retry is the same message: the same webhook-id, signed again.
    assert len({r.headers["webhook-id"] for r in arrived[:3]}) == 1
    receiver.verified("/flaky")

    log = admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries").json()["data"]
    assert [(d["event_type"], d["attempt"], d["status_code"]) for d in reversed(log)] == [
        ("case.created", 1, 500),
        ("case.created", 2, 503),
        ("case.created", 3, 200),
        ("case.status_changed", 1, 200),
    ]
    assert log[-1]["body_excerpt"] == "down"
    assert log[-1]["error"] == "HTTP 500"
    assert admin.get(f"/api/v1/webhooks/{sub['id']}").json()["consecutive_failures"] == 0


async def test_replay_sends_the_same_message_again(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    sub = subscribe(admin, receiver, "/r", events=["case.created"])
    push_order(api)
    walk_to_refund_pending(api, "TEA", 1)
    await sender(sessions, scripts, clock).drain()
    log = admin.get(f"/api/v1/webhooks/{sub['id']}/deliveries").json()["data"]
    r = admin.post(f"/api/v1/webhooks/deliveries/{log[0]['outbox_id']}/replay")
    assert r.status_code == 202, r.text
    await sender(sessions, scripts, clock).drain()
    first, again = receiver.at("/r")
    assert first.body == again.body
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    receiver.verified("/r")
    assert admin.post("/api/v1/webhooks/deliveries/999999/replay").status_code == 404


async def test_a_crash_between_send_and_record_sends_again_with_the_same_id(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    subscribe(admin, receiver, "/once", events=["case.created"])
    push_order(api)
    walk_to_refund_pending(api, "TEA", 1)
    doomed = sender(sessions, scripts, clock)
    # Claimed and sent; the process dies before recording it.
    (row,) = await asyncio.to_thread(doomed._claim)
    await doomed.send(row)
    assert len(receiver.at("/once")) == 1
    # Another process: nothing before the lease ends, then the row once more, the same id.
    other = sender(sessions, scripts, clock)
    assert (await other.drain()).claimed == 0
    clock.now += timedelta(seconds=LEASE_SECONDS + 1)
    await other.drain()
    first, second = receiver.at("/once")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert (await other.drain()).claimed == 0  # recorded: never a third
    with sessions() as s:
        status = s.scalar(select(OutboxMessage.status).where(OutboxMessage.id == row.id))
    assert status == "sent"


async def test_a_killed_senders_claims_go_out_once_after_its_heartbeat_stops(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    """A sender claims rows and its process is killed before sending (nothing given back).
    While it was seen lately its rows are its own; once it has not been seen for 20 s a live
    sender's heartbeat takes them back and they go out, each once, long before the lease."""
    subscribe(admin, receiver, "/killed", events=["case.created", "case.status_changed"])
    push_order(api)
    walk_to_refund_pending(api, "TEA", 1)
    dead = sender(sessions, scripts, clock)
    (row,) = await asyncio.to_thread(dead._claim)  # one per case at a time: the first
    t0 = clock.now
    live = sender(sessions, scripts, clock)

    clock.now = t0 + timedelta(seconds=10)  # the claimer was seen 10 s ago: still its row
    assert await asyncio.to_thread(live.heartbeat.beat) == 0
    assert (await live.drain()).claimed == 0
    assert receiver.at("/killed") == []

    clock.now = t0 + timedelta(seconds=25)  # 25 s of silence: taken back, sent
    assert await asyncio.to_thread(live.heartbeat.beat) == 1
    await live.drain()
    assert clock.now < t0 + timedelta(seconds=LEASE_SECONDS)
    bodies = receiver.verified("/killed")
    assert [b["type"] for b in bodies][:1] == ["case.created"]
    ids = [r.headers["webhook-id"] for r in receiver.at("/killed")]
    assert ids[0] == row.webhook_id and len(ids) == len(set(ids))  # each once
    with sessions() as s:
        left = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.channel == "webhook", OutboxMessage.status != "sent"
            )
        ).all()
    assert left == []


async def test_the_telegram_workers_heartbeat_leaves_a_live_senders_rows_alone(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
    settings: Any,
) -> None:
    """One mechanism for both senders: the bot's delivery worker beating beside a webhook
    sender whose request is still on the wire takes nothing from it (its row, due again at
    once, would have been sent a second time by another sender)."""
    from aiogram import Bot

    from bot.delivery import DeliveryWorker
    from tests.fakes.telegram import BOT_TOKEN, FakeSession

    subscribe(admin, receiver, "/slow", events=["case.created"])
    push_order(api)
    walk_to_refund_pending(api, "TEA", 1)
    busy = sender(sessions, scripts, clock)
    (row,) = await asyncio.to_thread(busy._claim)  # claimed; its request is on the wire
    telegram = DeliveryWorker(
        bot=Bot(BOT_TOKEN, session=FakeSession()), sessions=sessions, settings=settings, clock=clock
    )
    try:
        clock.now += timedelta(seconds=5)
        assert await asyncio.to_thread(telegram.beat) == 0
        # Another process's sender finds nothing to send: the row is still the busy one's.
        assert (await sender(sessions, scripts, clock).drain()).claimed == 0
    finally:
        await telegram.pacer.close()
    await busy._deliver(row)
    assert len(receiver.at("/slow")) == 1


async def test_a_run_of_failures_switches_delivery_off_and_tells_the_admins(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    sub = subscribe(admin, receiver, "/dead", events=["case.created", "case.status_changed"])
    receiver.answer("/dead", *[(500, b"no")] * 10)
    push_order(api)
    walk_to_refund_pending(api, "TEA", 1)
    rules = HookRules(allow_private=True, timeout_seconds=2, disable_after_failures=3)
    worker = sender(sessions, scripts, clock, rules)
    for _ in range(5):
        await worker.drain()
        clock.now += timedelta(hours=1)
    assert len(receiver.at("/dead")) == 3
    state = admin.get(f"/api/v1/webhooks/{sub['id']}").json()
    assert (state["enabled"], state["pending"]) == (False, 0)
    assert "3 failed attempts in a row" in state["disabled_reason"]
    with sessions() as s:
        notices = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "webhook.disabled")
        ).all()
        waiting = s.scalars(
            select(OutboxMessage.last_error).where(
                OutboxMessage.channel == "webhook", OutboxMessage.status == "failed"
            )
        ).all()
    assert [n.channel for n in notices] == ["agents"]
    assert f"Webhook {sub['id']}" in notices[0].payload["text"]
    assert waiting and all("delivery disabled" in (e or "") for e in waiting)
    # Switched on again: a fresh start, and a replay of what it missed goes out.
    r = admin.client.patch(
        f"/api/v1/webhooks/{sub['id']}",
        json={"enabled": True},
        headers={"Authorization": f"Bearer {admin.tokens['root']}"},
    )
    assert (r.json()["enabled"], r.json()["consecutive_failures"]) == (True, 0)


# ---------------------------------------------------------------- the refund executor


def _issued(api: Api, sessions: sessionmaker[Session]) -> tuple[str, int]:
    push_order(api)
    number = walk_to_refund_pending(api, "TEA", 1)
    for action in ("propose_refund", "approve_refund", "issue_refund"):
        act(api, number, action)
    assert api.get(f"/api/v1/tickets/{number}").json()["refund"]["status"] == "issued"
    with sessions() as s:
        refund_id = s.scalar(
            select(Refund.id)
            .join(Ticket, Ticket.id == Refund.ticket_id)
            .where(Ticket.number == number)
        )
    assert refund_id is not None
    return number, refund_id


async def test_the_refund_executor_confirms_once_with_its_idempotency_key(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    subscribe(admin, receiver, "/pay", kind="refund_executor")
    receiver.answer("/pay", (502, b"busy"), (200, b'{"status": "confirmed"}'))
    number, refund_id = _issued(api, sessions)
    worker = sender(sessions, scripts, clock)
    await worker.drain()
    clock.now += timedelta(seconds=5)
    await worker.drain()
    calls = receiver.at("/pay")
    assert [c.headers["idempotency-key"] for c in calls] == [f"refund-{refund_id}"] * 2
    order = receiver.verified("/pay")[0]
    assert (order["type"], order["data"]["refund"]["amount"]) == ("refund.execute", "17.68")
    case = api.get(f"/api/v1/tickets/{number}").json()
    assert case["refund"]["status"] == "confirmed"
    assert "refund.confirmed" in [e["type"] for e in case["events"]]
    # Confirmed: never sent again, even replayed.
    clock.now += timedelta(hours=1)
    await worker.drain()
    with sessions() as s:
        row_id = s.scalar(
            select(OutboxMessage.id).where(OutboxMessage.kind == "refund.execute").limit(1)
        )
    assert admin.post(f"/api/v1/webhooks/deliveries/{row_id}/replay").status_code == 202
    await worker.drain()
    assert len(receiver.at("/pay")) == 2


async def test_the_refund_executor_fails_a_refund_back_to_pending(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    subscribe(admin, receiver, "/pay", kind="refund_executor")
    receiver.answer("/pay", (200, b'{"status": "failed", "reason": "card closed"}'))
    number, refund_id = _issued(api, sessions)
    await sender(sessions, scripts, clock).drain()
    case = api.get(f"/api/v1/tickets/{number}").json()
    assert case["status"] == "refund_pending"
    failed = [e for e in case["events"] if e["type"] == "refund.failed"]
    assert failed and "card closed" in failed[0]["data"]["reason"]
    with sessions() as s:
        refund = s.get(Refund, refund_id)
        assert refund is not None and refund.status == "failed"


async def test_an_executor_answer_without_a_decision_is_retried_with_the_same_key(
    dev_app: Any,
    admin: Api,
    api: Api,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    subscribe(admin, receiver, "/pay", kind="refund_executor")
    receiver.answer("/pay", (200, b"ok?"), (200, b'{"status": "pending"}'))
    number, refund_id = _issued(api, sessions)
    worker = sender(sessions, scripts, clock)
    await worker.drain()
    clock.now += timedelta(seconds=5)
    await worker.drain()
    assert [c.headers["idempotency-key"] for c in receiver.at("/pay")] == [
        f"refund-{refund_id}"
    ] * 2
    # Pending: the shop confirms later through the API; the refund stays issued.
    assert api.get(f"/api/v1/tickets/{number}").json()["refund"]["status"] == "issued"


# ---------------------------------------------------------------- addresses and bounds


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://shop.example.com/hook", "https://"),
        ("https://127.0.0.1/hook", "not a public address"),
        ("https://10.1.2.3/hook", "not a public address"),
        ("https://169.254.169.254/latest", "not a public address"),
        ("https://[::1]/hook", "not a public address"),
        ("https://localhost/hook", "local name"),
        ("https://user:pw@shop.example.com/hook", "no user or password"),
        ("ftp://shop.example.com/", "https://"),
    ],
)
def test_urls_that_reach_the_desks_own_network_are_refused(url: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_url(url, allow_private=False)


def test_an_https_url_is_taken_as_written() -> None:
    assert check_url(" https://erp.example.com/hooks ", allow_private=False) == (
        "https://erp.example.com/hooks"
    )


async def test_a_name_resolving_to_a_private_address_is_not_called(
    receiver: Receiver, sessions: sessionmaker[Session], scripts: Any, clock: Clock
) -> None:
    worker = sender(sessions, scripts, clock, HookRules(allow_private=False))
    port = receiver.url.rsplit(":", 1)[1]
    result = await worker.send(_claim_for(f"http://localhost:{port}/x"))
    assert result.status_code is None
    assert "not a public address" in (result.error or "")
    assert receiver.received == []


async def test_redirects_elsewhere_are_refused_and_answers_are_bounded(
    receiver: Receiver, sessions: sessionmaker[Session], scripts: Any, clock: Clock
) -> None:
    worker = sender(
        sessions,
        scripts,
        clock,
        HookRules(allow_private=True, timeout_seconds=1, max_response_bytes=2048),
    )
    port = receiver.url.rsplit(":", 1)[1]
    receiver.answer("/moved", (307, b"", {"location": f"http://127.0.0.2:{port}/elsewhere"}))
    result = await worker.send(_claim_for(receiver.url + "/moved"))
    assert "redirect to another host" in (result.error or "")
    receiver.answer("/same", (308, b"", {"location": "/landed"}))
    result = await worker.send(_claim_for(receiver.url + "/same"))
    assert (result.status_code, [r.path for r in receiver.received][-1]) == (200, "/landed")
    receiver.answer("/big", (200, b"x" * 100_000))
    result = await worker.send(_claim_for(receiver.url + "/big"))
    assert (result.status_code, len(result.excerpt)) == (200, 2048)
    receiver.answer("/slow", (200, b"late", {"x-sleep": "2"}))
    result = await worker.send(_claim_for(receiver.url + "/slow"))
    assert (result.status_code, result.error) == (None, "no answer within 1 s")


def _claim_for(url: str) -> Any:
    from tickets.webhooks import HookClaim, new_secret

    return HookClaim(
        id=1,
        subscription_id=1,
        url=url,
        secret=new_secret(),
        kind="case.created",
        webhook_id="msg_test",
        body={"type": "case.created", "data": {}},
        attempts=1,
    )


# ---------------------------------------------------------------- the API's rules


def test_the_api_is_for_admins_and_the_webhooks_scope(
    api: Api, admin: Api, sessions: sessionmaker[Session]
) -> None:
    assert api.get("/api/v1/webhooks").status_code == 403  # alice, an agent
    with sessions() as s:
        api.tokens["erp"] = add_agent_with_token(s, "erp", Role.agent, scopes=["webhooks"])
        s.commit()
    assert api.as_("erp").get("/api/v1/webhooks").json() == {"data": [], "count": 0}
    # Production: https only, and never the desk's own network; bad event names named.
    r = admin.post(
        "/api/v1/webhooks", json={"url": "http://erp.example.com/x", "events": ["case.created"]}
    )
    assert (r.status_code, r.json()["errors"][0]["loc"]) == (422, "url")
    r = admin.post(
        "/api/v1/webhooks", json={"url": "https://erp.example.com/x", "events": ["case.exploded"]}
    )
    assert r.status_code == 422
    r = admin.post("/api/v1/webhooks", json={"url": "https://erp.example.com/x", "events": []})
    assert r.status_code == 422
    assert admin.get("/api/v1/webhooks").json()["count"] == 0
    r = admin.post(
        "/api/v1/webhooks", json={"url": "https://erp.example.com/x", "kind": "refund_executor"}
    )
    assert r.status_code == 201
    # One refund executor at a time: two would each send the money.
    r = admin.post(
        "/api/v1/webhooks", json={"url": "https://pay.example.com/x", "kind": "refund_executor"}
    )
    assert r.status_code == 422
    with sessions() as s:
        assert [w.kind for w in s.scalars(select(WebhookSubscription))] == ["refund_executor"]
        assert s.scalars(select(WebhookAttempt)).all() == []


# ---------------------------------------------------------------- the panel


def test_the_panel_pages_are_for_admins_and_show_the_secret_once(
    panel_app: Any, alice: Panel, sessions: sessionmaker[Session]
) -> None:
    assert alice.get("/panel/admin/webhooks").status_code == 403
    lena = logged_in(panel_app, "lena")
    page = lena.get("/panel/admin/webhooks")
    assert (page.status_code, 'id="new-webhook"' in page.text) == (200, False)
    assert (
        lena.post("/panel/admin/webhooks", {"url": "https://erp.example.com/h"}).status_code == 403
    )
    boss = admin_panel(panel_app, sessions)
    # A bad URL is named and nothing is made.
    r = boss.post(
        "/panel/admin/webhooks", {"url": "http://erp.example.com/h", "events": "case.created"}
    )
    assert r.status_code == 422
    assert "https://" in r.text
    r = boss.post(
        "/panel/admin/webhooks",
        {"url": "https://erp.example.com/h", "events": ["case.created", "refund.issued"]},
    )
    assert r.status_code == 201
    secret = re.search(r'id="secret-value">(whsec_[^<]+)<', r.text)
    assert secret is not None
    page = boss.get("/panel/admin/webhooks")
    assert "erp.example.com" in page.text
    assert secret.group(1) not in page.text  # shown once
    # Without the CSRF token, nothing changes.
    with sessions() as s:
        sub = s.scalars(select(WebhookSubscription)).one()
        assert sub.events == ["case.created", "refund.issued"]
    r = boss.client.post(f"/panel/admin/webhooks/{sub.id}", data={"enabled": ""})
    assert r.status_code == 403
    assert boss.post(f"/panel/admin/webhooks/{sub.id}", {"enabled": ""}).status_code == 303
    with sessions() as s:
        assert s.get(WebhookSubscription, sub.id).enabled is False  # type: ignore[union-attr]


async def test_the_delivery_log_in_the_panel_shows_attempts_replays_and_the_switch_off(
    panel_app: Any,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    scripts: Any,
    clock: Clock,
) -> None:
    boss = admin_panel(panel_app, sessions)
    panel_app.state.settings = panel_app.state.settings.model_copy(
        update={"hooks_allow_private": True}
    )
    # One clock for the panel and the sender: a replay is due when the sender looks.
    panel_app.state.clock = clock
    r = await in_thread(
        lambda: boss.post(
            "/panel/admin/webhooks", {"url": receiver.url + "/p", "events": ["case.created"]}
        )
    )
    assert r.status_code == 201
    receiver.answer("/p", (500, b"oops"), (500, b"oops"))
    with sessions() as s:
        sub_id = s.scalars(select(WebhookSubscription.id)).one()
    await in_thread(lambda: _open_a_case(sessions, scripts))
    rules = HookRules(allow_private=True, timeout_seconds=2, disable_after_failures=2)
    worker = sender(sessions, scripts, clock, rules)
    await worker.drain()
    clock.now += timedelta(seconds=5)
    await worker.drain()
    page = await in_thread(lambda: boss.get(f"/panel/admin/webhooks/{sub_id}"))
    assert page.text.count("data-attempt=") == 2
    assert "oops" in page.text and "HTTP 500" in page.text
    listing = await in_thread(lambda: boss.get("/panel/admin/webhooks"))
    assert f'data-disabled="{sub_id}"' in listing.text
    assert "2 failed attempts in a row" in listing.text
    # Switched on again, the missed delivery replayed from the log: it arrives.
    await in_thread(lambda: boss.post(f"/panel/admin/webhooks/{sub_id}", {"enabled": "1"}))
    with sessions() as s:
        row_id = s.scalars(select(OutboxMessage.id).where(OutboxMessage.channel == "webhook")).one()
    r = await in_thread(lambda: boss.post(f"/panel/admin/webhooks/{sub_id}/replay/{row_id}"))
    assert r.status_code == 303
    await worker.drain()
    assert [x.json()["type"] for x in receiver.at("/p")] == ["case.created"] * 3
    page = await in_thread(lambda: boss.get(f"/panel/admin/webhooks/{sub_id}"))
    assert page.text.count("data-attempt=") == 3


def _open_a_case(sessions: sessionmaker[Session], scripts: Any) -> None:
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(order_json()), now=NOW)
        open_case(
            session=s,
            request=TicketCreate(kind="complaint", reason="service", order_no="T1001"),
            actor=SYSTEM,
            ctx=context(scripts),
        )
        s.commit()


# ---------------------------------------------------------------- one transaction, one process


def test_a_change_rolled_back_queues_nothing(sessions: sessionmaker[Session], scripts: Any) -> None:
    with sessions() as s:
        s.add(
            WebhookSubscription(
                url="https://erp.example.com/h", events=["case.created"], secret="whsec_AAAA"
            )
        )
        s.commit()
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(order_json()), now=NOW)
        open_case(
            session=s,
            request=TicketCreate(kind="complaint", reason="service", order_no="T1001"),
            actor=SYSTEM,
            ctx=context(scripts),
        )
        queued = s.scalars(select(OutboxMessage.kind).where(OutboxMessage.channel == "webhook"))
        assert list(queued) == ["case.created"]  # written with the case ...
        s.rollback()
    with sessions() as s:
        # ... and gone with it.
        assert (
            s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook")).all() == []
        )


def test_serve_sends_webhooks_where_the_background_work_runs(
    settings: Any,
    engine: Any,
    sessions: sessionmaker[Session],
    scripts: Any,
    receiver: Receiver,
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(
        settings.model_copy(update={"hooks_allow_private": True}),
        engine=engine,
        sessions=sessions,
        scripts=scripts,
        scheduler=True,
    )
    with sessions() as s:
        token = add_agent_with_token(s, "root", Role.admin)
        s.commit()
    with TestClient(app) as client:
        r = client.post(
            "/api/v1/webhooks",
            json={"url": receiver.url + "/serve", "events": ["case.created"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        receiver.secrets["/serve"] = r.json()["secret"]
        _open_a_case(sessions, scripts)
        # The sender polls every second: wait (bounded) for the delivery, nothing timed.
        for _ in range(300):
            if receiver.at("/serve"):
                break
            time.sleep(0.1)
    assert [b["type"] for b in receiver.verified("/serve")] == ["case.created"]


def test_deleting_a_subscription_takes_its_log_and_unsent_rows(
    admin: Api, sessions: sessionmaker[Session]
) -> None:
    sub = admin.post(
        "/api/v1/webhooks", json={"url": "https://erp.example.com/h", "events": ["case.created"]}
    ).json()
    with sessions() as s:
        s.add(
            OutboxMessage(
                channel="webhook",
                recipient=f"{sub['id']}:1",
                kind="case.created",
                payload={"subscription_id": sub["id"], "webhook_id": "msg_x", "body": {}},
            )
        )
        s.flush()
        row_id = s.scalars(select(OutboxMessage.id).where(OutboxMessage.channel == "webhook")).one()
        s.add(
            WebhookAttempt(
                subscription_id=sub["id"], outbox_id=row_id, webhook_id="msg_x", event_type="x"
            )
        )
        s.commit()
    r = admin.client.delete(
        f"/api/v1/webhooks/{sub['id']}", headers={"Authorization": f"Bearer {admin.tokens['root']}"}
    )
    assert r.status_code == 204
    assert admin.get(f"/api/v1/webhooks/{sub['id']}").status_code == 404
    with sessions() as s:
        assert s.scalars(select(WebhookAttempt)).all() == []
        row = s.get(OutboxMessage, row_id)
        assert row is not None and (row.status, row.last_error) == (
            "failed",
            "not sent: the subscription was deleted",
        )


def test_a_deleted_subscriptions_id_is_never_handed_out_again(admin: Api) -> None:
    body = {"url": "https://erp.example.com/h", "events": ["case.created"]}
    first = admin.post("/api/v1/webhooks", json=body).json()["id"]
    admin.client.delete(
        f"/api/v1/webhooks/{first}", headers={"Authorization": f"Bearer {admin.tokens['root']}"}
    )
    assert admin.post("/api/v1/webhooks", json=body).json()["id"] > first
