"""Everything else: a guide for unexpected input in each state, free text outside any step, what
the bot cannot read, and old buttons. Registered last: they catch what nothing before took.
"""

from __future__ import annotations

from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from sqlalchemy.orm import Session

from bot import keyboards
from bot.replies import Replies
from bot.routers.customer.filters import Has
from bot.routers.customer.my_cases import CHOICES, choose, record_tracking, start_pickup
from bot.routers.customer.rating import rated
from bot.routers.customer.states import (
    RATING,
    STEPS,
    TEXT_STEPS,
    Intake,
    PickupBooking,
    Rating,
    Talk,
    Tracking,
)
from bot.routers.customer.steps import ask, reset, show_menu
from bot.routers.handlers import Handlers
from tickets import self_service
from tickets.context import Context
from tickets.models import CaseStatus, Customer

handlers = Handlers()


@handlers.message(StateFilter(Intake))
async def intake_guide(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Input the step cannot use (a sticker, a voice note, text where a button is expected):
    a short guide, then the step again."""
    step = STEPS.get(await state.get_state() or "", "order")
    if message.text and step == "proof":
        reply.say("intake.proof_how")
        return
    key = "intake.guide_text_expected" if step in TEXT_STEPS else "intake.guide_button_expected"
    if not message.text:
        key = "intake.guide_unsupported"
    reply.say(key)
    await ask(step, state=state, db=db, customer=customer, reply=reply, svc=svc)


@handlers.message(StateFilter(Tracking.number, Talk.message, PickupBooking.address, Rating.comment))
async def side_step_guide(message: Message, reply: Replies) -> None:
    """Anything but text while a tracking number or a message is expected."""
    reply.say("intake.guide_text_expected", keyboards.only_nav(reply.t, back=False))


@handlers.message(Has("text"))
async def free_text(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Words outside any step: a bare 1-5 rates a case that just finished (its notice asks
    for a number); words naming a case go to that case; a tracking number or "Pickup" sends
    the return of a case awaiting it (its notice asks for them); else to the open case if there
    is one, else the menu."""
    named = self_service.named_case(db, customer, message.text or "", prefix=svc.case_prefix)
    if named is not None:
        to_named_case(named, message, db=db, reply=reply, svc=svc)
        return
    # The last message sent asked for a word ("reply 1 or 2", "reply Keep"): so it works.
    asked = self_service.script_answer(db, customer, message.text or "", svc.scripts)
    if asked is not None and await answered(
        asked, message, state=state, db=db, customer=customer, reply=reply, svc=svc
    ):
        return
    case = self_service.latest_open_case(db, customer)
    score = RATING.match(message.text or "")
    if score:
        finished = self_service.unrated_case(db, customer, svc.now)
        if finished is not None and (case is None or finished.updated_at >= case.updated_at):
            await rated(
                finished.id,
                int(score.group(1)),
                state=state,
                db=db,
                customer=customer,
                reply=reply,
                svc=svc,
            )
            return
    # The approval notice says "reply with the tracking number, or reply 'Pickup'": so it works.
    answer = self_service.return_reply(db, customer, message.text or "")
    if answer is not None:
        if answer.tracking_no is None:
            await start_pickup(answer.case, state=state, reply=reply, svc=svc)
        else:
            await record_tracking(
                answer.case.number,
                answer.tracking_no,
                state=state,
                db=db,
                customer=customer,
                reply=reply,
                svc=svc,
            )
        return
    # The notice of a failed inspection says "reply 'Refund' or 'Return'": so it works too.
    choice = self_service.choice_reply(db, customer, message.text or "")
    if choice is not None:
        await choose(
            choice.case.number,
            choice.action,
            state=state,
            db=db,
            customer=customer,
            reply=reply,
            svc=svc,
        )
        return
    if case is None:
        await show_menu(reply)
        return
    self_service.add_to_case(
        db, ticket=case, text=message.text or "", files=[], message_id=message.message_id, ctx=svc
    )
    reply.say("cases.message_added", case_no=case.number)


async def answered(
    answer: self_service.ScriptAnswer,
    message: Message,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> bool:
    """The customer typed one of the words the last message asked for: the choices the
    lifecycle knows (a pickup, the refund anyway, the item back) are taken as their buttons
    would, while the case still waits for them; any other goes on the case, and the customer
    hears which choice was noted. False: the case has moved on (the words are then read as any
    others)."""
    case, key = answer.case, answer.choice.key
    if key == "pickup" or key in CHOICES:
        if key == "pickup" and case.status == CaseStatus.awaiting_return.value:
            await start_pickup(case, state=state, reply=reply, svc=svc)
            return True
        if key in CHOICES and case.status == CaseStatus.refused.value:
            await choose(
                case.number, key, state=state, db=db, customer=customer, reply=reply, svc=svc
            )
            return True
        return False
    if case.status not in self_service.LIVE_STATUSES:
        return False
    self_service.add_to_case(
        db, ticket=case, text=message.text or "", files=[], message_id=message.message_id, ctx=svc
    )
    reply.say("cases.script_answered", case_no=case.number, choice=answer.choice.label)
    return True


def to_named_case(
    named: self_service.NamedCase, message: Message, *, db: Session, reply: Replies, svc: Context
) -> None:
    """A message naming a case: on it when it is theirs and followed; else they are told (the
    same words for a case that does not exist and for someone else's)."""
    if named.ticket is None:
        reply.say("cases.named_unknown", keyboards.main_menu(reply.t), case_no=named.number)
    elif not named.live:
        reply.say(
            "cases.named_finished",
            keyboards.main_menu(reply.t),
            case_no=named.number,
            status=reply.t(f"status.{named.ticket.status}"),
        )
    else:
        self_service.add_to_case(
            db,
            ticket=named.ticket,
            text=message.text or "",
            files=[],
            message_id=message.message_id,
            ctx=svc,
        )
        reply.say("cases.message_added", case_no=named.number)


@handlers.message()
async def unsupported(message: Message, reply: Replies) -> None:
    """Stickers, voice notes, locations outside any step: say what works."""
    reply.say("intake.guide_unsupported", keyboards.main_menu(reply.t))


@handlers.callback()
async def stale_button(
    query: CallbackQuery,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """A button of another step or of a finished conversation: restate where the customer
    is (the step they are on is kept)."""
    reply.answer_callback()
    step = STEPS.get(await state.get_state() or "")
    if step is not None:
        reply.say("intake.guide_stale")
        await ask(step, state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    await reset(state, keep_evidence=True)
    await show_menu(reply, "intake.guide_stale")
