"""Money integrity on the panel (issue 12): a case whose order no longer adds up stays readable
(page and evidence bundle), a live refund can be withdrawn from the page and closing lets it go,
the token page gives the orders scope."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Panel, admin_panel
from tests.factories import act, make_case, order_json
from tickets.context import Context
from tickets.models import Agent, ApiToken, Order, Refund, Ticket


def test_a_case_whose_order_no_longer_adds_up_stays_readable(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = make_case(sessions, ctx, "M1")
    act(sessions, ctx, number, "approve")
    act(sessions, ctx, number, "mark_received")
    act(sessions, ctx, number, "inspect")
    # The shipping fee replaced under the case, as re-sending an order could do before.
    with sessions() as s:
        s.execute(update(Order).where(Order.order_no == "M1").values(shipping_fee=1200))
        s.commit()
    page = alice.get(f"/panel/cases/{number}")
    assert page.status_code == 200
    assert "unavailable" in page.text
    bundle = alice.get(f"/panel/cases/{number}/bundle.zip")
    assert bundle.status_code == 200


def test_a_live_refund_is_withdrawn_from_the_page_and_closing_lets_it_go(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = make_case(sessions, ctx, "M2")
    for action in ("approve", "mark_received", "inspect"):
        act(sessions, ctx, number, action)
    page = alice.get(f"/panel/cases/{number}").text
    assert 'data-action-form="withdraw_refund"' not in page  # nothing to withdraw yet
    act(sessions, ctx, number, "propose_refund")
    page = alice.get(f"/panel/cases/{number}").text
    assert 'data-action-form="withdraw_refund"' in page
    version = re.search(r'name="version" value="(\d+)"', page)
    assert version
    r = alice.post(
        f"/panel/cases/{number}/actions/withdraw_refund",
        {"version": version.group(1), "reason": "wrong amount"},
    )
    assert r.status_code == 303
    with sessions() as s:
        ticket_id = s.scalar(select(Ticket.id).where(Ticket.number == number))
        assert list(s.scalars(select(Refund.status).where(Refund.ticket_id == ticket_id))) == [
            "cancelled"
        ]
    # Proposed and approved again, then the case is escalated and closed: the refund goes.
    for action in ("propose_refund", "approve_refund", "escalate", "close"):
        act(sessions, ctx, number, action)
    with sessions() as s:
        statuses = list(s.scalars(select(Refund.status).where(Refund.ticket_id == ticket_id)))
    assert statuses == ["cancelled", "cancelled"]
    assert "Refund withdrawn" in alice.get(f"/panel/cases/{number}").text


def test_an_admin_gives_a_token_the_orders_scope(
    panel_app: Any, sessions: sessionmaker[Session]
) -> None:
    boss = admin_panel(panel_app, sessions)
    r = boss.post("/panel/admin/tokens", {"username": "bob", "name": "ERP", "scope": "orders"})
    assert r.status_code == 200
    found = re.search(r'id="token-value">([^<]+)<', r.text)
    assert found
    headers = {"Authorization": f"Bearer {found.group(1)}"}
    api = TestClient(panel_app)
    body = {"orders": [order_json("M3")]}
    assert api.post("/api/v1/orders", json=body, headers=headers).status_code == 200
    assert api.get("/api/v1/tickets", headers=headers).status_code == 403  # orders only
    with sessions() as s:
        assert s.scalar(select(ApiToken.scopes).where(ApiToken.name == "ERP")) == "orders"
    # Nothing ticked: the command line's default, cases only.
    r = boss.post("/panel/admin/tokens", {"username": "bob", "name": "desk"})
    found = re.search(r'id="token-value">([^<]+)<', r.text)
    assert found
    headers = {"Authorization": f"Bearer {found.group(1)}"}
    assert api.post("/api/v1/orders", json=body, headers=headers).status_code == 403
    assert (
        boss.post("/panel/admin/tokens", {"username": "bob", "scope": "everything"}).status_code
        == 422
    )


def test_the_take_button_is_offered_only_where_taking_is_allowed(
    panel_app: Any, alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = make_case(sessions, ctx, "M4")
    act(sessions, ctx, number, "assign", assignee="lena")
    assert "data-take" not in alice.get(f"/panel/cases/{number}").text
    page = alice.get(f"/panel/cases/{number}").text
    version = re.search(r'name="version" value="(\d+)"', page)
    assert version
    r = alice.post(f"/panel/cases/{number}/take", {"version": version.group(1)})
    assert r.status_code == 403
    with sessions() as s:
        holder = s.scalar(
            select(Agent.username)
            .join(Ticket, Ticket.assignee_id == Agent.id)
            .where(Ticket.number == number)
        )
    assert holder == "lena"
