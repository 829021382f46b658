"""Saved views: an agent keeps a queue's filters under a name (the queue page's "save" form),
sees them in the sidebar with their live counts (api/panel/queue.py), and renames or deletes
them here. The rules (what a view holds, how many, only one's own) are the core's:
tickets/saved_views.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.errors import status_for
from api.panel.auth import CurrentPanelAgent
from api.panel.pages import render
from tickets.exceptions import DomainError
from tickets.models import Agent
from tickets.saved_views import (
    NAME_MAX,
    QUERY_MAX,
    delete_view,
    list_views,
    rename_view,
    save_view,
)
from tickets.schemas import DbId

router = APIRouter()


def _page(
    request: Request,
    session: Session,
    agent: Agent,
    *,
    problem: DomainError | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "views.html",
        {
            "views": list_views(session, agent),
            "problem": problem,
            "done": request.query_params.get("done"),
        },
        status_code=status_code,
    )


@router.get("/views")
def views_page(request: Request, session: SessionDep, agent: CurrentPanelAgent) -> Response:
    """The agent's saved views: open, rename, delete."""
    return _page(request, session, agent)


@router.post("/views")
def save(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    name: Annotated[str, Form(max_length=NAME_MAX * 4)] = "",
    query: Annotated[str, Form(max_length=QUERY_MAX * 2)] = "",
) -> Response:
    """Keep the queue's filters under a name, and open the view."""
    state = request.app.state
    try:
        view = save_view(
            session=session,
            agent=agent,
            name=name,
            query=query,
            limits=state.settings.limits,
            now=state.clock(),
        )
    except DomainError as exc:
        session.rollback()
        return _page(request, session, agent, problem=exc, status_code=status_for(exc))
    return RedirectResponse(f"/panel?{view.query}", status.HTTP_303_SEE_OTHER)


@router.post("/views/{view_id}/rename")
def rename(
    view_id: DbId,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    name: Annotated[str, Form(max_length=NAME_MAX * 4)] = "",
) -> Response:
    try:
        rename_view(session=session, agent=agent, view_id=view_id, name=name)
    except DomainError as exc:
        session.rollback()
        return _page(request, session, agent, problem=exc, status_code=status_for(exc))
    return RedirectResponse("/panel/views?done=renamed", status.HTTP_303_SEE_OTHER)


@router.post("/views/{view_id}/delete")
def delete(
    view_id: DbId, request: Request, session: SessionDep, agent: CurrentPanelAgent
) -> Response:
    try:
        delete_view(session=session, agent=agent, view_id=view_id)
    except DomainError as exc:
        session.rollback()
        return _page(request, session, agent, problem=exc, status_code=status_for(exc))
    return RedirectResponse("/panel/views?done=deleted", status.HTTP_303_SEE_OTHER)
