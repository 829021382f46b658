"""The customer's side of the bot, in private chats: menu, language, the intake of a request,
their requests, and free messages to their open case.

Handlers receive the update's session (`db`), the `customer`, the service context (`svc`), the
stored files of the message (`media`) and a `reply` collector from the middleware; they answer
only through `reply`, which is sent after the transaction commits.

The intake is a state per step; each step has one `ask` that (re)states it, so "back", a
restart and a guide after unexpected input all say the same thing. Files the customer sends at
any step (even before saying anything) are kept and attached to the request.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart, Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove
from babel.dates import format_date
from sqlalchemy.orm import Session

from bot import cases, keyboards
from bot.eligibility import (
    evidence_need,
    kind_verdicts,
    line_categories,
    needs_items,
    order_of,
    reasons_of,
    verdict_for,
)
from bot.i18n import Html
from bot.identity import (
    LinkedElsewhere,
    last4_matches,
    link_order_customer,
    phone_matches,
    recent_orders,
)
from bot.keyboards import (
    AddressCb,
    CaseCb,
    ItemCb,
    KindCb,
    LangCb,
    MenuCb,
    NavCb,
    OrderCb,
    RateCb,
    ReasonCb,
    SlotCb,
)
from bot.media import Media, rejection_text
from bot.replies import Replies
from tickets import ownership
from tickets.exceptions import ActionNotAllowed, DuplicateCase, InvalidInput, NotFound
from tickets.models import CaseKind, CaseStatus, Customer, Order
from tickets.orders import free_units
from tickets.ownership import ProofBudget
from tickets.policy import EvidenceNeed
from tickets.quotes import preview_refund
from tickets.schemas import ActionRequest, Pickup
from tickets.scripts import Money, format_moment, format_money
from tickets.service import Context
from tickets.storage import MediaLimits, StoredFile
from tickets.workflow import allowed_actions

# Handlers are declared here and registered on a fresh Router by `make_router()`: a router can
# belong to one Dispatcher only, and nothing is built at import (a restart, a test, a second bot).
_HANDLERS: list[tuple[str, tuple[Any, ...], Callable[..., Any]]] = []


def _on(event: str, *filters: Any) -> Callable[[Handler], Handler]:
    # A bare state (`Intake.order`) is a synchronous filter, which aiogram runs in a worker
    # thread; StateFilter tests the same thing without leaving the event loop.
    checks = tuple(StateFilter(f) if isinstance(f, State) else f for f in filters)

    def register(handler: Handler) -> Handler:
        _HANDLERS.append((event, checks, handler))
        return handler

    return register


def on_message(*filters: Any) -> Callable[[Handler], Handler]:
    """Declare a message handler (registered by `make_router`)."""
    return _on("message", *filters)


def on_callback(*filters: Any) -> Callable[[Handler], Handler]:
    """Declare a button handler (registered by `make_router`)."""
    return _on("callback_query", *filters)


# Filters are async on purpose: aiogram runs a synchronous filter (a magic `F.text`, a plain
# function) in a worker thread, one thread hop per check on every update.


class PrivateChat(Filter):
    """The update comes from a private chat: the message's chat, or the chat of the message a
    button was pressed under (as `F.chat.type == "private"` / `F.message.chat.type == ...`)."""

    async def __call__(self, event: Message | CallbackQuery) -> bool:
        message = event if isinstance(event, Message) else event.message
        return message is not None and message.chat.type == "private"


class Has(Filter):
    """The message carries at least one of these fields, non-empty (as `F.text`, or
    `F.photo | F.video | F.document`)."""

    def __init__(self, *fields: str) -> None:
        self.fields = fields

    async def __call__(self, message: Message) -> bool:
        return any(getattr(message, name) for name in self.fields)


class TextMatches(Filter):
    """The message's text matches `pattern` from its start (as `F.text.regexp(pattern)`)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    async def __call__(self, message: Message) -> bool:
        return message.text is not None and self.pattern.match(message.text) is not None


def make_router() -> Router:
    """The customer router, for private chats only, with every handler in declaration order."""
    router = Router(name="customer")
    router.message.filter(PrivateChat())
    router.callback_query.filter(PrivateChat())
    for event, filters, handler in _HANDLERS:
        getattr(router, event).register(handler, *filters)
    return router


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])

ORDER_NO = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")
TRACKING_NO = re.compile(r"^[A-Za-z0-9\-]{6,40}$")
PROOF_TRIES = 3
DESCRIPTION_MAX = 2000


class Intake(StatesGroup):
    order = State()
    proof = State()
    kind = State()
    items = State()
    reason = State()
    description = State()
    evidence = State()
    confirm = State()


