"""Talking to a person: a free message to the customer's open case or a new conversation."""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy.orm import Session

from bot.replies import Replies
from bot.routers.customer.filters import Has
from bot.routers.customer.states import Talk
from bot.routers.handlers import Handlers
from tickets import self_service
from tickets.context import Context
from tickets.models import CaseKind, Customer

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
    """A message for a person when there is no open case: it opens a complaint to answer."""
    text = (message.text or message.caption or "").strip()
    data = await state.get_data()
    case = self_service.latest_open_case(db, customer)
    if case is not None:
        self_service.add_to_case(
            db, ticket=case, text=text, files=[], message_id=message.message_id, ctx=svc
        )
        reply.say("human.opened", case_no=case.number)
    else:
        # The new case's notice (a script, queued with it) tells its number and when we answer.
        self_service.submit_intake(
            db,
            customer=customer,
            ctx=svc,
            order_no=None,
            kind=CaseKind.complaint.value,
            reason="other",
            items={},
            description=text,
            evidence=data.get("evidence", []),
        )
    # Cleared after the work: with Redis the state is not part of the transaction.
    await state.clear()
