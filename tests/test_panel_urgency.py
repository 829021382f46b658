"""The queue on a busy Monday, over HTTP: how late an overdue case is and by which clock,
remaining time coloured by nearness and said in words, nearest due first with sortable columns
kept in the URL (the JSON API sorts the same way), counts that refresh with the rows, an empty
first screen that points at the work, and a search that forgives case and takes parts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Api, Panel, case_numbers, logged_in
from tests.factories import act, case_row, customer_json, make_case, recent_order_json
from tickets.cases.conversation import add_customer_message
from tickets.context import Context
from tickets.models import SlaClock, Ticket, utcnow
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn

# Half a minute more than 3 h 10 min: the page shows whole minutes, whatever the test's pace.
LATE_BY = timedelta(hours=3, minutes=10, seconds=30)


def _due(
    sessions: sessionmaker[Session], number: str, clock: str, due: timedelta, **more: Any
) -> None:
    """Move one clock of the case: due `due` from now (the panel reads the real time)."""
    with sessions() as s:
        s.execute(
            update(SlaClock)
            .where(SlaClock.ticket_id == case_row(sessions, number).id, SlaClock.clock == clock)
            .values(due_at=utcnow() + due, **more)
        )
        s.commit()


def _all_due(sessions: sessionmaker[Session], number: str, due: timedelta) -> None:
    with sessions() as s:
        s.execute(
            update(SlaClock)
            .where(SlaClock.ticket_id == case_row(sessions, number).id, SlaClock.state == "running")
            .values(due_at=utcnow() + due)
        )
        s.commit()


def _case(sessions: sessionmaker[Session], ctx: Context, order_no: str, **kw: Any) -> str:
    """A case of its own customer (one customer's many orders would raise the risk)."""
    n = sum(map(ord, order_no))
    who = {"name": f"Buyer {order_no}", "phone": f"1390000{n:04d}", "telegram_user_id": 90000 + n}
    return make_case(sessions, ctx, order_no, customer=who, **kw)


_SLA = r'<span class="sla ([a-z]+)" data-sla="\1"[^>]*>(.*?)</span>\s*</td>'
_NEXT = r'href="/panel\?queue=(\w+)"[^>]*data-next="\1">[^<]*<span class="count">(\d+)<'


def _sla_cell(page: str, number: str) -> str:
    """The SLA cell of a case's row, tags stripped, spaces squeezed."""
    row = re.search(rf'<tr data-case="{number}".*?</tr>', page, re.S)
    assert row, number
    cell = re.search(
        r'<span class="sla ([a-z]+)" data-sla="\1"[^>]*>(.*?)</span>\s*</td>', row[0], re.S
    )
    assert cell, row[0]
    text = re.sub(r"<[^>]+>", "", cell[2])
    return f"{cell[1]}: " + " ".join(text.split())


def _count(page: str, queue: str) -> int:
    found = re.search(rf'data-queue-count="{queue}">(\d+)<', page)
    assert found, queue
    return int(found.group(1))


def _chinese(panel: Panel) -> None:
    assert panel.post("/panel/language", {"language": "zh-CN", "back": "/panel"}).status_code == 303


# ---------------------------------------------------------------- how late, how near


def test_an_overdue_row_says_which_clock_was_missed_and_by_how_much(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = _case(sessions, ctx, "U1")
    # The sweep has marked the review breached; first response still runs, due tomorrow: the
    # row used to show that running clock's "1d 2h" in green, hiding the miss.
    _due(sessions, number, "review", -LATE_BY, state="breached")
    _due(sessions, number, "first_response", timedelta(days=1, hours=2, minutes=1))
    page = alice.get("/panel?queue=overdue").text
    assert case_numbers(page) == [number]
    assert _sla_cell(page, number) == "late: ⚠ Late Review: 3h 10m late"
    _chinese(alice)
    page = alice.get("/panel?queue=overdue").text
    assert _sla_cell(page, number) == "late: ⚠ 已逾期 审核：已超时 3小时10分"
    # A running clock past its due time is as late before the sweep has seen it.
    _due(sessions, number, "review", timedelta(days=2), state="running")
    _due(sessions, number, "first_response", -timedelta(minutes=45, seconds=30))
    page = alice.get("/panel?queue=overdue").text
    assert _sla_cell(page, number) == "late: ⚠ 已逾期 首次响应：已超时 45分"


def test_remaining_time_is_coloured_and_worded_by_nearness(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    soon = _case(sessions, ctx, "C1")
    calm = _case(sessions, ctx, "C2")
    theirs = _case(sessions, ctx, "C3")
    _all_due(sessions, soon, timedelta(minutes=56, seconds=30))  # within the hour: soon
    _all_due(sessions, calm, timedelta(days=4, minutes=1))
    act(sessions, ctx, theirs, "approve")  # the customer ships the return: their clock
    page = alice.get("/panel?queue=all").text
    assert _sla_cell(page, soon) == "soon: ⏳ Soon First response: 56m left"
    assert _sla_cell(page, calm) == "ok: First response: 4d 0h left"
    assert _sla_cell(page, theirs).startswith("customer: Customer ships: ")
    _chinese(alice)
    page = alice.get("/panel?queue=all").text
    assert _sla_cell(page, soon) == "soon: ⏳ 即将超时 首次响应：剩余 56分"
    assert _sla_cell(page, calm) == "ok: 首次响应：剩余 4天0小时"


# ---------------------------------------------------------------- order


def test_queues_list_the_nearest_due_first_and_sort_by_a_column_kept_in_the_url(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    calm = _case(sessions, ctx, "O1")
    late = _case(sessions, ctx, "O2")
    soon = _case(sessions, ctx, "O3")
    theirs = _case(sessions, ctx, "O4")
    _all_due(sessions, calm, timedelta(days=2))
    _all_due(sessions, late, -timedelta(hours=1))
    _all_due(sessions, soon, timedelta(minutes=30))
    act(sessions, ctx, theirs, "approve")  # no shop clock runs: last
    page = alice.get("/panel?queue=unassigned").text
    assert case_numbers(page) == [late, soon, calm, theirs]
    # "All cases", mostly closed ones with no clock, keeps newest first; due is one click away.
    every = alice.get("/panel?queue=all").text
    assert case_numbers(every) == [theirs, soon, late, calm]
    assert 'href="/panel?queue=all&amp;sort=due"' in every
    # Newest first is one click away, and the headers link to their orders.
    assert 'href="/panel?queue=unassigned&amp;sort=-created"' in page
    assert re.search(
        r'aria-sort="ascending"><a href="/panel\?queue=unassigned&amp;sort=-due"', page
    )
    newest = alice.get("/panel?queue=unassigned&sort=-created").text
    assert case_numbers(newest) == [theirs, soon, late, calm]
    assert 'aria-current="true" data-order="-created"' in newest
    with sessions() as s:
        s.execute(update(Ticket).where(Ticket.number == calm).values(risk_level="high"))
        s.commit()
    assert case_numbers(alice.get("/panel?queue=unassigned&sort=risk").text)[0] == calm
    assert case_numbers(alice.get("/panel?queue=unassigned&sort=-due").text) == [
        theirs,
        calm,
        soon,
        late,
    ]
    # The order is in the poll's URL and the next page's, with the filters.
    risky = alice.get("/panel?queue=unassigned&sort=-due&kind=return_refund").text
    assert "/panel?queue=unassigned&amp;kind=return_refund&amp;sort=-due&amp;partial=1" in risky
    # A hand-edited order is the default order, not an error.
    assert case_numbers(alice.get("/panel?queue=unassigned&sort=drop+table").text)[0] == late

    # Paged in the nearest-due order: every case once, in order.
    import api.panel.queue as queue_module

    monkeypatch.setattr(queue_module, "PAGE_SIZE", 3)
    seen: list[str] = []
    url = "/panel?queue=unassigned"
    while url:
        page = alice.get(url).text
        seen += case_numbers(page)
        nxt = re.search(r'href="(/panel\?[^"]*cursor=[^"]+)" class="button" rel="next"', page)
        url = nxt.group(1).replace("&amp;", "&") if nxt else ""
    assert seen == [late, soon, calm, theirs]


def test_the_api_sorts_its_queue_the_same_way(
    api: Api, sessions: sessionmaker[Session], ctx: Context
) -> None:
    calm = _case(sessions, ctx, "A1")
    late = _case(sessions, ctx, "A2")
    _all_due(sessions, calm, timedelta(days=2))
    _all_due(sessions, late, -timedelta(hours=1))

    def numbers(query: str) -> list[str]:
        r = api.get(f"/api/v1/tickets?{query}")
        assert r.status_code == 200, r.text
        return [t["number"] for t in r.json()["data"]]

    assert numbers("") == [late, calm]  # newest first, as before
    assert numbers("sort=due") == [late, calm]
    assert numbers("sort=-due") == [calm, late]
    assert numbers("sort=created") == [calm, late]
    first = api.get("/api/v1/tickets?sort=due&limit=1").json()
    assert [t["number"] for t in first["data"]] == [late]
    rest = api.get(f"/api/v1/tickets?sort=due&limit=1&cursor={first['next_cursor']}").json()
    assert [t["number"] for t in rest["data"]] == [calm]
    # A cursor belongs to its order; a made-up order is named.
    wrong = api.get(f"/api/v1/tickets?sort=-due&cursor={first['next_cursor']}")
    assert wrong.status_code == 422
    assert "cursor" in wrong.text
    bad = api.get("/api/v1/tickets?sort=amount")
    assert bad.status_code == 422
    assert "sort" in bad.text
    # The order's number in any case.
    assert numbers("order_no=a1") == [calm]


# ---------------------------------------------------------------- live counts


def test_the_poll_brings_the_counts_with_the_rows(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    first = _case(sessions, ctx, "L1")
    _all_due(sessions, first, -timedelta(hours=2))
    page = alice.get("/panel?queue=overdue").text
    assert 'hx-select-oob="#queue-counts,#match-count"' in page
    poll = alice.get("/panel?queue=overdue&partial=1").text
    assert (case_numbers(poll), _count(poll, "overdue")) == ([first], 1)
    # A case goes overdue between two polls: the next poll's list and counts both have it.
    second = _case(sessions, ctx, "L2")
    _all_due(sessions, second, -timedelta(hours=1))
    poll = alice.get("/panel?queue=overdue&partial=1").text
    assert "<html" not in poll
    assert len(case_numbers(poll)) == _count(poll, "overdue") == 2
    assert re.search(r'id="match-count">2 cases<', poll)
    assert _count(poll, "all") == 2


# ---------------------------------------------------------------- the first screen


def test_an_empty_mine_points_at_the_overdue_and_unassigned_queues(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    late = _case(sessions, ctx, "E1")
    _case(sessions, ctx, "E2")
    _all_due(sessions, late, -timedelta(hours=1))
    page = alice.get("/panel").text  # an agent lands on her own queue
    assert case_numbers(page) == []
    assert "Nothing is assigned to you right now." in page
    steps = re.findall(
        r'href="/panel\?queue=(\w+)"[^>]*data-next="\1">[^<]*<span class="count">(\d+)<', page
    )
    # Most urgent first: the overdue case, then the two nobody has taken (her group's after).
    assert steps[:2] == [("overdue", "1"), ("unassigned", "2")]
    _chinese(alice)
    page = alice.get("/panel").text
    assert "目前没有分配给你的工单。" in page
    assert 'data-next="overdue">已超时 <span class="count">1<' in page
    # Filtered to nothing, the page says so and does not send her elsewhere.
    assert 'id="next-steps"' not in alice.get("/panel?queue=mine&kind=exchange").text


# ---------------------------------------------------------------- search


def test_search_forgives_case_and_finds_parts(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    wang = customer_json("Wang Fang", "13912345678", 7001)
    mine = make_case(sessions, ctx, "DEMO-0046", customer=wang)
    li = customer_json("Li Na", "13800000001", 7002)
    other = make_case(sessions, ctx, "DEMO-0100", customer=li)

    def found(q: str) -> list[str]:
        return case_numbers(alice.get("/panel", params={"queue": "all", "q": q}).text)

    assert found("demo-0046") == [mine]  # the whole number, any case
    assert found(" Demo-0046 ") == [mine]  # spaces around
    assert found("0046") == [mine]  # without its prefix
    assert sorted(found("demo-0")) == sorted([mine, other])
    assert found("5678") == [mine]  # a phone's last digits
    assert found("wang") == [mine]  # part of a name, any case
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == other))
        assert ticket is not None
        add_customer_message(session=s, ticket=ticket, text="Tracking SF1234567 stuck", ctx=ctx)
        s.commit()
    assert found("sf1234567") == [other]  # words in the conversation, any case
    assert found("zz-nothing") == []


def test_the_new_case_form_finds_an_order_typed_in_any_case(
    panel_app: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    data = recent_order_json("DEMO-0046", ctx.now)
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=ctx.now)
        s.commit()
    alice = logged_in(panel_app, "alice")
    r = alice.post(
        "/panel/cases/new",
        {
            "order_no": " demo-0046 ",
            "kind": "return_refund",
            "reason": "size_fit",
            "channel": "phone",
            "priority": "normal",
            "sku_0": "SOCKS",
            "qty_0": "1",
        },
    )
    assert r.status_code == 303, r.text
    number = r.headers["location"].split("/")[-1].split("?")[0]
    assert case_numbers(alice.get("/panel?queue=all&q=demo-0046").text) == [number]
