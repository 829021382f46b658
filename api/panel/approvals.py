"""Waiting for my approval: the large refunds someone else proposed, which need a second
person (maker-checker, MONEY.md rule 16). The core says which refunds this agent may approve
(tickets/cases/actions/refunds.py `awaiting_second_approval`); the page lists them, oldest first,
each with its amount, who proposed it and when, and an approve button that comes back here.
Their count is the nav's badge (`/panel/approvals/count`); the JSON API lists the same
(`GET /api/v1/approvals`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from api.deps import SessionDep
from api.panel.auth import CurrentPanelAgent
from api.panel.pages import render
from tickets.cases.actions.refunds import awaiting_second_approval
from tickets.models import Agent
from tickets.money import format_amount

router = APIRouter()


@router.get("/approvals")
def approvals(request: Request, session: SessionDep, agent: CurrentPanelAgent) -> Response:
    """The refunds waiting for this agent's approval as the second person."""
    pending = awaiting_second_approval(session, agent)
    makers = {r.proposed_by_id for _t, r in pending if r.proposed_by_id is not None}
    names = {
        a.id: a.display_name or a.username
        for a in session.scalars(select(Agent).where(Agent.id.in_(makers)))
    }
    rows = [
        {
            "ticket": t,
            "refund": r,
            "amount": format_amount(r.amount, r.currency),
            "proposed_by": names.get(r.proposed_by_id) if r.proposed_by_id else None,
        }
        for t, r in pending
    ]
    return render(
        request, "approvals.html", {"rows": rows, "done": request.query_params.get("done")}
    )


@router.get("/approvals/count")
def approvals_count(request: Request, session: SessionDep, agent: CurrentPanelAgent) -> Response:
    """How many refunds wait for this agent's approval: the nav's badge (htmx, fetched apart
    from the page so no page waits for it, and refreshed)."""
    count = len(awaiting_second_approval(session, agent))
    return HTMLResponse(f'<span class="count" data-count="{count}">{count}</span>' if count else "")
