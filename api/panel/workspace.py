"""The case workspace: conversation and timeline, the order, the refund, SLA and risk, the
actions the status allows, and the reply box with its script picker.

Every action form carries the case `version` the agent looked at; the core refuses a stale
one, and the agent then gets the case as it is now with a message saying why, never a silent
overwrite. Evidence files are served here too, so they are behind the panel's log-in.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from starlette.datastructures import UploadFile as StarletteUpload

from api.deps import ContextDep, SessionDep, StoreDep
from api.errors import status_for
from api.panel.auth import CurrentPanelAgent, safe_next
from api.panel.labels import SCRIPT_CATEGORY, SYSTEM_REASON, UNIT
from api.panel.pages import panel_macros, plain_text, render, telegram_html
from tickets.cases.actions.refunds import (
    approval_blocker,
    current_refund,
    large_refund_threshold,
)
from tickets.cases.conversation import Upload, add_reply, store_reply_files
from tickets.cases.history import LISTED_SIGNALS, customer_history, signal_history
from tickets.cases.holds import AWAITING_EVIDENCE, HIGH_RISK, to_confirm
from tickets.cases.lifecycle import perform_action
from tickets.cases.serialize import message_deliveries, ticket_to_read
from tickets.cases.status import get_ticket
from tickets.cases.tags import TAG_MAX, add_tags, remove_tag, tags_of
from tickets.context import Actor, Context
from tickets.exceptions import (
    ActionNotAllowed,
    ConfirmationRequired,
    Conflict,
    DomainError,
    HeldForPerson,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SecondApproverRequired,
)
from tickets.limits import HARD
from tickets.messages.notices import case_facts, render_for_case
from tickets.messages.outbox import UNDELIVERABLE_EVENT
from tickets.messages.scripts import LANGUAGES, Script, ScriptError, ScriptLibrary
from tickets.models import Agent, Attachment, Event, EventType, Order, OrderLine, Role, Ticket
from tickets.money import format_amount
from tickets.schemas import INT64_MAX, ActionRequest, DbId, DbInt, ReplyCreate, whole_number
from tickets.sla import clocks as sla
from tickets.workflow import may

router = APIRouter()
T = TypeVar("T")

# Someone counts as "viewing" a case while their page polled within this many seconds.
PRESENCE_SECONDS = 15
# Events already shown as messages in the conversation; the timeline does not repeat them.
_SHOWN_AS_MESSAGES = frozenset(
    {EventType.reply_sent, EventType.note_added, EventType.customer_message}
)
# The holds an agent may tick as checked on the approve form.
CONFIRMABLE = (HIGH_RISK, AWAITING_EVIDENCE)
_FORM_FIELDS = ("reason", "alternative", "note", "tracking_no", "carrier", "assignee", "group")


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form as text fields (read once; async so the route itself can stay sync)."""
    form = await request.form()
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}


FormFields = Annotated[dict[str, str], Depends(form_fields)]


