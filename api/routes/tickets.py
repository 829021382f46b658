"""JSON API: cases (tickets) — open, list, read, act, reply."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, UploadFile, status
from fastapi.responses import FileResponse, Response
from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import AgentActor, ContextDep, CurrentAgent, SessionDep, StoreDep
from api.offload import OffLoop
from tickets.cases.actions.refunds import awaiting_second_approval
from tickets.cases.conversation import Upload, add_reply, store_reply_files
from tickets.cases.lifecycle import perform_action
from tickets.cases.links import link_cases, merge_case, unlink_cases
from tickets.cases.opening import open_case
from tickets.cases.queries import NEWEST_FIRST, SORTS, TicketFilters, check_sort, list_summaries
from tickets.cases.serialize import message_deliveries, summary_of_row, ticket_to_read
from tickets.cases.status import get_ticket
from tickets.cases.tags import add_tags, normalise_tag, remove_tag
from tickets.context import Actor
from tickets.exceptions import InvalidInput, NotFound
from tickets.models import Agent, Attachment, CaseKind, CaseStatus, Message, Role
from tickets.money import format_amount
from tickets.schemas import (
    ACTION_SCHEMAS,
    ActionCall,
    ApprovalList,
    ApprovalRead,
    DbId,
    LinkIn,
    LinkRead,
    LinksRead,
    MergeIn,
    MessageRead,
    ReplyCreate,
    TagsIn,
    TagsRead,
    TicketCreate,
    TicketList,
)
from tickets.schemas import TicketRead as TicketJSON
from tickets.sla import clocks as sla

router = APIRouter(prefix="/tickets", tags=["tickets"], route_class=OffLoop)
files = APIRouter(prefix="/attachments", tags=["attachments"])
approvals = APIRouter(prefix="/approvals", tags=["tickets"])
_TICKET_LIST = TypeAdapter(TicketList)


ACTIONS_PATH = "/tickets/{number}/actions"


def document_actions(openapi: dict[str, Any]) -> None:
    """The actions' request as OpenAPI shows it: one schema per action (`oneOf`, told apart
    by `action`: tickets/schemas.py ACTION_SCHEMAS), so a client reads what each action takes.
    The route validates the flat ActionCall, whose rule is the same; this is documentation."""
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    refs = {}
    for model in ACTION_SCHEMAS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components[model.__name__] = schema
        action = model.model_fields["action"].annotation.__args__[0]  # type: ignore[union-attr]
        refs[action] = f"#/components/schemas/{model.__name__}"
    for path, operations in openapi.get("paths", {}).items():
        if path.endswith(ACTIONS_PATH):
            body = operations["post"]["requestBody"]["content"]["application/json"]
            flat = body["schema"].get("$ref", "").rsplit("/", 1)[-1]
            body["schema"] = {
                "oneOf": [{"$ref": ref} for ref in refs.values()],
                "discriminator": {"propertyName": "action", "mapping": refs},
            }
            # The flat schema validates; shown nowhere, it would only confuse a reader.
            components.pop(flat, None)


def _read(request: Request, session: Session, number: str, viewer: Agent) -> TicketJSON:
    ticket = get_ticket(session=session, number=number)
    state = request.app.state
    return ticket_to_read(
        session,
        ticket,
        role=Role(viewer.role),
        viewer=viewer,
        sla=sla.view(session, ticket, state.clock()),
        policy=state.policy,
        now=state.clock(),
        timezone=state.settings.timezone,
    )


@router.post("", response_model=TicketJSON, status_code=status.HTTP_201_CREATED)
def create_ticket(
    body: TicketCreate,
    request: Request,
    session: SessionDep,
    actor: AgentActor,
    ctx: ContextDep,
) -> TicketJSON:
    """Open a case for a request that came by phone, e-mail, a platform or an integration.
    A second open request of the same kind for the same order (or any within the duplicate
    window) is a 409 naming the existing case."""
    ticket = open_case(session=session, request=body, actor=actor, ctx=ctx)
    assert actor.agent is not None  # AgentActor: always an agent
    return _read(request, session, ticket.number, actor.agent)


def _csv(values: list[str] | None, allowed: set[str], name: str) -> list[str]:
    out: list[str] = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if part not in allowed:
                raise InvalidInput(
                    f"unknown {name} {part!r}; use one of: {', '.join(sorted(allowed))}",
                    [{"loc": name, "msg": f"unknown {name}"}],
                )
            out.append(part)
    return out


@router.get("", response_model=TicketList)
def list_cases(
    request: Request,
    session: SessionDep,
    agent: CurrentAgent,
    status_: Annotated[list[str] | None, Query(alias="status")] = None,
    kind: Annotated[list[str] | None, Query()] = None,
    group: str | None = None,
    assignee: Annotated[str | None, Query(description="a username, or 'none'")] = None,
    order_no: str | None = None,
    priority: str | None = None,
    channel: str | None = None,
    tag: Annotated[
        str | None, Query(max_length=100, description="only cases with this tag")
    ] = None,
    overdue: Annotated[
        bool | None, Query(description="only cases with a shop SLA clock past due")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
    sort: Annotated[
        str,
        Query(
            max_length=20,
            description="the order: " + ", ".join(SORTS) + " ('-' reverses; 'due': the "
            "nearest shop SLA due time first, missed ones first of all)",
        ),
    ] = NEWEST_FIRST,
) -> Response:
    """The queue, newest first unless `sort` says otherwise (the panel's orders: `due`,
    `created`, `priority`, `risk`, `status`, `kind`, `customer`, `assignee`, each reversed by a
    leading `-`). Filters combine; `status` and `kind` take several values (repeated or
    comma-separated). Pass `next_cursor` back as `cursor` for the next page, with the same
    `sort`. `count` is exact up to AFTERSALES_COUNT_CAP; above it `count_capped` is true.
    `order_no` matches the order's number in any case and with any spaces."""
    settings = request.app.state.settings
    check_sort(sort)
    filters = TicketFilters(
        status=_csv(status_, {s.value for s in CaseStatus}, "status"),
        kind=_csv(kind, {k.value for k in CaseKind}, "kind"),
        group=group,
        assignee=assignee,
        order_no=order_no,
        priority=priority,
        channel=channel,
        tag=normalise_tag(tag, "tag") if tag else None,
        overdue_at=request.app.state.clock() if overdue else None,
    )
    cap = settings.count_cap
    rows, count, next_cursor = list_summaries(
        session=session,
        filters=filters,
        limit=min(limit, settings.page_size_max),
        cursor=cursor,
        count_cap=cap,
        sort=sort,
    )
    page = TicketList(
        data=[summary_of_row(row, tags) for row, tags in rows],
        count=min(count, cap),
        count_capped=count > cap,
        next_cursor=next_cursor,
    )
    # Serialised here, in the request's worker thread: FastAPI would check the page against
    # `response_model` again and write its JSON on the event loop (the same bytes: pydantic's
    # dump_json either way).
    return Response(_TICKET_LIST.dump_json(page), media_type="application/json")


