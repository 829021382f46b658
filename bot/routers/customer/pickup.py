"""Booking a pickup for a return: the slot, then the address (the order's or a typed one)."""

from __future__ import annotations

from typing import Any

from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from babel.dates import format_date
from sqlalchemy.orm import Session

from bot import keyboards
from bot.draft import load_draft, save_draft
from bot.keyboards import (
    AddressCb,
    SlotCb,
)
from bot.replies import Replies
from bot.routers.customer.filters import Has
from bot.routers.customer.states import BABEL_LOCALES, PickupBooking
from bot.routers.customer.steps import reset, show_menu
from bot.routers.handlers import Handlers
from tickets import self_service
from tickets.context import Context
from tickets.exceptions import ActionNotAllowed
from tickets.models import Customer
from tickets.schemas import ActionRequest, Pickup

handlers = Handlers()


def ask_slot(ticket: Any, reply: Replies, svc: Context) -> None:
    """The pickup slots of the next working days."""
    t = reply.t
    day_pattern = reply.texts.plain(reply.language, "pickup.day")
    locale = BABEL_LOCALES.get(reply.language, "en")
    options = [
        (
            slot.key,
            slot.part,
            reply.plain(
                f"pickup.slot_{slot.part}",
                day=format_date(slot.day, day_pattern, locale=locale),
                start=f"{slot.start:%H:%M}",
                end=f"{slot.end:%H:%M}",
            ),
        )
        for slot in self_service.pickup_slots(ticket, svc)
    ]
    reply.say("pickup.ask_slot", keyboards.pickup_slots(t, options), case_no=ticket.number)


@handlers.callback(PickupBooking.slot, SlotCb.filter())
async def slot_picked(
    query: CallbackQuery,
    callback_data: SlotCb,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """A time slot: then the address (the order's, or typed)."""
    reply.answer_callback()
    number = (await load_draft(state)).case_no
    ticket = self_service.own_case(db, customer, number)
    chosen = next(
        (
            s
            for s in self_service.pickup_slots(ticket, svc)
            if (s.key, s.part) == (callback_data.day, callback_data.slot)
        ),
        None,
    )
    if chosen is None:
        reply.say("pickup.slot_gone")
        ask_slot(ticket, reply, svc)
        return
    label = reply.plain(
        f"pickup.slot_{chosen.part}",
        day=format_date(
            chosen.day,
            reply.texts.plain(reply.language, "pickup.day"),
            locale=BABEL_LOCALES.get(reply.language, "en"),
        ),
        start=f"{chosen.start:%H:%M}",
        end=f"{chosen.end:%H:%M}",
    )
    await state.set_state(PickupBooking.address)
    draft = await load_draft(state)
    draft.pickup_time, draft.pickup_label = chosen.value, label
    await save_draft(state, draft)
    address = (ticket.order.address if ticket.order is not None else "") or ""
    if address.strip():
        reply.say(
            "pickup.ask_address",
            keyboards.pickup_address(reply.t, has_address=True),
            address=address,
        )
    else:
        reply.say("pickup.ask_address_none", keyboards.pickup_address(reply.t, has_address=False))


@handlers.callback(PickupBooking.address, AddressCb.filter())
async def address_of_order(
    query: CallbackQuery,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Pick up at the order's address."""
    reply.answer_callback()
    number = (await load_draft(state)).case_no
    ticket = self_service.own_case(db, customer, number)
    address = " ".join(((ticket.order.address if ticket.order is not None else "") or "").split())
    if not address:
        reply.say("pickup.ask_address_none", keyboards.pickup_address(reply.t, has_address=False))
        return
    if not address_ok(address, reply, svc):  # the order's own address, too short to find
        return
    await book_pickup(address, state=state, db=db, customer=customer, reply=reply, svc=svc)


@handlers.message(PickupBooking.address, Has("text"))
async def address_typed(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Another pickup address, typed: one a courier can find (the core's rule), or why not."""
    address = " ".join((message.text or "").split())
    if not address_ok(address, reply, svc):
        return
    await book_pickup(address, state=state, db=db, customer=customer, reply=reply, svc=svc)


def address_ok(address: str, reply: Replies, svc: Context) -> bool:
    """Whether the policy takes this pickup address; if not, the customer is told why and
    asked to type it again."""
    rules = svc.policy.pickup
    problem = rules.address_problem(address)
    if problem is None:
        return True
    reply.say(
        f"pickup.address_{problem}",
        keyboards.pickup_address(reply.t, has_address=False),
        min=rules.address_min_length,
        max=rules.address_max_length,
    )
    return False


async def book_pickup(
    address: str,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The pickup is booked on the case, with its time and address, as the customer: the case
    waits for the courier (pickup booked) until the carrier or an agent marks it collected."""
    draft = await load_draft(state)
    number = draft.case_no
    try:
        with db.begin_nested():
            self_service.customer_action(
                db,
                customer=customer,
                number=number,
                request=ActionRequest(
                    action="mark_in_transit",
                    pickup=Pickup(time=draft.the_pickup_time(), address=address),
                ),
                ctx=svc,
            )
    except ActionNotAllowed:
        await reset(state, keep_evidence=True)
        current = self_service.own_case(db, customer, number)
        reply.say("cases.not_possible", case_no=number, status=reply.t(f"status.{current.status}"))
        return
    await reset(state, keep_evidence=True)
    await show_menu(
        reply, "pickup.booked", case_no=number, slot=draft.pickup_label, address=address
    )


@handlers.message(PickupBooking.slot)
async def slot_expected(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Words where a slot button is expected: the slots again."""
    reply.say("intake.guide_button_expected")
    ticket = self_service.own_case(db, customer, (await load_draft(state)).case_no)
    ask_slot(ticket, reply, svc)
