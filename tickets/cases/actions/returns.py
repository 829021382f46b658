"""The actions on goods coming back and going out: in transit, received, inspected, and
an exchange shipped.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tickets.cases.events import case_notice, record_event
from tickets.cases.status import set_status
from tickets.context import Actor, Context
from tickets.exceptions import (
    ActionNotAllowed,
    InvalidInput,
)
from tickets.messages.notices import agent_card, inspection_finding, shipping_both_ways
from tickets.messages.outbox import notify_agents
from tickets.models import (
    CaseKind,
    CaseStatus,
    EventType,
    Ticket,
    TicketUnit,
    UnitStatus,
)
from tickets.refunds.ledger import unit_passes
from tickets.schemas import ActionRequest
from tickets.sla import clocks as sla
from tickets.workflow import (
    Transition,
)

# Why a pickup address is refused, in words for the API (the bot says it in the customer's).
ADDRESS_PROBLEMS = {
    "too_short": "needs at least {min} letters or digits: a street, a number, a building",
    "too_long": "is longer than {max} characters",
    "no_letters": "needs letters, not only digits",
}


def check_pickup_address(address: str, ctx: Context) -> None:
    """InvalidInput naming `pickup.address` when a courier could not find it (the policy's
    `pickup.address_problem`), for every front end alike."""
    rules = ctx.policy.pickup
    problem = rules.address_problem(address)
    if problem is not None:
        msg = "the address " + ADDRESS_PROBLEMS[problem].format(
            min=rules.address_min_length, max=rules.address_max_length
        )
        raise InvalidInput(f"pickup.address: {msg}", [{"loc": "pickup.address", "msg": msg}])


def mark_in_transit(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    """A tracking number puts the parcel in transit; a pickup alone is booked, and waits for
    the courier (`mark_collected`): until then nothing is on its way."""
    if req.tracking_no is None and req.pickup is not None:
        check_pickup_address(req.pickup.address, ctx)
        t.pickup = req.pickup.model_dump()
        t.tracking_no, t.carrier = None, req.carrier
        status = CaseStatus.pickup_booked
        if t.status == status.value:
            # Booked again (another slot or address): on the record, the status stays.
            record_event(
                session=session,
                ticket=t,
                type=EventType.pickup_rebooked,
                actor=actor,
                now=ctx.now,
                pickup=t.pickup,
            )
            sla.on_pickup_rebooked(session=session, ticket=t, ctx=ctx)
            return
    else:
        t.tracking_no, t.carrier = req.tracking_no, req.carrier
        t.pickup = None
        status = CaseStatus.in_transit
    set_status(
        session=session,
        ticket=t,
        status=status,
        ctx=ctx,
        actor=actor,
        tracking_no=t.tracking_no,
        carrier=t.carrier,
        pickup=t.pickup,
    )


def mark_collected(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    """The courier took the booked parcel: in transit, with the carrier's tracking number
    when there is one (the pickup stays on the case)."""
    assert tr.target is not None
    if req.tracking_no:
        t.tracking_no = req.tracking_no
    if req.carrier:
        t.carrier = req.carrier
    set_status(
        session=session,
        ticket=t,
        status=tr.target,
        ctx=ctx,
        actor=actor,
        tracking_no=t.tracking_no,
        carrier=t.carrier,
        pickup=t.pickup,
    )


def mark_received(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    for u in t.units:
        if u.status == UnitStatus.requested.value:
            u.status = UnitStatus.received.value
    set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor)
    case_notice(session=session, ticket=t, script="notice_parcel_received", ctx=ctx)


def inspect_goods(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    if req.results is not None and len(req.results) > ctx.limits.results_per_inspect:
        limit = ctx.limits.results_per_inspect
        raise InvalidInput(
            f"results: more than {limit} results in one inspection",
            [{"loc": "results", "msg": f"more than {limit} results (the shop's limit)"}],
        )
    units_by_sku: dict[str, list[TicketUnit]] = {}
    for u in t.units:
        units_by_sku.setdefault(u.unit.line.sku, []).append(u)
    outcomes: dict[int, str] = {}
    if req.results is None:
        # The lifecycle asks for results (tickets/workflow.py, `needs`): no outcome is assumed.
        raise InvalidInput("'inspect' needs results", [{"loc": "results", "msg": "none given"}])
    else:
        errors = []
        cursor: dict[str, int] = {}
        for i, r in enumerate(req.results):
            pool = units_by_sku.get(r.sku)
            if pool is None:
                errors.append(
                    {
                        "loc": f"results.{i}.sku",
                        "msg": f"SKU {r.sku} is not in this case; it has {', '.join(units_by_sku)}",
                    }
                )
                continue
            start = cursor.get(r.sku, 0)
            if start + r.quantity > len(pool):
                errors.append(
                    {
                        "loc": f"results.{i}.quantity",
                        "msg": f"the case has {len(pool)} unit(s) of {r.sku}; "
                        f"results name {start + r.quantity}",
                    }
                )
                continue
            for u in pool[start : start + r.quantity]:
                outcomes[u.id] = r.outcome
            cursor[r.sku] = start + r.quantity
        missing = [u for u in t.units if u.id not in outcomes]
        if not errors and missing:
            skus = sorted({u.unit.line.sku for u in missing})
            errors.append(
                {
                    "loc": "results",
                    "msg": f"every unit needs an outcome; missing for {', '.join(skus)}",
                }
            )
        if errors:
            raise InvalidInput("the inspection results do not match the case", errors)
    for u in t.units:
        u.status = outcomes[u.id]
    passed = [u for u in t.units if unit_passes(u.status, t.reason)]
    summary: dict[str, Any] = {
        "results": [
            {"sku": u.unit.line.sku, "unit": u.unit.unit_index, "outcome": u.status}
            for u in t.units
        ],
        "passed": len(passed),
        "failed": len(t.units) - len(passed),
    }
    record_event(
        session=session,
        ticket=t,
        type=EventType.inspection_recorded,
        actor=actor,
        now=ctx.now,
        **summary,
    )
    if not passed:
        set_status(
            session=session,
            ticket=t,
            status=CaseStatus.refused,
            ctx=ctx,
            actor=actor,
            reason="inspection failed",
        )
        finding = req.reason or inspection_finding(sorted({u.status for u in t.units}), t.language)
        case_notice(
            session=session,
            ticket=t,
            script="notice_inspection_failed",
            ctx=ctx,
            **({"finding": finding} | req.variables),
        )
        return
    if t.kind == CaseKind.exchange.value:
        target = CaseStatus.exchange_shipping
    else:
        target = CaseStatus.refund_pending
    set_status(
        session=session,
        ticket=t,
        status=target,
        ctx=ctx,
        actor=actor,
        partial=len(passed) < len(t.units),
    )
    case_notice(
        session=session,
        ticket=t,
        script="notice_inspection_passed",
        ctx=ctx,
        outcome="exchange" if t.kind == CaseKind.exchange.value else "refund",
    )


def ship_exchange(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    t.exchange_tracking_no = req.tracking_no
    record_event(
        session=session,
        ticket=t,
        type=EventType.exchange_shipped,
        actor=actor,
        now=ctx.now,
        tracking_no=req.tracking_no,
        carrier=req.carrier,
    )
    case_notice(
        session=session,
        ticket=t,
        script="notice_exchange_shipped",
        ctx=ctx,
        tracking_no=req.tracking_no,
        carrier=req.carrier or "",
        item_name=", ".join(i.line.title or i.sku for i in t.items) or t.number,
    )


def _goods_back(t: Ticket) -> bool:
    """Whether the shop has the case's goods (received or inspected): only then may the
    customer choose between the refund anyway and the item back."""
    return t.status == CaseStatus.refused.value and any(
        u.status != UnitStatus.requested.value for u in t.units
    )


def refund_anyway(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    """The customer takes the refund of goods the inspection refused, the shipping both ways
    theirs: the refusal is overridden (the case's quote then counts those units, with the
    shipping rule, tickets.refunds.ledger.ticket_quote) and finance refunds the rest."""
    assert tr.target is not None
    if not _goods_back(t) or any(
        u.status in (UnitStatus.missing.value, UnitStatus.wrong_item.value) for u in t.units
    ):
        # Nothing of theirs arrived to refund (missing, another item): the item back, or a
        # person, is the way on.
        raise ActionNotAllowed(
            f"case {t.number}: no returned goods to refund less the shipping", ["send_back"]
        )
    record_event(
        session=session,
        ticket=t,
        type=EventType.refusal_overridden,
        actor=actor,
        now=ctx.now,
        shipping_both_ways=str(shipping_both_ways(t, ctx)),
    )
    set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor)


def send_back(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    """The customer wants the refused goods back: logistics is asked to ship them, free (the
    case goes to logistics, with a card); asked twice, it is asked once."""
    if not _goods_back(t):
        raise ActionNotAllowed(f"case {t.number}: the shop does not have the goods", [])
    if any(e.type == EventType.send_back_requested.value for e in t.events):
        return
    record_event(
        session=session, ticket=t, type=EventType.send_back_requested, actor=actor, now=ctx.now
    )
    group = "logistics" if "logistics" in ctx.policy.groups else t.group
    if group != t.group:
        record_event(
            session=session,
            ticket=t,
            type=EventType.case_routed,
            actor=actor,
            now=ctx.now,
            group=group,
            previous_group=t.group,
            rule="the customer wants the item back",
        )
        t.group = group
    notify_agents(
        session=session,
        ticket=t,
        kind="case.send_back",
        payload=agent_card(t, "case.send_back", ctx),
        now=ctx.now,
        channels=ctx.channels,
    )
