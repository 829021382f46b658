"""Tags on a case: the words agents put on cases to find them again ("vip", "supplier-x",
"质检"). One home for what a tag may be (short, lower-case, letters of any script, digits, "-"
and "_"), how many a case carries (AFTERSALES_LIMIT_TAGS_PER_CASE) and one request names
(AFTERSALES_LIMIT_TAGS_PER_REQUEST), who may tag (agents), and
the queue's condition "has this tag". Every change is an event on the case, naming who.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.orm import Session

from tickets.cases.events import record_event
from tickets.cases.status import load_ticket
from tickets.context import Actor, Context
from tickets.exceptions import InvalidInput, PermissionDenied
from tickets.models import EventType, Ticket, TicketTag

# The column's width: a tag is a word, not a note.
TAG_MAX = 32
# Letters of any script, digits, "_" (\w) and "-"; nothing that needs quoting in a URL or HTML.
_TAG = re.compile(r"[\w-]+")


def normalise_tag(text: str, loc: str = "tags") -> str:
    """A tag as stored: full-width folded (NFKC), lower case, spaces inside become "-";
    InvalidInput naming `loc` when what is left is empty, too long or holds other marks."""
    tag = "-".join(unicodedata.normalize("NFKC", text).casefold().split())
    if not tag:
        raise InvalidInput("a tag cannot be empty", [{"loc": loc, "msg": "empty tag"}])
    if len(tag) > TAG_MAX:
        raise InvalidInput(
            f"tag {tag[:TAG_MAX]}…: at most {TAG_MAX} characters",
            [{"loc": loc, "msg": f"more than {TAG_MAX} characters"}],
        )
    if not _TAG.fullmatch(tag):
        raise InvalidInput(
            f"tag {tag!r}: use letters, digits, '-' and '_' only",
            [{"loc": loc, "msg": "only letters, digits, '-' and '_'"}],
        )
    return tag


def tag_condition(tag: str) -> ColumnElement[bool]:
    """Cases carrying `tag` (already normalised), for the queue's filters."""
    return exists().where(TicketTag.ticket_id == Ticket.id, TicketTag.tag == tag)


def tags_of(session: Session, ticket_id: int) -> list[str]:
    """A case's tags, A to Z."""
    return list(
        session.scalars(
            select(TicketTag.tag).where(TicketTag.ticket_id == ticket_id).order_by(TicketTag.tag)
        )
    )


def _agent_only(actor: Actor) -> None:
    if actor.agent is None:
        raise PermissionDenied("only agents tag cases")


def add_tags(
    *, session: Session, number: str, tags: Sequence[str], actor: Actor, ctx: Context
) -> list[str]:
    """Put `tags` on the case (those it has already are left as they are); the case's tags
    after. Refused whole, nothing written, when a tag is malformed or the case would carry more
    than the shop's limit."""
    _agent_only(actor)
    # Counted before any tag is read: the API's schema only holds the hard ceiling.
    at_once = ctx.limits.tags_per_request
    if len(tags) > at_once:
        raise InvalidInput(
            f"at most {at_once} tags at once (the shop's limit)",
            [{"loc": "tags", "msg": f"more than {at_once} tags in one request"}],
        )
    wanted = list(dict.fromkeys(normalise_tag(t, f"tags.{i}") for i, t in enumerate(tags)))
    # The case's row lock: two agents tagging at once cannot pass the limit together.
    ticket = load_ticket(session, number, for_update=True)
    have = tags_of(session, ticket.id)
    new = [t for t in wanted if t not in have]
    limit = ctx.limits.tags_per_case
    if len(have) + len(new) > limit:
        raise InvalidInput(
            f"case {number} would carry {len(have) + len(new)} tags; the shop's limit is {limit}",
            [{"loc": "tags", "msg": f"more than {limit} tags on one case"}],
        )
    if not new:
        return have
    assert actor.agent is not None
    for tag in new:
        session.add(
            TicketTag(ticket_id=ticket.id, tag=tag, added_by_id=actor.agent.id, added_at=ctx.now)
        )
    record_event(
        session=session, ticket=ticket, type=EventType.tag_added, actor=actor, now=ctx.now, tags=new
    )
    session.flush()
    return sorted([*have, *new])


def remove_tag(*, session: Session, number: str, tag: str, actor: Actor, ctx: Context) -> list[str]:
    """Take `tag` off the case (nothing happens when it is not there); the case's tags after."""
    _agent_only(actor)
    tag = normalise_tag(tag, "tag")
    ticket = load_ticket(session, number, for_update=True)
    gone = session.scalar(
        delete(TicketTag)
        .where(TicketTag.ticket_id == ticket.id, TicketTag.tag == tag)
        .returning(TicketTag.id)
    )
    if gone is not None:
        record_event(
            session=session,
            ticket=ticket,
            type=EventType.tag_removed,
            actor=actor,
            now=ctx.now,
            tag=tag,
        )
        session.flush()
    return tags_of(session, ticket.id)
