"""JSON API: the team tools the panel has — macros (listed, previewed and applied on a case),
the agent's saved views, and the agent's notifications. Each route calls the same core function
as the panel's (tickets/macros.py, tickets/saved_views.py, tickets/notifications.py): one rule,
one home. Views and notifications are always the token's agent's own; another's is a 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AgentActor, ContextDep, CurrentAgent, MacrosDep, SessionDep
from api.offload import OffLoop
from tickets.cases.serialize import actions_for, ticket_to_read
from tickets.cases.status import get_ticket
from tickets.exceptions import NotFound
from tickets.macros import MacroSpec, apply_macro, preview_macro
from tickets.models import Role
from tickets.notifications import KINDS, latest, mark_read, since, unread_count
from tickets.saved_views import NAME_MAX, QUERY_MAX, delete_view, list_views, rename_view, save_view
from tickets.schemas import INT32_MAX, DbId, DbInt
from tickets.schemas import TicketRead as TicketJSON
from tickets.sla import clocks as sla

router = APIRouter(route_class=OffLoop)

# A case number and a macro's name as paths carry them: bounded before any lookup.
CaseNumber = Annotated[str, Path(max_length=40)]
MacroName = Annotated[str, Path(pattern=r"^[a-z0-9_]{1,40}$")]
# The most notifications one answer lists (the panel's list shows 50).
NOTIFICATIONS_PAGE_MAX = 200


# ---------------------------------------------------------------- macros


class MacroRead(BaseModel):
    name: str
    title: dict[str, str] = Field(description="the button's words per panel language")
    action: str = Field(description="refuse, request_info or close")
    script: str = Field(description="the reply script the customer's notice is filled from")


class MacroList(BaseModel):
    data: list[MacroRead]


class MacroIn(BaseModel):
    """`version`: the case's version the caller saw (a changed case is a 409, as actions are)."""

    model_config = ConfigDict(extra="forbid")
    version: DbInt | None = None


class MacroPreviewRead(BaseModel):
    status: str = Field(description="the status the case would go to")
    texts: list[str] = Field(description="what the customer would read (Telegram HTML), in order")


def _macro(spec: MacroSpec) -> MacroRead:
    return MacroRead(name=spec.name, title=spec.title, action=spec.action, script=spec.script)


@router.get("/macros", response_model=MacroList, tags=["macros"])
def macros(
    session: SessionDep,
    agent: CurrentAgent,
    shop: MacrosDep,
    number: Annotated[
        str | None,
        Query(max_length=40, description="only the macros this case's status allows the caller"),
    ] = None,
) -> MacroList:
    """The shop's macros (a reply script and an action in one step), in the file's order; with
    `number`, those the case allows the caller now (as its page lists them)."""
    found = list(shop.by_name.values())
    if number is not None:
        ticket = get_ticket(session=session, number=number)
        found = shop.usable(actions_for(session, ticket, agent))
    return MacroList(data=[_macro(m) for m in found])


@router.post(
    "/tickets/{number}/macros/{name}/preview", response_model=MacroPreviewRead, tags=["macros"]
)
def preview(
    number: CaseNumber,
    name: MacroName,
    body: MacroIn,
    session: SessionDep,
    actor: AgentActor,
    ctx: ContextDep,
    shop: MacrosDep,
) -> MacroPreviewRead:
    """What applying the macro would do to the case, nothing kept: the status it would reach
    and the customer's exact words; or the refusal applying would meet (409 for a status that
    does not allow it or a stale version, 403 for a role's limit)."""
    shown = preview_macro(
        session=session,
        number=number,
        macro=shop.get(name),
        version=body.version,
        actor=actor,
        ctx=ctx,
    )
    return MacroPreviewRead(status=shown.status, texts=shown.texts)


@router.post("/tickets/{number}/macros/{name}/apply", response_model=TicketJSON, tags=["macros"])
def apply(
    number: CaseNumber,
    name: MacroName,
    body: MacroIn,
    request: Request,
    session: SessionDep,
    actor: AgentActor,
    ctx: ContextDep,
    shop: MacrosDep,
) -> TicketJSON:
    """Apply the macro: its action with its script, through every check an action has;
    answers the case."""
    ticket = apply_macro(
        session=session,
        number=number,
        macro=shop.get(name),
        version=body.version,
        actor=actor,
        ctx=ctx,
    )
    session.flush()
    assert actor.agent is not None  # AgentActor: always an agent
    state = request.app.state
    now = state.clock()
    return ticket_to_read(
        session,
        get_ticket(session=session, number=ticket.number),
        role=Role(actor.agent.role),
        viewer=actor.agent,
        sla=sla.view(session, ticket, now),
        policy=state.policy,
        now=now,
        timezone=state.settings.timezone,
    )


