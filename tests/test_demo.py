"""The demo shop: loaded through the real service, covering every status and kind, idempotent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.demo_pictures import PHOTO_SIZE, demo_photo
from tests.conftest import DemoShop
from tests.factories import NOW
from tickets.auth import verify_password
from tickets.demo import AGENTS, CASES, DEMO_STATUSES, ORDER_PREFIX, Say, load_demo
from tickets.models import (
    Agent,
    Attachment,
    CaseKind,
    CaseStatus,
    Customer,
    Event,
    Message,
    Order,
    OrderLine,
    OrderStatus,
    OutboxMessage,
    Payment,
    Ticket,
)


def _demo_tickets(session: Session) -> Sequence[Ticket]:
    return session.scalars(
        select(Ticket)
        .join(Order, Ticket.order_id == Order.id)
        .where(Order.order_no.like(f"{ORDER_PREFIX}%"))
        .order_by(Ticket.id)
    ).all()


def _demo_orders(session: Session) -> Sequence[Order]:
    return session.scalars(
        select(Order).where(Order.order_no.like(f"{ORDER_PREFIX}%")).order_by(Order.order_no)
    ).all()


def _counts(session: Session) -> dict[str, int]:
    tables: list[Any] = [
        Agent,
        Customer,
        Order,
        OrderLine,
        Payment,
        Ticket,
        Event,
        Message,
        OutboxMessage,
        Attachment,
    ]
    return {t.__name__: session.scalar(select(func.count()).select_from(t)) or 0 for t in tables}


def test_demo_shop_has_every_order_status_feature_and_agent(demo: DemoShop) -> None:
    session, summary = demo.session, demo.summary
    orders = _demo_orders(session)
    assert len(orders) >= 45
    assert {o.status for o in orders} == {s.value for s in OrderStatus}
    assert {o.payment_method for o in orders} == {
        "alipay",
        "wechat",
        "card",
        "bank_transfer",
        "balance",
    }
    categories = {ln.category for o in orders for ln in o.lines}
    assert categories == {
        "apparel",
        "shoes",
        "electronics",
        "food",
        "cosmetics",
        "home",
        "books",
        "made_to_order",
    }
    assert any(o.order_discount > 0 for o in orders)
    assert any(ln.discount > 0 for o in orders for ln in o.lines)
    presale = [o for o in orders if o.presale]
    assert len(presale) == 1
    assert sorted(p.kind for p in presale[0].payments) == ["balance", "deposit"]
    foreign = [o for o in orders if o.currency != "CNY"]
    assert [(o.currency, o.exchange_rate) for o in foreign] == [("USD", "7.1180")]
    customers = {o.customer.id: o.customer for o in orders}.values()
    assert {c.language for c in customers} == {"zh-CN", "en"}
    assert any(c.telegram_user_id for c in customers)
    assert any(c.telegram_user_id is None for c in customers)
    # Every order's history lies before now.
    for o in orders:
        assert o.placed_at < NOW
        for later in (o.paid_at, o.shipped_at, o.delivered_at):
            assert later is None or o.placed_at <= later < NOW, o.order_no
    assert "already loaded" not in summary
    # The agents: every group and role, logging in with the passwords the summary prints.
    groups = set()
    for spec in AGENTS:
        agent = session.scalar(select(Agent).where(Agent.username == spec.username))
        assert agent is not None
        assert agent.role == spec.role.value
        assert verify_password(agent, spec.password)
        assert spec.password in summary
        assert len(spec.password) >= 10
        groups.add(agent.group)
    assert {"service", "logistics", "quality", "finance"} <= groups
    assert {a.role.value for a in AGENTS} == {"agent", "lead", "admin"}
    assert "demo only" in summary
    # The queued notices are history, not live messages for made-up Telegram ids.
    ids = [t.id for t in _demo_tickets(session)]
    statuses = set(
        session.scalars(select(OutboxMessage.status).where(OutboxMessage.ticket_id.in_(ids)))
    )
    # (Customers with no chat, phone cases, have theirs on record as never sendable.)
    assert statuses == {"sent", "undeliverable"}


def test_demo_cases_reach_every_status_and_kind_through_the_service(demo: DemoShop) -> None:
    session = demo.session
    tickets = _demo_tickets(session)
    assert len(tickets) == len(CASES)
    # Draft is left out: no service function opens a case as a draft.
    assert {t.status for t in tickets} == set(DEMO_STATUSES)
    assert set(DEMO_STATUSES) == {s.value for s in CaseStatus} - {"draft"}
    assert {t.kind for t in tickets} == {k.value for k in CaseKind}
    assert {t.language for t in tickets} == {"zh-CN", "en"}
    for t in tickets:
        events = t.events
        assert events[0].type == "case.created", t.number
        # History steps forward and stays in the last ten days or so, all before now.
        times = [e.at for e in events]
        assert times == sorted(times), t.number
        assert NOW - timedelta(days=11) < t.created_at < NOW
        assert max(times) < NOW
        assert t.updated_at == max(times)
        # A case is opened after what it is about happened.
        assert t.order is not None
        order_done = t.order.delivered_at or t.order.shipped_at or t.order.paid_at
        assert order_done is None or order_done < t.created_at, t.number
    # The genuine lifecycle left its traces: refunds, inspections, routing, escalations.
    types = {e.type for t in tickets for e in t.events}
    assert {
        "status.changed",
        "case.routed",
        "refund.proposed",
        "refund.approved",
        "refund.issued",
        "refund.confirmed",
        "refund.failed",
        "inspection.recorded",
        "exchange.shipped",
        "reply.sent",
        "note.added",
        "customer.message",
    } <= types
    # Case numbers follow the order in which customers opened them.
    by_time = sorted(tickets, key=lambda t: t.created_at)
    day_of = [t.number.rsplit("-", 1)[0] for t in by_time]
    for a, b, da, db in zip(by_time, by_time[1:], day_of, day_of[1:], strict=False):
        if da == db:
            assert a.number < b.number
    # Both languages from both sides, and internal notes in both.
    messages = [m for t in tickets for m in t.messages]

    def has_cjk(text: str) -> bool:
        return any("\u4e00" <= ch <= "\u9fff" for ch in text)

    for author in ("customer", "agent"):
        texts = [m.text for m in messages if m.author == author]
        assert any(has_cjk(x) for x in texts), author
        assert any(not has_cjk(x) for x in texts), author
    notes = [m for m in messages if m.internal and m.author == "agent"]
    assert any(has_cjk(m.text) for m in notes)
    assert any(not has_cjk(m.text) for m in notes)


def test_demo_photos_are_real_files_in_the_store(demo: DemoShop) -> None:
    """Each photo a demo customer sends is a real picture in the attachment store (cleaned, with
    its thumbnail), recorded as the bot records it: the request's on the case, a later
    message's on that message; and each file on disk is what its row says (SHA-256)."""
    import hashlib
    import io

    from PIL import Image

    session, settings = demo.session, demo.settings
    by_order = {t.order.order_no: t for t in _demo_tickets(session) if t.order is not None}
    media = settings.media_dir.resolve()
    expected = 0
    for spec in CASES:
        ticket = by_order[f"{ORDER_PREFIX}{spec.order:04d}"]
        on_request = [a for a in ticket.attachments if a.message_id is None]
        assert len(on_request) == spec.photos, ticket.number
        if spec.photos:
            added = [e for e in ticket.events if e.type == "evidence.added"]
            assert [(e.data["count"], e.data["photos"]) for e in added] == [
                (spec.photos, spec.photos)
            ]
        said = [m for m in ticket.messages if m.author == "customer"]
        says = [step for step in spec.steps if isinstance(step, Say)]
        assert [len(m.attachments) for m in said] == [step.photos for step in says]
        expected += spec.photos + sum(step.photos for step in says)
        for a in ticket.attachments:
            assert (a.kind, a.mime) == ("photo", "image/png")
            assert a.original_name.endswith(".png")
            path = (media / a.storage_key).resolve()
            assert path.is_relative_to(media)
            data = path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == a.sha256
            assert len(data) == a.size
            with Image.open(io.BytesIO(data)) as img:
                assert img.size == PHOTO_SIZE
            thumb = media / "thumbs" / a.sha256[:2] / f"{a.sha256}.jpg"
            with Image.open(thumb) as img:
                assert max(img.size) <= 320
    rows = session.scalars(select(Attachment)).all()
    assert len(rows) == expected >= 10
    # Every picture is a different one (the store would keep one copy of a repeated picture).
    assert len({a.sha256 for a in rows}) == len(rows)
    # A fresh quality claim with photos waits in the queue: the one the browser tests work.
    fresh = [
        t
        for t in _demo_tickets(session)
        if t.status == "submitted"
        and t.kind == "return_refund"
        and len([a for a in t.attachments if a.kind == "photo"]) >= 2
    ]
    assert fresh
    # Finished cases carry their customers' ratings, for the dashboard.
    rated = [t for t in _demo_tickets(session) if t.satisfaction is not None]
    assert len(rated) >= 5
    assert {t.status for t in rated} == {"closed", "resolved", "refunded"}


