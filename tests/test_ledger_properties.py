"""The ledger's promise as properties, through the real service functions on the test database
(SQLite; PostgreSQL when AFTERSALES_TEST_DATABASE_URL is set): whatever agents do, in any
order, on any cases of one order (open, propose, approve, issue, withdraw, escalate, close,
cancel, reopen, fail, a second case...), no unit is refunded more than once and no unit,
payment or shipping fee gives back more than was paid. And two workers on two cases that name
the same units, at once: at most one refund goes out.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tests.factories import NOW, order_json
from tickets.auth import create_agent
from tickets.cases.lifecycle import perform_action
from tickets.cases.opening import open_case
from tickets.context import SYSTEM, Actor, Context
from tickets.db import make_engine, make_sessionmaker, unit_of_work
from tickets.exceptions import Conflict, DomainError
from tickets.models import (
    Agent,
    Order,
    OrderLine,
    Payment,
    Refund,
    RefundLine,
    Role,
    Ticket,
    TicketItem,
    TicketUnit,
)
from tickets.orders.store import upsert_order
from tickets.policy.rules import Policy
from tickets.schemas import ActionRequest, OrderIn, TicketCreate

TZ = ZoneInfo("Asia/Shanghai")
HELD = ("approved", "issued", "confirmed")
OUT = ("issued", "confirmed")

# An unshipped order: refund-only requests are approved and proposed by the system at once
# (the default auto-approval rule), the TV is above the large-refund threshold (1000.00).
ORDER = order_json(
    status="paid",
    shipped_at=None,
    delivered_at=None,
    order_discount="0",
    lines=[
        {
            "sku": "TV",
            "title": "电视",
            "category": "electronics",
            "quantity": 1,
            "unit_price": "1500.00",
        },
        {"sku": "TEA", "title": "茶", "category": "food", "quantity": 3, "unit_price": "19.99"},
    ],
)
ITEMS = (
    (("TEA", 1),),
    (("TEA", 3),),
    (("TV", 1),),
    (("TV", 1), ("TEA", 2)),
)
WHO = ("alice", "bob", "lena", "system")
AGENTS = st.sampled_from(("alice", "bob", "lena"))
# The first case, the latest one, or each case in turn (drawn twice as often).
CASE = st.sampled_from(("all", 0, -1, "all"))


def ledger_problems(session: Session, order_id: int) -> list[str]:
    """Every way the order's ledger breaks the rules, read straight from the rows."""
    problems = []
    # By unit or payment id (None: a line that names neither, itself a problem found below).
    held_unit: dict[int | None, int] = defaultdict(int)
    held_payment: dict[int | None, int] = defaultdict(int)
    out_refunds: dict[int | None, set[int]] = defaultdict(set)
    shipping = 0
    for refund_id, status, kind, unit_id, payment_id, amount in session.execute(
        select(
            Refund.id,
            Refund.status,
            RefundLine.kind,
            RefundLine.unit_id,
            RefundLine.payment_id,
            RefundLine.amount,
        )
        .join(RefundLine, RefundLine.refund_id == Refund.id)
        .where(Refund.order_id == order_id, Refund.status.in_(HELD))
    ):
        if kind == "unit":
            held_unit[unit_id] += amount
            if status in OUT:
                out_refunds[unit_id].add(refund_id)
        elif kind == "payment":
            held_payment[payment_id] += amount
    for (fee,) in session.execute(
        select(Refund.shipping_refunded).where(Refund.order_id == order_id, Refund.status.in_(HELD))
    ):
        shipping += fee
    order = session.get(Order, order_id)
    assert order is not None
    for line in session.scalars(select(OrderLine).where(OrderLine.order_id == order_id)):
        for unit in line.units:
            if held_unit[unit.id] > unit.net:
                problems.append(f"{line.sku}#{unit.unit_index}: {held_unit[unit.id]} > {unit.net}")
            if len(out_refunds[unit.id]) > 1:
                problems.append(
                    f"{line.sku}#{unit.unit_index} refunded {len(out_refunds[unit.id])}x"
                )
    for pay in session.scalars(select(Payment).where(Payment.order_id == order_id)):
        if held_payment[pay.id] > pay.amount:
            problems.append(f"payment {pay.method}: {held_payment[pay.id]} > {pay.amount}")
    if shipping > order.shipping_fee:
        problems.append(f"shipping {shipping} > {order.shipping_fee}")
    return problems