# ---------------------------------------------------------------- saved views


class ViewRead(BaseModel):
    id: int
    name: str
    query: str = Field(
        description="the queue's filters, as GET /api/v1/tickets and the panel take them"
    )
    created_at: datetime


class ViewList(BaseModel):
    data: list[ViewRead]


class ViewIn(BaseModel):
    """A queue's filters (`query`, a query string: known filter keys only) kept under `name`."""

    model_config = ConfigDict(extra="forbid")
    # Room for spaces the core folds; the core says what a name and a query may be.
    name: str = Field(max_length=NAME_MAX * 4)
    query: str = Field(default="", max_length=QUERY_MAX * 2)


class ViewRename(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=NAME_MAX * 4)


def _view(view: object) -> ViewRead:
    return ViewRead.model_validate(view, from_attributes=True)


@router.get("/views", response_model=ViewList, tags=["views"])
def views(session: SessionDep, agent: CurrentAgent) -> ViewList:
    """The caller's saved views, by name."""
    return ViewList(data=[_view(v) for v in list_views(session, agent)])


@router.post("/views", response_model=ViewRead, status_code=status.HTTP_201_CREATED, tags=["views"])
def save(body: ViewIn, request: Request, session: SessionDep, agent: CurrentAgent) -> ViewRead:
    """Keep a queue's filters as the caller's view. An unknown filter, a name too long or taken,
    or more views than AFTERSALES_LIMIT_SAVED_VIEWS_PER_AGENT: a 422 (409 for a taken name)
    naming the field, nothing kept."""
    state = request.app.state
    view = save_view(
        session=session,
        agent=agent,
        name=body.name,
        query=body.query,
        limits=state.settings.limits,
        now=state.clock(),
    )
    return _view(view)


@router.patch("/views/{view_id}", response_model=ViewRead, tags=["views"])
def rename(view_id: DbId, body: ViewRename, session: SessionDep, agent: CurrentAgent) -> ViewRead:
    """Rename one of the caller's views."""
    return _view(rename_view(session=session, agent=agent, view_id=view_id, name=body.name))


@router.delete("/views/{view_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["views"])
def delete(view_id: DbId, session: SessionDep, agent: CurrentAgent) -> Response:
    """Delete one of the caller's views (another agent's: 404)."""
    delete_view(session=session, agent=agent, view_id=view_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- notifications


class NotificationRead(BaseModel):
    id: int
    kind: str = Field(description=", ".join(KINDS))
    number: str = Field(description="the case it is about")
    by: str = Field(description="who caused it (agent:tom, customer ...)")
    excerpt: str = Field(description="a mention's note, shortened")
    created_at: datetime
    read_at: datetime | None


class NotificationList(BaseModel):
    data: list[NotificationRead]
    unread: int = Field(description="the caller's unread notifications, all of them")


def _note(found: object) -> NotificationRead:
    return NotificationRead.model_validate(found, from_attributes=True)


@router.get("/notifications", response_model=NotificationList, tags=["notifications"])
def notifications(
    session: SessionDep,
    agent: CurrentAgent,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=INT32_MAX,
            description="only those after this id, oldest first (to poll for new ones)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=NOTIFICATIONS_PAGE_MAX)] = 50,
) -> NotificationList:
    """The caller's notifications, newest first (with `after`: the ones after it, oldest
    first), and how many are unread."""
    found = (
        since(session, agent.id, after, limit)
        if after is not None
        else latest(session, agent.id, limit)
    )
    return NotificationList(data=[_note(n) for n in found], unread=unread_count(session, agent.id))


@router.post("/notifications/read", response_model=NotificationList, tags=["notifications"])
def read_all(request: Request, session: SessionDep, agent: CurrentAgent) -> NotificationList:
    """Mark every notification of the caller read; answers none listed, `unread` 0."""
    mark_read(session, agent.id, request.app.state.clock())
    session.flush()
    return NotificationList(data=[], unread=unread_count(session, agent.id))


@router.post(
    "/notifications/{notification_id}/read",
    response_model=NotificationRead,
    tags=["notifications"],
)
def read_one(
    notification_id: DbId, request: Request, session: SessionDep, agent: CurrentAgent
) -> NotificationRead:
    """Mark one of the caller's notifications read (another agent's, or none: 404)."""
    found = mark_read(session, agent.id, request.app.state.clock(), notification_id)
    if found is None:
        raise NotFound("no such notification")
    return _note(found)
