"""Work on many cases at once, for peak days: bulk assign and approve on selected queue rows,
automatic assignment (round robin within a group, skipping agents who are away), and the
agent's own "away" switch.

A bulk action first shows what it will do to each case (the core's own answer, found in a
savepoint rolled back: tickets/cases/bulk.py), and which cases it leaves out and why (the
policy holds them for a person: evidence awaited, a platform dispute, high risk); only the
confirmed cases then go. Each case is done in its own savepoint: a case the core refuses (its
status moved on, someone changed it first, the role may not) is rolled back alone and reported
with the reason, and the others still go through. The request's transaction commits what was
done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import ContextDep, SessionDep
from api.panel.auth import CurrentPanelAgent, require_role, safe_next
from api.panel.pages import render
from api.panel.queue import WORKING_STATUSES
from api.panel.workspace import _problem
from tickets.cases.bulk import foresee_in_bulk, perform_in_bulk
from tickets.context import Actor, Context
from tickets.exceptions import DomainError, InvalidInput
from tickets.models import Agent, Role, Ticket, utcnow
from tickets.schemas import ActionRequest, whole_number
from tickets.team import available_members, mark_away

router = APIRouter()

# At most this many cases per bulk request or automatic assignment: a page of the queue is 50,
# and a request holding row locks on thousands of cases would stall everyone else.
BULK_LIMIT = 200
BULK_ACTIONS = ("assign", "approve")


async def form_lists(request: Request) -> dict[str, list[str]]:
    """The posted form with every value of repeated fields (the selected rows)."""
    form = await request.form()
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            out.setdefault(key, []).append(value)
    return out


FormLists = Annotated[dict[str, list[str]], Depends(form_lists)]


@dataclass
class Outcome:
    number: str
    done: bool
    problem: dict[str, Any] | None = None
    detail: str = ""  # what was done (the assignee), for the summary
    status: str = ""  # the status it is left in (done), or will be (foreseen)
    version: int | None = None  # the version the agent saw, carried to the confirmation


def _selected(values: list[str]) -> list[tuple[str, int | None]]:
    """'AS-20261122-0001@3' -> (number, version the agent saw); duplicates dropped."""
    out: dict[str, int | None] = {}
    for raw in values:
        number, _, version = raw.strip().partition("@")
        if number:
            seen = whole_number(version) if version else None
            if version and seen is None:
                # Not a version any case has (at most an INTEGER): a forged value.
                raise InvalidInput(
                    f"bad version in {raw.strip()[:80]!r}",
                    [{"loc": "case", "msg": "not a case version"}],
                )
            out[number] = seen
    return list(out.items())


def apply_each(
    session: Session,
    actor: Actor,
    ctx: Context,
    requests: list[tuple[str, ActionRequest]],
    *,
    foresee: bool = False,
) -> list[Outcome]:
    """Apply each request in its own savepoint; a refusal rolls back that case only. With
    `foresee`, only say what each would do (the confirmation page): nothing is kept."""
    outcomes = []
    for number, body in requests:
        try:
            detail: str | None
            if foresee:
                seen = foresee_in_bulk(
                    session=session, number=number, request=body, actor=actor, ctx=ctx
                )
                status, detail = seen.status, (seen.assignee if body.assignee else body.group)
            else:
                with session.begin_nested():
                    ticket = perform_in_bulk(
                        session=session, number=number, request=body, actor=actor, ctx=ctx
                    )
                    session.flush()
                status, detail = ticket.status, body.assignee or body.group or ""
        except DomainError as exc:
            outcomes.append(Outcome(number, False, _problem(exc), version=body.version))
            continue
        outcomes.append(
            Outcome(number, True, detail=detail or "", status=status, version=body.version)
        )
    return outcomes


def _requests(
    action: str, selected: list[tuple[str, int | None]], assignee: str, group: str
) -> list[tuple[str, ActionRequest]]:
    if action == "approve":
        return [(n, ActionRequest(action="approve", version=v)) for n, v in selected]
    return [
        (
            n,
            ActionRequest(
                action="assign", assignee=assignee or None, group=group or None, version=v
            ),
        )
        for n, v in selected
    ]


@router.post("/bulk")
def bulk(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormLists,
) -> Response:
    """Assign or approve the selected rows, in two steps: first a page saying what will happen
    to each case (and which are left out, and why), then, confirmed, a summary of what was done
    and what was refused."""
    action = (form.get("action") or [""])[-1]
    assignee = (form.get("assignee") or [""])[-1].strip()
    group = (form.get("group") or [""])[-1].strip()
    back = safe_next((form.get("back") or ["/panel"])[-1])
    confirmed = (form.get("confirmed") or [""])[-1] == "1"
    selected = _selected(form.get("case", []))
    problem: str | None = None
    if action not in BULK_ACTIONS:
        problem = "action"
    elif not selected:
        problem = "none"
    elif len(selected) > BULK_LIMIT:
        problem = "too_many"
    elif action == "assign" and not assignee and not group:
        problem = "assignee"
    if problem is not None:
        return render(
            request,
            "bulk_result.html",
            {
                "outcomes": [],
                "action": action,
                "problem": problem,
                "back": back,
                "limit": BULK_LIMIT,
            },
            status_code=422,
        )
    requests = _requests(action, selected, assignee, group)
    actor = Actor("agent", agent)
    if not confirmed:
        outcomes = apply_each(session, actor, ctx, requests, foresee=True)
        cases = {
            t.number: t
            for t in session.scalars(
                select(Ticket).where(Ticket.number.in_([n for n, _v in selected]))
            )
        }
        return render(
            request,
            "bulk_confirm.html",
            {
                "outcomes": outcomes,
                "cases": cases,
                "action": action,
                "assignee": assignee,
                "group": group,
                "back": back,
            },
        )
    return render(
        request,
        "bulk_result.html",
        {
            "outcomes": apply_each(session, actor, ctx, requests),
            "action": action,
            "problem": None,
            "back": back,
        },
    )


# ---------------------------------------------------------------- automatic assignment


def round_robin(
    *, session: Session, group: str, actor: Actor, ctx: Context, limit: int = BULK_LIMIT
) -> tuple[list[Outcome], list[Agent]]:
    """Give the group's unassigned working cases (oldest first) to its active agents who are not
    away, in turn, starting with the one who holds the fewest working cases. Returns what was
    done and who took part (empty when nobody is available)."""
    members = available_members(session, group)
    if not members:
        return [], []
    load = dict(
        session.execute(
            select(Ticket.assignee_id, func.count())
            .where(
                Ticket.assignee_id.in_([m.id for m in members]),
                Ticket.status.in_(WORKING_STATUSES),
            )
            .group_by(Ticket.assignee_id)
        ).all()
    )
    members.sort(key=lambda m: (load.get(m.id, 0), m.username))
    cases = session.execute(
        select(Ticket.number, Ticket.version)
        .where(
            Ticket.group == group,
            Ticket.assignee_id.is_(None),
            Ticket.status.in_(WORKING_STATUSES),
        )
        .order_by(Ticket.created_at, Ticket.id)
        .limit(limit)
    ).all()
    requests = [
        (
            number,
            ActionRequest(
                action="assign", assignee=members[i % len(members)].username, version=version
            ),
        )
        for i, (number, version) in enumerate(cases)
    ]
    return apply_each(session, actor, ctx, requests), members


@router.post("/assign/round-robin")
def assign_round_robin(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    group: Annotated[str, Form(max_length=40)] = "",
    back: Annotated[str, Form(max_length=500)] = "/panel",
) -> Response:
    """Leads: share out the unassigned cases of their group (admins: of any group)."""
    require_role(agent, (Role.lead, Role.admin))
    group = group or agent.group or ""
    if agent.role != Role.admin.value and group != agent.group:
        return render(
            request,
            "bulk_result.html",
            {"outcomes": [], "action": "assign", "problem": "group", "back": safe_next(back)},
            status_code=403,
        )
    if group not in ctx.policy.groups:
        return render(
            request,
            "bulk_result.html",
            {"outcomes": [], "action": "assign", "problem": "no_group", "back": safe_next(back)},
            status_code=422,
        )
    outcomes, members = round_robin(
        session=session, group=group, actor=Actor("agent", agent), ctx=ctx
    )
    return render(
        request,
        "bulk_result.html",
        {
            "outcomes": outcomes,
            "action": "assign",
            "problem": None if members else "nobody",
            "group": group,
            "members": members,
            "back": safe_next(back),
            "auto": True,
        },
    )


# ---------------------------------------------------------------- my page: away


@router.get("/me")
def my_page(request: Request, agent: CurrentPanelAgent) -> Response:
    """The agent's own page: who they are, the away switch, language and password."""
    return render(request, "me.html", {"saved": request.query_params.get("saved")})


@router.post("/me/away")
def set_away(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    away: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Mark myself away (no automatic assignment comes to me) or back."""
    mark_away(session=session, actor=agent, target=agent, away=away == "1", now=utcnow())
    return RedirectResponse("/panel/me?saved=1", status_code=status.HTTP_303_SEE_OTHER)
