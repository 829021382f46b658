"""Talking to a person: a free message to the customer's open case or a new conversation."""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy.orm import Session

from bot.draft import load_draft
from bot.replies import Replies
from bot.routers.customer.filters import Has
from bot.routers.customer.states import Talk
from bot.routers.handlers import Handlers
from tickets import self_service
from tickets.context import Context
from tickets.customers import chat_channel
from tickets.models import Customer

handlers = Handlers()


@handlers.message(Talk.message, Has("text"))
async def talk(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """A message for a person: to the open case, else a new conversation an agent answers."""
    text = (message.text or message.caption or "").strip()
    draft = await load_draft(state)
    case, opened = self_service.ask_a_person(
        db,
        customer=customer,
        ctx=svc,
        text=text,
        message_id=message.message_id,
        evidence=draft.evidence_for_core(),
        channel=chat_channel(reply.chat_id),
    )
    # A new one's notice (a script, queued with it) tells its number and when we answer.
    if not opened:
        reply.say("human.opened", case_no=case.number)
    # Cleared after the work: with Redis the state is not part of the transaction.
    await state.clear()
