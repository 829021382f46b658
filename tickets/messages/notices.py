"""Lifecycle notices: the facts of a case turned into a script's variables, rendered in the
customer's language and queued in the outbox, all in the caller's transaction.

The text is rendered when the change happens, so the outbox holds exactly what the customer
will read; a script that cannot render is an error in the same transaction, never a blank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, object_session

from tickets.bundled import bundled
from tickets.catalogs import Catalog, load_catalogs, mismatched
from tickets.limits import DEFAULTS, VARIABLE_INT_MAX, Limits, check_variables
from tickets.messages.cards import CARDS
from tickets.messages.outbox import notify_customer
from tickets.messages.payloads import NOTICE, AgentCard, Notice
from tickets.messages.scripts import Money, ScriptLibrary
from tickets.models import OutboxMessage, SlaClock, Ticket
from tickets.money import to_minor
from tickets.policy.eligibility import policy_texts
from tickets.reasons import Reason

if TYPE_CHECKING:
    from tickets.context import Context

# Our payment-method names to the scripts' refund routes.
ROUTES = {
    "alipay": "alipay",
    "wechat": "wechat_pay",
    "wechat_pay": "wechat_pay",
    "card": "credit_card",
    "credit_card": "credit_card",
    "bank_transfer": "bank_transfer",
    "balance": "store_balance",
    "store_balance": "store_balance",
}


# Days until a refund reaches the customer, by route (the slow end of the usual range).
ARRIVAL_DAYS = {
    "alipay": 3,
    "wechat_pay": 3,
    "credit_card": 7,
    "bank_transfer": 3,
    "store_balance": 0,
}


def arrival_days(method: str) -> int:
    """How many days a refund by this payment method may take to arrive."""
    return ARRIVAL_DAYS[refund_route(method)]


def refund_route(method: str) -> str:
    """The route a refund takes back, named as the scripts name it."""
    return ROUTES.get(method, "bank_transfer")


def pack_items(ticket: Ticket) -> list[str]:
    """What the customer packs: each item's title and quantity."""
    return [f"{i.line.title or i.sku} ×{i.quantity}" for i in ticket.items] or [ticket.number]


def inspection_finding(outcomes: Iterable[str], language: str) -> str:
    """What the inspection found, in the customer's words (never the outcome codes)."""
    texts = policy_texts(language)
    return texts.join([texts.name("outcomes", o) for o in dict.fromkeys(outcomes)])


def base_variables(ticket: Ticket) -> dict[str, Any]:
    return {"customer_name": ticket.customer.name or "", "case_no": ticket.number}


def shipping_both_ways(ticket: Ticket, ctx: Context) -> Money:
    """The customer's cost of shipping both ways, when that is the alternative offered: the
    order's shipping fee counted twice (the shop's standard rate when the order shipped free)."""
    currency = ticket.order.currency if ticket.order else ctx.policy.currency
    fee = ticket.order.shipping_fee if ticket.order else 0
    standard = to_minor(ctx.policy.refunds.standard_shipping_fee, currency)
    return Money(2 * (fee or standard), currency)


def case_facts(ticket: Ticket, ctx: Context) -> dict[str, Any]:
    """Everything a script may want to know about a case, by the scripts' variable names.
    A script takes the ones it declares; the caller's own variables override these."""
    p = ctx.policy
    order = ticket.order
    first = ticket.items[0].line if ticket.items else None
    due = _promises(ticket, ctx)
    facts: dict[str, Any] = {
        **base_variables(ticket),
        "kind": ticket.kind,
        # A customer's words for a person are a conversation, not the complaint it is filed as.
        "topic": "question" if ticket.reason == Reason.question.value else "request",
        "shop_name": ctx.shop_name,
        "return_address": p.return_address,
        "pack_items": pack_items(ticket),
        "respond_by": due("first_response"),
        "reply_by": due("customer_reply"),
        "ship_by": due("customer_shipping").astimezone(ctx.tz).date(),
        "received_at": ctx.now,
        "inspect_by": due("inspection"),
        "review_by": due("review"),
        "window_days": p.no_reason_days,
        "shipping_both_ways": shipping_both_ways(ticket, ctx),
    }
    if ticket.rma_no:
        facts["rma_no"] = ticket.rma_no
    if ticket.tracking_no:
        facts["tracking_no"] = ticket.tracking_no
    if ticket.carrier:
        facts["carrier"] = ticket.carrier
    if first is not None:
        facts["item_name"] = first.title or first.sku
        # In the customer's words (a shop's own category has none: its name is shown).
        facts["category_name"] = policy_texts(ticket.language).name("categories", first.category)
    if order is not None:
        facts["order_no"] = order.order_no
        facts["route"] = refund_route(order.payment_method)
        if order.delivered_at is not None:
            facts["delivered_on"] = order.delivered_at.astimezone(ctx.tz).date()
    return facts


