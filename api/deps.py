"""FastAPI dependencies: the request's unit of work, the calling agent, the service context."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tickets.auth import agent_for_token
from tickets.models import Agent
from tickets.service import Actor, Context


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    factory = request.app.state.sessions
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="A token from `aftersales create-token`")


def current_agent(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Agent:
    """The agent whose bearer token came with the request, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send 'Authorization: Bearer <token>' (make one with: aftersales create-token USER)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    now = request.app.state.clock()
    agent = agent_for_token(session=session, token=credentials.credentials, now=now)
    if agent is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return agent


CurrentAgent = Annotated[Agent, Depends(current_agent)]


def context_for(state: Any, now: datetime) -> Context:
    """The rules, the clock and the shop's timezone, from the app's state."""
    return Context(
        policy=state.policy,
        now=now,
        tz=state.settings.tz,
        case_prefix=state.settings.case_prefix,
        scripts=state.scripts,
        shop_name=state.settings.shop_name,
        limits=state.settings.limits,
    )


def service_context(request: Request) -> Context:
    """The service context of one request, as of the app's clock."""
    state = request.app.state
    return context_for(state, state.clock())


ContextDep = Annotated[Context, Depends(service_context)]


def agent_actor(agent: CurrentAgent) -> Actor:
    return Actor(kind="agent", agent=agent)


AgentActor = Annotated[Actor, Depends(agent_actor)]
