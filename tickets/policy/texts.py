"""The eligibility and risk rules' texts in English, by section and key: the gettext msgids.

tickets/policy/eligibility.py (`policy_texts`) and tickets/policy/risk.py look them up by
`section.key` in the reader's language; this table marks each (`N_`, or `Nn_` with the value
that is the count) so `pybabel extract` finds it. Chinese lives in
templates/policy/zh_CN/LC_MESSAGES/policy.po (domain `policy`). Customers read kinds, reasons,
statuses, categories, outcomes, verdicts, notes, problems and evidence; agents read risk. Dates
arrive already formatted for the language (Babel).
"""

from __future__ import annotations

from typing import Final

from tickets.catalogs import N_, Nn_, Plural

TEXTS: Final[dict[str, str | Plural]] = {
    # format: how a list of names is joined
    "format.list_separator": N_(", "),
    # kinds
    "kinds.refund_only": N_("refund only"),
    "kinds.return_refund": N_("return and refund"),
    "kinds.exchange": N_("exchange"),
    "kinds.complaint": N_("complaint"),
    "kinds.delivery": N_("delivery problem"),
    # reasons
    "reasons.quality_defect": N_("quality problem"),
    "reasons.damaged_in_transit": N_("damaged in transit"),
    "reasons.wrong_item": N_("wrong item sent"),
    "reasons.missing_item": N_("missing item or lost parcel"),
    "reasons.not_as_described": N_("not as described"),
    "reasons.late_delivery": N_("late shipping or delivery"),
    "reasons.no_reason": N_("no-reason return"),
    "reasons.size_fit": N_("size or fit"),
    "reasons.changed_mind": N_("changed my mind"),
    "reasons.service": N_("service"),
    "reasons.other": N_("something else"),
    "reasons.question": N_("a question"),
    # statuses
    "statuses.unpaid": N_("not paid"),
    "statuses.paid": N_("paid, not shipped yet"),
    "statuses.shipped": N_("shipped, on its way"),
    "statuses.delivered": N_("delivered"),
    "statuses.cancelled": N_("cancelled"),
    "statuses.refused": N_("refused at delivery"),
    # categories
    "categories.made_to_order": N_("made to order"),
    "categories.fresh_food": N_("fresh, perishable food"),
    "categories.digital": N_("digital goods"),
    "categories.audio_visual": N_("audio-visual goods"),
    "categories.software": N_("software"),
    "categories.newspapers": N_("newspapers"),
    "categories.periodicals": N_("periodicals"),
    "categories.food": N_("food"),
    # outcomes
    "outcomes.requested": N_("the item has not reached us"),
    "outcomes.received": N_("the item is waiting to be inspected"),
    "outcomes.resalable": N_("the item is in resalable condition"),
    "outcomes.damaged": N_("the item is damaged or shows signs of use"),
    "outcomes.missing": N_("the item was missing from the parcel"),
    "outcomes.wrong_item": N_("the parcel held another item than the one ordered"),
    "outcomes.refunded": N_("the item has already been refunded"),
    # verdicts
    "verdicts.ok_unshipped_refund": N_(
        "Your order has not shipped yet: we stop the shipment and refund you."
    ),
    "verdicts.ok_in_transit_refund": N_(
        "Your parcel is on its way: you can ask for a refund only if the parcel is lost or "
        "items are missing, or if you refuse the parcel at delivery."
    ),
    "verdicts.ok_refused_refund": N_(
        "You refused the parcel: we refund you once it is back with us."
    ),
    "verdicts.ok_delivered_refund": N_(
        "For a delivered order, a refund without sending anything back is for missing items; "
        "for anything else, ask for a return and refund."
    ),
    "verdicts.ok_return": N_(
        "You can send the goods back; we refund you once we have checked them."
    ),
    "verdicts.ok_exchange": N_(
        "You can send the goods back for an exchange; we send the replacement once we have "
        "checked them."
    ),
    "verdicts.ok_complaint": N_("Tell us what went wrong; we will look into it and answer you."),
    "verdicts.ok_delivery": N_("We will check with the carrier and keep you informed."),
    "verdicts.order_unpaid": N_(
        "Order {order_no} has not been paid, so there is nothing to refund or return. If you "
        "no longer want it, just cancel it; for any question, write to us here."
    ),
    "verdicts.order_cancelled": N_(
        "Order {order_no} was cancelled and its payment has been returned, so there is "
        "nothing left to claim. If the money has not arrived, tell us here."
    ),
    "verdicts.not_shipped_goods": N_(
        "Your order has not shipped yet, so there is nothing to send back. Choose “refund "
        "only” instead: we stop the shipment and refund you."
    ),
    "verdicts.not_shipped_delivery": N_(
        "Your order has not shipped yet, so there is no parcel to follow. If it is taking too "
        "long, you can make a complaint or ask for a refund only."
    ),
    "verdicts.in_transit_goods": N_(
        "Your parcel is still on its way. You can return or exchange it once it has arrived; "
        "if it is lost, ask for a refund only."
    ),
    "verdicts.parcel_refused_goods": N_(
        "You refused the parcel at delivery, so it is already coming back to us. Choose "
        "“refund only” instead."
    ),
    "verdicts.no_reasons_open": N_(
        "No reason is open for a “{kind}” request on this order right now. Write to us here "
        "and an agent will help you."
    ),
    # notes
    "notes.no_reason_open": N_("No-reason returns are open until 24:00 on {last_day}."),
    "notes.no_reason_closed": N_(
        "The {days}-day no-reason return period ended at 24:00 on {last_day} (it starts the "
        "day after delivery). Goods with a quality problem, damaged in transit or sent "
        "wrongly can still be returned or exchanged."
    ),
    "notes.no_reason_off": N_(
        "This shop does not take no-reason returns; goods with a quality problem, damaged in "
        "transit or sent wrongly can be returned or exchanged."
    ),
    "notes.line_excluded": N_(
        "{item} ({category}) cannot be returned without a reason; a quality problem can still "
        "be claimed."
    ),
    "notes.line_not_returnable": N_(
        "{item} cannot be returned without a reason (as its product page says); a quality "
        "problem can still be claimed."
    ),
    "notes.sealed_only": N_(
        "{item} ({category}) can be returned without a reason only while its seal is unbroken."
    ),
    "notes.presale_slow": N_(
        "This is a presale item already in production: we first check with the supplier, so "
        "the refund takes longer than usual."
    ),
    "notes.refuse_at_door": N_(
        "If you no longer want it, refuse the parcel at delivery; we refund you once it is "
        "back with us, minus the shipping both ways."
    ),
    # problems
    "problems.unknown_kind": N_("“{kind}” is not a kind of request we handle."),
    "problems.unknown_reason": N_("“{reason}” is not a reason we know. Choose one of: {choices}."),
    "problems.reason_not_for_kind": N_(
        "“{reason}” does not fit a “{kind}” request. For “{kind}”, choose one of: {choices}."
    ),
    "problems.reason_not_now": N_(
        "While the order is {status}, a “{kind}” request cannot give “{reason}” as its "
        "reason. You can choose: {choices}."
    ),
    "problems.window_closed": N_(
        "The {days}-day no-reason return period for this order ended at 24:00 on {last_day} "
        "(it starts the day after delivery), so a no-reason return is no longer possible. If "
        "the goods have a quality problem, were damaged in transit or are not what you "
        "ordered, choose that reason and send a photo."
    ),
    "problems.no_reason_off": N_(
        "This shop does not take no-reason returns. If the goods have a quality problem, were "
        "damaged in transit or are not what you ordered, choose that reason and send a photo."
    ),
    "problems.line_excluded": N_(
        "{item} ({category}) cannot be returned without a reason. If it has a quality "
        "problem, choose “quality problem” and send a photo."
    ),
    "problems.line_not_returnable": N_(
        "{item} cannot be returned without a reason (as its product page says). If it has a "
        "quality problem, choose “quality problem” and send a photo."
    ),
    "problems.unknown_item": N_("Order {order_no} has no item {sku}."),
    "problems.too_many": N_("You asked for {asked} of {item}, but the order has {bought}."),
    "problems.items_needed": N_("Tell us which items and how many."),
    # evidence
    "evidence.photos": Nn_(
        "Please send at least {count} clear close-up photo of the problem.",
        "Please send at least {count} clear close-up photos of the problem.",
        "count",
    ),
    "evidence.production_date": N_(
        "For food, the photos must also show the production date on the package and the "
        "spoiled state."
    ),
    # risk
    "risk.same_phone": Nn_(
        "{count} orders with the same phone within {days} day",
        "{count} orders with the same phone within {days} days",
        "days",
    ),
    "risk.same_address": Nn_(
        "{count} orders to the same address within {days} day",
        "{count} orders to the same address within {days} days",
        "days",
    ),
    "risk.quick_refund": N_(
        "refund only asked {minutes} min after payment (threshold {limit} min)"
    ),
    "risk.new_customer": Nn_(
        "new customer: first order within the last {days} day",
        "new customer: first order within the last {days} days",
        "days",
    ),
    "risk.pickup_address": N_("pickup-point or parcel-locker address (“{keyword}”)"),
    "risk.office_address": N_("office address (“{keyword}”)"),
    "risk.repeat_claims": Nn_(
        "{count} after-sales cases within {days} day, this one included",
        "{count} after-sales cases within {days} days, this one included",
        "days",
    ),
    "risk.duplicate_request": Nn_(
        "{count} other request for this order within {minutes} min",
        "{count} other requests for this order within {minutes} min",
        "count",
    ),
    "risk.offensive_note": N_("offensive wording in the note (“{keyword}”)"),
    "risk.claimant": N_(
        "asks for compensation beyond the rules (“{keyword}”): answer with the rules and the "
        "platform's process"
    ),
    "risk.fake_phone": N_("phone number looks fake: {phone}"),
    "risk.cancel_reorder": Nn_(
        "{count} cancelled orders within {days} day",
        "{count} cancelled orders within {days} days",
        "days",
    ),
}
