"""Macros on the case page: a reply script plus an action in one step. The agent picks one,
sees exactly what would happen (the status the case goes to, the customer's words, or why it
cannot be done) and applies it. Both go through the core (tickets/macros.py): the preview is the
action done in a savepoint and rolled back; applying it is the action, with every check of
`perform_action` (the status, roles, the two-person rule, the version the agent saw).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import ContextDep, SessionDep
from api.errors import status_for
from api.panel.auth import CurrentPanelAgent
from api.panel.pages import panel_macros, render
from api.panel.workspace import FormFields, _problem, act_or_explain, case_page
from tickets.cases.status import get_ticket
from tickets.context import Actor
from tickets.exceptions import DomainError, InvalidInput
from tickets.macros import macro_request, preview_macro
from tickets.schemas import whole_number

router = APIRouter()


def _version(form: dict[str, str]) -> int | None:
    text = form.get("version", "").strip()
    if not text:
        return None
    seen = whole_number(text)
    if seen is None:
        raise InvalidInput("bad version", [{"loc": "version", "msg": "not a case version"}])
    return seen


@router.post("/cases/{number}/macros/preview")
def preview(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
) -> Response:
    """What the macro would do to this case (htmx fragment); nothing is kept."""
    name = form.get("name", "")[:100]
    macro = None
    try:
        macro = panel_macros(request).get(name)
        shown = preview_macro(
            session=session,
            number=number,
            macro=macro,
            version=_version(form),
            actor=Actor("agent", agent),
            ctx=ctx,
        )
    except DomainError as exc:
        return render(
            request,
            "_macro_preview.html",
            {"number": number, "macro": macro, "shown": None, "problem": _problem(exc)},
            status_code=status_for(exc),
        )
    return render(
        request,
        "_macro_preview.html",
        {
            "number": number,
            "macro": macro,
            "shown": shown,
            "version": form.get("version", ""),
            "problem": None,
        },
    )


@router.post("/cases/{number}/macros/apply")
def apply(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
) -> Response:
    """Apply the macro: its action with its script, as the agent, at the version they saw."""
    try:
        macro = panel_macros(request).get(form.get("name", "")[:100])
        ticket = get_ticket(session=session, number=number)
        body = macro_request(macro, ticket, _version(form))
    except DomainError as exc:
        return case_page(request, session, agent, number, problem=exc, status_code=status_for(exc))
    return act_or_explain(request, session, agent, ctx, number, body)
