"""Two agents acting on the same case at once: exactly one wins, the other gets a conflict."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import PG_URL, order_json
from tickets.auth import create_agent
from tickets.cases.lifecycle import perform_action
from tickets.cases.opening import open_case
from tickets.context import Actor, Context
from tickets.db import make_engine, make_sessionmaker, unit_of_work
from tickets.exceptions import Conflict
from tickets.models import Event, Role, Ticket, utcnow
from tickets.orders.store import upsert_order
from tickets.policy.rules import Policy
from tickets.schemas import ActionRequest, OrderIn, TicketCreate


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


def _someone_waits_for_a_lock(session: Session) -> bool:
    """Whether (within 30 s) another connection of the database waits for a lock."""
    from sqlalchemy import text

    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database()"
    )
    for _ in range(600):
        if session.scalar(query):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(
    not PG_URL, reason="row locks: runs in the PostgreSQL pass (SQLite runs one writer at a time)"
)
def test_an_order_resent_while_its_first_case_opens(
    fresh_db_url: str, settings: Any, scripts: Any
) -> None:
    """The shop re-sends an order with new prices (allowed: it has no case yet) while an agent
    opens its first case. The case waits for the order's row, then reads the order as it is
    now; read before the row was locked, it chose units the re-send had replaced (a 500)."""
    from sqlalchemy import text

    from api.app import create_app
    from tests.live import serving

    own = settings.model_copy(update={"database_url": fresh_db_url})
    other = make_engine(fresh_db_url)  # the re-send's connection (another process)
    # The server runs on the real clock: an order delivered yesterday.
    day = timedelta(days=1)
    dates = {
        f"{name}_at": (utcnow() - day * ago).isoformat()
        for name, ago in (("placed", 4), ("paid", 4), ("shipped", 3), ("delivered", 1))
    }
    with serving(create_app(own, scripts=scripts)) as live:
        with httpx.Client(base_url=live.url, headers=live.auth, timeout=60) as client:
            r = client.post("/api/v1/orders", json={"orders": [order_json("R1", **dates)]})
            assert r.status_code == 200, r.text
        answer: dict[str, Any] = {}

        def open_case_over_http() -> None:
            with httpx.Client(base_url=live.url, headers=live.auth, timeout=60) as client:
                r = client.post(
                    "/api/v1/tickets",
                    json={
                        "order_no": "R1",
                        "kind": "return_refund",
                        "reason": "no_reason",
                        "items": [{"sku": "TEA", "quantity": 1}],
                    },
                )
                answer.update(status=r.status_code, text=r.text)

        resent = order_json("R1", **dates)
        resent["lines"][2]["unit_price"] = "18.99"
        with Session(other) as s:
            # The re-send has the order's row ...
            s.execute(text("SELECT id FROM orders WHERE order_no = 'R1' FOR UPDATE"))
            opener = threading.Thread(target=open_case_over_http)
            opener.start()
            # ... while the case waits for it.
            assert _someone_waits_for_a_lock(s), "the case never waited for the order's row"
            upsert_order(session=s, data=OrderIn(**resent), now=utcnow())
            s.commit()
        opener.join(60)
        assert answer.get("status") == 201, answer
        with httpx.Client(base_url=live.url, headers=live.auth, timeout=60) as client:
            number = json.loads(answer["text"])["number"]
            case = client.get(f"/api/v1/tickets/{number}").json()
        # The tea at its new price (a no-reason return: the unit's net, coupon shared).
        assert case["refund"]["status"] == "quote"
        with Session(other) as s:
            units = s.scalar(
                text(
                    "SELECT count(*) FROM ticket_units tu JOIN order_units ou "
                    "ON ou.id = tu.unit_id JOIN order_lines ol ON ol.id = ou.line_id "
                    "WHERE ol.unit_price = 1899"
                )
            )
        assert units == 1
    other.dispose()


@pytest.mark.skipif(
    not PG_URL, reason="row locks: runs in the PostgreSQL pass (SQLite runs one writer at a time)"
)
def test_a_new_order_sent_twice_at_once(fresh_db_url: str, settings: Any, scripts: Any) -> None:
    """Two pushes of the same new order at once: no row to lock yet, so the second's insert
    waits for the first's; once that commits, the second is an update (here: unchanged), not a
    500 on the order number's unique index."""

    from api.app import create_app
    from tests.live import serving

    own = settings.model_copy(update={"database_url": fresh_db_url})
    other = make_engine(fresh_db_url)  # the first push's connection (another process)
    with serving(create_app(own, scripts=scripts)) as live:
        answer: dict[str, Any] = {}

        def push_over_http() -> None:
            with httpx.Client(base_url=live.url, headers=live.auth, timeout=60) as client:
                r = client.post("/api/v1/orders", json={"orders": [order_json("N1")]})
                answer.update(status=r.status_code, text=r.text)

        with Session(other) as s:
            upsert_order(session=s, data=OrderIn(**order_json("N1")), now=utcnow())
            s.flush()  # inserted, not committed
            pusher = threading.Thread(target=push_over_http)
            pusher.start()
            assert _someone_waits_for_a_lock(s), "the second push never waited for the first"
            s.commit()
        pusher.join(60)
        assert answer.get("status") == 200, answer
        assert json.loads(answer["text"])["unchanged"] == ["N1"]
    other.dispose()


def test_guesses_sent_at_once_never_outnumber_the_tries_left(
    fresh_db_url: str, now: datetime
) -> None:
    # Ten people guess the same order's phone digits at the same moment (ten web-chat tabs,
    # ten Telegram accounts) with one wrong try left today on the order: a try is counted before
    # it is checked, so exactly one is looked at and the other nine are refused unchecked.
    from tickets import ownership
    from tickets.limits import Limits

    engine = make_engine(fresh_db_url)
    sessions = make_sessionmaker(engine)
    limits = Limits(proof_tries_per_order=5, proof_tries_per_person=100)
    with unit_of_work(sessions) as s:
        for i in range(4):  # four wrong tries already today
            ownership.attempt(
                s,
                order_no="T1001",
                person=f"web:{i}",
                now=now,
                limits=limits,
                matches=lambda: False,
            )
    checked: list[str] = []
    start = threading.Barrier(10)

    def guess(i: int) -> None:
        def matches() -> bool:
            checked.append(f"web:{100 + i}")
            time.sleep(0.1)  # a slow check: the others arrive meanwhile
            return False

        start.wait()
        with unit_of_work(sessions) as s:
            ownership.attempt(
                s,
                order_no="T1001",
                person=f"web:{100 + i}",
                now=now,
                limits=limits,
                matches=matches,
            )

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    engine.dispose()
    assert len(checked) == 1, checked