@router.get("/{number}", response_model=TicketJSON)
def read_ticket(
    number: str, request: Request, session: SessionDep, agent: CurrentAgent
) -> TicketJSON:
    """A case with its items, messages, attachments, events, refund, SLA clocks and the
    actions allowed now."""
    return _read(request, session, number, agent)


@router.post("/{number}/actions", response_model=TicketJSON)
def act(
    number: str,
    body: ActionCall,
    request: Request,
    session: SessionDep,
    actor: AgentActor,
    ctx: ContextDep,
) -> TicketJSON:
    """Change a case: `{"action": "approve"}`, `{"action": "refuse", "reason": ...}`, ...
    An action the status does not allow is a 409 listing the allowed ones; a stale `version`
    is a 409 too."""
    perform_action(session=session, number=number, request=body, actor=actor, ctx=ctx)
    assert actor.agent is not None  # AgentActor: always an agent
    return _read(request, session, number, actor.agent)


@router.post("/{number}/replies", response_model=MessageRead, status_code=201)
def reply(
    number: str,
    body: ReplyCreate,
    request: Request,
    session: SessionDep,
    actor: AgentActor,
    ctx: ContextDep,
) -> MessageRead:
    """Reply to the customer (queued for delivery) or add an internal note (`internal: true`).
    `{"script": name, "variables": {...}}` fills a reply script instead of free text.

    The reply is always kept on the case (201). Its `delivery` says whether it is on its way
    (`queued`) or `undeliverable`, with why: a customer with no chat (a phone case: call
    them), or a channel nothing delivers here (the bot off). An undeliverable reply is never
    sent later."""
    msg = add_reply(session=session, number=number, reply=body, actor=actor, ctx=ctx)
    return _message(session, msg, actor)


def _message(session: Session, msg: Message, actor: Actor) -> MessageRead:
    session.flush()
    return MessageRead(
        id=msg.id,
        author="agent",
        agent=actor.agent.username if actor.agent else None,
        text=msg.text,
        internal=msg.internal,
        at=msg.created_at,
        attachments=[a.id for a in msg.attachments],
        delivery=None if msg.internal else message_deliveries(session, msg.ticket_id).get(msg.id),
    )


