"""The intake of a request, step by step: the order, the proof that it is the customer's, the kind,
the items, the reason, the description, the evidence, and the submission.
Over 500 lines as one file: the steps are one state machine, each handler moving to the next
state; read in order, they are the flow.
"""

from __future__ import annotations

from collections.abc import Callable

from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove
from sqlalchemy.orm import Session

from bot import keyboards
from bot.draft import Draft, OrderLine, load_draft, save_draft
from bot.eligibility import (
    kind_verdicts,
    line_categories,
    needs_items,
    order_of,
    reasons_of,
    verdict_for,
)
from bot.keyboards import (
    ItemCb,
    KindCb,
    NavCb,
    OrderCb,
    ReasonCb,
)
from bot.replies import Replies
from bot.routers.customer.filters import Has, TextMatches
from bot.routers.customer.states import (
    DESCRIPTION_MAX,
    ORDER_AND_DIGITS,
    ORDER_NO,
    PROOF_TRIES,
    STEPS,
    Intake,
    previous_step,
)
from bot.routers.customer.steps import (
    ask,
    evidence_taken,
    items_chosen,
    photos_needed,
    reset,
    show_menu,
)
from bot.routers.handlers import Handlers
from tickets import ownership, self_service
from tickets.context import Context
from tickets.customers import (
    LinkedElsewhere,
    chat_channel,
    last4_matches,
    link_order_customer,
    phone_matches,
    speaks_for,
)
from tickets.exceptions import DuplicateCase, InvalidInput, NotFound
from tickets.models import CaseKind, Customer, Order
from tickets.orders.store import normalise_order_no
from tickets.ownership import ProofBudget

handlers = Handlers()


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


