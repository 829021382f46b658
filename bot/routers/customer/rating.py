"""Rating a finished case: the stars, then an optional comment."""

from __future__ import annotations

from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from sqlalchemy.orm import Session

from bot import keyboards
from bot.draft import load_draft, save_draft
from bot.keyboards import (
    NavCb,
    RateCb,
)
from bot.replies import Replies
from bot.routers.customer.filters import Has
from bot.routers.customer.states import PickupBooking, Rating, Talk, Tracking
from bot.routers.customer.steps import reset, show_menu
from bot.routers.handlers import Handlers
from tickets import self_service
from tickets.context import Context
from tickets.exceptions import ActionNotAllowed, InvalidInput
from tickets.models import Customer

handlers = Handlers()


async def rated(
    ticket_id: int,
    score: int,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> bool:
    """Record the score, then ask for an optional comment; False when the case cannot be
    rated (the customer is told)."""
    try:
        with db.begin_nested():
            self_service.rate(db, customer=customer, ticket_id=ticket_id, score=score, ctx=svc)
    except (ActionNotAllowed, InvalidInput):
        reply.say("satisfaction.not_possible")
        return False
    await reset(state, keep_evidence=True)
    await state.set_state(Rating.comment)
    draft = await load_draft(state)
    draft.rated, draft.score = ticket_id, score
    await save_draft(state, draft)
    reply.say("satisfaction.ask_comment", keyboards.skip_comment(reply.t, ticket_id), score=score)
    return True


@handlers.callback(RateCb.filter())
async def rating_pressed(
    query: CallbackQuery,
    callback_data: RateCb,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """1-5 under the closing notice (or Skip under the question for a comment)."""
    reply.answer_callback()
    if callback_data.score == 0:
        if await state.get_state() == Rating.comment.state:
            await reset(state, keep_evidence=True)
        await show_menu(reply, "satisfaction.thanks")
        return
    done = await rated(
        callback_data.ticket,
        callback_data.score,
        state=state,
        db=db,
        customer=customer,
        reply=reply,
        svc=svc,
    )
    if done and query.message is not None:
        # The notice's buttons have done their job.
        reply.edit_markup(query.message.message_id, None)


@handlers.message(Rating.comment, Has("text"))
async def rating_comment(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The comment after a rating, recorded with it."""
    draft = await load_draft(state)
    try:
        with db.begin_nested():
            self_service.rate(
                db,
                customer=customer,
                ticket_id=draft.rated or 0,
                score=draft.score or 0,
                ctx=svc,
                comment=(message.text or "").strip(),
            )
    except (ActionNotAllowed, InvalidInput):
        await reset(state, keep_evidence=True)
        await show_menu(reply, "satisfaction.not_possible")
        return
    await reset(state, keep_evidence=True)
    await show_menu(reply, "satisfaction.thanks")


@handlers.callback(
    StateFilter(Tracking.number, Talk.message, PickupBooking.slot, PickupBooking.address),
    NavCb.filter(),
)
async def leave_side_step(query: CallbackQuery, state: FSMContext, reply: Replies) -> None:
    """Cancel while typing a tracking number or a message for a person."""
    reply.answer_callback()
    await reset(state, keep_evidence=True)
    await show_menu(reply, "nav.cancelled")
