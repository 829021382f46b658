"""JSON API: the team — mark an agent away (no automatic assignment) or back."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import CurrentAgent, SessionDep
from api.offload import OffLoop
from tickets.exceptions import NotFound
from tickets.models import Agent
from tickets.team import mark_away

router = APIRouter(prefix="/agents", tags=["agents"], route_class=OffLoop)


class AwayUpdate(BaseModel):
    """`{"away": true}` marks the agent away; false, back."""

    model_config = ConfigDict(extra="forbid")
    away: bool


class AgentAway(BaseModel):
    username: str
    away: bool
    changed: bool = Field(description="false when the agent already stood so")


@router.post("/{username}/away", response_model=AgentAway)
def set_away(
    username: str, body: AwayUpdate, request: Request, session: SessionDep, agent: CurrentAgent
) -> AgentAway:
    """Mark an agent away or back: oneself always; a lead the agents of their group; an admin
    anyone (403 otherwise). An away agent gets no case by automatic assignment."""
    target = session.scalar(select(Agent).where(Agent.username == username[:100]))
    if target is None:
        raise NotFound(f"no agent {username[:100]!r}")
    changed = mark_away(
        session=session, actor=agent, target=target, away=body.away, now=request.app.state.clock()
    )
    return AgentAway(username=target.username, away=target.away, changed=changed)
