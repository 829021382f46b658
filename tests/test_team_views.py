"""Saved views: an agent saves a queue's filters as a named queue of their own, sees it in the
sidebar with its live count, renames and deletes it; names and filters are checked, the count
per agent is bounded, and nobody touches another agent's views."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Panel, case_numbers, logged_in
from tests.factories import make_case
from tickets.context import Context
from tickets.models import SavedView


def _view_count(page: str, name: str) -> int:
    found = re.search(rf'data-view-count="{re.escape(name)}">(\d+)<', page)
    assert found, name
    return int(found.group(1))


def _views(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as s:
        return [(v.name, v.query) for v in s.scalars(select(SavedView).order_by(SavedView.id))]


def test_save_a_filter_as_a_view_with_its_live_count(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    first = make_case(sessions, ctx, "SV1")
    second = make_case(sessions, ctx, "SV2", customer={"name": "乙", "phone": "13900006666"})
    alice.post(f"/panel/cases/{first}/tags", {"tags": "vip"})
    page = alice.get("/panel?queue=all&tag=vip").text
    # The form keeps the filters, not the page the agent was on.
    assert 'name="query" value="queue=all&amp;tag=vip"' in page
    r = alice.post(
        "/panel/views", {"name": "  VIP   cases ", "query": "queue=all&tag=vip&cursor=x"}
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/panel?queue=all&tag=vip"
    assert _views(sessions) == [("VIP cases", "queue=all&tag=vip")]
    page = alice.get("/panel?queue=mine").text
    assert _view_count(page, "VIP cases") == 1
    # The count is live: a second case tagged shows at the next refresh (the 15 s poll).
    alice.post(f"/panel/cases/{second}/tags", {"tags": "VIP"})
    poll = alice.get("/panel?queue=mine&partial=1").text
    assert _view_count(poll, "VIP cases") == 2
    assert set(case_numbers(alice.get("/panel?queue=all&tag=vip").text)) == {first, second}
    # Rename, then delete.
    with sessions() as s:
        view_id = s.scalar(select(SavedView.id))
    assert alice.post(f"/panel/views/{view_id}/rename", {"name": "贵宾"}).status_code == 303
    assert _view_count(alice.get("/panel?queue=mine").text, "贵宾") == 2
    assert alice.post(f"/panel/views/{view_id}/delete").status_code == 303
    assert _views(sessions) == []
    assert "data-view-count" not in alice.get("/panel?queue=mine").text


def test_bad_views_are_refused_and_views_stay_their_owners(
    alice: Panel, panel_app: Any, sessions: sessionmaker[Session]
) -> None:
    for data, words in (
        ({"name": "", "query": "queue=all"}, "give the view a name"),
        ({"name": "x" * 61, "query": "queue=all"}, "at most 60"),
        ({"name": "odd", "query": "queue=all&drop=table"}, "unknown filter"),
        ({"name": "long", "query": "queue=all&q=" + "a" * 101}, "at most 100"),
    ):
        r = alice.post("/panel/views", data)
        assert r.status_code == 422, (data, r.status_code)
        assert words in r.text
    assert _views(sessions) == []
    assert alice.post("/panel/views", {"name": "Mine", "query": "queue=mine"}).status_code == 303
    r = alice.post("/panel/views", {"name": "Mine", "query": "queue=all"})
    assert r.status_code == 409
    assert "already have a view named" in r.text
    # At most AFTERSALES_LIMIT_SAVED_VIEWS_PER_AGENT (20).
    for i in range(19):
        assert (
            alice.post("/panel/views", {"name": f"v{i}", "query": "queue=all"}).status_code == 303
        )
    r = alice.post("/panel/views", {"name": "one too many", "query": "queue=all"})
    assert r.status_code == 422
    assert "delete one first" in r.text
    # Bob sees none of Alice's views and cannot rename or delete them.
    bob = logged_in(panel_app, "bob")
    assert "data-view-count" not in bob.get("/panel?queue=mine").text
    with sessions() as s:
        view_id = s.scalar(select(SavedView.id).where(SavedView.name == "Mine"))
    assert bob.post(f"/panel/views/{view_id}/rename", {"name": "mine now"}).status_code == 404
    assert bob.post(f"/panel/views/{view_id}/delete").status_code == 404
    assert len(_views(sessions)) == 20
    # No CSRF token, no change.
    r = bob.client.post("/panel/views", data={"name": "sneaky", "query": "queue=all"})
    assert r.status_code == 403
    assert len(_views(sessions)) == 20