# Built once (building a statement costs more than running it): a case's clocks still counting.
_RUNNING_CLOCKS = select(SlaClock.clock, SlaClock.due_at).where(
    SlaClock.ticket_id == bindparam("ticket_id"), SlaClock.met_at.is_(None)
)


def _running_clocks(session: Session, ticket_id: int) -> dict[str, datetime]:
    """The case's running clocks by name, with their due times, as an autoflushed query would
    see them. A case just opened has its clocks still pending in the session: they are taken
    from there instead of flushing the whole unit of work early (a flush costs more than its
    rows, and `open_case` flushes once more at its end anyway). Only while no stored clock is
    changed or deleted in memory: then the query must see the change, so it flushes as usual."""
    if any(isinstance(obj, SlaClock) for obj in (*session.dirty, *session.deleted)):
        rows = session.execute(_RUNNING_CLOCKS, {"ticket_id": ticket_id})
        return {name: due for name, due in rows}
    with session.no_autoflush:
        rows = session.execute(_RUNNING_CLOCKS, {"ticket_id": ticket_id})
        running = {name: due for name, due in rows}
    for obj in session.new:
        if isinstance(obj, SlaClock) and obj.ticket_id == ticket_id and obj.met_at is None:
            running[obj.clock] = obj.due_at
    return running


def _promises(ticket: Ticket, ctx: Context) -> Callable[[str], datetime]:
    """What the case's clocks promise: a running clock's due time (business hours, pauses and
    legal limits included), else its target from now. One source for every date a customer
    is told."""
    session = object_session(ticket)
    running: dict[str, datetime] = {}
    if session is not None and ticket.id is not None:
        running = _running_clocks(session, ticket.id)

    def due(name: str) -> datetime:
        if name in running:
            return running[name]
        return ctx.now + timedelta(hours=ctx.policy.sla.clocks[name].hours)

    return due


def coerce_variables(
    lib: ScriptLibrary,
    name: str,
    language: str,
    raw: dict[str, Any],
    limits: Limits = DEFAULTS,
) -> dict[str, Any]:
    """Variables that came as JSON: "5.00 CNY" becomes Money (the one bounded money parser),
    ISO strings become dates and times, for the variables the script declares with those
    types. Too many, too long or too large values are refused first (InvalidInput)."""
    check_variables(raw, limits)
    script = lib.get(name, language)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        var = script.variables.get(key)
        if var is not None and isinstance(value, str):
            try:
                if var.type == "money":
                    value = Money.parse(value)
                elif var.type == "int" and len(value.strip()) <= len(str(VARIABLE_INT_MAX)):
                    value = int(value)
                elif var.type == "date":
                    value = date.fromisoformat(value)
                elif var.type == "datetime":
                    value = datetime.fromisoformat(value)
            except ValueError:
                pass  # left as text: the renderer names the variable and the expected type
        out[key] = value
    return out


def render_for_case(
    *,
    ticket: Ticket,
    script: str,
    ctx: Context,
    variables: dict[str, Any] | None = None,
    language: str | None = None,
) -> str:
    """A script filled in from the case's facts (and the caller's variables), as the customer
    will read it. Raises the scripts' errors (missing variable, too long ...)."""
    assert ctx.scripts is not None
    lang = language or ticket.language
    accepts = ctx.scripts.get(script, lang).accepts
    facts = {k: v for k, v in case_facts(ticket, ctx).items() if k in accepts}
    given = coerce_variables(ctx.scripts, script, lang, variables or {}, ctx.limits)
    return ctx.scripts.render(script, lang, {**facts, **given}, timezone=ctx.tz)