class Tracking(StatesGroup):
    number = State()


class Talk(StatesGroup):
    message = State()


class PickupBooking(StatesGroup):
    slot = State()
    address = State()


class Rating(StatesGroup):
    comment = State()


# Side steps about one case (its number in the state's data as case_no): files sent meanwhile
# go to that case.
CASE_STEPS = {Tracking.number.state, PickupBooking.slot.state, PickupBooking.address.state}
ADDRESS_MIN, ADDRESS_MAX = 5, 300
RATING = re.compile(r"^\s*([1-5])\s*$")
BABEL_LOCALES = {"zh-CN": "zh_Hans_CN", "en": "en"}


STEPS = {
    Intake.order.state: "order",
    Intake.proof.state: "proof",
    Intake.kind.state: "kind",
    Intake.items.state: "items",
    Intake.reason.state: "reason",
    Intake.description.state: "description",
    Intake.evidence.state: "evidence",
    Intake.confirm.state: "confirm",
}
STATE_OF = {name: getattr(Intake, name) for name in STEPS.values()}
# Steps that expect typed text (the others expect a button).
TEXT_STEPS = {"order", "proof", "description"}


def previous_step(step: str, data: dict[str, Any]) -> str | None:
    """The step "back" returns to (None: leave the intake). Proof is never a target: going
    back to the order re-checks it."""
    kind = data.get("kind")
    back = {
        "proof": "order",
        "kind": "order",
        "items": "kind",
        "reason": "items" if kind and needs_items(CaseKind(kind)) else "kind",
        "description": "reason",
        "evidence": "description",
        "confirm": "evidence",
    }
    return back.get(step)


# ---------------------------------------------------------------- asking each step


