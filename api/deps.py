"""FastAPI dependencies: the request's unit of work, the calling agent, the service context."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tickets.auth import live_token, token_is_stale, touch_token
from tickets.context import Actor, Context
from tickets.db import unit_of_work
from tickets.macros import Macros, load_macros
from tickets.models import Agent
from tickets.storage import AttachmentStore, limits_from

# Requests that change nothing: their transaction only reads (tickets/db.py: on SQLite it
# never takes nor waits for the write lock, and refuses to write).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error.
    A GET's is a reader (`SAFE_METHODS`); the little bookkeeping a read needs (a token's last
    use) goes through `write_apart`, done once the reader's connection is back in the pool."""
    state = request.app.state
    reads = request.method in SAFE_METHODS
    factory = state.read_sessions if reads else state.sessions
    apart: list[Callable[[Session], object]] = []
    if reads:
        request.state.write_apart = apart
    try:
        with unit_of_work(factory) as session:
            yield session
    finally:
        # Not while the reader holds its connection: GETs as many as the pool's connections,
        # each holding one and waiting for one more to write, would wait for each other until
        # the pool's timeout (30 s, then 500s: seen with 32 API clients on one token whose
        # last use was due to be recorded).
        for write in apart:
            with unit_of_work(state.sessions) as writer:
                write(writer)


# Ended when the route returns, before its answer is sent (FastAPI's default ends it after):
# a write is committed before the client hears it succeeded, and the page a redirect leads to
# sees it (tests/test_api_pool.py).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def write_apart(request: Request, session: Session, write: Callable[[Session], object]) -> None:
    """Do a small write the request needs whatever its method: in the request's session when
    it may write, else (a GET's reader) in a short transaction of its own, committed after
    the reader's (`get_session`)."""
    if request.method not in SAFE_METHODS:
        write(session)
        return
    later = getattr(request.state, "write_apart", None)
    if later is not None:
        later.append(write)
        return
    with unit_of_work(request.app.state.sessions) as writer:
        write(writer)


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
    row = live_token(session=session, token=credentials.credentials)
    if row is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if token_is_stale(row, now):
        token_id = row.id
        write_apart(request, session, lambda w: touch_token(session=w, token_id=token_id, now=now))
    request.state.token_scopes = frozenset(row.scopes.split())
    return row.agent


CurrentAgent = Annotated[Agent, Depends(current_agent)]


def require_scope(scope: str) -> Any:
    """A dependency: 403 unless the request's token has this scope (tickets/auth.py SCOPES)."""

    def check(request: Request, agent: CurrentAgent) -> None:
        if scope not in getattr(request.state, "token_scopes", frozenset()):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this token lacks the scope '{scope}' (make one with: aftersales create-token "
                f"{agent.username} --scope {scope})",
            )

    return Depends(check)


def context_for(state: Any, now: datetime) -> Context:
    """The rules, the clock and the shop's timezone, from the app's state."""
    return Context(
        policy=state.policy,
        now=now,
        tz=state.settings.tz,
        case_prefix=state.settings.case_prefix,
        scripts=state.scripts,
        shop_name=state.settings.shop_name,
        channels=state.channels,
        limits=state.settings.limits,
    )


def service_context(request: Request) -> Context:
    """The service context of one request, as of the app's clock."""
    state = request.app.state
    return context_for(state, state.clock())


ContextDep = Annotated[Context, Depends(service_context)]


def attachment_store(request: Request) -> AttachmentStore:
    """The evidence store with the shop's limits (`AFTERSALES_MEDIA_*`): agents' files in
    replies go where customers' photos do, through the same checks."""
    settings = request.app.state.settings
    return AttachmentStore(settings.media_dir, limits_from(settings))


StoreDep = Annotated[AttachmentStore, Depends(attachment_store)]


def agent_actor(agent: CurrentAgent) -> Actor:
    return Actor(kind="agent", agent=agent)


AgentActor = Annotated[Actor, Depends(agent_actor)]


# One reader of the macros file at a time (the first requests of a fresh process may race).
_macros_lock = threading.Lock()


def shop_macros(request: Request) -> Macros:
    """The shop's macros (tickets/macros.py), read and checked against the script library once
    per app, in a request's thread on first use (a server nobody uses them on never reads the
    file), for the panel and the JSON API alike."""
    state = request.app.state
    found: Macros | None = getattr(state, "macros", None)
    if found is None:
        with _macros_lock:
            found = getattr(state, "macros", None)
            if found is None:
                found = load_macros(state.settings.macros_file, state.scripts)
                state.macros = found
    return found


MacrosDep = Annotated[Macros, Depends(shop_macros)]