# Notices that ask the customer to ship the return: they carry the two ways of doing it as
# buttons (the tracking number, a pickup), and the words they quote work when typed too
# (tickets.self_service.return_reply).
SHIPPING_NOTICES = frozenset({"notice_approved", "notice_ship_reminder"})
# Notices offering the choice after goods were refused on inspection: they carry the refund
# anyway and the item back as buttons, and the words they quote work when typed too
# (tickets.self_service.choice_reply).
CHOICE_NOTICES = frozenset({"notice_inspection_failed", "refusal_not_resalable"})


def queue_notice(
    *,
    session: Session,
    ticket: Ticket,
    script: str,
    ctx: Context,
    variables: dict[str, Any] | None = None,
) -> OutboxMessage:
    """Render `script` for this case's customer and queue it (undeliverable, with why, when
    no channel of theirs is delivered). Without a script library (a bare service call in a
    test) the outbox row carries the script name and variables."""
    notice = Notice(script=script)
    if ctx.scripts is not None:
        notice.text = render_for_case(ticket=ticket, script=script, ctx=ctx, variables=variables)
        notice.parse_mode = "HTML"
        if ctx.scripts.get(script, ticket.language).asks_rating is True:
            # The delivery worker puts the 1-5 buttons under it (bot/delivery.py).
            notice.keyboard = "satisfaction"
        elif script in SHIPPING_NOTICES:
            # The delivery worker puts "tracking number" and "book a pickup" under it.
            notice.keyboard = "return_shipping"
            notice.case_no = ticket.number
        elif script in CHOICE_NOTICES:
            # The delivery worker puts "refund anyway" and "send it back" under it.
            notice.keyboard = "refused_goods"
            notice.case_no = ticket.number
    else:
        notice.variables = {k: str(v) for k, v in (variables or {}).items()}
    return notify_customer(
        session=session,
        ticket=ticket,
        kind=NOTICE,
        payload=notice,
        now=ctx.now,
        channels=ctx.channels,
    )


AGENT_TEXTS = bundled("templates", "agents")
# The names filled into the cards, each a table of its own in `agent_texts`.
_NAME_TABLES = ("clocks", "kinds", "reasons")


@lru_cache(maxsize=1)
def _agent_catalogs() -> dict[str, Catalog]:
    catalogs = load_catalogs(AGENT_TEXTS, "agents")
    problems = mismatched(catalogs, CARDS)
    if problems:
        raise ValueError("agents' card texts do not match: " + "; ".join(problems))
    return catalogs


@lru_cache(maxsize=4)
def agent_texts(language: str) -> dict[str, Any]:
    """The agents' card texts in one language (tickets/messages/cards.py through the `agents`
    catalog): each card's text by key, and the names under `clocks`, `kinds` and `reasons`."""
    catalogs = _agent_catalogs()
    catalog = catalogs.get(language) or catalogs["en"]
    texts: dict[str, Any] = {table: {} for table in _NAME_TABLES}
    for key, message in CARDS.items():
        table, _, name = key.partition(".")
        if table in _NAME_TABLES:
            texts[table][name] = catalog.gettext(message)
        else:
            texts[key] = catalog.gettext(message)
    return texts


def agent_card(
    ticket: Ticket, what: str, ctx: Context, *, data: dict[str, Any] | None = None, **extra: Any
) -> AgentCard:
    """A card for the agents (their Telegram chat and the panel): the case's facts, `data`
    for machines, and the line the chat shows, in the agents' language."""
    texts = agent_texts(ctx.policy.agent_language)
    facts = {
        "number": ticket.number,
        "kind": texts["kinds"].get(ticket.kind, ticket.kind),
        "reason": texts["reasons"].get(ticket.reason, ticket.reason),
        "customer": ticket.customer.name or ticket.customer.phone or "",
        "group": ctx.policy.groups.get(ticket.group, ticket.group),
        "assignee": ticket.assignee.username if ticket.assignee else texts["nobody"],
        "priority": ticket.priority,
        "risk": ticket.risk_level,
        **{
            k: (", ".join(v) or texts["nobody"]) if isinstance(v, list) else v
            for k, v in extra.items()
        },
    }
    # The facts for machines go as the card's own keys (kept by AgentCard as they are).
    return AgentCard.model_validate(
        {
            "type": what,
            "number": ticket.number,
            "group": ticket.group,
            "assignee": ticket.assignee.username if ticket.assignee else None,
            "priority": ticket.priority,
            **(data or {}),
            **{k: v for k, v in extra.items() if k not in ("clock", "due")},
            "text": texts[what].format(**facts),
        }
    )
