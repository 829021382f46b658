"""Admin pages: agents and groups, API tokens, the policy in force, the script library.

Admins change agents and tokens; leads see the same pages read-only (the forms are not shown
to them and the server refuses them anyway). Groups, SLA targets, calendars and the other rules
live in the policy file (rules as data, DESIGN.md): shown here as they are in force, changed in
the file. A new API token is shown once, on the page that made it, and stored only hashed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.panel.auth import COOKIE, CurrentPanelAgent, digest, require_role
from api.panel.intake import _errors_by_field
from api.panel.labels import SCRIPT_CATEGORY
from api.panel.pages import render, telegram_html
from tickets.auth import audit, create_agent, create_token, hash_password
from tickets.auth import revoke_token as revoke
from tickets.exceptions import DomainError, InvalidInput
from tickets.messages.scripts import LANGUAGES, ScriptError, ScriptLibrary
from tickets.models import Agent, ApiToken, PanelSession, Role, Ticket, utcnow
from tickets.schemas import DbId
from tickets.team import mark_away, may_mark_away
from tickets.workflow import WORKING

router = APIRouter(prefix="/admin")

ROLES = tuple(r.value for r in Role)
READERS = (Role.lead, Role.admin)
WRITERS = (Role.admin,)


def _people(
    request: Request,
    session: Session,
    agent: Agent,
    *,
    form: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    new_token: str | None = None,
    status_code: int = 200,
) -> Response:
    agents = session.scalars(select(Agent).order_by(Agent.active.desc(), Agent.username)).all()
    working = [s.value for s in WORKING]
    load = dict(
        session.execute(
            select(Ticket.assignee_id, func.count())
            .where(Ticket.assignee_id.is_not(None), Ticket.status.in_(working))
            .group_by(Ticket.assignee_id)
        ).all()
    )
    tokens = session.execute(
        select(ApiToken, Agent.username)
        .join(Agent, Agent.id == ApiToken.agent_id)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc())
        .limit(200)
    ).all()
    groups = request.app.state.policy.groups
    members: dict[str, int] = {}
    for a in agents:
        if a.active and a.group:
            members[a.group] = members.get(a.group, 0) + 1
    return render(
        request,
        "admin_people.html",
        {
            "people": agents,
            "load": load,
            "tokens": tokens,
            "groups": groups,
            "members": members,
            "roles": ROLES,
            "can_edit": agent.role == Role.admin.value,
            # Whom this lead may mark away or back (tickets/team.py): their group's agents.
            "may_mark": {a.id for a in agents if may_mark_away(agent, a)},
            "values": form or {},
            "field_errors": _errors_by_field(errors or []),
            "new_token": new_token,
            "saved": request.query_params.get("saved"),
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"} if new_token else None,
    )


@router.get("")
def people(request: Request, session: SessionDep, agent: CurrentPanelAgent) -> Response:
    """Agents and groups, and the API tokens (admins edit; leads read)."""
    require_role(agent, READERS)
    return _people(request, session, agent)


@router.post("/agents")
def add_agent(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    username: Annotated[str, Form(max_length=80)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=10)] = "agent",
    group: Annotated[str, Form(max_length=40)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Create an agent (admins)."""
    require_role(agent, WRITERS)
    form = {"username": username, "display_name": display_name, "role": role, "group": group}
    errors: list[dict[str, Any]] = []
    if role not in ROLES:
        errors.append({"loc": "role", "msg": "agent, lead or admin"})
    if group and group not in request.app.state.policy.groups:
        errors.append({"loc": "group", "msg": "not a group of the policy"})
    if not errors:
        try:
            with session.begin_nested():
                create_agent(
                    session=session,
                    username=username.strip(),
                    role=Role(role),
                    group=group or None,
                    password=password,
                    display_name=display_name.strip(),
                    now=utcnow(),
                    actor=f"agent:{agent.username}",
                )
        except InvalidInput as exc:
            errors = exc.errors or [{"loc": "username", "msg": exc.message}]
    if errors:
        return _people(request, session, agent, form=form, errors=errors, status_code=422)
    return RedirectResponse("/panel/admin?saved=agent", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/agents/{agent_id}/away")
def set_agent_away(
    agent_id: DbId,
    session: SessionDep,
    agent: CurrentPanelAgent,
    away: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    """Leads (their group's agents) and admins: mark an agent away, so automatic assignment
    passes them over, or back (the core's rule, tickets/team.py)."""
    require_role(agent, READERS)
    target = session.get(Agent, agent_id)
    if target is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such agent")
    mark_away(session=session, actor=agent, target=target, away=away == "1", now=utcnow())
    return RedirectResponse("/panel/admin?saved=away", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/agents/{agent_id}")
def change_agent(
    agent_id: DbId,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    role: Annotated[str, Form(max_length=10)] = "",
    group: Annotated[str, Form(max_length=40)] = "",
    active: Annotated[str, Form(max_length=1)] = "",
    away: Annotated[str, Form(max_length=1)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Change an agent's role, group, active or away, or reset their password (admins).
    Deactivating or a new password ends their sessions; an admin cannot lock themselves out."""
    require_role(agent, WRITERS)
    target = session.get(Agent, agent_id)
    if target is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such agent")
    errors: list[dict[str, Any]] = []
    if role not in ROLES:
        errors.append({"loc": f"role_{agent_id}", "msg": "agent, lead or admin"})
    if group and group not in request.app.state.policy.groups:
        errors.append({"loc": f"group_{agent_id}", "msg": "not a group of the policy"})
    if target.id == agent.id and (active != "1" or role != Role.admin.value):
        errors.append(
            {"loc": f"role_{agent_id}", "msg": "you cannot demote or deactivate yourself"}
        )
    if password:
        try:
            target.password_hash = hash_password(password)
        except DomainError as exc:
            errors.append({"loc": f"password_{agent_id}", "msg": exc.message})
    if errors:
        session.rollback()
        return _people(request, session, agent, errors=errors, status_code=422)
    before = {
        "role": target.role,
        "group": target.group,
        "active": target.active,
        "away": target.away,
    }
    target.role = role
    target.group = group or None
    target.away = away == "1"
    if target.active and active != "1":
        session.execute(delete(PanelSession).where(PanelSession.agent_id == target.id))
    elif password:
        # A reset password ends every session opened with the old one (as a change of one's own
        # does), so whoever knew it is out; an admin resetting their own keeps this one.
        ended = delete(PanelSession).where(PanelSession.agent_id == target.id)
        if target.id == agent.id:
            current = digest(request.cookies.get(COOKIE, ""))
            ended = ended.where(PanelSession.token_hash != current)
        session.execute(ended)
    target.active = active == "1"
    after = {
        "role": target.role,
        "group": target.group,
        "active": target.active,
        "away": target.away,
    }
    changed = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changed or password:
        audit(
            session=session,
            actor=f"agent:{agent.username}",
            action="agent.changed",
            target=target.username,
            now=utcnow(),
            changes=changed,
            password_changed=bool(password),
        )
    return RedirectResponse("/panel/admin?saved=agent", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/tokens")
def add_token(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    username: Annotated[str, Form(max_length=80)] = "",
    name: Annotated[str, Form(max_length=80)] = "",
    # Nothing ticked: the default of create-token, cases only.
    scope: Annotated[list[str] | None, Form(max_length=2)] = None,
) -> Response:
    """Make an API token for an agent (admins), with what it may do (work cases, push
    orders); shown once, on this page, never again."""
    require_role(agent, WRITERS)
    owner = session.scalar(select(Agent).where(Agent.username == username, Agent.active))
    if owner is None:
        errors = [{"loc": "token_username", "msg": "no active agent of that name"}]
        return _people(request, session, agent, errors=errors, status_code=422)
    try:
        token = create_token(
            session=session,
            username=owner.username,
            now=utcnow(),
            name=name,
            actor=f"agent:{agent.username}",
            scopes=scope,
        )
    except InvalidInput as exc:
        return _people(request, session, agent, errors=exc.errors, status_code=422)
    return _people(request, session, agent, new_token=token)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(
    token_id: DbId, request: Request, session: SessionDep, agent: CurrentPanelAgent
) -> Response:
    """Revoke an API token (admins): the next call with it gets 401."""
    require_role(agent, WRITERS)
    row = session.get(ApiToken, token_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
    revoke(session=session, token=row, actor=f"agent:{agent.username}", now=utcnow())
    return RedirectResponse("/panel/admin?saved=token", status_code=status.HTTP_303_SEE_OTHER)


# ---------------------------------------------------------------- the policy in force

# Sections the policy page shows under their own heading; the rest go under "other settings".
_OWN_SECTIONS = ("eligibility", "risk", "auto_approval", "refunds")


@router.get("/policy")
def policy_page(request: Request, agent: CurrentPanelAgent) -> Response:
    """The rules in force, read-only: SLA targets, calendars, eligibility, risk thresholds,
    auto-approval, refunds, routing (changed in the policy file, not here)."""
    require_role(agent, READERS)
    policy = request.app.state.policy
    tz = request.app.state.settings.timezone
    sections = policy.model_dump(
        mode="json", exclude={"sla", "groups", "routing", "refusal_alternative"}
    )
    calendars = {
        name: cal.model_dump(mode="json")
        for name, cal in policy.sla.calendars_for(tz).items()
        if name != "24/7"
    }
    return render(
        request,
        "admin_policy.html",
        {
            "policy": policy,
            "clocks": policy.sla.clocks,
            "overrides": policy.sla.overrides,
            "sla_settings": policy.sla.model_dump(
                mode="json", exclude={"clocks", "overrides", "calendars"}
            ),
            "calendars": calendars,
            "sections": sections,
            "other": {k: v for k, v in sections.items() if k not in _OWN_SECTIONS},
            "policy_file": request.app.state.settings.policy_file,
        },
    )


# ---------------------------------------------------------------- the script library


@router.get("/scripts")
def scripts_page(
    request: Request,
    agent: CurrentPanelAgent,
    name: str = "",
    language: str = "zh-CN",
) -> Response:
    """The script library: every script by category; one script's text and its preview
    filled with the sample variables the script declares."""
    require_role(agent, READERS)
    lib: ScriptLibrary = request.app.state.scripts
    language = language if language in LANGUAGES else "zh-CN"
    by_category: dict[str, list[Any]] = {c: [] for c in SCRIPT_CATEGORY}
    for script in lib.list(language=language):
        by_category.setdefault(script.category, []).append(script)
    chosen = None
    preview = None
    problem = None
    if name:
        try:
            chosen = lib.get(name, language)
            preview = telegram_html(
                lib.render(
                    name,
                    language,
                    lib.sample_variables(name, language),
                    timezone=request.app.state.settings.tz,
                )
            )
        except ScriptError as exc:
            problem = exc.message
    return render(
        request,
        "admin_scripts.html",
        {
            "by_category": by_category,
            "chosen": chosen,
            "preview": preview,
            "problem": problem,
            "name": name,
            "script_language": language,
            "script_languages": LANGUAGES,
        },
        status_code=404 if name and chosen is None else 200,
    )
