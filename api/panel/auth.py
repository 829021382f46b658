"""Who is at the keyboard: log-in, server-side sessions, CSRF, lock-out, roles.

- The cookie holds a random token; the database holds only its SHA-256 (PanelSession), so a
  leaked database does not hand out sessions. Every log-in makes a new token (and drops the
  browser's old one), so a token planted before log-in is worth nothing after it.
- Every state-changing request carries the session's CSRF token (a form field `csrf_token`, or
  the `X-CSRF-Token` header that htmx sends); it is compared on the server in constant time.
  The log-in form itself is protected by a double-submit token (a cookie and a field).
- Repeated failures slow the guesser down, never lock the owner out: paced per account and
  address, with a looser pace per account, the same for known and unknown names
  (tickets/logins.py). The numbers are settings with defaults here.
- `CurrentPanelAgent` guards the whole router: an anonymous browser GET is sent to the log-in
  page (303), anything else anonymous gets 401, a bad CSRF token 403.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, joinedload

from api.deps import SessionDep, write_apart
from api.panel import i18n
from api.panel.pages import render
from tickets.auth import hash_password, password_matches, upgrade_hash
from tickets.exceptions import InvalidInput
from tickets.logins import LoginRules, login_succeeded, start_attempt, wait_before_login
from tickets.messages.scripts import resolve_language
from tickets.models import Agent, PanelSession, Role, utcnow
from tickets.settings import Settings
from tickets.workflow import may

COOKIE = "aftersales_panel"
LOGIN_COOKIE = "aftersales_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# The throttle's and sessions' numbers are settings (AFTERSALES_PANEL_*, tickets/settings.py).
SESSION_MAX_DAYS = 7
# How often a session's last_seen_at is written: reading pages must not write on every request.
TOUCH_EVERY = timedelta(minutes=5)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a wrong username costs the same time
    as a wrong password and the response time does not tell which usernames exist."""
    return hash_password(secrets.token_urlsafe(16))


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def safe_next(target: str | None) -> str:
    """Where to go after log-in: a path inside the panel, never another site."""
    if target and target.startswith("/panel") and not target.startswith("//"):
        return target
    return "/panel"


# ---------------------------------------------------------------- sessions


def start_session(
    *, session: Session, agent: Agent, request: Request, now: datetime
) -> tuple[str, PanelSession]:
    """A new session for the agent; returns the cookie token (shown once, stored hashed)."""
    old = request.cookies.get(COOKIE)
    if old:
        session.execute(delete(PanelSession).where(PanelSession.token_hash == digest(old)))
    token = secrets.token_urlsafe(32)
    row = PanelSession(
        token_hash=digest(token),
        agent_id=agent.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=_settings(request).panel_session_hours),
        user_agent=(request.headers.get("user-agent") or "")[:300],
    )
    session.add(row)
    session.flush()
    return token, row


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
        path="/",
        max_age=SESSION_MAX_DAYS * 24 * 3600,
    )


def session_for(
    session: Session, token: str | None, now: datetime, request: Request | None = None
) -> PanelSession | None:
    """The live session this cookie token belongs to (with its agent), or None. With the
    `request`, an expired session is deleted apart from a GET's read-only transaction."""
    if not token:
        return None
    row = session.scalar(
        select(PanelSession)
        .where(PanelSession.token_hash == digest(token))
        .options(joinedload(PanelSession.agent))
    )
    if row is None:
        return None
    too_old = now - row.created_at > timedelta(days=SESSION_MAX_DAYS)
    if row.expires_at <= now or too_old or not row.agent.active:
        if request is None:
            session.delete(row)
        else:
            gone = delete(PanelSession).where(PanelSession.id == row.id)
            write_apart(request, session, lambda w: w.execute(gone))
        return None
    return row