async def ask(
    step: str,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Put the conversation at `step` and ask its question."""
    await state.set_state(STATE_OF[step])
    data = await state.get_data()
    t = reply.t
    if step == "order":
        recent = [o.order_no for o in recent_orders(db, customer)]
        await state.update_data(recent=recent)
        if recent:
            reply.say("intake.ask_order_recent", keyboards.recent_orders(t, recent))
        else:
            reply.say("intake.ask_order", keyboards.only_nav(t, back=False))
    elif step == "proof":
        reply.say("intake.ask_proof", keyboards.share_contact(t))
        reply.say("intake.proof_nav", keyboards.only_nav(t))
    elif step == "kind":
        order = order_of(db, data["order_no"])
        verdicts = kind_verdicts(
            order, policy=svc.policy, now=svc.now, tz=svc.tz, language=reply.language
        )
        allowed = [v.kind for v in verdicts if v.allowed]
        refused = [
            t("intake.kind_unavailable_line", kind=t(f"kind.{v.kind}"), why=v.text)
            for v in verdicts
            if not v.allowed
        ]
        notes = [t("intake.kind_note", note=n) for v in verdicts if v.allowed for n in v.notes]
        text = t("intake.ask_kind", order_no=order.order_no)
        if notes:
            text += "\n" + "\n".join(dict.fromkeys(notes))
        if refused:
            text += "\n\n" + t("intake.kinds_unavailable") + "\n" + "\n".join(refused)
        reply.send_text(text, keyboards.kinds(t, allowed))
    elif step == "items":
        order = order_of(db, data["order_no"])
        free = free_units(db, order)
        lines = [
            {"sku": ln.sku, "title": ln.title or ln.sku, "free": free.get(ln.sku, 0)}
            for ln in order.lines
        ]
        if not any(line["free"] for line in lines):
            reply.say("intake.items_none_available")
            await ask("kind", state=state, db=db, customer=customer, reply=reply, svc=svc)
            return
        chosen = {k: v for k, v in (data.get("chosen") or {}).items() if v > 0}
        await state.update_data(lines=lines, chosen=chosen)
        reply.say("intake.ask_items", keyboards.items(t, lines, chosen))
    elif step == "reason":
        codes = data.get("reasons") or []
        reply.say("intake.ask_reason", keyboards.reasons(t, codes))
    elif step == "description":
        reply.say("intake.ask_description", keyboards.only_nav(t, extra=("skip",)))
    elif step == "evidence":
        need = photos_needed(db, data, svc)
        count = len(data.get("evidence", []))
        if need.any:
            text = t("intake.ask_evidence_required", count=count, need=need.text(reply.language))
        else:
            text = t("intake.ask_evidence", count=count)
        reply.send_text(text, keyboards.only_nav(t, extra=("done",)))
    elif step == "confirm":
        reply.send_text(
            preview_text(db, data, reply, svc), keyboards.only_nav(t, extra=("confirm",))
        )


def photos_needed(db: Session, data: dict[str, Any], svc: Context) -> EvidenceNeed:
    """The evidence the request being filled in needs (none without an order)."""
    if not data.get("order_no"):
        return EvidenceNeed()
    categories = data.get("categories")
    if categories is None:  # a conversation begun before the categories were kept
        categories = line_categories(order_of(db, data["order_no"]))
    skus = [sku for sku, q in (data.get("chosen") or {}).items() if q > 0]
    return evidence_need(
        categories, policy=svc.policy, kind=data["kind"], reason=data["reason"], skus=skus
    )


def preview_text(db: Session, data: dict[str, Any], reply: Replies, svc: Context) -> str:
    """The summary the customer confirms, with the refund estimate for refund kinds."""
    t = reply.t
    kind = CaseKind(data["kind"])
    parts = [t("intake.preview_title")]
    if data.get("order_no"):
        parts.append(t("intake.preview_order", order_no=data["order_no"]))
    parts.append(t("intake.preview_kind", kind=t(f"kind.{kind}")))
    parts.append(t("intake.preview_reason", reason=t(f"reason.{data['reason']}")))
    chosen = data.get("chosen") or {}
    titles = {line["sku"]: line["title"] for line in data.get("lines", [])}
    if needs_items(kind) and chosen:
        parts.append(t("intake.preview_items"))
        parts.extend(
            t("intake.preview_item", title=titles.get(sku, sku), qty=q)
            for sku, q in chosen.items()
            if q > 0
        )
    if data.get("description"):
        parts.append(t("intake.preview_description", description=data["description"]))
    parts.append(t("intake.preview_evidence", count=len(data.get("evidence", []))))
    if data.get("order_no") and needs_items(kind):
        order = order_of(db, data["order_no"])
        estimate = preview_refund(
            session=db,
            order=order,
            kind=kind.value,
            reason=data["reason"],
            items=chosen,
            policy=svc.policy,
            now=svc.now,
            timezone=str(svc.tz),
        )
        if estimate is not None:
            amount = format_money(Money(estimate.amount, estimate.currency), reply.language)
            parts.append(t("intake.preview_refund", amount=amount))
    parts.append(t("intake.preview_confirm"))
    return "\n".join(parts)


async def show_menu(reply: Replies, key: str = "menu.prompt", **values: Any) -> None:
    """The main menu, under the text `key`."""
    reply.say(key, keyboards.main_menu(reply.t), **values)


async def reset(state: FSMContext, *, keep_evidence: bool) -> None:
    """Leave any conversation; files sent before the customer said anything may be kept."""
    evidence = (await state.get_data()).get("evidence", []) if keep_evidence else []
    await state.clear()
    if evidence:
        await state.update_data(evidence=evidence)


async def start_intake(
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
    order_no: str | None = None,
) -> None:
    """Begin a new request (at the order step, or straight at `order_no`)."""
    await reset(state, keep_evidence=True)
    if order_no is None:
        await ask("order", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    await state.set_state(Intake.order)
    await take_order_no(order_no, state=state, db=db, customer=customer, reply=reply, svc=svc)


# ---------------------------------------------------------------- menu, language, commands


@on_message(CommandStart(deep_link=True))
async def start_with_order(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """/start ORDERNO from a shop's order page: straight into the request for that order."""
    payload = (command.args or "").strip()
    if not ORDER_NO.match(payload):
        await reset(state, keep_evidence=True)
        await show_menu(reply, "menu.greeting", name=customer.name, shop=svc.shop_name)
        return
    reply.say("menu.greeting_short", name=customer.name, shop=svc.shop_name)
    await start_intake(
        state=state, db=db, customer=customer, reply=reply, svc=svc, order_no=payload
    )


@on_message(CommandStart())
async def start(
    message: Message, state: FSMContext, customer: Customer, reply: Replies, svc: Context
) -> None:
    """/start: greeting and menu (files already sent are kept)."""
    await reset(state, keep_evidence=True)
    await show_menu(reply, "menu.greeting", name=customer.name, shop=svc.shop_name)


@on_message(Command("menu"))
async def menu(message: Message, state: FSMContext, reply: Replies) -> None:
    """/menu: back to the menu from anywhere (files already sent are kept)."""
    await reset(state, keep_evidence=True)
    await show_menu(reply)


@on_message(Command("cancel"))
async def cancel_command(message: Message, state: FSMContext, reply: Replies) -> None:
    """/cancel: drop the request being filled in, files included."""
    await reset(state, keep_evidence=False)
    await show_menu(reply, "nav.cancelled")


@on_message(Command("language"))
async def language_command(message: Message, reply: Replies) -> None:
    """/language: offer both languages."""
    reply.say("language.prompt", keyboards.languages())


@on_callback(LangCb.filter())
async def set_language(
    query: CallbackQuery, callback_data: LangCb, customer: Customer, reply: Replies
) -> None:
    """The customer's language, kept on their record."""
    if callback_data.code in ("zh-CN", "en"):
        customer.language = callback_data.code
        reply.language = callback_data.code
    reply.answer_callback()
    await show_menu(reply, "language.set")


@on_callback(MenuCb.filter())
async def menu_choice(
    query: CallbackQuery,
    callback_data: MenuCb,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """A main-menu button: new request, my requests, a person, language."""
    reply.answer_callback()
    action = callback_data.action
    if action == "new":
        await start_intake(state=state, db=db, customer=customer, reply=reply, svc=svc)
    elif action == "mine":
        await reset(state, keep_evidence=True)
        list_cases(db, customer, reply, svc)
    elif action == "human":
        await reset(state, keep_evidence=True)
        case = cases.latest_open_case(db, customer)
        if case is not None:
            reply.say("human.prompt_case", case_no=case.number)
        else:
            await state.set_state(Talk.message)
            reply.say("human.prompt", keyboards.only_nav(reply.t, back=False))
    else:
        reply.say("language.prompt", keyboards.languages())


# ---------------------------------------------------------------- the intake, step by step


async def take_order_no(
    text: str,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """An order number typed, picked or deep-linked: find it, then proof (unless linked)."""
    order_no = text.strip()
    if not ORDER_NO.match(order_no):
        reply.say("intake.order_bad_format")
        return
    try:
        order = order_of(db, order_no)
    except NotFound:
        reply.say("intake.order_not_found", order_no=order_no)
        return
    await state.update_data(
        order_no=order.order_no,
        proof_tries=0,
        chosen={},
        kind=None,
        categories=line_categories(order),
    )
    if order.customer_id == customer.id:
        await ask("kind", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    if not order.customer.phone:
        reply.say("intake.proof_no_phone")
        await reset(state, keep_evidence=True)
        await show_menu(reply)
        return
    if _budget(db, order.order_no, customer, svc).exhausted:
        await proof_refused(state=state, reply=reply)
        return
    await ask("proof", state=state, db=db, customer=customer, reply=reply, svc=svc)


@on_message(Intake.order, Has("text"))
async def order_typed(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The order number, typed."""
    await take_order_no(
        message.text or "", state=state, db=db, customer=customer, reply=reply, svc=svc
    )


@on_callback(Intake.order, OrderCb.filter())
async def order_picked(
    query: CallbackQuery,
    callback_data: OrderCb,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """One of the customer's recent orders, picked."""
    reply.answer_callback()
    recent = (await state.get_data()).get("recent") or []
    if not 0 <= callback_data.index < len(recent):
        await ask("order", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    await take_order_no(
        recent[callback_data.index], state=state, db=db, customer=customer, reply=reply, svc=svc
    )


async def proven(
    order: Order,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The order is the customer's: link the account, then ask the kind."""
    try:
        owner = link_order_customer(db, me=customer, order=order)
    except LinkedElsewhere:
        reply.say("intake.linked_elsewhere", markup=ReplyKeyboardRemove())
        await reset(state, keep_evidence=True)
        await show_menu(reply)
        return
    reply.say("intake.proof_ok", markup=ReplyKeyboardRemove(), order_no=order.order_no)
    await ask("kind", state=state, db=db, customer=owner, reply=reply, svc=svc)


def _person(customer: Customer) -> str:
    """Who is proving, as the core's proof limits count people (tickets/ownership.py)."""
    return f"telegram:{customer.telegram_user_id}"


def _budget(db: Session, order_no: str, customer: Customer, svc: Context) -> ProofBudget:
    return ownership.proof_budget(
        db, order_no=order_no, person=_person(customer), now=svc.now, limits=svc.limits
    )


async def proof_refused(*, state: FSMContext, reply: Replies) -> None:
    """Today's wrong proofs on this order, or by this account, are used up: no more guesses,
    whatever the conversation; a person can still help."""
    reply.say("intake.proof_limit", markup=ReplyKeyboardRemove())
    await reset(state, keep_evidence=True)
    await show_menu(reply)


async def proof_failed(
    *, state: FSMContext, reply: Replies, db: Session, customer: Customer, svc: Context
) -> None:
    """A wrong proof: say so, and after a few tries stop (no guessing digits). Each failure is
    counted in the core against the order and the account for the day, so starting over with
    `/start <order>` gives no new guesses."""
    data = await state.get_data()
    budget = ownership.proof_failed(
        db, order_no=data["order_no"], person=_person(customer), now=svc.now, limits=svc.limits
    )
    tries = int(data.get("proof_tries", 0)) + 1
    await state.update_data(proof_tries=tries)
    if budget.exhausted:
        await proof_refused(state=state, reply=reply)
        return
    if tries >= PROOF_TRIES:
        # A few guesses only: four digits are easy to try one by one.
        reply.say("intake.proof_locked", markup=ReplyKeyboardRemove())
        await reset(state, keep_evidence=True)
        await show_menu(reply)
        return
    reply.say("intake.proof_failed", left=min(PROOF_TRIES - tries, budget.left))


@on_message(Intake.proof, Has("contact"))
async def proof_contact(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Proof by the customer's own Telegram contact (its phone is the order's)."""
    contact = message.contact
    assert contact is not None
    if message.from_user is None or contact.user_id != message.from_user.id:
        reply.say("intake.proof_other_contact")
        return
    order = order_of(db, (await state.get_data())["order_no"])
    if _budget(db, order.order_no, customer, svc).exhausted:
        await proof_refused(state=state, reply=reply)
        return
    if not phone_matches(order.customer.phone, contact.phone_number):
        await proof_failed(state=state, reply=reply, db=db, customer=customer, svc=svc)
        return
    await proven(order, state=state, db=db, customer=customer, reply=reply, svc=svc)


@on_message(Intake.proof, TextMatches(r"^\s*\d{4}\s*$"))
async def proof_digits(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Proof by the last four digits of the order's phone."""
    order = order_of(db, (await state.get_data())["order_no"])
    if _budget(db, order.order_no, customer, svc).exhausted:
        await proof_refused(state=state, reply=reply)
        return
    if not last4_matches(order.customer.phone, message.text or ""):
        await proof_failed(state=state, reply=reply, db=db, customer=customer, svc=svc)
        return
    await proven(order, state=state, db=db, customer=customer, reply=reply, svc=svc)


@on_callback(Intake.kind, KindCb.filter())
async def kind_picked(
    query: CallbackQuery,
    callback_data: KindCb,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """A kind of request, if the order is open to it now."""
    reply.answer_callback()
    data = await state.get_data()
    order = order_of(db, data["order_no"])
    verdicts = kind_verdicts(
        order, policy=svc.policy, now=svc.now, tz=svc.tz, language=reply.language
    )
    verdict = verdict_for(verdicts, callback_data.kind)
    if verdict is None or not verdict.allowed:
        await ask("kind", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    kind = CaseKind(verdict.kind)
    reasons = list(reasons_of(verdict, svc.policy))
    await state.update_data(kind=kind.value, chosen={}, reason=None, reasons=reasons)
    step = "items" if needs_items(kind) else "reason"
    await ask(step, state=state, db=db, customer=customer, reply=reply, svc=svc)


@on_callback(Intake.items, ItemCb.filter())
async def item_changed(
    query: CallbackQuery, callback_data: ItemCb, state: FSMContext, reply: Replies
) -> None:
    """A quantity tapped up or down: the keyboard is updated in place."""
    data = await state.get_data()
    lines = data.get("lines") or []
    chosen: dict[str, int] = dict(data.get("chosen") or {})
    if not 0 <= callback_data.index < len(lines) or callback_data.delta == 0:
        reply.answer_callback()
        return
    line = lines[callback_data.index]
    qty = min(max(chosen.get(line["sku"], 0) + callback_data.delta, 0), line["free"])
    if qty == chosen.get(line["sku"], 0):
        reply.answer_callback()
        return
    chosen[line["sku"]] = qty
    await state.update_data(chosen=chosen)
    reply.answer_callback()
    if query.message is not None:
        reply.edit_markup(query.message.message_id, keyboards.items(reply.t, lines, chosen))


@on_callback(Intake.reason, ReasonCb.filter())
async def reason_picked(
    query: CallbackQuery,
    callback_data: ReasonCb,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """A reason, if the kind offers it."""
    reply.answer_callback()
    data = await state.get_data()
    if callback_data.reason not in (data.get("reasons") or []):
        await ask("reason", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    await state.update_data(reason=callback_data.reason)
    await ask("description", state=state, db=db, customer=customer, reply=reply, svc=svc)


@on_message(Intake.description, Has("text"))
async def description_typed(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The description, then the evidence step."""
    text = (message.text or "").strip()
    if len(text) > DESCRIPTION_MAX:
        reply.say("intake.description_too_long", limit=DESCRIPTION_MAX)
        return
    await state.update_data(description=text)
    await ask("evidence", state=state, db=db, customer=customer, reply=reply, svc=svc)


@on_message(Intake.evidence, Has("text"))
async def evidence_text(message: Message, state: FSMContext, reply: Replies) -> None:
    """Words at the evidence step are added to the description, never dropped."""
    data = await state.get_data()
    text = (message.text or "").strip()
    description = "\n".join(p for p in (data.get("description") or "", text) if p)
    await state.update_data(description=description[:DESCRIPTION_MAX])
    reply.say("intake.evidence_noted", keyboards.only_nav(reply.t, extra=("done",)))


@on_callback(StateFilter(Intake), NavCb.filter())
async def navigate(
    query: CallbackQuery,
    callback_data: NavCb,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Back, cancel, skip, done and confirm, wherever they make sense."""
    reply.answer_callback()
    step = STEPS.get(await state.get_state() or "", "")
    data = await state.get_data()
    action = callback_data.action
    if action == "cancel":
        await reset(state, keep_evidence=False)
        await show_menu(reply, "nav.cancelled")
        return
    if action == "back":
        target = previous_step(step, data)
        if target is None:
            await reset(state, keep_evidence=True)
            await show_menu(reply)
        else:
            if step == "proof":
                reply.say("intake.back", markup=ReplyKeyboardRemove())
            await ask(target, state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    if action == "done" and step == "items":
        if not any(v > 0 for v in (data.get("chosen") or {}).values()):
            reply.say("intake.items_pick_one")
            return
        await ask("reason", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    if action == "skip" and step == "description":
        await state.update_data(description="")
        await ask("evidence", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    if action == "done" and step == "evidence":
        photos = sum(1 for f in data.get("evidence", []) if f.get("kind") == "photo")
        need = photos_needed(db, data, svc)
        if not need.satisfied_by(photos):
            reply.say("intake.evidence_required", need=need.text(reply.language))
            return
        await ask("confirm", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    if action == "confirm" and step == "confirm":
        await submit(state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    # A button of another step (an old message): restate where the customer is.
    reply.say("intake.guide_stale")
    if step:
        await ask(step, state=state, db=db, customer=customer, reply=reply, svc=svc)


async def submit(
    *, state: FSMContext, db: Session, customer: Customer, reply: Replies, svc: Context
) -> None:
    """Open the case from the finished request, or say why it cannot be opened now."""
    data = await state.get_data()
    captions = [f["caption"] for f in data.get("evidence", []) if f.get("caption")]
    description = "\n".join(p for p in [data.get("description") or "", *captions] if p)
    try:
        # A savepoint: a refusal leaves the rest of this update's work (the state) intact.
        with db.begin_nested():
            cases.submit_intake(
                db,
                customer=customer,
                ctx=svc,
                order_no=data.get("order_no"),
                kind=data["kind"],
                reason=data["reason"],
                items=data.get("chosen") or {},
                description=description,
                evidence=data.get("evidence", []),
            )
    except DuplicateCase as exc:
        await reset(state, keep_evidence=False)
        await show_menu(
            reply, "intake.duplicate", order_no=data.get("order_no") or "", case_no=exc.existing
        )
        return
    except InvalidInput:
        # The order changed under the request (units taken by another case, status moved):
        # choose again from what is possible now.
        reply.say("intake.no_longer_possible")
        await ask("kind", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    await state.clear()
    # The case's number and promised time come in its notice (a script, queued by the
    # service with the case); here only the way on.
    await show_menu(reply)


# ---------------------------------------------------------------- files, at any moment


def media_problem(item: Media, reply: Replies, limits: MediaLimits) -> None:
    """Tell the customer why a file was not kept."""
    reply.send_text(rejection_text(item, reply.t, limits))


def first_of_album(item: Media, data: dict[str, Any]) -> bool:
    """Whether to answer this file: one answer per album, not one per photo in it."""
    return item.media_group_id is None or item.media_group_id != data.get("album_answered")


@on_message(Has("photo", "video", "document"))
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
    data = await state.get_data()
    answer = first_of_album(kept[0], data)
    if raw_state is None or raw_state in CASE_STEPS or raw_state == Rating.comment.state:
        case = (
            cases.own_case(db, customer, data.get("case_no", ""))
            if raw_state in CASE_STEPS
            else cases.latest_open_case(db, customer)
        )
        if case is not None:
            stored: list[StoredFile] = [m.stored for m in kept if m.stored is not None]
            cases.add_to_case(
                db,
                ticket=case,
                text=message.caption or "",
                files=stored,
                message_id=message.message_id,
                ctx=svc,
            )
            await state.update_data(album_answered=kept[0].media_group_id)
            if answer:
                reply.say("cases.message_added", case_no=case.number)
            return
    evidence = list(data.get("evidence", []))
    if len(evidence) + len(kept) > limits.max_files:
        reply.say("intake.evidence_limit", limit=limits.max_files)
        return
    for item in kept:
        entry = item.to_evidence()
        if message.caption:
            entry["caption"] = message.caption
        evidence.append(entry)
    await state.update_data(evidence=evidence, album_answered=kept[0].media_group_id)
    if step == "evidence":
        if answer:
            reply.say(
                "intake.evidence_received",
                keyboards.only_nav(reply.t, extra=("done",)),
                count=len(evidence),
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


# ---------------------------------------------------------------- my requests


def list_cases(db: Session, customer: Customer, reply: Replies, svc: Context) -> None:
    """The customer's open cases, each with its status, next step, deadline and actions."""
    t = reply.t
    rows = cases.open_cases(db, customer)
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
    due = cases.nearest_deadline(db, ticket, svc.now)
    if due is None:
        return None
    key = f"cases.due_{due.clock}" if due.customers else "cases.due_shop"
    if not reply.texts.has(key):
        key = "cases.due_shop"
    return reply.t(key, due=format_moment(due.due_at, reply.language, svc.tz))


@on_callback(CaseCb.filter())
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
    ticket = cases.own_case(db, customer, number)
    if callback_data.action == "track":
        await reset(state, keep_evidence=True)
        await state.set_state(Tracking.number)
        await state.update_data(case_no=number)
        reply.say("cases.ask_tracking", keyboards.only_nav(reply.t, back=False), case_no=number)
    elif callback_data.action == "pickup":
        await reset(state, keep_evidence=True)
        await state.set_state(PickupBooking.slot)
        await state.update_data(case_no=number)
        ask_slot(ticket, reply, svc)
    elif callback_data.action == "withdraw":
        reply.say(
            "cases.confirm_withdraw", keyboards.confirm_withdraw(reply.t, number), case_no=number
        )
    elif callback_data.action == "withdraw_yes":
        try:
            with db.begin_nested():
                cases.customer_action(
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


@on_message(Tracking.number, Has("text"))
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
    number = (await state.get_data()).get("case_no", "")
    try:
        with db.begin_nested():
            ticket = cases.customer_action(
                db,
                customer=customer,
                number=number,
                request=ActionRequest(action="mark_in_transit", tracking_no=tracking_no),
                ctx=svc,
            )
    except ActionNotAllowed:
        await reset(state, keep_evidence=True)
        current = cases.own_case(db, customer, number)
        reply.say("cases.not_possible", case_no=number, status=reply.t(f"status.{current.status}"))
        return
    await reset(state, keep_evidence=True)
    await show_menu(reply, "cases.tracking_saved", case_no=ticket.number, tracking_no=tracking_no)


# ---------------------------------------------------------------- booking a pickup


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
        for slot in cases.pickup_slots(ticket, svc)
    ]
    reply.say("pickup.ask_slot", keyboards.pickup_slots(t, options), case_no=ticket.number)


@on_callback(PickupBooking.slot, SlotCb.filter())
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
    number = (await state.get_data()).get("case_no", "")
    ticket = cases.own_case(db, customer, number)
    chosen = next(
        (
            s
            for s in cases.pickup_slots(ticket, svc)
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
    await state.update_data(pickup_time=chosen.value, pickup_label=label)
    address = (ticket.order.address if ticket.order is not None else "") or ""
    if address.strip():
        reply.say(
            "pickup.ask_address",
            keyboards.pickup_address(reply.t, has_address=True),
            address=address,
        )
    else:
        reply.say("pickup.ask_address_none", keyboards.pickup_address(reply.t, has_address=False))


@on_callback(PickupBooking.address, AddressCb.filter())
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
    number = (await state.get_data()).get("case_no", "")
    ticket = cases.own_case(db, customer, number)
    address = (ticket.order.address if ticket.order is not None else "") or ""
    if not address.strip():
        reply.say("pickup.ask_address_none", keyboards.pickup_address(reply.t, has_address=False))
        return
    await book_pickup(address.strip(), state=state, db=db, customer=customer, reply=reply, svc=svc)


@on_message(PickupBooking.address, Has("text"))
async def address_typed(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Another pickup address, typed."""
    address = " ".join((message.text or "").split())
    if not ADDRESS_MIN <= len(address) <= ADDRESS_MAX:
        reply.say(
            "pickup.address_bad",
            keyboards.pickup_address(reply.t, has_address=False),
            min=ADDRESS_MIN,
            max=ADDRESS_MAX,
        )
        return
    await book_pickup(address, state=state, db=db, customer=customer, reply=reply, svc=svc)


async def book_pickup(
    address: str,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The case moves to in transit with the pickup's time and address, as the customer."""
    data = await state.get_data()
    number = data.get("case_no", "")
    try:
        with db.begin_nested():
            cases.customer_action(
                db,
                customer=customer,
                number=number,
                request=ActionRequest(
                    action="mark_in_transit",
                    pickup=Pickup(time=data["pickup_time"], address=address),
                ),
                ctx=svc,
            )
    except ActionNotAllowed:
        await reset(state, keep_evidence=True)
        current = cases.own_case(db, customer, number)
        reply.say("cases.not_possible", case_no=number, status=reply.t(f"status.{current.status}"))
        return
    await reset(state, keep_evidence=True)
    await show_menu(
        reply, "pickup.booked", case_no=number, slot=data.get("pickup_label", ""), address=address
    )


@on_message(PickupBooking.slot)
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
    ticket = cases.own_case(db, customer, (await state.get_data()).get("case_no", ""))
    ask_slot(ticket, reply, svc)


# ---------------------------------------------------------------- rating a finished case


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
            cases.rate(db, customer=customer, ticket_id=ticket_id, score=score, ctx=svc)
    except (ActionNotAllowed, InvalidInput):
        reply.say("satisfaction.not_possible")
        return False
    await reset(state, keep_evidence=True)
    await state.set_state(Rating.comment)
    await state.update_data(rated=ticket_id, score=score)
    reply.say("satisfaction.ask_comment", keyboards.skip_comment(reply.t, ticket_id), score=score)
    return True


@on_callback(RateCb.filter())
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


@on_message(Rating.comment, Has("text"))
async def rating_comment(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The comment after a rating, recorded with it."""
    data = await state.get_data()
    try:
        with db.begin_nested():
            cases.rate(
                db,
                customer=customer,
                ticket_id=int(data.get("rated") or 0),
                score=int(data.get("score") or 0),
                ctx=svc,
                comment=(message.text or "").strip(),
            )
    except (ActionNotAllowed, InvalidInput):
        await reset(state, keep_evidence=True)
        await show_menu(reply, "satisfaction.not_possible")
        return
    await reset(state, keep_evidence=True)
    await show_menu(reply, "satisfaction.thanks")


@on_callback(
    StateFilter(Tracking.number, Talk.message, PickupBooking.slot, PickupBooking.address),
    NavCb.filter(),
)
async def leave_side_step(query: CallbackQuery, state: FSMContext, reply: Replies) -> None:
    """Cancel while typing a tracking number or a message for a person."""
    reply.answer_callback()
    await reset(state, keep_evidence=True)
    await show_menu(reply, "nav.cancelled")


# ---------------------------------------------------------------- talking to a person


@on_message(Talk.message, Has("text"))
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
    case = cases.latest_open_case(db, customer)
    if case is not None:
        cases.add_to_case(
            db, ticket=case, text=text, files=[], message_id=message.message_id, ctx=svc
        )
        reply.say("human.opened", case_no=case.number)
    else:
        # The new case's notice (a script, queued with it) tells its number and when we answer.
        cases.submit_intake(
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


# ---------------------------------------------------------------- everything else


@on_message(StateFilter(Intake))
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


@on_message(StateFilter(Tracking.number, Talk.message, PickupBooking.address, Rating.comment))
async def side_step_guide(message: Message, reply: Replies) -> None:
    """Anything but text while a tracking number or a message is expected."""
    reply.say("intake.guide_text_expected", keyboards.only_nav(reply.t, back=False))


@on_message(Has("text"))
async def free_text(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Words outside any step: a bare 1-5 rates a case that just finished (its notice asks
    for a number); else to the open case if there is one, else the menu."""
    case = cases.latest_open_case(db, customer)
    score = RATING.match(message.text or "")
    if score:
        finished = cases.unrated_case(db, customer, svc.now)
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
    if case is None:
        await show_menu(reply)
        return
    cases.add_to_case(
        db, ticket=case, text=message.text or "", files=[], message_id=message.message_id, ctx=svc
    )
    reply.say("cases.message_added", case_no=case.number)


@on_message()
async def unsupported(message: Message, reply: Replies) -> None:
    """Stickers, voice notes, locations outside any step: say what works."""
    reply.say("intake.guide_unsupported", keyboards.main_menu(reply.t))


@on_callback()
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
