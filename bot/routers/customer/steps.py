"""Asking each step of the intake: one `ask` that (re)states a step, so "back", a restart and a
guide after unexpected input all say the same thing; the evidence a draft needs and the summary the
customer confirms; the menu.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiogram.fsm.context import FSMContext
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy.orm import Session

from bot import keyboards
from bot.draft import Draft, OrderLine, load_draft, save_draft
from bot.eligibility import (
    evidence_need,
    kind_verdicts,
    line_categories,
    line_offers,
    needs_items,
    order_of,
)
from bot.replies import Replies
from bot.routers.customer.states import STATE_OF
from tickets.cases.opening import case_in_the_way
from tickets.context import Context
from tickets.customers import (
    recent_orders,
)
from tickets.messages.scripts import Money, format_money
from tickets.models import CaseKind, Customer
from tickets.orders.store import free_units
from tickets.policy.eligibility import EvidenceNeed, reasons_for_lines
from tickets.refunds import calculator as calc
from tickets.refunds.ledger import Preview, preview_refund

# How long the answer to an album waits for its other parts: Telegram sends them one update
# each, within a second of one another.
ALBUM_WAIT = timedelta(seconds=1.5)


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
    draft = await load_draft(state)
    t = reply.t
    if step == "order":
        recent = [o.order_no for o in recent_orders(db, customer)]
        draft.recent = recent
        await save_draft(state, draft)
        if recent:
            reply.say("intake.ask_order_recent", keyboards.recent_orders(t, recent))
        else:
            reply.say("intake.ask_order", keyboards.only_nav(t, back=False))
    elif step == "proof":
        reply.say("intake.ask_proof", keyboards.share_contact(t))
        reply.say("intake.proof_nav", keyboards.only_nav(t))
    elif step == "kind":
        order = order_of(db, draft.the_order_no())
        verdicts = kind_verdicts(
            order, policy=svc.policy, now=svc.now, tz=svc.tz, language=reply.language
        )
        # A case already in the way is named now, not at Submit: what the customer writes
        # here goes to it, and only the kinds it does not block are offered.
        existing = case_in_the_way(session=db, order=order, ctx=svc)
        blocks = existing.blocks if existing is not None else frozenset()
        number = existing.number if existing is not None else None
        draft.existing_case = number
        await save_draft(state, draft)
        allowed = [v.kind for v in verdicts if v.allowed and v.kind not in blocks]
        if not any(v.allowed for v in verdicts):
            # The order is closed to every request (unpaid, cancelled): its one reason, said
            # once; what the customer writes here goes to a person (intake.kind_typed).
            why = "\n".join(dict.fromkeys(v.text for v in verdicts))
            reply.say("intake.kinds_none", keyboards.only_nav(t), why=why)
            return
        # Kinds refused for the same reason share one line.
        refused: dict[str, list[str]] = {}
        for v in verdicts:
            if not v.allowed:
                refused.setdefault(v.text, []).append(t(f"kind.{v.kind}"))
            elif v.kind in blocks:
                why_case = t("intake.kind_has_case", case_no=number)
                refused.setdefault(why_case, []).append(t(f"kind.{v.kind}"))
        why_lines = [
            t("intake.kind_unavailable_line", kind=", ".join(kinds), why=why)
            for why, kinds in refused.items()
        ]
        notes = [t("intake.kind_note", note=n) for v in verdicts if v.allowed for n in v.notes]
        text = t("intake.ask_kind", order_no=order.order_no)
        if notes:
            text += "\n" + "\n".join(dict.fromkeys(notes))
        if number is not None:
            text += "\n\n" + t("intake.duplicate", order_no=order.order_no, case_no=number)
        if why_lines:
            text += "\n\n" + t("intake.kinds_unavailable") + "\n" + "\n".join(why_lines)
        reply.send_text(text, keyboards.kinds(t, allowed))
    elif step == "items":
        order = order_of(db, draft.the_order_no())
        free = free_units(db, order)
        lines = [
            OrderLine(
                sku=ln.sku, title=ln.title or ln.sku, free=free.get(ln.sku, 0), bought=ln.quantity
            )
            for ln in order.lines
        ]
        if not any(line.free for line in lines):
            reply.say("intake.items_none_available")
            await ask("kind", state=state, db=db, customer=customer, reply=reply, svc=svc)
            return
        chosen = {k: v for k, v in draft.chosen.items() if v > 0}
        offered = [line for line in lines if line.free]
        draft.lines = lines
        if not chosen and len(offered) == 1:
            # The order's one returnable item is the one meant: chosen for the customer, and
            # with a single unit there is nothing left to choose (no step, no Done).
            chosen = {offered[0].sku: 1}
            if offered[0].free == 1:
                draft.chosen, draft.items_auto = chosen, True
                await save_draft(state, draft)
                await items_chosen(state=state, db=db, customer=customer, reply=reply, svc=svc)
                return
        draft.chosen, draft.items_auto = chosen, False
        await save_draft(state, draft)
        # Beside the items, what some of them cannot get, and why (the cake of a mixed order).
        offers = line_offers(
            order,
            policy=svc.policy,
            kind=draft.the_kind(),
            now=svc.now,
            tz=svc.tz,
            language=reply.language,
        )
        notes = [t("intake.kind_note", note=v.why) for v in offers if v.why and free.get(v.sku)]
        text = "\n".join([t("intake.ask_items"), *notes])
        reply.send_text(text, keyboards.items(t, lines, chosen))
    elif step == "reason":
        notes = [t("intake.kind_note", note=why) for why in draft.reason_notes]
        if draft.items_auto:
            # Chosen for them: said, so the customer knows what the request is about.
            titles = draft.titles()
            notes = [
                t("intake.item_chosen", title=titles.get(sku, sku), qty=q)
                for sku, q in draft.chosen.items()
            ] + notes
        text = "\n".join([t("intake.ask_reason"), *notes])
        reply.send_text(text, keyboards.reasons(t, draft.reasons))
    elif step == "description":
        reply.say("intake.ask_description", keyboards.only_nav(t, extra=("skip",)))
    elif step == "evidence":
        reply.send_text(*evidence_prompt(db, draft, reply, svc))
    elif step == "confirm":
        reply.send_text(
            preview_text(db, draft, reply, svc), keyboards.only_nav(t, extra=("confirm",))
        )


async def items_chosen(
    *, state: FSMContext, db: Session, customer: Customer, reply: Replies, svc: Context
) -> bool:
    """The items are chosen: on to the reasons every chosen item may get, with why the others
    are not offered (False, and the customer told, when none is chosen)."""
    draft = await load_draft(state)
    skus = draft.claimed_skus()
    if not skus:
        reply.say("intake.items_pick_one")
        return False
    offers = line_offers(
        order_of(db, draft.the_order_no()),
        policy=svc.policy,
        kind=draft.the_kind(),
        now=svc.now,
        tz=svc.tz,
        language=reply.language,
    )
    reasons, notes = reasons_for_lines(offers, skus)
    draft.reasons, draft.reason_notes = list(reasons), list(notes)
    await save_draft(state, draft)
    await ask("reason", state=state, db=db, customer=customer, reply=reply, svc=svc)
    return True


async def evidence_taken(
    *,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
    burst: str | None = None,
) -> None:
    """Files kept at the description, evidence or summary step, or the description given with
    files already sent: when they are all the request needs, straight to the summary (no Done
    to press; more files may still come and update it); else what is still missing. One
    message either way, the one answer to an album (`burst`: held, each part's replacing it)."""
    draft = await load_draft(state)
    need = photos_needed(db, draft, svc)
    t = reply.t
    if draft.evidence and need.satisfied_by(draft.photos()):
        await state.set_state(STATE_OF["confirm"])
        text = t("intake.evidence_ready", count=len(draft.evidence)) + "\n\n"
        text += preview_text(db, draft, reply, svc)
        markup = keyboards.only_nav(t, extra=("confirm",))
    else:
        await state.set_state(STATE_OF["evidence"])
        text, markup = evidence_prompt(db, draft, reply, svc)
    if burst is None:
        reply.send_text(text, markup)
    else:
        reply.send_settled(text, markup, burst=burst, wait=ALBUM_WAIT)


def evidence_prompt(
    db: Session, draft: Draft, reply: Replies, svc: Context
) -> tuple[str, InlineKeyboardMarkup]:
    """The evidence step's question: what the request needs, and how many files so far."""
    t = reply.t
    need = photos_needed(db, draft, svc)
    count = len(draft.evidence)
    if need.any:
        text = t("intake.ask_evidence_required", count=count, need=need.text(reply.language))
    else:
        text = t("intake.ask_evidence", count=count)
    return text, keyboards.only_nav(t, extra=("done",))


def photos_needed(db: Session, draft: Draft, svc: Context) -> EvidenceNeed:
    """The evidence the request being filled in needs (none without an order)."""
    if not draft.order_no:
        return EvidenceNeed()
    categories = draft.categories
    if categories is None:  # a conversation begun before the categories were kept
        categories = line_categories(order_of(db, draft.order_no))
    return evidence_need(
        categories,
        policy=svc.policy,
        kind=draft.the_kind(),
        reason=draft.the_reason(),
        skus=draft.claimed_skus(),
    )


def preview_text(db: Session, draft: Draft, reply: Replies, svc: Context) -> str:
    """The summary the customer confirms, with the refund estimate for refund kinds."""
    t = reply.t
    kind = CaseKind(draft.the_kind())
    reason = draft.the_reason()
    parts = [t("intake.preview_title")]
    if draft.order_no:
        parts.append(t("intake.preview_order", order_no=draft.order_no))
    parts.append(t("intake.preview_kind", kind=t(f"kind.{kind}")))
    parts.append(t("intake.preview_reason", reason=t(f"reason.{reason}")))
    chosen = draft.chosen
    titles = draft.titles()
    if needs_items(kind) and chosen:
        parts.append(t("intake.preview_items"))
        parts.extend(
            t("intake.preview_item", title=titles.get(sku, sku), qty=q)
            for sku, q in chosen.items()
            if q > 0
        )
    if draft.description:
        parts.append(t("intake.preview_description", description=draft.description))
    parts.append(t("intake.preview_evidence", count=len(draft.evidence)))
    if draft.order_no and needs_items(kind):
        order = order_of(db, draft.order_no)
        estimate = preview_refund(
            session=db,
            order=order,
            kind=kind.value,
            reason=reason,
            items=chosen,
            policy=svc.policy,
            now=svc.now,
            timezone=str(svc.tz),
        )
        if estimate is not None:
            parts.extend(refund_breakdown(estimate, titles, reply))
    parts.append(t("intake.preview_confirm"))
    return "\n".join(parts)


# The calculator's rules (agents read them as they are) to the words a customer reads.
RULE_TEXTS = {
    calc.R_ALREADY: "already",
    calc.R_PRESALE_UNPAID: "presale_unpaid",
    calc.R_NOT_RETURNED: "not_returned",
    calc.R_GIFT: "gift",
    calc.R_RESTOCK: "restock",
    calc.R_EXCHANGE: "exchange",
    calc.R_SHIPPING: "shipping_share",
    calc.R_FREIGHT: "freight",
    calc.R_FREE_SHIP: "free_shipping",
    calc.R_FREE_SHIP_BACK: "free_shipping_back",
    calc.R_RESETTLE: "resettle",
    calc.R_RESETTLE_BACK: "resettle_back",
    calc.R_REFUSED_OUT: "refused_out",
    calc.R_REFUSED_BACK: "refused_back",
    calc.R_OVERRIDE_OUT: "override_out",
    calc.R_ORDER_CAP: "order_cap",
}


BREAKDOWN_INDENT = "  "


def refund_breakdown(estimate: Preview, titles: dict[str, str], reply: Replies) -> list[str]:
    """The estimate and its short breakdown, as the core's preview has it (nothing recomputed
    here): what was paid per item, each deduction and addition, and where the money goes back
    and how long it takes."""
    t = reply.t

    def money(amount: int) -> str:
        return format_money(Money(amount, estimate.currency), reply.language)

    def rule(key: str) -> str:
        return t(f"refund.rule_{RULE_TEXTS.get(key, 'other')}")

    # The breakdown's lines sit indented under the estimate (layout, not words: gettext
    # keeps no leading spaces in a text).
    lines = [
        t("refund.item", title=titles.get(i.sku, i.sku), qty=i.quantity, amount=money(i.net))
        for i in estimate.items
    ]
    lines.extend(
        t("refund.deduction", amount=money(d.amount), what=rule(d.rule))
        for d in estimate.deductions
    )
    lines.extend(
        t("refund.addition", amount=money(a.amount), what=rule(a.rule)) for a in estimate.additions
    )
    for r in estimate.routes:
        way = f"refund.via_{r.method}"
        via = t(way) if reply.texts.has(way) else t("refund.via_other")
        if r.arrival_max_days == 0:
            lines.append(t("refund.route_at_once", amount=money(r.amount), via=via))
        else:
            lines.append(
                t(
                    "refund.route",
                    amount=money(r.amount),
                    via=via,
                    low=r.arrival_min_days,
                    high=r.arrival_max_days,
                )
            )
    estimate_line = t("intake.preview_refund", amount=money(estimate.amount))
    return [estimate_line, *(BREAKDOWN_INDENT + line for line in lines)]


async def show_menu(reply: Replies, key: str = "menu.prompt", **values: Any) -> None:
    """The main menu, under the text `key`."""
    reply.say(key, keyboards.main_menu(reply.t), **values)


async def reset(state: FSMContext, *, keep_evidence: bool) -> None:
    """Leave any conversation; files sent before the customer said anything may be kept."""
    evidence = (await load_draft(state)).evidence if keep_evidence else []
    await state.clear()
    if evidence:
        draft = await load_draft(state)
        draft.evidence = evidence
        await save_draft(state, draft)
