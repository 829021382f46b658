"""Linking and merging cases from the case page: link another case as related (or undo it),
merge this case, a duplicate, into another of the same customer or order. The rules are the
core's (tickets/cases/links.py); a refusal shows the case with why (the panel's one shape for
it: workspace.change_or_explain).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import ContextDep, SessionDep
from api.panel.auth import CurrentPanelAgent
from api.panel.workspace import FormFields, change_or_explain
from tickets.cases.links import link_cases, merge_case, unlink_cases
from tickets.context import Actor
from tickets.exceptions import InvalidInput
from tickets.schemas import whole_number

router = APIRouter()
# A case number as people paste it: bounded before any lookup.
NUMBER_MAX = 40


def _number(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip().upper()
    if not value or len(value) > NUMBER_MAX:
        raise InvalidInput("give a case number", [{"loc": name, "msg": "a case number"}])
    return value


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
    return change_or_explain(
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
        f"/panel/cases/{number}#links",
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
    return change_or_explain(
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
        f"/panel/cases/{number}#links",
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

    return change_or_explain(
        request,
        session,
        agent,
        number,
        change,
        lambda target: f"/panel/cases/{target.number}?done=merged",
    )
