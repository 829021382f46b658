"""My requests: the customer's cases, their deadlines, and what can be done on each (withdraw,
tracking number, pickup, talk).
"""

from __future__ import annotations

from typing import Any

from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from sqlalchemy.orm import Session

from bot import keyboards
from bot.draft import load_draft, save_draft
from bot.i18n import Html
from bot.keyboards import (
    CaseCb,
)
from bot.replies import Replies
from bot.routers.customer.filters import Has
from bot.routers.customer.pickup import ask_slot
from bot.routers.customer.states import TRACKING_NO, PickupBooking, Tracking
from bot.routers.customer.steps import reset, show_menu
from bot.routers.handlers import Handlers
from tickets import self_service
from tickets.context import Context
from tickets.exceptions import ActionNotAllowed
from tickets.messages.notices import shipping_both_ways
from tickets.messages.scripts import format_moment, format_money
from tickets.models import CaseKind, CaseStatus, Customer
from tickets.schemas import ActionRequest
from tickets.workflow import allowed_actions

handlers = Handlers()


def list_cases(db: Session, customer: Customer, reply: Replies, svc: Context) -> None:
    """The customer's open cases, each with its status, next step, deadline and actions."""
    t = reply.t
    rows = self_service.open_cases(db, customer)
    if not rows:
        reply.say("cases.none", keyboards.main_menu(t))
        return
    reply.say("cases.header")
    for ticket in rows:
        actions = allowed_actions(
            kind=CaseKind(ticket.kind), status=CaseStatus(ticket.status), by="customer"
        )
        text = t(
            "cases.line",
            case_no=ticket.number,
            kind=t(f"kind.{ticket.kind}"),
            status=t(f"status.{ticket.status}"),
            next=Html(t(f"next.{ticket.status}")),
        )
        due = deadline_text(db, ticket, reply, svc)
        if due:
            text += "\n" + due
        reply.send_text(
            text,
            keyboards.case_actions(
                t,
                ticket.number,
                track="mark_in_transit" in actions,
                pickup="mark_in_transit" in actions,
                withdraw="cancel" in actions,
            ),
        )


def deadline_text(db: Session, ticket: Any, reply: Replies, svc: Context) -> str | None:
    """The case's nearest running deadline, in the shop's timezone and the customer's words:
    theirs (ship by, answer by) or ours (we answer by)."""
    due = self_service.nearest_deadline(db, ticket, svc.now)
    if due is None:
        return None
    key = f"cases.due_{due.clock}" if due.customers else "cases.due_shop"
    if not reply.texts.has(key):
        key = "cases.due_shop"
    return reply.t(key, due=format_moment(due.due_at, reply.language, svc.tz))


@handlers.callback(CaseCb.filter())
async def case_action(
    query: CallbackQuery,
    callback_data: CaseCb,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """A button under one of the customer's cases: tracking number, withdraw."""
    reply.answer_callback()
    number = callback_data.number
    ticket = self_service.own_case(db, customer, number)
    if callback_data.action in ("track", "pickup") and not can_ship(ticket):
        # A notice's button pressed after the parcel moved (or from another device).
        reply.say("cases.not_possible", case_no=number, status=reply.t(f"status.{ticket.status}"))
        return
    if callback_data.action == "track":
        await reset(state, keep_evidence=True)
        await state.set_state(Tracking.number)
        await _about(state, number)
        reply.say("cases.ask_tracking", keyboards.only_nav(reply.t, back=False), case_no=number)
    elif callback_data.action == "pickup":
        await start_pickup(ticket, state=state, reply=reply, svc=svc)
    elif callback_data.action == "withdraw":
        reply.say(
            "cases.confirm_withdraw", keyboards.confirm_withdraw(reply.t, number), case_no=number
        )
    elif callback_data.action == "withdraw_yes":
        try:
            with db.begin_nested():
                self_service.customer_action(
                    db,
                    customer=customer,
                    number=number,
                    request=ActionRequest(action="cancel", reason="withdrawn by the customer"),
                    ctx=svc,
                )
        except ActionNotAllowed:
            reply.say(
                "cases.not_possible", case_no=number, status=reply.t(f"status.{ticket.status}")
            )
            return
        # That it is withdrawn is said by the case's notice (a script); here only the way on.
        await show_menu(reply)
    elif callback_data.action in CHOICES:
        await choose(
            number,
            callback_data.action,
            state=state,
            db=db,
            customer=customer,
            reply=reply,
            svc=svc,
        )


# The choices after goods were refused (tickets.self_service.CHOICE_WORDS), and what the
# customer is told once it is taken.
CHOICES = {"refund_anyway": "cases.refund_anyway_taken", "send_back": "cases.send_back_taken"}


async def choose(
    number: str,
    action: str,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The customer's choice after their returned goods were refused, as the customer: the
    refund anyway (shipping both ways theirs) or the item back; once the case moved on (or
    nothing of theirs arrived to refund), they are told so."""
    await reset(state, keep_evidence=True)
    try:
        with db.begin_nested():
            ticket = self_service.customer_action(
                db, customer=customer, number=number, request=ActionRequest(action=action), ctx=svc
            )
    except ActionNotAllowed:
        current = self_service.own_case(db, customer, number)
        reply.say("cases.not_possible", case_no=number, status=reply.t(f"status.{current.status}"))
        return
    await show_menu(
        reply,
        CHOICES[action],
        case_no=ticket.number,
        shipping=format_money(shipping_both_ways(ticket, svc), reply.language),
    )


def can_ship(ticket: Any) -> bool:
    """Whether the customer may send the return now (a tracking number or a pickup)."""
    actions = allowed_actions(
        kind=CaseKind(ticket.kind), status=CaseStatus(ticket.status), by="customer"
    )
    return "mark_in_transit" in actions


async def start_pickup(ticket: Any, *, state: FSMContext, reply: Replies, svc: Context) -> None:
    """Book a pickup for this case: its slots first."""
    await reset(state, keep_evidence=True)
    await state.set_state(PickupBooking.slot)
    await _about(state, ticket.number)
    ask_slot(ticket, reply, svc)


@handlers.message(Tracking.number, Has("text"))
async def tracking_typed(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The return parcel's tracking number: the case moves to in transit."""
    tracking_no = (message.text or "").strip().replace(" ", "")
    if not TRACKING_NO.match(tracking_no):
        reply.say("cases.tracking_bad", keyboards.only_nav(reply.t, back=False))
        return
    number = (await load_draft(state)).case_no
    await record_tracking(
        number, tracking_no, state=state, db=db, customer=customer, reply=reply, svc=svc
    )


async def record_tracking(
    number: str,
    tracking_no: str,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The case moves to in transit with this tracking number, as the customer."""
    try:
        with db.begin_nested():
            ticket = self_service.customer_action(
                db,
                customer=customer,
                number=number,
                request=ActionRequest(action="mark_in_transit", tracking_no=tracking_no),
                ctx=svc,
            )
    except ActionNotAllowed:
        await reset(state, keep_evidence=True)
        current = self_service.own_case(db, customer, number)
        reply.say("cases.not_possible", case_no=number, status=reply.t(f"status.{current.status}"))
        return
    await reset(state, keep_evidence=True)
    await show_menu(reply, "cases.tracking_saved", case_no=ticket.number, tracking_no=tracking_no)


async def _about(state: FSMContext, number: str) -> None:
    """The side step now under way is about the case `number`."""
    draft = await load_draft(state)
    draft.case_no = number
    await save_draft(state, draft)
