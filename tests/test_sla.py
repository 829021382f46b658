"""SLA clocks through a case's life, with injected time, and the sweep that watches them.

Shop calendar (default): Asia/Shanghai, Mon-Fri 09:00-12:00 and 13:30-18:00, Sat 10:00-16:00.
Times below are Shanghai wall-clock times; 2026-11-23 is a Monday.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import order_json
from tickets.auth import create_agent
from tickets.cases.conversation import add_customer_message
from tickets.cases.lifecycle import perform_action
from tickets.cases.opening import open_case
from tickets.context import Actor, Context
from tickets.db import make_engine, make_sessionmaker, unit_of_work
from tickets.models import Event, OutboxMessage, Role, SlaClock, Ticket
from tickets.orders.store import upsert_order
from tickets.policy.rules import Policy
from tickets.schemas import ActionRequest, OrderIn, TicketCreate
from tickets.sla.sweep import run_sweep

SH = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    """'Mon 23 10:00' style helper: a Shanghai wall time in late November 2026."""
    day, hm = text.split()
    return datetime.fromisoformat(f"2026-11-{int(day):02d}T{hm}:00").replace(tzinfo=SH)


class World:
    """A shop with one agent, a policy, and a clock the test moves by hand."""

    def __init__(self, sessions: sessionmaker[Session], scripts: Any, policy: Policy) -> None:
        self.sessions = sessions
        self.scripts = scripts
        self.policy = policy
        with sessions() as s:
            self.agent_id = create_agent(
                session=s, username="wei", role=Role.agent, group="service", now=at("20 09:00")
            ).id
            create_agent(
                session=s, username="mei", role=Role.lead, group="service", now=at("20 09:00")
            )
            s.commit()

    def ctx(self, when: str) -> Context:
        return Context(policy=self.policy, now=at(when), tz=SH, scripts=self.scripts)

    def act(self, number: str, when: str, action: str, **params: Any) -> None:
        with self.sessions() as s:
            from tickets.models import Agent

            agent = s.get(Agent, self.agent_id)
            perform_action(
                session=s,
                number=number,
                request=ActionRequest(action=action, **params),
                actor=Actor(kind="agent", agent=agent),
                ctx=self.ctx(when),
            )
            s.commit()

    def sweep(self, when: str) -> str:
        return str(run_sweep(sessions=self.sessions, ctx=self.ctx(when)))

    def clocks(self, number: str) -> dict[str, tuple[str, datetime]]:
        with self.sessions() as s:
            rows = s.execute(
                select(SlaClock.clock, SlaClock.state, SlaClock.due_at)
                .join(Ticket)
                .where(Ticket.number == number)
                .order_by(SlaClock.id)
            )
            return {c: (st, due.astimezone(SH)) for c, st, due in rows}

    def events(self, number: str, prefix: str) -> list[str]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(Event.type)
                    .join(Ticket)
                    .where(Ticket.number == number, Event.type.startswith(prefix))
                    .order_by(Event.id)
                )
            )


@pytest.fixture
def world(sessions: sessionmaker[Session], scripts: Any) -> World:
    # No legal limit on the review here, so pauses show their exact effect; a holiday on
    # Wednesday 25th.
    policy = Policy.model_validate(
        {
            "sla": {
                "clocks": {"review": {"hours": 12}},
                "calendars": {
                    "default": {
                        "timezone": "Asia/Shanghai",
                        "monday": ["09:00-12:00", "13:30-18:00"],
                        "tuesday": ["09:00-12:00", "13:30-18:00"],
                        "wednesday": ["09:00-12:00", "13:30-18:00"],
                        "thursday": ["09:00-12:00", "13:30-18:00"],
                        "friday": ["09:00-12:00", "13:30-18:00"],
                        "saturday": ["10:00-16:00"],
                        "holidays": ["2026-11-25"],
                    }
                },
            }
        }
    )
    return World(sessions, scripts, policy)


def _open(world: World, when: str, order_no: str = "T1001", **req: Any) -> str:
    with world.sessions() as s:
        upsert_order(session=s, data=OrderIn(**order_json(order_no)), now=at("20 09:00"))
        body = {
            "order_no": order_no,
            "kind": "return_refund",
            "reason": "no_reason",
            "items": [{"sku": "SOCKS", "quantity": 1}],
            **req,
        }
        number = open_case(
            session=s, request=TicketCreate(**body), actor=Actor(kind="system"), ctx=world.ctx(when)
        ).number
        s.commit()
    return number


def test_a_return_walks_through_every_clock(world: World) -> None:
    n = _open(world, "23 10:00")
    clocks = world.clocks(n)
    # 2 h of business time from Monday 10:00 ends at 12:00, before lunch.
    assert clocks["first_response"] == ("running", at("23 12:00"))
    # 12 h: Mon 10-12, 13:30-18 (6.5 h), Tue 9-12 (3 h), Tue 13:30 + 2.5 h = 16:00.
    assert clocks["review"] == ("running", at("24 16:00"))

    assert "0 warned" in world.sweep("23 11:00")
    assert "1 warned" in world.sweep("23 11:31")  # 75 % of the way
    assert "0 warned, 0 breached" in world.sweep("23 11:40")  # never twice
    assert "1 breached" in world.sweep("23 12:01")
    assert "1 escalated" in world.sweep("23 13:05")  # an hour after the breach
    assert world.events(n, "sla.") == ["sla.warning", "sla.breached", "sla.escalated"]
    with world.sessions() as s:
        assert s.scalar(select(Ticket.priority).where(Ticket.number == n)) == "high"
        cards = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.channel == "agents")
            .order_by(OutboxMessage.id)
        ).all()
        assert [c.kind for c in cards] == [
            "case.created",
            "sla.warning",
            "sla.breached",
            "sla.escalated",
        ]
        assert cards[0].payload["text"].startswith(f"🆕 {n}：退货退款 · 七天无理由 · 李雷")
        cards = cards[1:]
        # What the agents' chat shows, in the agents' language (zh-CN by default).
        assert (
            cards[1].payload["text"]
            == f"🔴 {n}：首次响应已超时（11-23 12:00 到期）· 组 Customer service · 处理人 无"
        )
        assert "mei" in cards[2].payload["text"]  # the group's lead is called

    # Waiting on the customer pauses the review and starts the customer's clock.
    world.act(n, "23 14:00", "request_info", reason="a photo of the label")
    clocks = world.clocks(n)
    assert clocks["first_response"][0] == "breached"  # answered, but late
    assert clocks["review"][0] == "paused"
    assert clocks["customer_reply"] == ("running", at("26 14:00"))  # 72 h
    with world.sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == n))
        assert ticket is not None
        add_customer_message(session=s, ticket=ticket, text="照片已上传", ctx=world.ctx("24 10:00"))
        s.commit()
    clocks = world.clocks(n)
    assert clocks["customer_reply"][0] == "met"
    # Paused Mon 14:00 - Tue 10:00: 5 h of working time (Mon 14-18, Tue 9-10), so the review
    # moves from Tue 16:00 by 5 working hours: Tue 16-18, Wednesday is a holiday, Thu 9-12.
    assert clocks["review"] == ("running", at("26 12:00"))

    world.act(n, "24 11:00", "approve")
    clocks = world.clocks(n)
    assert clocks["review"][0] == "met"
    assert clocks["customer_shipping"] == ("running", at("01 11:00").replace(month=12))
    assert "1 customer reminder" in world.sweep("27 11:01")  # after 72 h
    assert "0 customer reminder" in world.sweep("27 12:00")
    world.act(n, "28 09:00", "mark_in_transit", tracking_no="SF100")
    world.act(n, "29 09:00", "mark_received")
    clocks = world.clocks(n)
    assert clocks["customer_shipping"][0] == "met"
    assert clocks["transit"][0] == "met"
    # Received on Sunday: the 24 working hours start Monday 09:00.
    assert clocks["inspection"][0] == "running"
    world.act(
        n, "30 10:00", "inspect", results=[{"sku": "SOCKS", "quantity": 1, "outcome": "resalable"}]
    )
    world.act(n, "30 10:05", "propose_refund")
    world.act(n, "30 10:06", "approve_refund")
    world.act(n, "30 10:07", "issue_refund")
    clocks = world.clocks(n)
    assert {c: st for c, (st, _) in clocks.items()} == {
        "first_response": "breached",
        "review": "met",
        "customer_reply": "met",
        "customer_shipping": "met",
        "transit": "met",
        "inspection": "met",
        "refund_arrival": "met",
    }
    with world.sessions() as s:
        reminder = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "notice").order_by(OutboxMessage.id)
        ).all()
        texts = [r.payload["script"] for r in reminder]
        assert "notice_ship_reminder" in texts


def test_silence_reminds_twice_then_closes_with_notice(world: World) -> None:
    n = _open(world, "23 10:00")
    world.act(n, "23 10:30", "request_info", reason="订单截图")
    assert "1 customer reminder" in world.sweep("24 10:31")
    assert "1 customer reminder" in world.sweep("25 10:31")
    assert "0 customer reminder(s), 0 closed" in world.sweep("26 10:00")
    assert "1 closed for silence" in world.sweep("26 10:31")
    with world.sessions() as s:
        assert s.scalar(select(Ticket.status).where(Ticket.number == n)) == "closed"
        last = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "notice")
            .order_by(OutboxMessage.id.desc())
        ).first()
        assert last is not None and last.payload["script"] == "notice_cancelled"
        reminders = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.payload["script"].as_string() == "notice_needs_info"
            )
        ).all()
        # The request itself, then two reminders, each naming what is missing.
        assert len(reminders) == 3
        assert all("订单截图" in r.payload["text"] for r in reminders)
    assert world.events(n, "customer.") == ["customer.reminded", "customer.reminded"]


def test_overdue_filter_and_ticket_json(world: World, api: Any) -> None:
    del world  # the api fixture's clock reads 2026-11-22 10:00 Shanghai
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order_json()]})
    assert r.status_code == 200
    case = api.post(
        "/api/v1/tickets", json={"order_no": "T1001", "kind": "complaint", "reason": "service"}
    ).json()
    assert {c["clock"]: c["state"] for c in case["sla"]} == {
        "first_response": "running",
        "complaint_resolution": "running",
    }
    assert api.get("/api/v1/tickets", params={"overdue": "true"}).json()["count"] == 0


def test_one_bad_clock_does_not_stop_the_sweep(world: World) -> None:
    a = _open(world, "23 10:00")
    with world.sessions() as s:
        upsert_order(session=s, data=OrderIn(**order_json("T2")), now=at("20 09:00"))
        b = open_case(
            session=s,
            request=TicketCreate(order_no="T2", kind="complaint", reason="service"),
            actor=Actor(kind="system"),
            ctx=world.ctx("23 10:00"),
        ).number
        s.commit()
    world.sweep("23 12:01")
    with world.sessions() as s:
        # A priority nobody knows makes escalating case a fail.
        weird = s.scalar(select(Ticket).where(Ticket.number == a))
        assert weird is not None
        weird.priority = "weird"
        s.commit()
    report = world.sweep("23 13:05")
    assert "1 escalated" in report and "1 failed" in report
    assert world.events(b, "sla.escalated") == ["sla.escalated"]


def test_two_sweeps_at_once_send_each_notice_once(fresh_db_url: str, scripts: Any) -> None:
    engine = make_engine(fresh_db_url)
    sessions = make_sessionmaker(engine)
    policy = Policy()
    ctx = Context(policy=policy, now=at("23 10:00"), tz=SH, scripts=scripts)
    with unit_of_work(sessions) as s:
        for i in range(20):
            upsert_order(session=s, data=OrderIn(**order_json(f"C{i}")), now=at("20 09:00"))
            open_case(
                session=s,
                request=TicketCreate(order_no=f"C{i}", kind="complaint", reason="service"),
                actor=Actor(kind="system"),
                ctx=ctx,
            )
    later = Context(policy=policy, now=at("23 12:30"), tz=SH, scripts=scripts)
    barrier = threading.Barrier(2)
    reports: list[str] = []

    def sweep() -> None:
        barrier.wait()
        reports.append(str(run_sweep(sessions=sessions, ctx=later)))

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        with sessions() as s:
            cards = s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.kind == "sla.breached")
            )
            events = s.scalar(
                select(func.count()).select_from(Event).where(Event.type == "sla.breached")
            )
        assert (cards, events) == (20, 20), reports
        assert len(reports) == 2
    finally:
        engine.dispose()


def test_report_and_breaches_csv(world: World, app: Any, api: Any) -> None:
    late = _open(world, "23 10:00")
    world.sweep("23 12:01")  # first response breached
    world.act(late, "23 14:00", "approve")  # review met; first response done, late
    on_time = _open(world, "23 10:00", order_no="T2")
    world.act(on_time, "23 10:30", "approve")
    app.state.clock = lambda: at("24 09:00")
    # The team's figures are for leads, as on the panel's dashboard (one rule in the core).
    r = api.get("/api/v1/sla/report", params={"since": "2026-11-23T00:00:00+08:00"})
    assert r.status_code == 403
    assert api.get("/api/v1/sla/breaches.csv").status_code == 403
    api = api.as_("lena")
    body = api.get("/api/v1/sla/report", params={"since": "2026-11-23T00:00:00+08:00"}).json()
    clocks = {c["clock"]: c for c in body["clocks"]}
    assert (clocks["first_response"]["met"], clocks["first_response"]["breached"]) == (1, 1)
    assert clocks["first_response"]["share_met"] == 0.5
    assert clocks["review"]["share_met"] == 1.0
    assert clocks["first_response"]["median_minutes"] == 30.0  # 30 and 240: nearest rank
    assert clocks["first_response"]["p90_minutes"] == 240.0
    assert body["breaches_by_group"] == {"service": 1}
    r = api.get("/api/v1/sla/breaches.csv", params={"since": "2026-11-23T00:00:00+08:00"})
    assert r.status_code == 200
    lines = r.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("case,kind,group")
    assert len(lines) == 2 and lines[1].startswith(late)
    assert lines[1].endswith(",120.0")  # due 12:00, answered 14:00
    r = api.get("/api/v1/sla/report", params={"since": "2026-11-23T00:00:00"})
    assert r.status_code == 422 and "offset" in r.json()["message"]


def test_an_unanswered_case_is_offered_back_to_its_group(world: World) -> None:
    n = _open(world, "23 10:00")
    world.act(n, "23 10:05", "assign", assignee="wei")
    world.sweep("23 12:01")  # first response breached
    assert "1 offered back" in world.sweep("23 12:31")  # 30 minutes later, nobody answered
    with world.sessions() as s:
        assert s.scalar(select(Ticket.assignee_id).where(Ticket.number == n)) is None
    assert world.events(n, "case.offered") == ["case.offered"]
    assert "0 offered back" in world.sweep("23 13:05")  # escalated now, not offered twice


def test_a_case_waiting_for_evidence_keeps_no_shop_clock_running(world: World) -> None:
    """A quality claim without a photo goes straight to needs_info: the customer has the turn,
    so no shop clock runs (DOMAIN.md: needs info pauses the shop's clocks), the automatic
    request for a photo included: it is not a person's first response."""
    n = _open(world, "23 10:00", reason="quality_defect")
    with world.sessions() as s:
        assert s.scalar(select(Ticket.status).where(Ticket.number == n)) == "needs_info"
    clocks = world.clocks(n)
    assert clocks["first_response"][0] == "paused"
    assert clocks["review"][0] == "paused"
    assert clocks["customer_reply"][0] == "running"
    # Sweeps past the 2 h first response (due Mon 12:00 had it run) and past the review's
    # 12 h, while the customer still owes the photo (72 h: until Thu 10:00).
    for when in ("23 11:31", "23 12:01", "23 13:05", "24 10:00", "24 17:00"):
        report = world.sweep(when)
        assert "0 warned, 0 breached" in report, (when, report)
    assert world.events(n, "sla.") == []
    with world.sessions() as s:
        cards = s.scalars(select(OutboxMessage.kind).where(OutboxMessage.channel == "agents"))
        assert [k for k in cards if k.startswith("sla.")] == []
    # The customer answers on Tuesday 10:00: the first response runs again with the 2 h it
    # had left (paused from the start), due Tue 12:00; the review its 12 h from Tue 10:00
    # (Tue 10-12, 13:30-18 = 6.5 h, Wed a holiday, Thu 9-12 = 3 h, Thu 13:30 + 2.5 h = 16:00).
    with world.sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == n))
        assert ticket is not None
        add_customer_message(session=s, ticket=ticket, text="照片", ctx=world.ctx("24 10:00"))
        s.commit()
    clocks = world.clocks(n)
    assert clocks["first_response"] == ("running", at("24 12:00"))
    assert clocks["review"] == ("running", at("26 16:00"))
    # Now the shop has the turn again, and its clock is watched as usual.
    assert "1 breached" in world.sweep("24 12:01")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_booked_pickup_nobody_collects_alerts_logistics(
    sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    """A booked pickup has a clock (the policy's `pickup_collection`, two working days from the
    booked slot by default): logistics is warned, then told of the breach, in the agents'
    language; collecting the parcel stops it, and booking again counts from the new slot."""
    policy = Policy.model_validate({"agent_language": lang})
    world = World(sessions, scripts, policy)
    n = _open(world, "23 10:00")
    world.act(n, "23 11:00", "approve")
    # Booked on Monday for Tuesday morning: the courier cannot be late before Tuesday 09:00;
    # 15 working hours from then (Tue 9-12, 13:30-18; Wed the same) end on Wednesday 18:00.
    world.act(
        n,
        "23 11:30",
        "mark_in_transit",
        pickup={"time": "2026-11-24 09:00-12:00", "address": "上海市浦东新区世纪大道 100 号"},
    )
    assert world.clocks(n)["pickup_collection"] == ("running", at("25 18:00"))
    with world.sessions() as s:
        assert s.scalar(select(Ticket.group).where(Ticket.number == n)) == "logistics"

    # Booked again for Thursday afternoon: the courier's time counts from the new slot.
    world.act(
        n,
        "24 12:30",
        "mark_in_transit",
        pickup={"time": "2026-11-26 14:00-18:00", "address": "上海市浦东新区世纪大道 100 号"},
    )
    # Thu 14-18 (4 h), Fri 9-12, 13:30-18 (7.5 h), Sat 10-13:30 (3.5 h).
    assert world.clocks(n)["pickup_collection"] == ("running", at("28 13:30"))
    assert "0 breached" in world.sweep("25 18:30")  # the first slot's due time: nothing
    assert "1 warned" in world.sweep("28 10:30")
    assert "1 breached" in world.sweep("28 13:31")
    assert world.events(n, "sla.") == ["sla.warning", "sla.breached"]
    with world.sessions() as s:
        card = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.channel == "agents", OutboxMessage.kind == "sla.breached"
            )
        ).one()
        texts = {"zh-CN": "上门取件未揽收已超时", "en": "pickup not collected breached"}
        assert texts[lang] in card.payload["text"]
        assert card.payload["group"] == "logistics" and card.payload["clock"] == (
            "pickup_collection"
        )

    # The courier came at last: the clock stops (late, on the record), transit starts.
    world.act(n, "28 15:00", "mark_collected", tracking_no="SF200")
    clocks = world.clocks(n)
    assert clocks["pickup_collection"][0] == "breached"
    assert clocks["transit"][0] == "running"
    with world.sessions() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(SlaClock)
                .join(Ticket)
                .where(Ticket.number == n, SlaClock.met_at.is_(None))
                .where(SlaClock.clock == "pickup_collection")
            )
            == 0
        )


def test_a_pickup_collected_in_time_or_given_up_meets_its_clock(
    sessions: sessionmaker[Session], scripts: Any
) -> None:
    world = World(sessions, scripts, Policy())
    pickup = {"time": "2026-11-24 14:00-18:00", "address": "上海市浦东新区世纪大道 100 号"}
    collected = _open(world, "23 10:00")
    world.act(collected, "23 11:00", "approve")
    world.act(collected, "23 11:30", "mark_in_transit", pickup=pickup)
    world.act(collected, "24 15:00", "mark_collected")
    assert world.clocks(collected)["pickup_collection"][0] == "met"
    # A tracking number after all (the customer took it to the post office): stopped too.
    shipped = _open(world, "23 10:00", order_no="T1002")
    world.act(shipped, "23 11:00", "approve")
    world.act(shipped, "23 11:30", "mark_in_transit", pickup=pickup)
    world.act(shipped, "24 09:00", "mark_in_transit", tracking_no="SF300")
    assert world.clocks(shipped)["pickup_collection"][0] == "met"