def test_loading_twice_changes_nothing(demo: DemoShop) -> None:
    session, settings = demo.session, demo.settings
    before = _counts(session)
    statuses = sorted((t.number, t.status) for t in _demo_tickets(session))
    files = sorted(p.name for p in (settings.media_dir).rglob("*") if p.is_file())
    assert files
    # Later, as the CLI would run it again on another day.
    again = load_demo(
        session=session, settings=settings, now=NOW + timedelta(days=3), draw_photo=demo_photo
    )
    assert "already loaded" in again
    assert all(spec.password in again for spec in AGENTS)
    assert _counts(session) == before
    assert sorted((t.number, t.status) for t in _demo_tickets(session)) == statuses
    assert sorted(p.name for p in (settings.media_dir).rglob("*") if p.is_file()) == files


def test_an_existing_agent_keeps_its_password(session: Session, settings: Any) -> None:
    from tickets.auth import create_agent
    from tickets.models import Role

    create_agent(
        session=session,
        username="admin",
        role=Role.admin,
        password="a-real-secret-1",
        now=NOW - timedelta(days=100),
    )
    summary = load_demo(session=session, settings=settings, now=NOW, draw_photo=demo_photo)
    admin = session.scalar(select(Agent).where(Agent.username == "admin"))
    assert admin is not None and verify_password(admin, "a-real-secret-1")
    line = next(x for x in summary.splitlines() if x.strip().startswith("admin "))
    assert "demo-password-1" not in line
    assert "unchanged" in line