async def form_uploads(request: Request) -> AsyncIterator[list[Upload]]:
    """The files posted in the form's `files` field, not read yet (an empty file input sends
    a part with no name: not a file). Read by the route, in its worker thread; their spooled
    copies are closed once it is done."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        yield []
        return
    form = await request.form()
    try:
        yield [
            Upload(name=f.filename or "", size=f.size, read=f.file.read)
            for f in form.getlist("files")
            if isinstance(f, StarletteUpload) and f.filename
        ]
    finally:
        await form.close()


FormUploads = Annotated[list[Upload], Depends(form_uploads)]


# What kind of refusal the page explains, most specific class first.
_PROBLEM_KINDS: tuple[tuple[type[DomainError], str], ...] = (
    (SecondApproverRequired, "second_approver"),
    (ConfirmationRequired, "confirm"),
    (HeldForPerson, "held"),
    (ActionNotAllowed, "not_allowed"),
    (Conflict, "conflict"),
    (PermissionDenied, "forbidden"),
)


def _problem(exc: DomainError) -> dict[str, Any]:
    """What the page says about a refused request (`details`: the core's facts, for the page
    to say it in the agent's language)."""
    kind = next((k for cls, k in _PROBLEM_KINDS if isinstance(exc, cls)), "invalid")
    errors = [] if kind == "confirm" else getattr(exc, "errors", [])
    return {"kind": kind, "message": exc.message, "errors": errors, "details": exc.details}


# ---------------------------------------------------------------- reading a case


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # message | event
    item: Any


def _shown_on_its_message(event: Any) -> bool:
    """An event the conversation already shows: a message said, or a reply not sent (its
    message carries that, with why)."""
    if event.type in _SHOWN_AS_MESSAGES:
        return True
    return event.type == UNDELIVERABLE_EVENT and event.data.get("message_id") is not None


def _timeline(read: Any) -> list[TimelineEntry]:
    entries = [TimelineEntry(m.at, "message", m) for m in read.messages]
    entries += [
        TimelineEntry(e.at, "event", e) for e in read.events if not _shown_on_its_message(e)
    ]
    # Stable: at equal times events (the cause) come before messages (what was said).
    return sorted(entries, key=lambda e: (e.at, 0 if e.kind == "event" else 1))


def _order(session: Session, ticket: Ticket) -> Order | None:
    """The order with its lines, units and payments, in three queries; loading the units here
    also lets the case's units find theirs without a query each."""
    if ticket.order_id is None:
        return None
    return session.scalar(
        select(Order)
        .where(Order.id == ticket.order_id)
        .options(
            selectinload(Order.lines).selectinload(OrderLine.units),
            selectinload(Order.payments),
        )
    )


def script_choices(scripts: ScriptLibrary, language: str) -> dict[str, list[Script]]:
    """The library's scripts in one language, by category, for the picker."""
    out: dict[str, list[Script]] = {c: [] for c in SCRIPT_CATEGORY}
    for script in scripts.list(language=language):
        out.setdefault(script.category, []).append(script)
    return out


def script_titles(scripts: ScriptLibrary, language: str) -> dict[str, str]:
    """Each script's title in `language` (the agent's), by name."""
    lang = language if language in LANGUAGES else "zh-CN"
    return {s.name: s.title for s in scripts.list(language=lang)}


def case_context(request: Request, session: Session, agent: Agent, number: str) -> dict[str, Any]:
    """Everything the workspace shows, in a bounded number of queries."""
    ticket = get_ticket(session=session, number=number)
    order = _order(session, ticket)
    state = request.app.state
    now = state.clock()
    read = ticket_to_read(
        session,
        ticket,
        role=Role(agent.role),
        attachment_url="/panel/files/{id}",
        sla=sla.view(session, ticket, now),
        policy=state.policy,
        now=now,
        timezone=state.settings.timezone,
        viewer=agent,
    )
    attachments = {a.id: a for a in read.attachments}
    in_messages = {i for m in read.messages for i in m.attachments}
    agents = session.scalars(
        select(Agent).where(Agent.active.is_(True)).order_by(Agent.username).limit(200)
    ).all()
    units = [
        {
            "id": u.id,
            "sku": u.unit.line.sku,
            "title": u.unit.line.title,
            "index": u.unit.unit_index,
            "net": u.unit.net,
            "status": u.status,
        }
        for u in ticket.units
    ]
    scripts: ScriptLibrary = request.app.state.scripts
    language = ticket.language if ticket.language in LANGUAGES else "zh-CN"
    # Refund lines name an order unit by id: the page names it by its item and position.
    unit_by_id = {
        u.id: {"sku": line.sku, "title": line.title, "index": u.unit_index}
        for line in (order.lines if order else [])
        for u in line.units
    }
    # Maker-checker, asked of the core: the maker is not offered the approve button, and is
    # told why (the threshold, and what they did), before pressing anything.
    second: dict[str, Any] | None = None
    if read.refund is not None and read.refund.get("status") == "proposed":
        refund = current_refund(session, ticket)
        did = approval_blocker(ticket, refund, agent) if refund is not None else None
        if refund is not None and did is not None:
            threshold = large_refund_threshold(state.policy, refund.currency)
            second = {
                "did": did,
                "threshold": format_amount(threshold, refund.currency),
                "currency": refund.currency,
            }
    return {
        "t": read,
        "ticket": ticket,
        "order": order,
        "currency": order.currency if order else None,
        "timeline": _timeline(read),
        "attachments": attachments,
        "loose_attachments": [a for a in read.attachments if a.id not in in_messages],
        "units": units,
        # No outcome is chosen for the agent: each unit's is picked after looking at it.
        "unit_outcomes": ["resalable", "damaged", "missing", "wrong_item"],
        "unit_labels": UNIT,
        "agents": agents,
        # Agents named as the page shows them (event actors, messages, the assignee).
        "people": {a.username: a.display_name or a.username for a in agents},
        # Who is away: the assignee is shown so ("Li Wei (away)"), the case may wait on them.
        "away": {a.username for a in agents if a.away},
        "unit_by_id": unit_by_id,
        # Scripts are titled in the agent's language, whichever language the reply goes in.
        "script_titles": script_titles(scripts, agent.language),
        "system_reasons": SYSTEM_REASON,
        "groups": request.app.state.policy.groups,
        "scripts": script_choices(scripts, language),
        "script_language": language,
        "script_languages": LANGUAGES,
        "primary": _primary(read.allowed_actions, read.refund),
        "second_approver": second,
        # Approving this case alone asks what the agent checked (high risk, evidence awaited).
        "confirm_holds": [h.code for h in to_confirm(ticket, "approve")],
        "is_mine": ticket.assignee_id == agent.id,
        # Taking a colleague's case is a lead's right (the core's rule): the button says so.
        "can_take": ticket.assignee_id != agent.id
        and "assign" in read.allowed_actions
        and (ticket.assignee_id is None or may(agent.role, "reassign")),
        "done": request.query_params.get("done"),
        # Why a reply just posted was not sent (a reason code, named by the labels).
        "unsent_why": request.query_params.get("why"),
        "tags": tags_of(session, ticket.id),
        # The shop's macros whose action the case allows now (a script plus the action).
        "macros": panel_macros(request).usable(read.allowed_actions),
        "problem": None,
        "history": customer_history(
            session=session,
            ticket=ticket,
            limit=state.settings.panel_history_limit,
            cap=state.settings.panel_history_count_cap,
        ),
        "max_files": state.settings.media_max_files,
        # The risk signals whose count opens a list of what it counted.
        "listed_signals": LISTED_SIGNALS,
    }


# The refund's next step, by where the current refund stands.
_REFUND_NEXT = {None: "propose_refund", "proposed": "approve_refund", "approved": "issue_refund"}


def _primary(allowed: list[str], refund: dict[str, Any] | None) -> str | None:
    """The action the page highlights: the refund's next step when it is open, else the first
    allowed (the lifecycle table lists the usual next move first)."""
    step = _REFUND_NEXT.get(refund.get("status") if refund else None)
    if step in allowed:
        return step
    return allowed[0] if allowed else None


def case_page(
    request: Request,
    session: Session,
    agent: Agent,
    number: str,
    *,
    problem: DomainError | None = None,
    status_code: int = 200,
    kept: dict[str, str] | None = None,
) -> Response:
    """The workspace; after a refusal, with why, and what the agent typed (`kept`: the form
    they sent, `form` naming it: `reply` or an action) back in its fields."""
    try:
        context = case_context(request, session, agent, number)
    except NotFound:
        return render(request, "not_found.html", {"number": number}, status_code=404)
    if problem is not None:
        context["problem"] = _problem(problem)
        context["done"] = None
    context["kept"] = kept or {}
    return render(request, "case.html", context, status_code=status_code)


@router.get("/cases/{number}")
def workspace(
    number: str, request: Request, session: SessionDep, agent: CurrentPanelAgent
) -> Response:
    """The case workspace."""
    _seen(request, number, agent, typing=False)
    return case_page(request, session, agent, number)


@router.get("/cases/{number}/history")
def history(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    signal: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """The customer's history of a case; with `signal`, exactly what that risk signal counted
    (the cases of "3rd request in 30 days")."""
    try:
        ticket = get_ticket(session=session, number=number)
    except NotFound:
        return render(request, "not_found.html", {"number": number}, status_code=404)
    # The whole list (up to the count's cap) where the case page shows the most recent few.
    limit = cap = request.app.state.settings.panel_history_count_cap
    if signal in LISTED_SIGNALS:
        found = signal_history(
            session=session,
            ticket=ticket,
            signal=signal,
            rules=request.app.state.policy.risk,
            limit=limit,
            cap=cap,
        )
    else:
        found = customer_history(session=session, ticket=ticket, limit=limit, cap=cap)
    text = next(
        (
            s.get("text")
            for s in ticket.risk_signals
            if isinstance(s, dict) and s.get("code") == signal
        ),
        None,
    )
    return render(
        request,
        "history.html",
        {"ticket": ticket, "history": found, "signal": found.signal, "signal_text": text},
    )


# ---------------------------------------------------------------- acting on a case


def change_or_explain(
    request: Request,
    session: Session,
    agent: Agent,
    number: str,
    change: Callable[[], T],
    goto: Callable[[T], str] | str,
    *,
    kept: dict[str, str] | None = None,
) -> Response:
    """The panel's one shape for a change to a case: make it (`change`, a core call) and go on
    to `goto` (Post/Redirect/Get; a function of what the change answered, or a fixed address),
    or roll it back and show the case as it is now with why it was refused, what the agent typed
    (`kept`) back in its fields. Nothing of a refused change is saved."""
    try:
        result = change()
        session.flush()
    except DomainError as exc:
        session.rollback()
        return case_page(
            request, session, agent, number, problem=exc, status_code=status_for(exc), kept=kept
        )
    target = goto if isinstance(goto, str) else goto(result)
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)


def act_or_explain(
    request: Request,
    session: Session,
    agent: Agent,
    ctx: Context,
    number: str,
    body: ActionRequest,
    *,
    back: str = "",
    form: dict[str, str] | None = None,
) -> Response:
    """Apply the action and go back, or show the case as it is now with the reason the action
    was refused (`change_or_explain`); what the agent typed in its form (`form`: a refusal's
    reason, say) is back in its fields."""
    return change_or_explain(
        request,
        session,
        agent,
        number,
        lambda: perform_action(
            session=session, number=number, request=body, actor=Actor("agent", agent), ctx=ctx
        ),
        safe_next(back) if back else f"/panel/cases/{number}?done={body.action}",
        kept={**(form or {}), "form": body.action},
    )


def action_request(action: str, form: dict[str, str], units: list[Any]) -> ActionRequest:
    """The core's ActionRequest from an action form (empty fields left out)."""
    data: dict[str, Any] = {"action": action}
    version = form.get("version", "").strip()
    if version:
        seen = whole_number(version)
        if seen is None:
            raise InvalidInput("bad version", [{"loc": "version", "msg": "not a case version"}])
        data["version"] = seen
    for name in _FORM_FIELDS:
        value = form.get(name, "").strip()
        if value:
            data[name] = value
    if form.get("priority"):
        data["priority"] = form["priority"]
    # What the agent deliberately confirmed on a held case (tickets/cases/holds.py).
    data["confirm"] = [c for c in CONFIRMABLE if form.get(f"confirm_{c}") == "1"]
    if form.get("confirm_number", "").strip():
        data["confirm_number"] = form["confirm_number"].strip()
    if form.get("pickup_time") and form.get("pickup_address"):
        data["pickup"] = {"time": form["pickup_time"], "address": form["pickup_address"]}
    if action == "inspect":
        # Nothing is chosen for the agent (no one-click "resalable"): a unit left unchosen is
        # named, and nothing is recorded.
        unchosen = [
            {
                "loc": f"outcome_{u.id}",
                "msg": f"choose what {u.unit.line.sku} #{u.unit.unit_index} is",
            }
            for u in units
            if not form.get(f"outcome_{u.id}", "").strip()
        ]
        if unchosen:
            raise InvalidInput("choose an outcome for every unit after looking at it", unchosen)
        # One result per unit, in the case's unit order: the core hands a SKU's results to its
        # units in that same order.
        data["results"] = [
            {"sku": u.unit.line.sku, "quantity": 1, "outcome": form.get(f"outcome_{u.id}", "")}
            for u in units
        ]
    try:
        return ActionRequest.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        raise InvalidInput("; ".join(f"{e['loc']}: {e['msg']}" for e in errors), errors) from exc


@router.post("/cases/{number}/actions/{action}")
def act(
    number: str,
    action: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
) -> Response:
    """One action from the workspace, as the logged-in agent, at the version shown."""
    try:
        ticket = get_ticket(session=session, number=number)
        body = action_request(action, form, list(ticket.units))
    except DomainError as exc:
        return case_page(
            request,
            session,
            agent,
            number,
            problem=exc,
            status_code=status_for(exc),
            kept={**form, "form": action},
        )
    # A list the action was taken from (the approvals) is where the agent goes back to.
    return act_or_explain(
        request, session, agent, ctx, number, body, back=form.get("back", ""), form=form
    )


# ---------------------------------------------------------------- tags


@router.post("/cases/{number}/tags")
def tag(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
) -> Response:
    """Put the tags typed (separated by commas or spaces) on the case."""
    # Bounded before it is split: room for the most tags a shop may allow at once, each as
    # long as a tag may be with its separator and spaces (the core counts them, names a bad one).
    room = HARD.tags_per_request * (TAG_MAX + 8)
    typed = form.get("tags", "")[:room].replace("，", ",").replace(",", " ").split()
    return change_or_explain(
        request,
        session,
        agent,
        number,
        lambda: add_tags(
            session=session, number=number, tags=typed, actor=Actor("agent", agent), ctx=ctx
        ),
        f"/panel/cases/{number}#tags",
    )


@router.post("/cases/{number}/tags/remove")
def untag(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
) -> Response:
    """Take one tag off the case."""
    return change_or_explain(
        request,
        session,
        agent,
        number,
        lambda: remove_tag(
            session=session,
            number=number,
            tag=form.get("tag", "")[:200],
            actor=Actor("agent", agent),
            ctx=ctx,
        ),
        f"/panel/cases/{number}#tags",
    )


# ---------------------------------------------------------------- replying


def _variables(script: Script | None, form: dict[str, str]) -> dict[str, Any]:
    """The variables an agent typed for a script (`var_<name>` fields), typed as declared."""
    if script is None:
        return {}
    out: dict[str, Any] = {}
    for name, var in script.variables.items():
        raw = form.get(f"var_{name}", "").strip()
        if not raw:
            continue
        if var.type == "int":
            # Anything else is left as text: the renderer names the variable and its type.
            value = whole_number(raw.removeprefix("-"), INT64_MAX)
            out[name] = raw if value is None else -value if raw.startswith("-") else value
        elif var.type == "list":
            out[name] = [line.strip() for line in raw.splitlines() if line.strip()]
        else:
            out[name] = raw
    return out


@dataclass
class Filled:
    """A script filled for a case: the Telegram HTML the customer gets, or why it cannot be."""

    script: Script | None
    html: str | None
    error: str | None
    asks: list[Any]  # the variables the agent must (or may) give: not known from the case
    # Why, for the page to say in the agent's language: the core's error code and variable.
    error_code: str | None = None
    error_variable: str | None = None


def fill_script(
    ticket: Ticket, ctx: Context, name: str, language: str, form: dict[str, str]
) -> Filled:
    scripts = ctx.scripts
    assert scripts is not None
    try:
        script = scripts.get(name, language)
    except ScriptError as exc:
        return Filled(None, None, exc.message, [], exc.code)
    known = case_facts(ticket, ctx)
    asks = [v for v in script.variables.values() if v.name not in known]
    try:
        html = render_for_case(
            ticket=ticket,
            script=name,
            ctx=ctx,
            variables=_variables(script, form),
            language=language,
        )
    except (ScriptError, InvalidInput) as exc:
        # A value the script refuses, or one over the shop's limits: shown beside the box.
        return Filled(script, None, exc.message, asks, exc.code, getattr(exc, "variable", None))
    return Filled(script, html, None, asks)


def _same_text(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return "\n".join(line.rstrip() for line in s.replace("\r\n", "\n").strip().split("\n"))

    return norm(a) == norm(b)


@router.get("/cases/{number}/script")
def script_fill(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    name: str = "",
    language: str = "zh-CN",
) -> Response:
    """The reply box filled from a script (htmx fragment): editable text and its preview."""
    ticket = get_ticket(session=session, number=number)
    form = dict(request.query_params)
    filled = fill_script(ticket, ctx, name, language, form) if name else None
    return render(
        request,
        "_reply_fill.html",
        {
            "t": ticket,
            "filled": filled,
            "name": name,
            "language": language,
            "values": form,
            "text": plain_text(filled.html) if filled and filled.html else "",
            "preview": telegram_html(filled.html) if filled and filled.html else None,
        },
    )


@router.post("/cases/{number}/preview")
def preview(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
) -> Response:
    """The reply as the customer will see it: the formatted script when the text is the
    script's, else the plain text exactly as typed."""
    ticket = get_ticket(session=session, number=number)
    text = form.get("text", "")
    name = form.get("script", "")
    formatted = False
    if name and form.get("internal") != "1":
        filled = fill_script(ticket, ctx, name, form.get("language", "zh-CN"), form)
        if filled.html is not None and _same_text(text, plain_text(filled.html)):
            formatted = True
            text = filled.html
    return render(
        request,
        "_preview.html",
        {"text": text, "formatted": formatted, "internal": form.get("internal") == "1"},
    )


@router.post("/cases/{number}/reply")
def reply(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
    uploads: FormUploads,
    store: StoreDep,
) -> Response:
    """Send a reply (a script when its text was left as filled, else the text as typed), or
    add an internal note, with the files attached (photos, PDFs: the core's checks)."""
    text = form.get("text", "")
    internal = form.get("internal") == "1"
    name = form.get("script", "")
    language = form.get("language", "")
    kept = {**form, "form": "reply"}
    try:
        ticket = get_ticket(session=session, number=number)
        # The version the page was drawn at: a case changed since is refused by the core, as
        # the action buttons are (a colleague answered meanwhile, or the customer wrote).
        seen = whole_number(form.get("version", "").strip())
        if seen is None and form.get("version", "").strip():
            raise InvalidInput("bad version", [{"loc": "version", "msg": "not a case version"}])
        body = ReplyCreate(text=text, internal=internal, version=seen)
        if name and not internal and language in LANGUAGES:
            filled = fill_script(ticket, ctx, name, language, form)
            if filled.html is not None and _same_text(text, plain_text(filled.html)):
                body = ReplyCreate(
                    script=name,
                    variables=_variables(filled.script, form),
                    language=language,
                    version=seen,
                )
        files = store_reply_files(store=store, uploads=uploads, ctx=ctx)
        msg = add_reply(
            session=session,
            number=number,
            reply=body,
            actor=Actor("agent", agent),
            ctx=ctx,
            attachments=files,
        )
        session.flush()
        delivery = None if internal else message_deliveries(session, msg.ticket_id).get(msg.id)
    except ValidationError as exc:
        session.rollback()
        problem = InvalidInput(str(exc.errors()[0]["msg"]))
        return case_page(
            request, session, agent, number, problem=problem, status_code=422, kept=kept
        )
    except DomainError as exc:
        session.rollback()
        return case_page(
            request, session, agent, number, problem=exc, status_code=status_for(exc), kept=kept
        )
    if delivery is not None and delivery.state == "undeliverable":
        # Kept on the case, and the agent told at once that it went nowhere, and why.
        return RedirectResponse(
            f"/panel/cases/{number}?done=unsent&why={quote(delivery.reason or '')}",
            status.HTTP_303_SEE_OTHER,
        )
    done = "note" if internal else "reply"
    return RedirectResponse(f"/panel/cases/{number}?done={done}", status.HTTP_303_SEE_OTHER)


# ---------------------------------------------------------------- live: changes and presence


def _seen(request: Request, number: str, agent: Agent, *, typing: bool) -> dict[str, Any]:
    """Record that the agent is looking at the case; answer who else is. Kept in this
    process's memory: presence is a hint, not a record (several processes each see their own)."""
    presence: dict[str, dict[str, tuple[str, float, bool]]] = request.app.state.panel.presence
    now = time.monotonic()
    viewers = presence.setdefault(number, {})
    viewers[agent.username] = (agent.display_name or agent.username, now, typing)
    for name, (_, seen, _t) in list(viewers.items()):
        if now - seen > PRESENCE_SECONDS:
            del viewers[name]
    return {
        name: {"display": display, "typing": is_typing}
        for name, (display, _s, is_typing) in viewers.items()
        if name != agent.username
    }


@router.get("/cases/{number}/watch")
def watch(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    version: DbInt = 0,
    typing: bool = False,
) -> Response:
    """Polled by an open workspace: has the case changed since the page was drawn, and who
    else is on it."""
    others = _seen(request, number, agent, typing=typing)
    row = session.execute(
        select(Ticket.id, Ticket.version).where(Ticket.number == number)
    ).one_or_none()
    changed = None
    if row is not None and version and row.version != version:
        changed = session.scalar(
            select(Event).where(Event.ticket_id == row.id).order_by(Event.id.desc()).limit(1)
        )
    return render(
        request,
        "_watch.html",
        {"others": others, "changed": changed, "stale": row is not None and row.version != version},
    )


# ---------------------------------------------------------------- evidence


@router.get("/files/{attachment_id}")
def evidence(
    attachment_id: DbId,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    download: bool = False,
    thumb: bool = False,
) -> Response:
    """An evidence file, to logged-in agents only; inline for images, a download otherwise;
    `thumb` gives a photo's small JPEG (made when it was stored) where there is one."""
    row = session.get(Attachment, attachment_id)
    media: Path = Path(request.app.state.settings.media_dir).resolve()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    path = (media / row.storage_key).resolve()
    # A storage key never leaves the media folder, whatever the database says.
    if not path.is_relative_to(media) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    small = (media / "thumbs" / row.sha256[:2] / f"{row.sha256}.jpg").resolve()
    if thumb and small.is_relative_to(media) and small.is_file():
        return FileResponse(
            small,
            media_type="image/jpeg",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"},
        )
    inline = row.mime.startswith("image/") and row.mime != "image/svg+xml" and not download
    name = row.original_name or f"evidence-{row.id}"
    return FileResponse(
        path,
        media_type=row.mime if inline else "application/octet-stream",
        filename=name,
        content_disposition_type="inline" if inline else "attachment",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"},
    )
