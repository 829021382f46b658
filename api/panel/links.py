"""Linking and merging cases from the case page: link another case as related (or undo it),
merge this case, a duplicate, into another of the same customer or order. The rules are the
core's (tickets/cases/links.py); a refusal shows the case with why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api.deps import ContextDep, SessionDep
from api.errors import status_for
from api.panel.auth import CurrentPanelAgent
from api.panel.workspace import FormFields, case_page
from tickets.cases.links import link_cases, merge_case, unlink_cases
from tickets.context import Actor
from tickets.exceptions import DomainError, InvalidInput
from tickets.models import Agent
from tickets.schemas import whole_number

router = APIRouter()
# A case number as people paste it: bounded before any lookup.
NUMBER_MAX = 40


def _number(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip().upper()
    if not value or len(value) > NUMBER_MAX:
        raise InvalidInput("give a case number", [{"loc": name, "msg": "a case number"}])
    return value


def _then(
    request: Request,
    session: Session,
    agent: Agent,
    number: str,
    change: Callable[[], Any],
    goto: Callable[[Any], str],
) -> Response:
    try:
        result = change()
        session.flush()
    except DomainError as exc:
        session.rollback()
        return case_page(request, session, agent, number, problem=exc, status_code=status_for(exc))
    return RedirectResponse(goto(result), status.HTTP_303_SEE_OTHER)


@router.post("/cases/{number}/links")
def link(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
) -> Response:
    """Link the case typed to this one as related."""
    return _then(
        request,
        session,
        agent,
        number,
        lambda: link_cases(
            session=session,
            number=number,
            other=_number(form, "other"),
            actor=Actor("agent", agent),
            ctx=ctx,
        ),
        lambda _: f"/panel/cases/{number}#links",
    )


@router.post("/cases/{number}/links/remove")
def unlink(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
) -> Response:
    return _then(
        request,
        session,
        agent,
        number,
        lambda: unlink_cases(
            session=session,
            number=number,
            other=_number(form, "other"),
            actor=Actor("agent", agent),
            ctx=ctx,
        ),
        lambda _: f"/panel/cases/{number}#links",
    )


@router.post("/cases/{number}/merge")
def merge(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
) -> Response:
    """Merge this case into the one typed, then open that one."""

    def change() -> Any:
        if form.get("confirm") != "1":
            raise InvalidInput(
                "tick the box to confirm the merge: this case is closed as merged",
                [{"loc": "confirm", "msg": "confirm the merge"}],
            )
        version = form.get("version", "").strip()
        return merge_case(
            session=session,
            number=number,
            into=_number(form, "into"),
            actor=Actor("agent", agent),
            ctx=ctx,
            version=whole_number(version) if version else None,
        )

    return _then(
        request,
        session,
        agent,
        number,
        change,
        lambda target: f"/panel/cases/{target.number}?done=merged",
    )
