"""Leads mark agents away and back (the core's rule, tickets/team.py), from the panel and the
API: an away agent gets no case from automatic assignment and shows as away; a lead marks only
their own group's agents, an agent only themselves; every change by someone else is audited."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Api, logged_in
from tests.factories import act, make_case
from tickets.models import Agent, AuditEntry


def _away(sessions: sessionmaker[Session], username: str) -> bool:
    with sessions() as s:
        agent = s.scalar(select(Agent).where(Agent.username == username))
        assert agent is not None
        return agent.away


def _agent_id(sessions: sessionmaker[Session], username: str) -> int:
    with sessions() as s:
        agent_id = s.scalar(select(Agent.id).where(Agent.username == username))
        assert agent_id is not None
        return agent_id


def test_a_lead_marks_an_agent_of_their_group_away_and_back_in_the_panel(
    panel_app: Any, sessions: sessionmaker[Session]
) -> None:
    lena = logged_in(panel_app, "lena")
    page = lena.get("/panel/admin").text
    alice, bob = _agent_id(sessions, "alice"), _agent_id(sessions, "bob")
    # Alice is in Lena's group: Lena is offered the switch; Bob (finance) is not hers.
    assert 'data-mark-away="alice"' in page
    assert 'data-mark-away="bob"' not in page
    r = lena.post(f"/panel/admin/agents/{alice}/away", {"away": "1"})
    assert (r.status_code, r.headers["location"]) == (303, "/panel/admin?saved=away")
    assert _away(sessions, "alice")
    page = lena.get("/panel/admin").text
    row = re.search(r'<tr data-agent="alice".*?</tr>', page, re.S)
    assert row is not None and 'data-away="yes"' in row.group(0)
    assert 'data-mark-back="alice"' in page
    # Shown as away where cases are assigned.
    assert "Alice (away)" in lena.get("/panel?queue=all").text
    with sessions() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "agent.away"))
        assert entry is not None
        assert (entry.actor, entry.target) == ("agent:lena", "alice")
    # Another group's agent: refused, nothing changed.
    assert lena.post(f"/panel/admin/agents/{bob}/away", {"away": "1"}).status_code == 403
    assert not _away(sessions, "bob")
    # An agent may not mark a colleague.
    assert (
        logged_in(panel_app, "alice")
        .post(f"/panel/admin/agents/{alice}/away", {"away": "0"})
        .status_code
        == 403
    )
    r = lena.post(f"/panel/admin/agents/{alice}/away", {"away": "0"})
    assert r.status_code == 303
    assert not _away(sessions, "alice")


def test_the_api_marks_away_by_the_same_rule(api: Api, sessions: sessionmaker[Session]) -> None:
    r = api.as_("lena").post("/api/v1/agents/alice/away", json={"away": True})
    assert r.status_code == 200, r.text
    assert r.json() == {"username": "alice", "away": True, "changed": True}
    assert _away(sessions, "alice")
    again = api.as_("lena").post("/api/v1/agents/alice/away", json={"away": True})
    assert again.json()["changed"] is False
    # Alice brings herself back; she may not mark Bob, nor Lena Bob (another group).
    assert (
        api.as_("alice").post("/api/v1/agents/alice/away", json={"away": False}).json()["away"]
        is False
    )
    assert api.as_("alice").post("/api/v1/agents/bob/away", json={"away": True}).status_code == 403
    assert api.as_("lena").post("/api/v1/agents/bob/away", json={"away": True}).status_code == 403
    assert not _away(sessions, "bob")
    # Bad input: a clear error, nothing changed.
    assert (
        api.as_("lena").post("/api/v1/agents/alice/away", json={"away": "maybe"}).status_code == 422
    )
    assert api.as_("lena").post("/api/v1/agents/alice/away", json={}).status_code == 422
    assert (
        api.as_("lena").post("/api/v1/agents/nobody/away", json={"away": True}).status_code == 404
    )
    assert not _away(sessions, "alice")
    # An orders-only token may not.
    assert api.as_("shop").post("/api/v1/agents/shop/away", json={"away": True}).status_code == 403


def _assignee_cell(page: str, number: str) -> str:
    row = re.search(rf'<tr data-case="{number}".*?</tr>', page, re.S)
    assert row is not None, page
    return row.group(0)


def test_an_away_assignee_is_marked_in_the_queue_and_on_the_case(
    panel_app: Any, sessions: sessionmaker[Session], ctx: Any
) -> None:
    number = make_case(sessions, ctx, "AW1")
    act(sessions, ctx, number, "assign", assignee="alice")
    lena = logged_in(panel_app, "lena")
    # Alice is here: her name alone.
    assert "(away)" not in _assignee_cell(lena.get("/panel?queue=all").text, number)
    assert 'data-away="alice"' not in lena.get(f"/panel/cases/{number}").text
    assert lena.post(f"/panel/admin/agents/{_agent_id(sessions, 'alice')}/away", {"away": "1"})
    # Away: the case waits on someone who is not there, and both places say so.
    row = _assignee_cell(lena.get("/panel?queue=all").text, number)
    assert re.search(r'Alice</span> <span class="away" data-away="alice">\(away\)</span>', row)
    case = lena.get(f"/panel/cases/{number}").text
    assert re.search(r'Alice</span> <span class="away" data-away="alice">\(away\)</span>', case)
    # In Chinese too.
    with sessions() as s:
        s.execute(update(Agent).where(Agent.username == "bob").values(language="zh-CN"))
        s.commit()
    bob = logged_in(panel_app, "bob")
    assert "(离开)" in _assignee_cell(bob.get("/panel?queue=all").text, number)
    assert (
        '<span class="away" data-away="alice">(离开)</span>'
        in bob.get(f"/panel/cases/{number}").text
    )
