"""Two agents acting on the same case at once: exactly one wins, the other gets a conflict."""

from __future__ import annotations

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from tests.factories import order_json
from tickets.auth import create_agent
from tickets.config import Policy
from tickets.db import make_engine, make_sessionmaker, unit_of_work
from tickets.exceptions import Conflict
from tickets.models import Event, Role, Ticket
from tickets.orders import upsert_order
from tickets.schemas import ActionRequest, OrderIn, TicketCreate
from tickets.service import Actor, Context, open_case, perform_action


def test_two_agents_approve_at_once(fresh_db_url: str, now: datetime) -> None:
    engine = make_engine(fresh_db_url)
    sessions = make_sessionmaker(engine)
    ctx = Context(policy=Policy(), now=now, tz=ZoneInfo("Asia/Shanghai"))
    with unit_of_work(sessions) as s:
        for name in ("alice", "bob"):
            create_agent(session=s, username=name, role=Role.agent, now=now)
        upsert_order(session=s, data=OrderIn(**order_json()), now=now)
        number = open_case(
            session=s,
            request=TicketCreate(
                order_no="T1001",
                kind="return_refund",
                reason="no_reason",
                items=[{"sku": "TEA", "quantity": 1}],
            ),
            actor=Actor(kind="system"),
            ctx=ctx,
        ).number

    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def work(name: str, action: str) -> None:
        barrier.wait()
        try:
            with unit_of_work(sessions) as s:
                from sqlalchemy import select

                from tickets.models import Agent

                agent = s.scalar(select(Agent).where(Agent.username == name))
                perform_action(
                    session=s,
                    number=number,
                    request=ActionRequest(action=action),
                    actor=Actor(kind="agent", agent=agent),
                    ctx=ctx,
                )
            outcomes[name] = "ok"
        except Conflict as exc:
            outcomes[name] = f"conflict: {exc.message}"
        except Exception as exc:  # any other failure is a test failure, reported below
            outcomes[name] = f"error: {exc!r}"

    # Both approve: whoever comes second finds the case already approved.
    threads = [threading.Thread(target=work, args=(name, "approve")) for name in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert sorted(v.split(":")[0] for v in outcomes.values()) == ["conflict", "ok"], outcomes
        with sessions() as s:
            from sqlalchemy import func, select

            approvals = s.scalar(
                select(func.count())
                .select_from(Event)
                .join(Ticket)
                .where(Ticket.number == number, Event.type == "status.changed")
            )
            assert approvals == 1
            assert s.scalar(select(Ticket.status).where(Ticket.number == number)) == (
                "awaiting_return"
            )
    finally:
        engine.dispose()


def test_two_agents_issue_the_same_refund_at_once(fresh_db_url: str, now: datetime) -> None:
    from sqlalchemy import func, select

    from tickets.models import Agent, Refund

    engine = make_engine(fresh_db_url)
    sessions = make_sessionmaker(engine)
    ctx = Context(policy=Policy(), now=now, tz=ZoneInfo("Asia/Shanghai"))
    with unit_of_work(sessions) as s:
        agents = [
            create_agent(session=s, username=n, role=Role.agent, now=now) for n in ("alice", "bob")
        ]
        upsert_order(session=s, data=OrderIn(**order_json()), now=now)
        number = open_case(
            session=s,
            request=TicketCreate(
                order_no="T1001",
                kind="return_refund",
                reason="no_reason",
                items=[{"sku": "TEA", "quantity": 1}],
            ),
            actor=Actor(kind="system"),
            ctx=ctx,
        ).number
        for action in ("approve", "mark_received", "inspect", "propose_refund"):
            perform_action(
                session=s,
                number=number,
                request=ActionRequest(action=action),
                actor=Actor(kind="agent", agent=agents[0]),
                ctx=ctx,
            )
        perform_action(
            session=s,
            number=number,
            request=ActionRequest(action="approve_refund"),
            actor=Actor(kind="agent", agent=agents[1]),
            ctx=ctx,
        )

    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def issue(name: str) -> None:
        barrier.wait()
        try:
            with unit_of_work(sessions) as s:
                agent = s.scalar(select(Agent).where(Agent.username == name))
                perform_action(
                    session=s,
                    number=number,
                    request=ActionRequest(action="issue_refund"),
                    actor=Actor(kind="agent", agent=agent),
                    ctx=ctx,
                )
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")
        except Exception as exc:  # reported by the assertion below
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=issue, args=(n,)) for n in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert sorted(outcomes) == ["conflict", "ok"], outcomes
        with sessions() as s:
            issued = s.scalar(
                select(func.count()).select_from(Refund).where(Refund.status == "issued")
            )
            assert issued == 1
    finally:
        engine.dispose()
