"""JSON API: the reply-script library — list, and preview filled from a case or variables."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import ContextDep, SessionDep
from api.offload import OffLoop
from tickets.cases.status import get_ticket
from tickets.messages.notices import coerce_variables, render_for_case
from tickets.messages.scripts import ScriptLibrary
from tickets.schemas import InputModel, Variables

router = APIRouter(prefix="/scripts", tags=["scripts"], route_class=OffLoop)


class VariableRead(BaseModel):
    name: str
    type: str
    required: bool
    choices: list[str] | None = None


class ScriptRead(BaseModel):
    name: str
    language: str
    category: str
    title: str
    when: str
    origin: str
    variables: list[VariableRead]


class ScriptListRead(BaseModel):
    data: list[ScriptRead]
    count: int


class PreviewRequest(InputModel):
    # Fill from this case's facts; explicit variables override them.
    number: str | None = Field(default=None, max_length=64)
    variables: Variables = Field(default_factory=dict)
    language: Literal["zh-CN", "en"] | None = None


class PreviewRead(BaseModel):
    name: str
    language: str
    text: str
    parse_mode: str = "HTML"


def _library(request: Request) -> ScriptLibrary:
    lib: ScriptLibrary = request.app.state.scripts
    return lib


@router.get("", response_model=ScriptListRead)
def list_scripts(
    request: Request,
    category: Literal["delay", "compensation", "refusal", "notification", "information"]
    | None = None,
    language: Literal["zh-CN", "en"] | None = None,
) -> ScriptListRead:
    """Every script (bundled, or the shop's override), optionally of one category/language."""
    rows = [
        ScriptRead(
            name=s.name,
            language=s.language,
            category=s.category,
            title=s.title,
            when=s.when,
            origin=s.origin,
            variables=[
                VariableRead(
                    name=v.name,
                    type=v.type,
                    required=v.required,
                    choices=list(v.choices) if v.choices else None,
                )
                for v in s.variables.values()
            ],
        )
        for s in _library(request).list(category=category, language=language)
    ]
    return ScriptListRead(data=rows, count=len(rows))


@router.post("/{name}/preview", response_model=PreviewRead)
def preview(
    name: str, body: PreviewRequest, request: Request, session: SessionDep, ctx: ContextDep
) -> PreviewRead:
    """The script filled in exactly as the customer would read it (Telegram HTML). A missing
    variable is a 422 naming it."""
    lib = _library(request)
    if body.number is not None:
        ticket = get_ticket(session=session, number=body.number)
        language = body.language or ticket.language
        text = render_for_case(
            ticket=ticket,
            script=name,
            ctx=ctx,
            variables=body.variables,
            language=language,
        )
    else:
        language = body.language or "zh-CN"
        text = lib.render(
            name,
            language,
            coerce_variables(lib, name, language, body.variables, ctx.limits),
            timezone=ctx.tz,
        )
    return PreviewRead(name=name, language=language, text=text)
