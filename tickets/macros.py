"""Macros: a reply script plus an action, applied to a case in one step ("refuse with this
script", "ask for a photo" = request info with the photo script). Leads and admins define them
in a TOML file (`templates/macros.toml` ships the defaults; AFTERSALES_MACROS_FILE names the
shop's own), read and checked like the policy: an unknown key, action or script is refused with
the reason, never half-applied.

A macro is only ever an ActionRequest: applying it goes through `perform_action` and every
check there (the status, roles, the two-person rule, a stale version). Its preview is the same
call in a savepoint rolled back: the customer's exact words, or the exact refusal, before
anything is kept.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets.bundled import bundled
from tickets.cases.lifecycle import perform_action
from tickets.context import Actor, Context
from tickets.exceptions import InvalidInput, NotFound
from tickets.messages import payloads
from tickets.messages.payloads import CustomerMessage
from tickets.messages.scripts import LANGUAGES, ScriptLibrary
from tickets.models import OutboxMessage, Ticket
from tickets.schemas import ActionRequest

# The actions a macro may take: those whose notice to the customer is a script the agent
# chooses (tickets/cases/actions/review.py: `script` chooses the notice).
MACRO_ACTIONS = ("refuse", "request_info", "close")
DEFAULT_FILE = ("templates", "macros.toml")


def _both_languages(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and set(value) != set(LANGUAGES):
        raise ValueError(f"give it in {' and '.join(LANGUAGES)}, no other")
    return value


Texts = Annotated[dict[str, str], AfterValidator(_both_languages)]


class MacroSpec(BaseModel):
    """One macro as the file writes it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    # What the agent reads on the button, per panel language.
    title: Texts
    action: Literal["refuse", "request_info", "close"]
    script: str = Field(max_length=100)
    # The reason recorded on the case (and given to the script), per the case's language.
    reason: Texts | None = None
    # Further script variables per language (a list of what is missing, ...).
    variables: Annotated[dict[str, dict[str, Any]], AfterValidator(_both_languages)] = Field(
        default_factory=dict
    )


class MacroFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    macro: list[MacroSpec] = Field(default_factory=list, max_length=200)


@dataclass(frozen=True)
class Macros:
    """The shop's macros by name, in the file's order."""

    by_name: dict[str, MacroSpec]

    def usable(self, allowed_actions: list[str]) -> list[MacroSpec]:
        """The macros whose action the case allows now."""
        return [m for m in self.by_name.values() if m.action in allowed_actions]

    def get(self, name: str) -> MacroSpec:
        macro = self.by_name.get(name)
        if macro is None:
            raise NotFound(f"no macro {name[:40]!r}")
        return macro


def load_macros(path: Path | None, scripts: ScriptLibrary) -> Macros:
    """The macros of the file at `path` (the bundled defaults without one), each checked
    against the script library in both languages."""
    where = path or bundled(*DEFAULT_FILE)
    try:
        raw = tomllib.loads(Path(where).read_text(encoding="utf-8"))
        parsed = MacroFile.model_validate(raw)
    except FileNotFoundError as exc:
        raise InvalidInput(f"macros file {where} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"macros file {where} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        lines = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
        raise InvalidInput(f"macros file {where} is refused: {lines}", errors) from exc
    by_name: dict[str, MacroSpec] = {}
    for i, macro in enumerate(parsed.macro):
        if macro.name in by_name:
            raise InvalidInput(f"macros file {where}: macro {macro.name!r} twice")
        for language in LANGUAGES:
            if macro.script not in {s.name for s in scripts.list(language=language)}:
                raise InvalidInput(
                    f"macros file {where}: macro.{i} {macro.name!r} names the script "
                    f"{macro.script!r}, which has no {language} text"
                )
        by_name[macro.name] = macro
    return Macros(by_name)


def macro_request(macro: MacroSpec, ticket: Ticket, version: int | None) -> ActionRequest:
    """The action a macro takes on this case, in the case's language."""
    language = ticket.language if ticket.language in LANGUAGES else "zh-CN"
    reason = macro.reason.get(language) if macro.reason else None
    return ActionRequest(
        action=macro.action,
        version=version,
        reason=reason,
        script=macro.script,
        variables=dict(macro.variables.get(language, {})),
    )


def apply_macro(
    *,
    session: Session,
    number: str,
    macro: MacroSpec,
    version: int | None,
    actor: Actor,
    ctx: Context,
) -> Ticket:
    """Take the macro's action with its script, through perform_action and all its checks."""
    ticket = session.scalar(select(Ticket).where(Ticket.number == number))
    if ticket is None:
        raise NotFound(f"no case {number}", number=number)
    request = macro_request(macro, ticket, version)
    return perform_action(session=session, number=number, request=request, actor=actor, ctx=ctx)


@dataclass(frozen=True)
class MacroPreview:
    status: str  # where the case would go
    texts: list[str]  # what the customer would read (the desk's markup), in order


def preview_macro(
    *,
    session: Session,
    number: str,
    macro: MacroSpec,
    version: int | None,
    actor: Actor,
    ctx: Context,
) -> MacroPreview:
    """What applying the macro would do, by doing it in a savepoint and rolling it back: the
    status the case would reach and the messages queued for the customer. Raises what
    applying would raise (a role's limit, a stale version ...)."""
    last = session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()).limit(1))
    savepoint = session.begin_nested()
    try:
        ticket = apply_macro(
            session=session, number=number, macro=macro, version=version, actor=actor, ctx=ctx
        )
        status = ticket.status
        rows = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.ticket_id == ticket.id,
                OutboxMessage.id > (last or 0),
                OutboxMessage.channel != "agents",
            )
            .order_by(OutboxMessage.id)
        ).all()
        # The customer's messages only (the case's webhook deliveries are rows too).
        said = [m for m in map(payloads.readable, rows) if isinstance(m, CustomerMessage)]
        texts = [m.text for m in said if m.text]
    finally:
        savepoint.rollback()
    return MacroPreview(status=status, texts=texts)