def test_loading_is_deterministic(session: Session, settings: Any, demo: DemoShop) -> None:
    """The same now tells the same story: numbers, statuses, times, events, amounts."""

    def snapshot(session: Session) -> list[Any]:
        return [
            (
                t.number,
                t.kind,
                t.status,
                t.group,
                t.created_at,
                t.order.order_no if t.order else None,
                [(e.type, e.actor, e.at) for e in t.events],
                [m.text for m in t.messages],
                [(a.sha256, a.storage_key, a.message_id is None) for a in t.attachments],
                t.satisfaction,
            )
            for t in _demo_tickets(session)
        ]

    first = snapshot(demo.session)  # the run's demo, loaded once for every test
    assert _demo_tickets(session) == []
    load_demo(session=session, settings=settings, now=NOW, draw_photo=demo_photo)
    assert snapshot(session) == first


def test_every_script_renders_from_a_real_demo_case(demo: DemoShop, scripts: Any) -> None:
    """Each script, in both languages, filled from a demo case's own facts; only what a case
    cannot know (a coupon's expiry, a carrier's last scan...) comes from the samples."""
    from zoneinfo import ZoneInfo

    from tickets.cases.status import get_ticket
    from tickets.context import Context
    from tickets.messages.notices import case_facts, render_for_case
    from tickets.policy.rules import Policy

    session = demo.session
    number = session.scalar(
        select(Ticket.number).where(Ticket.status == "awaiting_return").order_by(Ticket.id)
    )
    assert number is not None
    ticket = get_ticket(session=session, number=number)
    ctx = Context(policy=Policy(), now=NOW, tz=ZoneInfo("Asia/Shanghai"), scripts=scripts)
    facts = case_facts(ticket, ctx)
    rendered = 0
    for script in scripts.list():
        samples = scripts.sample_variables(script.name, script.language)
        extra = {k: v for k, v in samples.items() if k not in facts}
        text = render_for_case(
            ticket=ticket, script=script.name, ctx=ctx, variables=extra, language=script.language
        )
        if "case_no" in script.variables:
            assert number in text, script.name
        if "customer_name" in script.variables:
            assert ticket.customer.name in text, script.name
        rendered += 1
    assert rendered == 60
