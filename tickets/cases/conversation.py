"""The conversation on a case: an agent's reply (and its parts for the transports), a
customer's message, and the customer's satisfaction rating.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from tickets.cases.events import append_event, record_event
from tickets.cases.status import check_version, load_ticket, set_status
from tickets.context import Actor, Context
from tickets.exceptions import (
    ActionNotAllowed,
    InvalidInput,
)
from tickets.messages import parts
from tickets.messages.notices import (
    render_for_case,
)
from tickets.messages.outbox import notify_customer, reach
from tickets.messages.payloads import REPLY, FileRef, Reply
from tickets.models import (
    Attachment,
    CaseStatus,
    EventType,
    Message,
    Ticket,
)
from tickets.schemas import ReplyCreate
from tickets.sla import clocks as sla
from tickets.storage import AttachmentStore, MediaRejected

# ---------------------------------------------------------------- conversation


@dataclass(frozen=True)
class Upload:
    """A file an agent sent with a reply, not read yet: its name, the size its request
    declared (None: unknown), and how to read it."""

    name: str
    size: int | None
    read: Callable[[], bytes]


# The longest original file name kept (Attachment.original_name).
NAME_MAX = 300


def store_reply_files(
    *, store: AttachmentStore, uploads: Sequence[Upload], ctx: Context
) -> list[Attachment]:
    """Files an agent attaches to a reply (the panel's and the API's one rule): at most the
    shop's count, each within the size limits before it is read, then kept by what its bytes
    say it is (a photo, cleaned of its metadata, or a PDF; nothing else). Rows to pass to
    `add_reply`. Raises MediaRejected naming the file."""
    store.check_count(len(uploads))
    largest = max(store.limits.photo_bytes, store.limits.document_bytes)
    for upload in uploads:
        if upload.size is not None and upload.size > largest:
            raise MediaRejected(
                f"{upload.name or 'a file'} is {upload.size} bytes: over the limit of {largest}",
                reason="too_large",
                limit=largest,
            )
    rows = []
    for upload in uploads:
        # Only the file's own name (a browser may send a path), as text a database keeps.
        name = upload.name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")[:NAME_MAX]
        stored = store.store_agent_file(upload.read(), original_name=name)
        rows.append(
            Attachment(
                kind=stored.kind,
                mime=stored.mime,
                size=stored.size,
                sha256=stored.sha256,
                storage_key=stored.storage_key,
                original_name=stored.original_name,
                created_at=ctx.now,
            )
        )
    return rows


def add_reply(
    *,
    session: Session,
    number: str,
    reply: ReplyCreate,
    actor: Actor,
    ctx: Context,
    attachments: Sequence[Attachment] = (),
) -> Message:
    """An agent's reply to the customer (queued for delivery), or an internal note. With
    `script`, the text is that script filled from the case and `variables`; with `version`, a
    case changed since that version is a Conflict (nothing written). `attachments`
    (stored files: a photo sent from the agents' chat) go with it, the text as their caption
    when it fits."""
    ticket = load_ticket(session, number, for_update=True)
    # Two agents answering the same message: the second, from a page drawn before the first's
    # reply, is refused (and keeps what they typed) instead of both going out. A note goes to
    # no customer: it never conflicts.
    if not reply.internal:
        check_version(ticket, reply.version)
    parse_mode = None
    if reply.script is not None:
        if reply.text is not None:
            raise InvalidInput(
                "send either text or a script, not both", [{"loc": "text", "msg": "both given"}]
            )
        if ctx.scripts is None:
            raise InvalidInput("reply scripts are not loaded", [{"loc": "script", "msg": "none"}])
        body = render_for_case(
            ticket=ticket,
            script=reply.script,
            ctx=ctx,
            variables=reply.variables,
            language=reply.language,
        )
        parse_mode = "HTML"
    else:
        body = reply.text or ""
    if not body.strip() and not attachments:
        raise InvalidInput(
            "a reply needs text (or a script)", [{"loc": "text", "msg": "empty reply"}]
        )
    msg = Message(
        ticket=ticket,
        author="agent" if actor.agent else "system",
        agent=actor.agent,
        text=body,
        internal=reply.internal,
        created_at=ctx.now,
    )
    session.add(msg)
    for a in attachments:
        # In the session before it joins the message, so the cascade has somewhere to go.
        a.ticket = ticket
        session.add(a)
        a.message = msg
    ticket.updated_at = ctx.now
    session.flush()
    record_event(
        session=session,
        ticket=ticket,
        type=EventType.note_added if reply.internal else EventType.reply_sent,
        actor=actor,
        now=ctx.now,
        limits=ctx.limits,
        message_id=msg.id,
        script=reply.script,
    )
    if not reply.internal:
        if actor.agent is not None:
            sla.on_agent_response(session=session, ticket=ticket, ctx=ctx)
        for payload in _reply_payloads(
            body, parse_mode, msg.id, attachments, ticket=ticket, ctx=ctx
        ):
            if reply.script is not None:
                # What the customer then types is read against the words it asks for
                # (tickets.self_service.script_answer).
                payload.script = reply.script
            notify_customer(
                session=session,
                ticket=ticket,
                kind=REPLY,
                payload=payload,
                now=ctx.now,
                channels=ctx.channels,
            )
    session.flush()
    return msg


def _reply_payloads(
    body: str,
    parse_mode: str | None,
    message_id: int,
    attachments: Sequence[Attachment],
    *,
    ticket: Ticket,
    ctx: Context,
) -> list[Reply]:
    """The outbox payloads of one reply, one per message of the channel that reaches the
    customer, cut by that channel's rule (tickets/messages/parts.py)."""
    reply = parts.Reply(
        text=body,
        parse_mode=parse_mode,
        files=tuple(
            {"kind": a.kind, "storage_key": a.storage_key, "name": a.original_name}
            for a in attachments
        ),
    )
    rule = ctx.parts.get(reach(ticket, ctx.channels).channel, parts.together)
    payloads = []
    for part in rule(reply):
        # Only what is set is stored (tickets/messages/payloads.py): no "attachment": null.
        if "attachment" in part:
            attachment = FileRef(**part["attachment"])
            payloads.append(
                Reply(
                    message_id=message_id,
                    parse_mode=parse_mode,
                    text=part["text"],
                    attachment=attachment,
                )
            )
        else:
            payloads.append(Reply(message_id=message_id, parse_mode=parse_mode, text=part["text"]))
    return payloads


def add_customer_message(
    *,
    session: Session,
    ticket: Ticket,
    text: str,
    ctx: Context,
    attachments: Sequence[Attachment] = (),
) -> Message:
    """A customer's message on their case; an answer to a request for information puts the case
    back in the queue."""
    msg = Message(ticket=ticket, author="customer", text=text, created_at=ctx.now)
    session.add(msg)
    for a in attachments:
        # In the session before it joins the message, so the cascade has somewhere to go.
        a.ticket = ticket
        session.add(a)
        a.message = msg
    ticket.updated_at = ctx.now
    session.flush()
    append_event(
        session=session,
        ticket=ticket,
        type=EventType.customer_message,
        actor=Actor(kind="customer", customer_id=ticket.customer_id),
        now=ctx.now,
        limits=ctx.limits,
        message_id=msg.id,
        attachments=len(attachments),
    )
    if ticket.status == CaseStatus.needs_info.value:
        set_status(
            session=session,
            ticket=ticket,
            status=CaseStatus.submitted,
            ctx=ctx,
            actor=Actor(kind="customer", customer_id=ticket.customer_id),
            rule="the customer answered",
        )
    return msg


def record_satisfaction(
    *, session: Session, ticket: Ticket, score: int, ctx: Context, comment: str = ""
) -> None:
    """The customer's rating of a finished case (1-5) and an optional comment; a later answer
    replaces an earlier one, and each is in the events."""
    if not 1 <= score <= 5:
        raise InvalidInput("a rating is 1 to 5", [{"loc": "score", "msg": "out of range"}])
    if ticket.status not in (
        CaseStatus.closed.value,
        CaseStatus.resolved.value,
        CaseStatus.refunded.value,
    ):
        raise ActionNotAllowed("only a finished case can be rated", [])
    ticket.satisfaction = score
    ticket.updated_at = ctx.now
    record_event(
        session=session,
        ticket=ticket,
        type=EventType.satisfaction_recorded,
        actor=Actor(kind="customer", customer_id=ticket.customer_id),
        now=ctx.now,
        score=score,
        comment=comment[:1000],
    )
