"""Notifications: a new case in my group, a case assigned to me, a customer's reply on my case,
a colleague's @mention of me in an internal note; listed on the panel (newest first), opened
(marked read) and marked read, each agent only their own, kept bounded."""

from __future__ import annotations

import re
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Panel
from tests.factories import act, make_case
from tickets.cases.conversation import add_customer_message
from tickets.context import Context
from tickets.models import Agent, Notification, Ticket
from tickets.notifications import mentioned


def _of(sessions: sessionmaker[Session], username: str) -> list[tuple[str, str]]:
    with sessions() as s:
        return [
            (n.kind, n.number)
            for n in s.scalars(
                select(Notification)
                .join(Agent, Agent.id == Notification.agent_id)
                .where(Agent.username == username)
                .order_by(Notification.id)
            )
        ]


def test_who_hears_what(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context, panel_app: object
) -> None:
    number = make_case(sessions, ctx, "NT1")
    # A new case in the service group: Alice and Lena (service) hear of it, Bob (finance) not.
    assert _of(sessions, "alice") == [("new_case", number)]
    assert _of(sessions, "lena") == [("new_case", number)]
    assert _of(sessions, "bob") == []
    # Lena assigns it to Alice: Alice hears; Lena taking a case herself is no news to her.
    act(sessions, ctx, number, "assign", assignee="alice")
    assert _of(sessions, "alice")[-1] == ("assigned", number)
    act(sessions, ctx, number, "assign", assignee="lena")
    assert ("assigned", number) not in _of(sessions, "lena")
    act(sessions, ctx, number, "assign", assignee="alice")
    # The customer answers on Alice's case.
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        add_customer_message(session=s, ticket=ticket, text="any news?", ctx=ctx)
        s.commit()
    assert _of(sessions, "alice")[-1] == ("customer_reply", number)
    # Alice mentions Bob (and a name nobody has) in a note: Bob hears, with the note's words.
    r = alice.post(
        f"/panel/cases/{number}/reply",
        {"text": "@bob can finance check this? cc @nobody, mail me@example.com", "internal": "1"},
    )
    assert r.status_code == 303
    assert _of(sessions, "bob") == [("mention", number)]
    assert [k for k, _ in _of(sessions, "alice")].count("mention") == 0
    with sessions() as s:
        note = s.scalar(select(Notification).where(Notification.kind == "mention"))
        assert note is not None and note.by == "agent:alice"
        assert note.excerpt.startswith("@bob can finance check this?")


def test_mentions_are_real_usernames() -> None:
    assert mentioned("@tom and @Li.Lei. please; not mail@example.com, @tom again") == [
        "tom",
        "Li.Lei",
    ]


def test_the_list_opens_and_marks_read_each_agent_their_own(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context, panel_app: object
) -> None:
    from tests.conftest import logged_in

    first = make_case(sessions, ctx, "NT2")
    second = make_case(sessions, ctx, "NT3", customer={"name": "乙", "phone": "13900008888"})
    page = alice.get("/panel/notifications")
    assert page.status_code == 200
    assert f"New case in your group: {second}" in page.text
    # Newest first.
    assert page.text.index(second) < page.text.index(first)
    assert 'id="unread-count">2<' in page.text
    ids = [int(i) for i in re.findall(r'data-notification="(\d+)"', page.text)]
    r = alice.get(f"/panel/notifications/{ids[0]}/open")
    assert r.status_code == 303 and r.headers["location"] == f"/panel/cases/{second}"
    assert 'id="unread-count">1<' in alice.get("/panel/notifications").text
    # Bob cannot open or mark Alice's.
    bob = logged_in(panel_app, "bob")
    assert bob.get(f"/panel/notifications/{ids[1]}/open").status_code == 404
    assert bob.post(f"/panel/notifications/{ids[1]}/read").status_code == 404
    assert f"{first}" not in bob.get("/panel/notifications").text
    assert alice.post("/panel/notifications/read").status_code == 303
    assert 'id="unread-count"' not in alice.get("/panel/notifications").text


def test_each_agent_keeps_the_newest_few(
    panel_app: object,
    sessions: sessionmaker[Session],
    ctx: Context,
) -> None:
    # The shop keeps 3 per agent (AFTERSALES_LIMIT_NOTIFICATIONS_PER_AGENT, as the context
    # carries it; tests/test_team_limits.py sets it through the setting).
    ctx = replace(ctx, limits=replace(ctx.limits, notifications_per_agent=3))
    numbers = [
        make_case(sessions, ctx, f"NB{i}", customer={"name": f"c{i}", "phone": f"1390000{i:04d}"})
        for i in range(5)
    ]
    assert _of(sessions, "alice") == [("new_case", n) for n in numbers[-3:]]
