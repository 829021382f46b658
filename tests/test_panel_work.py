"""The panel's peak-day tools over HTTP: breaching-soon and overdue queues with their counts,
risk and date filters, opening a case by hand, bulk assign/approve with one refusal not
stopping the others, automatic assignment skipping agents who are away."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Panel, case_numbers, counting, logged_in, query_diff
from tests.factories import PASSWORD, act, case_row, make_case, order_json
from tickets.auth import create_agent
from tickets.context import Context
from tickets.models import Agent, Event, Role, SlaClock, Ticket, utcnow
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn


def _set_clocks(sessions: sessionmaker[Session], number: str, due_in: timedelta) -> None:
    """Every running clock of the case due `due_in` from now (the queues read real time)."""
    with sessions() as s:
        ticket_id = case_row(sessions, number).id
        s.execute(
            update(SlaClock)
            .where(SlaClock.ticket_id == ticket_id, SlaClock.state == "running")
            .values(due_at=utcnow() + due_in)
        )
        s.commit()


def _case(sessions: sessionmaker[Session], ctx: Context, order_no: str) -> str:
    """A low-risk case of its own customer (one customer's many orders raise the risk)."""
    n = sum(map(ord, order_no))
    who = {"name": f"客户{order_no}", "phone": f"1390000{n:04d}", "telegram_user_id": 90000 + n}
    return make_case(sessions, ctx, order_no, customer=who)


def _count(page: str, queue: str) -> int:
    found = re.search(rf'data-queue-count="{queue}">(\d+)<', page)
    assert found, queue
    return int(found.group(1))


# ---------------------------------------------------------------- queues


def test_breaching_soon_and_overdue_queues_with_counts(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    calm = make_case(sessions, ctx, "B1")
    soon = make_case(sessions, ctx, "B2")
    late = make_case(sessions, ctx, "B3")
    _set_clocks(sessions, calm, timedelta(days=3))
    _set_clocks(sessions, soon, timedelta(minutes=30))
    _set_clocks(sessions, late, timedelta(minutes=-10))
    page = alice.get("/panel?queue=breaching")
    assert page.status_code == 200
    assert case_numbers(page.text) == [soon]
    assert _count(page.text, "breaching") == 1
    assert _count(page.text, "overdue") == 1
    assert "Breaching soon" in page.text
    assert case_numbers(alice.get("/panel?queue=overdue").text) == [late]
    # Due in 90 minutes is not "soon" with the default 60 ...
    _set_clocks(sessions, soon, timedelta(minutes=90))
    assert case_numbers(alice.get("/panel?queue=breaching").text) == []
    # ... and is with a shop setting of 120 (read when present; the core Settings may add it).
    settings = alice.client.app.state.settings  # type: ignore[attr-defined]  # a FastAPI app
    monkeypatch.setitem(settings.__dict__, "panel_breaching_soon_minutes", 120)
    assert case_numbers(alice.get("/panel?queue=breaching").text) == [soon]
    # A clock the customer runs (shipping the return) is not the shop's lateness.
    act(sessions, ctx, calm, "approve")
    with sessions() as s:
        s.execute(
            update(SlaClock)
            .where(
                SlaClock.ticket_id == case_row(sessions, calm).id,
                SlaClock.clock == "customer_shipping",
            )
            .values(due_at=utcnow() - timedelta(hours=1))
        )
        s.commit()
    assert calm not in case_numbers(alice.get("/panel?queue=overdue").text)


def test_risk_and_created_date_filters(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    old = make_case(sessions, ctx, "R1")
    risky = make_case(sessions, ctx, "R2")
    with sessions() as s:
        s.execute(update(Ticket).where(Ticket.number == risky).values(risk_level="high"))
        s.execute(
            update(Ticket)
            .where(Ticket.number == old)
            .values(created_at=utcnow() - timedelta(days=10))
        )
        s.commit()
    assert case_numbers(alice.get("/panel?queue=all&risk=high").text) == [risky]
    today = utcnow().astimezone(ctx.tz).date()
    recent = alice.get(f"/panel?queue=all&created_from={today - timedelta(days=2)}")
    assert case_numbers(recent.text) == [risky]
    before = alice.get(f"/panel?queue=all&created_to={today - timedelta(days=5)}")
    assert case_numbers(before.text) == [old]
    # Nonsense dates are ignored, not a 500.
    assert len(case_numbers(alice.get("/panel?queue=all&created_from=yesterday").text)) == 2
    # The filter survives paging and the poll: it is in the page's links.
    assert "risk=high" in alice.get("/panel?queue=all&risk=high").text


def test_the_queue_with_new_filters_costs_the_same_queries_for_3_rows_or_30(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context, engine: Engine
) -> None:
    for i in range(3):
        make_case(sessions, ctx, f"F{i}")
    url = "/panel?queue=breaching&created_from=2020-01-01"
    with sessions() as s:
        s.execute(update(SlaClock).values(due_at=utcnow() + timedelta(minutes=20)))
        s.commit()
    alice.get(url)
    with counting(engine) as few:
        assert len(case_numbers(alice.get(url).text)) == 3
    for i in range(3, 30):
        make_case(sessions, ctx, f"F{i}")
    with sessions() as s:
        s.execute(update(SlaClock).values(due_at=utcnow() + timedelta(minutes=20)))
        s.commit()
    with counting(engine) as many:
        assert len(case_numbers(alice.get(url).text)) == 30
    assert len(many) == len(few), query_diff(few, many)


# ---------------------------------------------------------------- opening a case by hand


def _errors_for(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-error-for="([^"]+)">([^<]*)<', page))


def test_open_a_case_by_hand(
    panel_app: Any, alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    day = timedelta(days=1)
    data = order_json(
        "H1",
        placed_at=(ctx.now - 5 * day).isoformat(),
        paid_at=(ctx.now - 5 * day).isoformat(),
        shipped_at=(ctx.now - 4 * day).isoformat(),
        delivered_at=(ctx.now - 2 * day).isoformat(),
    )
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=ctx.now)
        s.commit()
    form = alice.get("/panel/cases/new")
    assert form.status_code == 200
    assert 'name="override_policy"' not in form.text  # agents are not offered the exception
    good = {
        "order_no": "H1",
        "kind": "return_refund",
        "reason": "size_fit",
        "channel": "phone",
        "priority": "high",
        "sku_0": "SOCKS",
        "qty_0": "1",
        "description": "customer called: too small",
    }
    # Problems are shown next to their fields, and what was typed is kept.
    r = alice.post("/panel/cases/new", {**good, "sku_1": "NOPE", "qty_1": "1", "qty_0": "9"})
    assert r.status_code == 422
    errors = _errors_for(r.text)
    assert "sku_1" in errors or "qty_0" in errors, errors
    assert 'value="customer called: too small"' not in r.text  # a textarea, not a value ...
    assert "customer called: too small</textarea>" in r.text  # ... kept as typed
    r = alice.post("/panel/cases/new", {**good, "kind": ""})
    assert r.status_code == 422
    assert "kind" in _errors_for(r.text)
    r = alice.post("/panel/cases/new", {**good, "order_no": "NO-SUCH"})
    assert r.status_code == 422
    assert "order_no" in _errors_for(r.text)
    r = alice.post("/panel/cases/new", {**good, "channel": "telegram"})
    assert r.status_code == 422
    assert "channel" in _errors_for(r.text)
    with sessions() as s:
        assert s.scalar(select(Ticket.id).where(Ticket.order_id.is_not(None))) is None

    r = alice.post("/panel/cases/new", good)
    assert r.status_code == 303, r.text
    number = r.headers["location"].split("/")[-1].split("?")[0]
    ticket = case_row(sessions, number)
    assert (ticket.channel, ticket.priority, ticket.kind) == ("phone", "high", "return_refund")
    with sessions() as s:
        created = s.scalar(
            select(Event).where(Event.ticket_id == ticket.id, Event.type == "case.created")
        )
        assert created is not None
        assert created.actor == "agent:alice"
    assert "Case opened." in alice.get(r.headers["location"]).text
    # The same order again: the existing case is named, nothing new is opened.
    r = alice.post("/panel/cases/new", good)
    assert r.status_code == 409
    assert f'href="/panel/cases/{number}"' in r.text

    # A complaint without an order needs the customer instead.
    talk = {"kind": "complaint", "reason": "service", "channel": "email"}
    r = alice.post(
        "/panel/cases/new", {**talk, "customer_name": "王五", "customer_phone": "13311112222"}
    )
    assert r.status_code == 303, r.text


def test_only_a_lead_may_open_a_case_as_an_exception_to_policy(
    panel_app: Any, alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    # Delivered 40 days ago: the 7-day no-reason window is long closed.
    day = timedelta(days=1)
    data = order_json(
        "X1",
        placed_at=(ctx.now - 45 * day).isoformat(),
        paid_at=(ctx.now - 45 * day).isoformat(),
        shipped_at=(ctx.now - 44 * day).isoformat(),
        delivered_at=(ctx.now - 40 * day).isoformat(),
    )
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=ctx.now)
        s.commit()
    late = {
        "order_no": "X1",
        "kind": "return_refund",
        "reason": "no_reason",
        "channel": "platform",
        "sku_0": "SOCKS",
        "qty_0": "1",
    }
    r = alice.post("/panel/cases/new", late)
    assert r.status_code == 422
    assert "Please correct the form" in r.text
    # Forged by an agent: refused on the server.
    r = alice.post("/panel/cases/new", {**late, "override_policy": "1"})
    assert r.status_code == 403
    assert "override_policy" in _errors_for(r.text)
    lena = logged_in(panel_app, "lena")
    assert 'name="override_policy"' in lena.get("/panel/cases/new").text
    r = lena.post("/panel/cases/new", {**late, "override_policy": "1"})
    assert r.status_code == 303, r.text
    number = r.headers["location"].split("/")[-1].split("?")[0]
    with sessions() as s:
        types = s.scalars(
            select(Event.type).where(Event.ticket_id == case_row(sessions, number).id)
        ).all()
    assert "policy.overridden" in types


# ---------------------------------------------------------------- bulk actions


def _selected(sessions: sessionmaker[Session], *numbers: str) -> list[str]:
    return [f"{n}@{case_row(sessions, n).version}" for n in numbers]


def _go(panel: Panel, confirm_page: Any) -> Any:
    """Press the confirmation page's button: its form, as the browser would post it."""
    form = confirm_page.text[confirm_page.text.index('id="bulk-go"') :]
    form = form[: form.index("</form>")]
    fields: dict[str, Any] = {}
    for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', form):
        if name == "case":
            fields.setdefault("case", []).append(value)
        elif name != "csrf_token":
            fields[name] = value
    return panel.post("/panel/bulk", fields)


def test_bulk_approve_does_each_case_on_its_own(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    a = _case(sessions, ctx, "K1")
    b = _case(sessions, ctx, "K2")
    c = _case(sessions, ctx, "K3")
    d = _case(sessions, ctx, "K4")
    picked = _selected(sessions, a, b, c, d)
    page = alice.get("/panel?queue=all")
    assert 'id="bulk"' in page.text
    assert f'value="{picked[0]}" form="bulk"' in page.text
    r = alice.post("/panel/bulk", {"action": "approve", "case": picked, "back": "/panel?queue=all"})
    assert r.status_code == 200, r.text
    assert "4 will go ahead, 0 left out." in r.text
    # Between the confirmation page and the click, b is approved and c turns out high risk.
    act(sessions, ctx, b, "approve")
    with sessions() as s:
        s.execute(update(Ticket).where(Ticket.number == c).values(risk_level="high"))
        s.commit()
    r = _go(alice, r)
    assert r.status_code == 200, r.text
    assert "2 done, 2 refused." in r.text
    refused = dict(re.findall(r'data-refused="([^"]+)"><td.*?<b>([^<]+)</b>', r.text, re.S))
    assert set(refused) == {b, c}
    assert "High risk" in refused[c]
    assert case_row(sessions, a).status == "awaiting_return"
    assert case_row(sessions, d).status == "awaiting_return"
    assert case_row(sessions, c).status == "submitted"


def test_bulk_assign_reports_a_stale_row_and_assigns_the_rest(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    a = _case(sessions, ctx, "G1")
    b = _case(sessions, ctx, "G2")
    picked = _selected(sessions, a, b)
    act(sessions, ctx, b, "assign", priority="high")  # someone changed b after the page was drawn
    r = alice.post("/panel/bulk", {"action": "assign", "assignee": "bob", "case": picked})
    assert r.status_code == 200
    # Said before anything is done: a goes to Bob, b was changed by someone else.
    assert "1 will go ahead, 1 left out." in r.text
    assert "Assigned to Bob" in r.text
    assert "Someone else changed it first" in r.text
    assert case_row(sessions, a).assignee_id is None
    r = _go(alice, r)
    assert "1 done, 0 refused." in r.text
    with sessions() as s:
        bob = s.scalar(select(Agent.id).where(Agent.username == "bob"))
    assert case_row(sessions, a).assignee_id == bob
    assert case_row(sessions, b).assignee_id is None
    # To a group, and nothing selected / nobody chosen are clear 422s.
    r = alice.post(
        "/panel/bulk", {"action": "assign", "group": "logistics", "case": _selected(sessions, b)}
    )
    r = _go(alice, r)
    assert "1 done, 0 refused." in r.text
    assert case_row(sessions, b).group == "logistics"
    assert alice.post("/panel/bulk", {"action": "assign", "assignee": "bob"}).status_code == 422
    assert alice.post("/panel/bulk", {"action": "assign", "case": picked}).status_code == 422
    # CSRF as everywhere.
    assert alice.client.post("/panel/bulk", data={"action": "approve"}).status_code == 403


# ---------------------------------------------------------------- automatic assignment, away


def test_round_robin_skips_agents_who_are_away(
    panel_app: Any, alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    with sessions() as s:
        carol = create_agent(
            session=s,
            username="carol",
            role=Role.agent,
            group="service",
            password=PASSWORD,
            now=utcnow(),
        )
        carol.away = True
        s.commit()
    made = [_case(sessions, ctx, f"A{i}") for i in range(4)]
    assert {case_row(sessions, n).group for n in made} == {"service"}
    # An agent may not share out cases.
    assert alice.post("/panel/assign/round-robin").status_code == 403
    lena = logged_in(panel_app, "lena")
    assert 'id="auto-assign"' in lena.get("/panel?queue=unassigned").text
    r = lena.post("/panel/assign/round-robin", {"back": "/panel?queue=unassigned"})
    assert r.status_code == 200, r.text
    assert "4 done, 0 refused." in r.text
    with sessions() as s:
        names: dict[int | None, str] = dict(s.execute(select(Agent.id, Agent.username)).all())
    owners = [names[case_row(sessions, n).assignee_id] for n in made]
    assert sorted(owners) == ["alice", "alice", "lena", "lena"]
    # Another lead's group is not theirs to share out.
    assert lena.post("/panel/assign/round-robin", {"group": "finance"}).status_code == 403


def test_an_agent_marks_themselves_away_and_back(
    alice: Panel, sessions: sessionmaker[Session]
) -> None:
    page = alice.get("/panel/me")
    assert page.status_code == 200
    assert "Mark me away" in page.text
    assert alice.client.post("/panel/me/away", data={"away": "1"}).status_code == 403
    r = alice.post("/panel/me/away", {"away": "1"})
    assert (r.status_code, r.headers["location"]) == (303, "/panel/me?saved=1")
    with sessions() as s:
        assert s.scalar(select(Agent.away).where(Agent.username == "alice")) is True
    assert "I am back" in alice.get("/panel/me").text
    alice.post("/panel/me/away", {"away": "0"})
    with sessions() as s:
        assert s.scalar(select(Agent.away).where(Agent.username == "alice")) is False
