"""The customer and the case, over HTTP: the customer's history beside a case (same
customer, linked accounts, same phone, same address) and the risk signals that open exactly
what they counted; agents' files in replies; the phone-call form; a reply from a stale page;
and the API's contract fixes (no default inspection outcome, no approve button for the
proposer, the approvals list)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Panel
from tests.factories import make_case, recent_order_json
from tickets.context import Context
from tickets.models import Customer, Order, Ticket
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn


def _who(n: int, phone: str | None = None) -> dict[str, Any]:
    return {"name": f"客户{n}", "phone": phone or f"1390000{n:04d}", "telegram_user_id": 80000 + n}


def _history_numbers(page: str) -> list[str]:
    return re.findall(r'data-history-case="([^"]+)"', page)


def _history_orders(page: str) -> list[str]:
    return re.findall(r'data-history-order="([^"]+)"', page)


def _order(sessions: sessionmaker[Session], ctx: Context, order_no: str, **over: Any) -> None:
    with sessions() as s:
        upsert_order(
            session=s,
            data=OrderIn.model_validate(recent_order_json(order_no, ctx.now, **over)),
            now=ctx.now,
        )
        s.commit()


# ---------------------------------------------------------------- customer history


def test_a_case_lists_the_customers_other_cases_and_orders_with_why(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    first = make_case(sessions, ctx, "H1", customer=_who(1))
    second = make_case(sessions, ctx, "H2", customer=_who(1))
    # Another phone of the same person, linked to the first customer's account.
    other_phone = make_case(sessions, ctx, "H3", customer=_who(3))
    # A stranger's order to the same address (a different address for everyone else).
    _order(sessions, ctx, "H4", customer=_who(4), address="北京市朝阳区建国路 1 号")
    _order(sessions, ctx, "H5", customer=_who(5), address="北京市朝阳区建国路 1 号")
    unrelated = make_case(sessions, ctx, "H6", customer=_who(6))
    with sessions() as s:
        c1 = s.scalar(select(Customer).where(Customer.phone == _who(1)["phone"]))
        assert c1 is not None
        s.execute(
            update(Customer).where(Customer.phone == _who(3)["phone"]).values(linked_to_id=c1.id)
        )
        s.execute(
            update(Order).where(Order.order_no == "H2").values(address="北京市朝阳区建国路 1 号")
        )
        s.commit()

    page = alice.get(f"/panel/cases/{second}")
    assert page.status_code == 200
    cases = _history_numbers(page.text)
    # Newest first; this case itself and the stranger's case are not listed.
    assert cases == [other_phone, first]
    assert unrelated not in cases and second not in cases
    assert re.search(rf'data-history-case="{other_phone}".*?linked account', page.text, re.S)
    assert re.search(rf'data-history-case="{first}".*?same customer', page.text, re.S)
    orders = _history_orders(page.text)
    assert set(orders) == {"H1", "H3", "H4", "H5"}
    assert re.search(r'data-history-order="H5".*?same address', page.text, re.S)
    assert f'href="/panel/cases/{first}"' in page.text
    assert 'href="/panel?queue=all&amp;q=H4"' in page.text


def test_the_history_is_bounded_with_a_count(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context, monkeypatch: Any
) -> None:
    numbers = [make_case(sessions, ctx, f"B{i}", customer=_who(7)) for i in range(4)]
    settings = alice.client.app.state.settings  # type: ignore[attr-defined]  # a FastAPI app
    monkeypatch.setitem(settings.__dict__, "panel_history_limit", 2)
    page = alice.get(f"/panel/cases/{numbers[-1]}")
    assert _history_numbers(page.text) == [numbers[2], numbers[1]]
    assert 'data-count="cases">3<' in page.text
    # The full list is a click away.
    full = alice.get(f"/panel/cases/{numbers[-1]}/history")
    assert _history_numbers(full.text) == [numbers[2], numbers[1], numbers[0]]


def test_a_repeat_claims_signal_opens_exactly_the_cases_it_counted(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    old = make_case(sessions, ctx, "R0", customer=_who(8))
    with sessions() as s:
        # Long before the 30-day window: not counted.
        s.execute(
            update(Ticket)
            .where(Ticket.number == old)
            .values(created_at=ctx.now.replace(year=ctx.now.year - 1))
        )
        s.commit()
    counted = [make_case(sessions, ctx, f"R{i}", customer=_who(8)) for i in range(1, 4)]
    third = counted[-1]
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == third))
        assert ticket is not None
        codes = [sig["code"] for sig in ticket.risk_signals]
    assert "repeat_claims" in codes
    page = alice.get(f"/panel/cases/{third}")
    assert f'href="/panel/cases/{third}/history?signal=repeat_claims"' in page.text
    listed = alice.get(f"/panel/cases/{third}/history?signal=repeat_claims")
    assert listed.status_code == 200
    assert sorted(_history_numbers(listed.text)) == sorted(counted)
    assert old not in listed.text
    # The customer's whole history still has the old one.
    assert old in _history_numbers(alice.get(f"/panel/cases/{third}/history").text)