@router.post("/{number}/replies/files", response_model=MessageRead, status_code=201)
def reply_with_files(
    number: str,
    files: list[UploadFile],
    session: SessionDep,
    actor: AgentActor,
    ctx: ContextDep,
    store: StoreDep,
    text: Annotated[str, Form(max_length=4096)] = "",
    internal: Annotated[bool, Form()] = False,
) -> MessageRead:
    """A reply (or an internal note) with files, as `multipart/form-data`: `files` (photos:
    JPEG, PNG, WebP, re-encoded without their metadata; PDFs), and optionally `text` (the
    caption when there is one file and it fits) and `internal`. The same checks as the
    panel's: at most AFTERSALES_MEDIA_MAX_FILES files, each within its size limit, the type read
    from the bytes (anything else: a 422 naming the file). Delivered like any reply: Telegram
    gets a photo or a document, the web chat shows it."""
    uploads = [Upload(name=f.filename or "", size=f.size, read=f.file.read) for f in files]
    stored = store_reply_files(store=store, uploads=uploads, ctx=ctx)
    body = ReplyCreate(text=text, internal=internal)
    msg = add_reply(
        session=session, number=number, reply=body, actor=actor, ctx=ctx, attachments=stored
    )
    return _message(session, msg, actor)


@router.post("/{number}/tags", response_model=TagsRead)
def tag_case(
    number: str, body: TagsIn, session: SessionDep, actor: AgentActor, ctx: ContextDep
) -> TagsRead:
    """Put tags on a case (`{"tags": ["vip", "supplier-x"]}`); the case's tags after. A tag is
    at most 32 letters, digits, '-' or '_' (stored in lower case); a case carries at most
    AFTERSALES_LIMIT_TAGS_PER_CASE; anything else is a 422 naming the tag, nothing written."""
    return TagsRead(
        tags=add_tags(session=session, number=number, tags=body.tags, actor=actor, ctx=ctx)
    )


@router.delete("/{number}/tags/{tag}", response_model=TagsRead)
def untag_case(
    number: str, tag: str, session: SessionDep, actor: AgentActor, ctx: ContextDep
) -> TagsRead:
    """Take a tag off a case; the case's tags after."""
    return TagsRead(tags=remove_tag(session=session, number=number, tag=tag, actor=actor, ctx=ctx))


def _links(found: list[Any]) -> LinksRead:
    return LinksRead(links=[LinkRead(number=x.number, status=x.status, kind=x.kind) for x in found])


@router.post("/{number}/links", response_model=LinksRead)
def link(
    number: str, body: LinkIn, session: SessionDep, actor: AgentActor, ctx: ContextDep
) -> LinksRead:
    """Link another case to this one as related (`{"number": ...}`); the linked cases after."""
    return _links(
        link_cases(session=session, number=number, other=body.number, actor=actor, ctx=ctx)
    )


@router.delete("/{number}/links/{other}", response_model=LinksRead)
def unlink(
    number: str, other: str, session: SessionDep, actor: AgentActor, ctx: ContextDep
) -> LinksRead:
    """Undo a link; the linked cases after."""
    return _links(unlink_cases(session=session, number=number, other=other, actor=actor, ctx=ctx))


@router.post("/{number}/merge", response_model=TicketJSON)
def merge(
    number: str,
    body: MergeIn,
    request: Request,
    session: SessionDep,
    actor: AgentActor,
    ctx: ContextDep,
) -> TicketJSON:
    """Merge this case (a duplicate) into `into`, a case of the same customer or order: its
    messages, files and events go to that case's history, and it is closed as merged. Answers
    the target. A refund in motion on the duplicate is a 409 saying so; another customer's
    case a 422."""
    target = merge_case(
        session=session,
        number=number,
        into=body.into,
        actor=actor,
        ctx=ctx,
        version=body.version,
    )
    assert actor.agent is not None  # AgentActor: always an agent
    return _read(request, session, target.number, actor.agent)


@files.get("/{attachment_id}")
def download(
    attachment_id: DbId, request: Request, session: SessionDep, agent: CurrentAgent
) -> FileResponse:
    """An evidence file (agents only)."""
    row = session.get(Attachment, attachment_id)
    media = request.app.state.settings.media_dir
    if row is None or not (media / row.storage_key).is_file():
        raise NotFound("no such attachment")
    return FileResponse(media / row.storage_key, media_type=row.mime)


@approvals.get("", response_model=ApprovalList)
def waiting_for_my_approval(session: SessionDep, agent: CurrentAgent) -> ApprovalList:
    """The large refunds someone else proposed that wait for this agent as the second person
    (the panel's "Waiting for my approval"), oldest first. Refunds they proposed, or whose case
    or order they handled, wait for a colleague and are not listed."""
    pending = awaiting_second_approval(session, agent)
    makers = {r.proposed_by_id for _t, r in pending if r.proposed_by_id is not None}
    names: dict[int, str] = {
        agent_id: username
        for agent_id, username in session.execute(
            select(Agent.id, Agent.username).where(Agent.id.in_(makers)).order_by(Agent.id)
        )
    }
    data = [
        ApprovalRead(
            number=t.number,
            kind=CaseKind(t.kind),
            amount=format_amount(r.amount, r.currency),
            currency=r.currency,
            refund_status=r.status,
            proposed_by=names.get(r.proposed_by_id) if r.proposed_by_id else None,
            proposed_at=r.created_at,
            risk_level=t.risk_level,
        )
        for t, r in pending
    ]
    return ApprovalList(data=data, count=len(data))