async def take_order_no(
    text: str,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """An order number typed, picked or deep-linked: find it, then proof (unless linked). The
    last 4 digits of the order's phone may come after the number ("T1001 8000"): the proof
    then needs no message of its own."""
    typed = text.strip()
    found = _find_typed_order(db, typed)
    if isinstance(found, str):
        reply.say(found, order_no=typed)
        return
    order, digits = found
    draft = await load_draft(state)
    draft.order_no = order.order_no
    draft.proof_tries = 0
    draft.chosen = {}
    draft.kind = None
    draft.items_auto = False
    draft.categories = line_categories(order)
    await save_draft(state, draft)
    if speaks_for(order.customer, customer.id):
        # Theirs, or another phone's order their account proved before: no proof again.
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
    if digits is not None:
        await state.set_state(Intake.proof)
        await check_last4(
            order, digits, state=state, db=db, customer=customer, reply=reply, svc=svc
        )
        return
    await ask("proof", state=state, db=db, customer=customer, reply=reply, svc=svc)


def _find_typed_order(db: Session, typed: str) -> tuple[Order, str | None] | str:
    """The order a customer typed, with the 4 digits typed after its number (if any); else the
    text key saying why none was found. The number alone is tried last, so "T1001 8000" never
    hides an order numbered "T10018000" the core would find (normalised, spaces dropped)."""
    split = ORDER_AND_DIGITS.match(typed)
    tries = [(split.group(1), split.group(2))] if split else []
    tries.append((typed, None))
    well_formed = False
    for raw, digits in tries:
        # The core finds the order however it was typed (case, spaces); the format is checked
        # on the same normalised form.
        order_no = normalise_order_no(raw)
        if not ORDER_NO.match(order_no):
            continue
        well_formed = True
        try:
            return order_of(db, order_no), digits
        except NotFound:
            continue
    return "intake.order_not_found" if well_formed else "intake.order_bad_format"


@handlers.message(Intake.order, Has("text"))
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


@handlers.callback(Intake.order, OrderCb.filter())
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
    recent = (await load_draft(state)).recent
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
    """Who is proving, as the core's proof limits count people (tickets/ownership.py): the
    Telegram account, or the web chat (whose address is limited too: api/chat.py)."""
    if customer.telegram_user_id is None and customer.web_chat_id is not None:
        return f"web:{customer.web_chat_id}"
    return f"telegram:{customer.telegram_user_id}"


def _budget(db: Session, order_no: str, customer: Customer, svc: Context) -> ProofBudget:
    """Today's wrong tries left (read only: the proof step is not even asked once none is)."""
    return ownership.proof_budget(
        db, order_no=order_no, person=_person(customer), now=svc.now, limits=svc.limits
    )


def _attempt(
    db: Session, order: Order, customer: Customer, svc: Context, matches: Callable[[], bool]
) -> ownership.ProofOutcome:
    """One try at proving `order`, counted by the core against the order and the person."""
    return ownership.attempt(
        db,
        order_no=order.order_no,
        person=_person(customer),
        now=svc.now,
        limits=svc.limits,
        matches=matches,
    )


async def proved(
    outcome: ownership.ProofOutcome,
    order: Order,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """What a try at the proof step leads to: the order proven, today's tries used up, or one
    more wrong try."""
    if outcome.proven:
        await proven(order, state=state, db=db, customer=customer, reply=reply, svc=svc)
    elif not outcome.checked or outcome.budget.exhausted:
        await proof_refused(state=state, reply=reply)
    else:
        await proof_failed(outcome.budget, state=state, reply=reply)


async def proof_refused(*, state: FSMContext, reply: Replies) -> None:
    """Today's wrong proofs on this order, or by this account, are used up: no more guesses,
    whatever the conversation; a person can still help."""
    reply.say("intake.proof_limit", markup=ReplyKeyboardRemove())
    await reset(state, keep_evidence=True)
    await show_menu(reply)


async def proof_failed(budget: ProofBudget, *, state: FSMContext, reply: Replies) -> None:
    """A wrong proof, counted in the core against the order and the account for the day (so
    starting over with `/start <order>` gives no new guesses): say so, and after a few tries
    in this conversation stop (no guessing digits)."""
    draft = await load_draft(state)
    draft.proof_tries = tries = draft.proof_tries + 1
    await save_draft(state, draft)
    if tries >= PROOF_TRIES:
        # A few guesses only: four digits are easy to try one by one.
        reply.say("intake.proof_locked", markup=ReplyKeyboardRemove())
        await reset(state, keep_evidence=True)
        await show_menu(reply)
        return
    reply.say("intake.proof_failed", left=min(PROOF_TRIES - tries, budget.left))


@handlers.message(Intake.proof, Has("contact"))
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
    order = order_of(db, (await load_draft(state)).the_order_no())
    outcome = _attempt(
        db, order, customer, svc, lambda: phone_matches(order.customer.phone, contact.phone_number)
    )
    await proved(outcome, order, state=state, db=db, customer=customer, reply=reply, svc=svc)


@handlers.message(Intake.proof, TextMatches(r"^\s*\d{4}\s*$"))
async def proof_digits(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Proof by the last four digits of the order's phone."""
    order = order_of(db, (await load_draft(state)).the_order_no())
    await check_last4(
        order, message.text or "", state=state, db=db, customer=customer, reply=reply, svc=svc
    )


async def check_last4(
    order: Order,
    digits: str,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The last four digits of the order's phone, typed at the proof step or after the order
    number: proven, or one wrong try counted."""
    outcome = _attempt(
        db, order, customer, svc, lambda: last4_matches(order.customer.phone, digits)
    )
    await proved(outcome, order, state=state, db=db, customer=customer, reply=reply, svc=svc)


@handlers.callback(Intake.kind, KindCb.filter())
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
    draft = await load_draft(state)
    order = order_of(db, draft.the_order_no())
    verdicts = kind_verdicts(
        order, policy=svc.policy, now=svc.now, tz=svc.tz, language=reply.language
    )
    verdict = verdict_for(verdicts, callback_data.kind)
    if verdict is None or not verdict.allowed:
        await ask("kind", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    kind = CaseKind(verdict.kind)
    reasons = list(reasons_of(verdict, svc.policy))
    draft.kind, draft.chosen, draft.reason = kind.value, {}, None
    draft.reasons, draft.reason_notes, draft.items_auto = reasons, [], False
    await save_draft(state, draft)
    step = "items" if needs_items(kind) else "reason"
    await ask(step, state=state, db=db, customer=customer, reply=reply, svc=svc)


@handlers.message(Intake.kind, Has("text"))
async def kind_typed(
    message: Message,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """Words at the kind step. When the order already has a case in the way, they go to
    that case (with any files sent meanwhile), as the step said. When the order is closed to
    every request (unpaid, cancelled), its reason says "tell us here", so they go to a person,
    about that order. Where a kind is open, the buttons are the answer (the guide in
    fallbacks.py)."""
    draft = await load_draft(state)
    number = draft.existing_case
    text = (message.text or "").strip()
    if number and text:
        await add_to_existing(
            number, text, draft, state=state, db=db, customer=customer, reply=reply, svc=svc
        )
        return
    order = order_of(db, draft.the_order_no())
    verdicts = kind_verdicts(
        order, policy=svc.policy, now=svc.now, tz=svc.tz, language=reply.language
    )
    if any(v.allowed for v in verdicts):
        raise SkipHandler
    case, opened = self_service.ask_a_person(
        db,
        customer=customer,
        ctx=svc,
        text=text[:DESCRIPTION_MAX],
        message_id=message.message_id,
        order_no=order.order_no,
        evidence=draft.evidence_for_core(),
        channel=chat_channel(reply.chat_id),
    )
    # Files sent meanwhile went with a new conversation; else they wait for the next request.
    await reset(state, keep_evidence=not opened)
    # A new conversation's notice (a script) tells its number and when we answer.
    if not opened:
        reply.say("intake.kind_typed", order_no=order.order_no, case_no=case.number)


async def add_to_existing(
    number: str,
    text: str,
    draft: Draft,
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """What the customer wrote and sent in this conversation, added to their case `number`
    (as their message, so agents see it), then the menu."""
    self_service.add_intake_to_case(
        db,
        customer=customer,
        number=number,
        text=text[:DESCRIPTION_MAX],
        evidence=draft.evidence_for_core(),
        ctx=svc,
    )
    await reset(state, keep_evidence=False)
    await show_menu(reply, "intake.added_to_case", case_no=number)


@handlers.callback(Intake.items, ItemCb.filter())
async def item_changed(
    query: CallbackQuery, callback_data: ItemCb, state: FSMContext, reply: Replies
) -> None:
    """A quantity tapped up or down: the keyboard is updated in place."""
    draft = await load_draft(state)
    lines = draft.lines
    chosen = dict(draft.chosen)
    if not 0 <= callback_data.index < len(lines) or callback_data.delta == 0:
        reply.answer_callback()
        return
    line = lines[callback_data.index]
    wanted = chosen.get(line.sku, 0) + callback_data.delta
    qty = min(max(wanted, 0), line.free)
    if qty == chosen.get(line.sku, 0):
        # + past the most: say why nothing moved, on the button itself.
        reply.answer_callback(most_text(line, reply) if wanted > line.free else None)
        return
    chosen[line.sku] = qty
    draft.chosen = chosen
    await save_draft(state, draft)
    reply.answer_callback()
    if query.message is not None:
        reply.edit_markup(query.message.message_id, keyboards.items(reply.t, lines, chosen))


def most_text(line: OrderLine, reply: Replies) -> str:
    """Why + stops at this line's number: what was bought, and what other requests hold."""
    bought = line.most
    if bought > line.free:
        return reply.plain("intake.items_most_taken", bought=bought, most=line.free)
    return reply.plain("intake.items_most", bought=bought, most=line.free)


@handlers.callback(Intake.reason, ReasonCb.filter())
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
    draft = await load_draft(state)
    if callback_data.reason not in draft.reasons:
        await ask("reason", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    draft.reason = callback_data.reason
    await save_draft(state, draft)
    await ask("description", state=state, db=db, customer=customer, reply=reply, svc=svc)


@handlers.message(Intake.description, Has("text"))
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
    draft = await load_draft(state)
    draft.description = text
    await save_draft(state, draft)
    # Files sent before are the evidence: the summary at once when they are enough.
    await evidence_taken(state=state, db=db, customer=customer, reply=reply, svc=svc)


@handlers.message(Intake.evidence, Has("text"))
async def evidence_text(message: Message, state: FSMContext, reply: Replies) -> None:
    """Words at the evidence step are added to the description, never dropped."""
    draft = await load_draft(state)
    text = (message.text or "").strip()
    description = "\n".join(p for p in (draft.description or "", text) if p)
    draft.description = description[:DESCRIPTION_MAX]
    await save_draft(state, draft)
    reply.say("intake.evidence_noted", keyboards.only_nav(reply.t, extra=("done",)))


@handlers.callback(StateFilter(Intake), NavCb.filter())
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
    draft = await load_draft(state)
    action = callback_data.action
    if action == "cancel":
        await reset(state, keep_evidence=False)
        await show_menu(reply, "nav.cancelled")
        return
    if action == "back":
        target = previous_step(step, draft)
        if target is None:
            await reset(state, keep_evidence=True)
            await show_menu(reply)
        else:
            if step == "proof":
                reply.say("intake.back", markup=ReplyKeyboardRemove())
            await ask(target, state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    if action == "done" and step == "items":
        await items_chosen(state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    if action == "skip" and step == "description":
        draft.description = ""
        await save_draft(state, draft)
        # Files sent before are the evidence: the summary at once when they are enough.
        await evidence_taken(state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    if action == "done" and step == "evidence":
        need = photos_needed(db, draft, svc)
        if not need.satisfied_by(draft.photos()):
            reply.say("intake.evidence_required", need=need.text(reply.language))
            return
        await ask("confirm", state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    if action == "done" and step == "confirm":
        # A Done under an earlier message, after a photo already brought the summary: it
        # meant "that's all", so the summary again, not "an earlier step's button".
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
    draft = await load_draft(state)
    captions = [f.caption for f in draft.evidence if f.caption]
    description = "\n".join(p for p in [draft.description or "", *captions] if p)
    try:
        # A savepoint: a refusal leaves the rest of this update's work (the state) intact.
        with db.begin_nested():
            self_service.submit_intake(
                db,
                customer=customer,
                ctx=svc,
                order_no=draft.order_no,
                kind=draft.the_kind(),
                reason=draft.the_reason(),
                items=draft.chosen,
                description=description,
                evidence=draft.evidence_for_core(),
                channel=chat_channel(reply.chat_id),
            )
    except DuplicateCase as exc:
        # A case opened meanwhile (another chat, an agent): what was typed and sent goes to it.
        if exc.existing and (description or draft.evidence):
            await add_to_existing(
                exc.existing,
                description,
                draft,
                state=state,
                db=db,
                customer=customer,
                reply=reply,
                svc=svc,
            )
            return
        await reset(state, keep_evidence=False)
        await show_menu(
            reply, "intake.duplicate", order_no=draft.order_no or "", case_no=exc.existing
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