class Desk(RuleBasedStateMachine):
    """One order, its cases, three agents and the rules, each step a unit of work (savepoint)."""

    engine: Engine

    def __init__(self) -> None:
        super().__init__()
        self.conn = self.engine.connect()
        self.outer = self.conn.begin()
        self.session = Session(bind=self.conn, join_transaction_mode="create_savepoint")
        self.now = NOW
        self.numbers: list[str] = []
        s = self.session
        self.agents = {
            name: create_agent(session=s, username=name, role=role, now=NOW)
            for name, role in (("alice", Role.agent), ("bob", Role.agent), ("lena", Role.lead))
        }
        order, _ = upsert_order(session=s, data=OrderIn(**ORDER), now=NOW)
        self.order_id = order.id
        s.flush()

    def _ctx(self) -> Context:
        # An hour a step: a second request for the order is then no duplicate of a recent one.
        self.now += timedelta(hours=1)
        return Context(policy=Policy(), now=self.now, tz=TZ)

    def _actor(self, who: str) -> Actor:
        return SYSTEM if who == "system" else Actor(kind="agent", agent=self.agents[who])

    @initialize(items=st.sampled_from(ITEMS), who=st.sampled_from(("alice", "system")))
    def first_case(self, items: tuple[tuple[str, int], ...], who: str) -> None:
        # Every run starts with a case, so no run is spent on an empty desk.
        self.open_a_case("refund_only", items, who)

    @rule(
        kind=st.sampled_from(["refund_only", "return_refund"]),
        items=st.sampled_from(ITEMS),
        who=st.sampled_from(("alice", "system")),
    )
    def open_a_case(self, kind: str, items: tuple[tuple[str, int], ...], who: str) -> None:
        request = TicketCreate(
            order_no=ORDER["order_no"],
            kind=kind,
            reason="changed_mind",
            items=[{"sku": sku, "quantity": q} for sku, q in items],
        )
        try:
            with self.session.begin_nested():
                ticket = open_case(
                    session=self.session, request=request, actor=self._actor(who), ctx=self._ctx()
                )
                self.numbers.append(ticket.number)
        except DomainError:
            pass

    def _do(self, case: int | str, action: str, who: str) -> bool:
        """The action on the case (every case, for "all"), each in its own unit of work; True
        when the desk did it at least once."""
        if not self.numbers:
            return False
        numbers = self.numbers if case == "all" else [self.numbers[int(case)]]
        done = False
        for number in numbers:
            request = ActionRequest(action=action, reason="because")
            try:
                with self.session.begin_nested():
                    perform_action(
                        session=self.session,
                        number=number,
                        request=request,
                        actor=self._actor(who),
                        ctx=self._ctx(),
                    )
            except DomainError:
                continue
            done = True
        return done

    # One rule per thing a desk does to a case, each by whoever `who` draws (the desk refuses
    # what their role or the maker-checker rule forbids), on the first case, the latest, or on
    # every case in turn (a busy desk working its queue: the sequences that matter come sooner).
    def _next_step(self, number: str, until: str) -> str | None:
        """The panel's highlighted next step for the case, short of `until`, or None."""
        status = self.session.scalar(select(Ticket.status).where(Ticket.number == number))
        if status in ("submitted", "escalated", "needs_info"):
            return "approve"
        if status != "refund_pending":
            return None
        refund = self.session.scalar(
            select(Refund.status)
            .join(Ticket, Ticket.id == Refund.ticket_id)
            .where(Ticket.number == number, Refund.status != "cancelled")
            .order_by(Refund.id.desc())
            .limit(1)
        )
        order = ("proposed", "approved", "issued")
        if refund in (None, "failed"):
            return "propose_refund"
        if refund in order and order.index(refund) >= order.index(until):
            return None
        return {"proposed": "approve_refund", "approved": "issue_refund"}.get(refund or "")

    @rule(case=CASE, who=AGENTS, until=st.sampled_from(("approved", "issued", "proposed")))
    def advance(self, case: int | str, who: str, until: str) -> None:
        # The case's next steps, as the panel's highlighted button offers them (approve the
        # case, propose its refund, approve it, issue it), until its refund is `until` or the
        # desk refuses the step.
        numbers = self.numbers if case == "all" else [self.numbers[int(case)]]
        for number in numbers:
            for _ in range(4):
                action = self._next_step(number, until)
                if action is None or not self._do(self.numbers.index(number), action, who):
                    break

    @rule(case=CASE, who=AGENTS)
    def close(self, case: int | str, who: str) -> None:
        # A case in refund_pending closes by way of an escalation (and its ruling).
        if not self._do(case, "close", who):
            self._do(case, "escalate", who)
            self._do(case, "close", who)

    @rule(case=CASE, who=st.sampled_from(WHO))
    def cancel(self, case: int | str, who: str) -> None:
        self._do(case, "cancel", who)

    @rule(case=CASE)
    def reopen_and_approve(self, case: int) -> None:
        # A lead reopens; an agent approves the case again (refund-only: back to refund_pending).
        if self._do(case, "reopen", "lena"):
            self._do(case, "approve", "bob")

    @rule(case=CASE, who=AGENTS)
    def withdraw(self, case: int | str, who: str) -> None:
        self._do(case, "withdraw_refund", who)

    @rule(case=CASE, who=AGENTS)
    def fail(self, case: int | str, who: str) -> None:
        self._do(case, "fail_refund", who)

    @invariant()
    def nothing_refunded_twice(self) -> None:
        assert ledger_problems(self.session, self.order_id) == []

    def teardown(self) -> None:
        self.session.close()
        self.outer.rollback()
        self.conn.close()


