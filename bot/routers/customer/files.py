"""Files at any moment: photos, videos and documents the customer sends, kept and attached to the
request being filled in, to the case of a side step, or to the latest open case.
"""

from __future__ import annotations

from typing import Any

from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy.orm import Session

from bot.draft import Draft, load_draft, save_draft
from bot.media import Media, rejection_text
from bot.replies import Replies
from bot.routers.customer.filters import Has
from bot.routers.customer.states import CASE_STEPS, STEPS, Intake, Rating, Talk
from bot.routers.customer.steps import ask, evidence_taken
from bot.routers.customer.talk import talk
from bot.routers.handlers import Handlers
from tickets import self_service
from tickets.context import Context
from tickets.models import Customer
from tickets.storage import MediaLimits, StoredFile

handlers = Handlers()

# Steps where a file is the evidence the request asks for, taken without a Done: on to the
# summary when it is all the request needs.
EVIDENCE_STEPS = frozenset({"description", "evidence", "confirm"})


def media_problem(item: Media, reply: Replies, limits: MediaLimits) -> None:
    """Tell the customer why a file was not kept."""
    reply.send_text(rejection_text(item, reply.t, limits))


def first_of_album(item: Media, draft: Draft) -> bool:
    """Whether to answer this file: one answer per album, not one per photo in it."""
    return item.media_group_id is None or item.media_group_id != draft.album_answered


@handlers.message(Has("photo", "video", "document"))
async def files_received(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
    media: list[Media],
    store: Any,
) -> None:
    """A photo, video or document: kept for the request being filled in (at any step, or
    before any words), or added to the customer's open case."""
    limits: MediaLimits = store.limits
    kept = [m for m in media if m.stored is not None]
    for item in media:
        if item.rejected:
            media_problem(item, reply, limits)
    if not kept:
        return
    raw_state = await state.get_state()
    step = STEPS.get(raw_state or "")
    draft = await load_draft(state)
    answer = first_of_album(kept[0], draft)
    if raw_state is None or raw_state in CASE_STEPS or raw_state == Rating.comment.state:
        case = (
            self_service.own_case(db, customer, draft.case_no)
            if raw_state in CASE_STEPS
            else self_service.latest_open_case(db, customer)
        )
        if case is not None:
            stored: list[StoredFile] = [m.stored for m in kept if m.stored is not None]
            self_service.add_to_case(
                db,
                ticket=case,
                text=message.caption or "",
                files=stored,
                message_id=message.message_id,
                ctx=svc,
            )
            draft.album_answered = kept[0].media_group_id
            await save_draft(state, draft)
            if answer:
                reply.say("cases.message_added", case_no=case.number)
            return
    evidence = list(draft.evidence)
    if len(evidence) + len(kept) > limits.max_files:
        reply.say("intake.evidence_limit", limit=limits.max_files)
        return
    for item in kept:
        entry = item.to_evidence()
        if message.caption:
            entry.caption = message.caption
        evidence.append(entry)
    draft.evidence, draft.album_answered = evidence, kept[0].media_group_id
    if step == "description":
        # The photo says it (its caption goes with it): no words needed, nothing to skip.
        draft.description = draft.description or ""
    await save_draft(state, draft)
    if step in EVIDENCE_STEPS:
        # An album is answered once, counting every part: the answer is held and each part's
        # replaces it while unsent (bot/replies.py).
        await evidence_taken(
            state=state,
            db=db,
            customer=customer,
            reply=reply,
            svc=svc,
            burst=kept[0].media_group_id,
        )
        return
    if step is None:
        # Files before any words (or while talking to a person): keep them, ask which order.
        if raw_state == Talk.message.state:
            await talk(message, state, db, customer, reply, svc)
            return
        if answer:
            reply.say("intake.start_with_photo")
            await ask("order", state=state, db=db, customer=customer, reply=reply, svc=svc)
        else:
            await state.set_state(Intake.order)
        return
    if answer:
        reply.say("intake.media_kept")
        await ask(step, state=state, db=db, customer=customer, reply=reply, svc=svc)