class LoginRequired(Exception):
    """An anonymous browser asked for a page: send it to the log-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


async def submitted_csrf(request: Request) -> str | None:
    """The CSRF token a state-changing request carries (header or form field)."""
    if request.method in SAFE_METHODS:
        return None
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def current_panel_agent(
    request: Request,
    session: SessionDep,
    csrf: Annotated[str | None, Depends(submitted_csrf)],
) -> Agent:
    """The logged-in agent of this request (the guard of every panel route but log-in)."""
    now = utcnow()
    row = session_for(session, request.cookies.get(COOKIE), now, request)
    if row is None:
        if request.method in SAFE_METHODS and "hx-request" not in request.headers:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "log in first",
            headers={"HX-Redirect": "/panel/login"},
        )
    if request.method not in SAFE_METHODS and (
        # Compared as bytes: compare_digest refuses a str with non-ASCII characters (a 500).
        csrf is None or not secrets.compare_digest(csrf.encode(), row.csrf_token.encode())
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token: reload")
    if now - row.last_seen_at > TOUCH_EVERY:
        expires = now + timedelta(hours=_settings(request).panel_session_hours)
        touch = (
            update(PanelSession)
            .where(PanelSession.id == row.id)
            .values(last_seen_at=now, expires_at=expires)
        )
        write_apart(request, session, lambda w: w.execute(touch))
    request.state.panel_session = row
    request.state.panel_agent = row.agent
    request.state.now = now
    return row.agent


CurrentPanelAgent = Annotated[Agent, Depends(current_panel_agent)]


def require_permission(agent: Agent, permission: str) -> None:
    """403 unless the core grants the agent's role this right (tickets/workflow.py
    PERMISSIONS): the panel asks the same table as the API and the bot."""
    if not may(agent.role, permission):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "your role may not do this")


def require_role(agent: Agent, roles: Iterable[Role]) -> None:
    """403 unless the agent has one of the roles (checked on the server, whatever the page
    showed)."""
    if Role(agent.role) not in set(roles):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "your role may not do this")


# ---------------------------------------------------------------- log-in


public = APIRouter(prefix="/panel", include_in_schema=False)
account = APIRouter()


def _login_page(
    request: Request,
    *,
    error: str | None = None,
    username: str = "",
    next_url: str = "/panel",
    status_code: int = 200,
    lang: str | None = None,
    wait: int = 0,
) -> Response:
    token = secrets.token_urlsafe(24)
    chosen = lang or request.query_params.get("lang") or request.cookies.get("aftersales_lang")
    if not chosen and request.headers.get("accept-language"):
        # A first visit: the browser's language, as the web chat's page takes it (an English
        # browser got the Chinese default here).
        chosen = resolve_language(request.headers["accept-language"])
    lang = i18n.pick_language(chosen)
    response = render(
        request,
        "login.html",
        {
            "login_token": token,
            "error": error,
            "username": username,
            "next": next_url,
            "wait": wait,
        },
        status_code=status_code,
        lang=lang,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
        path="/panel/login",
        max_age=3600,
    )
    return response


@public.get("/login")
def login_form(request: Request, next: str = "/panel") -> Response:
    """The log-in page."""
    return _login_page(request, next_url=safe_next(next))


def login_rules(request: Request) -> LoginRules:
    """The throttling numbers from the settings (tickets/logins.py)."""
    settings = _settings(request)
    return LoginRules(
        free_failures=settings.panel_max_failed_logins,
        longest_pause=timedelta(minutes=settings.panel_lockout_minutes),
        account_failures=settings.panel_account_failures_per_hour,
        account_pace=timedelta(seconds=settings.panel_account_pace_seconds),
        address_failures=settings.panel_address_failures_per_hour,
    )


def client_address(request: Request) -> str:
    """The address a log-in comes from (the proxy's, unless uvicorn is told to trust it with
    --forwarded-allow-ips, in which case it is the client's)."""
    return request.client.host if request.client is not None else "unknown"


def check_credentials(
    *, session: Session, request: Request, username: str, password: str, now: datetime
) -> tuple[Agent | None, str | None, int]:
    """The agent these credentials open, or None with the reason to show ("bad", or "wait"
    with the seconds to wait). Known and unknown names get the same answers from the same
    work: a paced attempt is refused before any password is checked, and an unknown name is
    checked against a dummy hash and counted like a wrong password (tickets/logins.py)."""
    rules = login_rules(request)
    address = client_address(request)
    # Counted before the check, in one short transaction: parallel guesses cannot all pass.
    wait = start_attempt(session, username=username, address=address, now=now, rules=rules)
    if wait:
        return None, "wait", wait
    agent = session.scalar(select(Agent).where(Agent.username == username.strip()))
    known = agent is not None and agent.active and bool(agent.password_hash)
    agent_id = agent.id if agent is not None and known else None
    stored = agent.password_hash if agent is not None and known else None
    # Commit the count, and end the transaction before argon2 (a costly check, by design; the
    # dummy hash is made on first use): on SQLite every transaction holds the database's write
    # lock from its start (BEGIN IMMEDIATE), and a log-in holding it for the check stalled
    # every other request, /healthz included.
    session.commit()
    matches = password_matches(stored or _dummy_hash(), password)
    if agent_id is None or not matches:
        wait = wait_before_login(session, username=username, address=address, now=now, rules=rules)
        return None, ("wait" if wait else "bad"), wait
    agent = session.get(Agent, agent_id)
    if agent is None or not agent.active:
        # Removed or deactivated during the check.
        return None, "bad", 0
    upgrade_hash(agent, password)
    login_succeeded(session, username=username, address=address)
    return agent, None, 0


@public.post("/login")
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=80)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/panel",
    lang: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Check the credentials; on success a new session and the page asked for."""
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if (
        not login_token
        or not cookie
        or not secrets.compare_digest(login_token.encode(), cookie.encode())
    ):
        return _login_page(
            request,
            error="expired",
            username=username,
            next_url=safe_next(next),
            status_code=403,
            lang=lang,
        )
    now = utcnow()
    agent, problem, wait = check_credentials(
        session=session, request=request, username=username, password=password, now=now
    )
    if agent is None:
        response = _login_page(
            request,
            error=problem,
            username=username,
            next_url=safe_next(next),
            status_code=429 if problem == "wait" else 401,
            lang=lang,
            wait=wait,
        )
        if wait:
            response.headers["Retry-After"] = str(wait)
        return response
    token, _row = start_session(session=session, agent=agent, request=request, now=now)
    response = RedirectResponse(safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    set_session_cookie(response, request, token)
    response.delete_cookie(LOGIN_COOKIE, path="/panel/login")
    return response


# ---------------------------------------------------------------- account (logged in)


@account.post("/logout")
def logout(request: Request, session: SessionDep, agent: CurrentPanelAgent) -> Response:
    """End this session (the row goes, so the cookie is dead even if kept)."""
    session.delete(request.state.panel_session)
    response = RedirectResponse("/panel/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path="/")
    return response


@account.get("/password")
def password_form(request: Request, agent: CurrentPanelAgent) -> Response:
    """The change-password page."""
    return render(
        request, "password.html", {"done": request.query_params.get("done"), "problem": None}
    )


@account.post("/password")
def change_password(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    current: Annotated[str, Form(max_length=200)] = "",
    new: Annotated[str, Form(max_length=200)] = "",
    confirm: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Change the password; every other session of the agent ends, this one gets a new token."""
    problem: str | None = None
    stored = agent.password_hash
    # End the transaction before argon2 (a check and a hash, each costly by design): on SQLite
    # every transaction holds the write lock from its start, and would stall every other
    # request meanwhile. Only the session guard's touch is committed here.
    session.commit()
    new_hash = ""
    if not password_matches(stored, current):
        problem = "current"
    elif new != confirm:
        problem = "mismatch"
    else:
        try:
            new_hash = hash_password(new)
        except InvalidInput:
            problem = "short"
    if problem is not None:
        return render(request, "password.html", {"problem": problem, "done": None}, status_code=422)
    agent.password_hash = new_hash
    session.execute(delete(PanelSession).where(PanelSession.agent_id == agent.id))
    session.flush()
    token, row = start_session(session=session, agent=agent, request=request, now=utcnow())
    request.state.panel_session = row
    response = RedirectResponse("/panel/password?done=1", status_code=status.HTTP_303_SEE_OTHER)
    set_session_cookie(response, request, token)
    return response


@account.post("/language")
def set_language(
    request: Request,
    agent: CurrentPanelAgent,
    language: Annotated[str, Form(max_length=10)] = "",
    back: Annotated[str, Form(max_length=500)] = "/panel",
) -> Response:
    """Switch the interface language; remembered on the agent."""
    agent.language = i18n.pick_language(language)
    response = RedirectResponse(safe_next(back), status_code=status.HTTP_303_SEE_OTHER)
    # Remembered for the log-in page too, which is shown before we know who is there.
    response.set_cookie("aftersales_lang", agent.language, samesite="lax", path="/panel")
    return response


def login_redirect(request: Request, exc: Exception) -> Response:
    """The handler of LoginRequired: 303 to the log-in page, coming back afterwards."""
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(
        f"/panel/login?next={quote(exc.next_url, safe='')}", status_code=status.HTTP_303_SEE_OTHER
    )