def test_no_sequence_of_actions_refunds_a_unit_twice(engine: Engine) -> None:
    Desk.engine = engine
    run_state_machine_as_test(
        Desk,
        settings=settings(
            max_examples=int(os.environ.get("AFTERSALES_LEDGER_EXAMPLES", "60")),
            stateful_step_count=50,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# ---------------------------------------------------------------- two workers at once


def _second_case_on_the_same_units(s: Session, first: str, now: datetime) -> str:
    """A case naming the first case's units, as two requests racing before the order lock
    could make, or as a case closed and reopened before the rule could leave."""
    a = s.scalar(select(Ticket).where(Ticket.number == first))
    assert a is not None
    b = Ticket(
        number=first + "-B",
        kind=a.kind,
        status=a.status,
        group=a.group,
        order_id=a.order_id,
        customer_id=a.customer_id,
        reason=a.reason,
        channel="api",
        created_at=now,
        updated_at=now,
    )
    b.items = [TicketItem(line_id=i.line_id, sku=i.sku, quantity=i.quantity) for i in a.items]
    b.units = [TicketUnit(unit_id=u.unit_id, status=u.status) for u in a.units]
    s.add(b)
    s.flush()
    return b.number


def test_two_cases_of_the_same_units_at_once_issue_at_most_one_refund(
    fresh_db_url: str,
) -> None:
    engine = make_engine(fresh_db_url)
    sessions = make_sessionmaker(engine)
    ctx = Context(policy=Policy(), now=NOW, tz=TZ)
    try:
        with unit_of_work(sessions) as s:
            for name in ("alice", "bob"):
                create_agent(session=s, username=name, role=Role.agent, now=NOW)
            order, _ = upsert_order(session=s, data=OrderIn(**ORDER), now=NOW)
            order_id = order.id
            first = open_case(
                session=s,
                request=TicketCreate(
                    order_no=ORDER["order_no"],
                    kind="refund_only",
                    reason="changed_mind",
                    items=[{"sku": "TEA", "quantity": 3}],
                ),
                actor=SYSTEM,
                ctx=ctx,
            ).number
            # The system proposed the first case's refund; the second proposes its own.
            second = _second_case_on_the_same_units(s, first, NOW)
        with unit_of_work(sessions) as s:
            perform_action(
                session=s,
                number=second,
                request=ActionRequest(action="propose_refund"),
                actor=SYSTEM,
                ctx=ctx,
            )
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def work(number: str, name: str) -> None:
            barrier.wait()
            try:
                with unit_of_work(sessions) as s:
                    agent = s.scalar(select(Agent).where(Agent.username == name))
                    for action in ("approve_refund", "issue_refund"):
                        perform_action(
                            session=s,
                            number=number,
                            request=ActionRequest(action=action),
                            actor=Actor(kind="agent", agent=agent),
                            ctx=ctx,
                        )
                outcomes[number] = "issued"
            except Conflict as exc:
                outcomes[number] = f"refused: {exc.message}"

        threads = [
            threading.Thread(target=work, args=(first, "alice")),
            threading.Thread(target=work, args=(second, "bob")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(v.split(":")[0] for v in outcomes.values()) == ["issued", "refused"], outcomes
        refused = next(v for v in outcomes.values() if v.startswith("refused"))
        assert "left to refund" in refused
        with sessions() as s:
            assert ledger_problems(s, order_id) == []
            assert s.scalar(
                select(Refund.id).where(Refund.order_id == order_id, Refund.status == "issued")
            )
    finally:
        engine.dispose()


def test_the_checker_itself_sees_a_double_refund(engine: Engine) -> None:
    """ledger_problems is not vacuous: two issued refunds of one unit are reported."""
    conn = engine.connect()
    outer = conn.begin()
    try:
        s = Session(bind=conn, join_transaction_mode="create_savepoint")
        order, _ = upsert_order(session=s, data=OrderIn(**ORDER), now=NOW)
        first = open_case(
            session=s,
            request=TicketCreate(
                order_no=ORDER["order_no"],
                kind="refund_only",
                reason="changed_mind",
                items=[{"sku": "TEA", "quantity": 1}],
            ),
            actor=SYSTEM,
            ctx=Context(policy=Policy(), now=NOW, tz=TZ),
        )
        refund = s.scalar(select(Refund).where(Refund.ticket_id == first.id))
        assert refund is not None
        refund.status = "issued"
        copy: Any = Refund(
            ticket_id=first.id,
            order_id=order.id,
            amount=refund.amount,
            currency=refund.currency,
            method=refund.method,
            status="issued",
            created_at=NOW,
        )
        copy.lines = [
            RefundLine(kind=ln.kind, unit_id=ln.unit_id, payment_id=ln.payment_id, amount=ln.amount)
            for ln in refund.lines
        ]
        s.add(copy)
        s.flush()
        assert any("refunded 2x" in p for p in ledger_problems(s, order.id))
        s.close()
    finally:
        outer.rollback()
        conn.close()
