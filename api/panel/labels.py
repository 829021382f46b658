"""Human names for the codes the core uses (statuses, kinds, actions ...), marked for
translation. The core speaks in codes so the JSON API stays stable; an agent reads words.
Over 500 lines as one file: it is a table (one translated name per code), one idea.
"""

from __future__ import annotations

from typing import Final

from api.panel.i18n import N_
from tickets.models import EventType

STATUS: Final = {
    "draft": N_("Draft"),
    "submitted": N_("Submitted"),
    "needs_info": N_("Needs info"),
    "awaiting_return": N_("Awaiting return"),
    "pickup_booked": N_("Pickup booked"),
    "in_transit": N_("In transit"),
    "inspecting": N_("Inspecting"),
    "refund_pending": N_("Refund pending"),
    "exchange_shipping": N_("Exchange shipping"),
    "refused": N_("Refused"),
    "escalated": N_("Escalated"),
    "resolved": N_("Resolved"),
    "refunded": N_("Refunded"),
    "closed": N_("Closed"),
    "cancelled": N_("Cancelled"),
}

KIND: Final = {
    "refund_only": N_("Refund only"),
    "return_refund": N_("Return & refund"),
    "exchange": N_("Exchange"),
    "complaint": N_("Complaint"),
    "delivery": N_("Delivery problem"),
}

PRIORITY: Final = {
    "low": N_("Low"),
    "normal": N_("Normal"),
    "high": N_("High"),
    "urgent": N_("Urgent"),
}

CHANNEL: Final = {
    "telegram": N_("Telegram"),
    "web": N_("Web chat"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "platform": N_("Platform"),
    "api": N_("API"),
}

RISK: Final = {"low": N_("Low risk"), "medium": N_("Medium risk"), "high": N_("High risk")}

REASON: Final = {
    "quality_defect": N_("Quality defect"),
    "damaged_in_transit": N_("Damaged in transit"),
    "wrong_item": N_("Wrong item"),
    "missing_item": N_("Missing item"),
    "not_as_described": N_("Not as described"),
    "late_delivery": N_("Late delivery"),
    "no_reason": N_("No-reason return"),
    "size_fit": N_("Size / fit"),
    "changed_mind": N_("Changed mind"),
    "service": N_("Service"),
    "other": N_("Other"),
    "question": N_("Question"),
}

ACTION: Final = {
    "approve": N_("Approve"),
    "request_info": N_("Ask for info"),
    "refuse": N_("Refuse"),
    "cancel": N_("Cancel case"),
    "escalate": N_("Escalate"),
    "assign": N_("Assign"),
    "mark_in_transit": N_("Parcel in transit"),
    "mark_collected": N_("Pickup collected"),
    "mark_received": N_("Mark received"),
    "inspect": N_("Record inspection"),
    "propose_refund": N_("Propose refund"),
    "approve_refund": N_("Approve refund"),
    "issue_refund": N_("Issue refund"),
    "withdraw_refund": N_("Withdraw refund"),
    "confirm_refund": N_("Refund arrived"),
    "fail_refund": N_("Refund failed"),
    "ship_exchange": N_("Ship exchange"),
    "resolve": N_("Resolve"),
    "close": N_("Close"),
    "reopen": N_("Reopen"),
    # Recorded for the customer who chose by phone or email (the bot and web chat take theirs).
    "refund_anyway": N_("Customer takes the refund anyway"),
    "send_back": N_("Customer wants the item back"),
}

UNIT: Final = {
    "requested": N_("requested"),
    "received": N_("received"),
    "resalable": N_("resalable"),
    "damaged": N_("damaged"),
    "missing": N_("missing"),
    "wrong_item": N_("wrong item"),
    "refunded": N_("refunded"),
}

CLOCK: Final = {
    "first_response": N_("First response"),
    "review": N_("Review"),
    "customer_shipping": N_("Customer ships"),
    "transit": N_("Transit"),
    "inspection": N_("Inspection"),
    "refund_arrival": N_("Refund arrival"),
    "complaint_resolution": N_("Complaint resolution"),
    "refused_delivery_contact": N_("Refused-delivery contact"),
    "platform_evidence": N_("Platform evidence"),
    "pickup_collection": N_("Pickup collection"),
    "customer_reply": N_("Customer replies"),
}

# Where an SLA clock stands (tickets/sla/clocks.py).
SLA_STATE: Final = {
    "running": N_("running"),
    "paused": N_("paused"),
    "met": N_("met"),
    "breached": N_("breached"),
    "stopped": N_("stopped"),
}

# The default groups (policy.example.toml). A shop's own group codes show as the policy names them.
GROUP: Final = {
    "service": N_("Customer service"),
    "logistics": N_("Logistics"),
    "quality": N_("Product / quality"),
    "finance": N_("Finance"),
}

# Payment methods and refund routes (the calculator's arrival table, tickets/refunds/calculator.py).
PAYMENT: Final = {
    "alipay": N_("Alipay"),
    "wechat": N_("WeChat Pay"),
    "card": N_("Bank card"),
    "bank_transfer": N_("Bank transfer"),
    "balance": N_("Store balance"),
    "points": N_("Points"),
    "coupon": N_("Coupon"),
    "cod": N_("Cash on delivery"),
    "paypal": N_("PayPal"),
}

# The rule behind each refund line, as the calculator words it (tickets/refunds/calculator.py's
# R_* texts are the keys: tests/test_panel_words.py keeps the two in step).
RULE: Final = {
    "rules 2-4: the unit's net, what was paid for it": N_(
        "rules 2-4: the unit's net, what was paid for it"
    ),
    "rule 10: already refunded on this unit": N_("rule 10: already refunded on this unit"),
    "rule 14: presale balance not paid": N_("rule 14: presale balance not paid"),
    "inspection: unit not in the returned parcel": N_(
        "inspection: unit not in the returned parcel"
    ),
    "rule 6: free gift kept: its declared value": N_("rule 6: free gift kept: its declared value"),
    "rule 9: restocking fee": N_("rule 9: restocking fee"),
    "rule 15: price of the replacement": N_("rule 15: price of the replacement"),
    "rule 7: outbound shipping share": N_("rule 7: outbound shipping share"),
    "rule 8: return freight reimbursed": N_("rule 8: return freight reimbursed"),
    "rule 7: kept items below the free-shipping threshold: standard shipping fee": N_(
        "rule 7: kept items below the free-shipping threshold: standard shipping fee"
    ),
    "rule 7: free-shipping deduction given back": N_("rule 7: free-shipping deduction given back"),
    "rule 5: kept items below the promotion threshold: their discount share": N_(
        "rule 5: kept items below the promotion threshold: their discount share"
    ),
    "rule 5: promotion re-settlement given back": N_("rule 5: promotion re-settlement given back"),
    "rule 7: parcel refused on delivery: outbound leg": N_(
        "rule 7: parcel refused on delivery: outbound leg"
    ),
    "rule 7: parcel refused on delivery: return leg": N_(
        "rule 7: parcel refused on delivery: return leg"
    ),
    "rule 7: refusal overridden at the customer's request: outbound leg": N_(
        "rule 7: refusal overridden at the customer's request: outbound leg"
    ),
    "rule 10: order-level refunds already paid": N_("rule 10: order-level refunds already paid"),
}

# The reasons the core itself gives for a status change (an agent's own words stay as typed).
SYSTEM_REASON: Final = {
    "inspection failed": N_("inspection failed"),
    "the claim needs evidence first": N_("the claim needs evidence first"),
    "the customer answered": N_("the customer answered"),
}

# Who acted, when it was not an agent: the `system:<rule>` and `customer` actors of the event log
# (tickets/context.py's Actor.label).
ACTOR: Final = {
    "customer": N_("Customer"),
    "system": N_("System"),
    "system:lifecycle": N_("System (case rules)"),
    "system:sla": N_("System (SLA clocks)"),
    "system:needs_info silence": N_("System (no answer from the customer)"),
    "system:auto-approval": N_("System (automatic approval)"),
}

# A reply script's variables, by name, for the reply box (the script's own description, in the
# customer's language, is the fallback for a name not listed here).
VARIABLE: Final = {
    "agent_name": N_("Agent's name"),
    "alternative": N_("Alternative offered"),
    "amount": N_("Amount"),
    "carrier": N_("Carrier"),
    "case_no": N_("Case number"),
    "category_name": N_("Category"),
    "cause": N_("Cause"),
    "coupon_amount": N_("Coupon amount"),
    "credited_to": N_("Credited to"),
    "customer_name": N_("Customer's name"),
    "delay_days": N_("Days of delay"),
    "delivered_on": N_("Delivered on"),
    "expected_by": N_("Expected by"),
    "extend_days": N_("Days to extend receipt"),
    "failure": N_("What failed"),
    "finding": N_("Finding"),
    "gift_name": N_("Gift"),
    "gift_value": N_("Gift value"),
    "goodwill_amount": N_("Goodwill amount"),
    "inspect_by": N_("Inspected by (date)"),
    "review_by": N_("Review due by"),
    "item_name": N_("Item"),
    "kind": N_("Kind of request"),
    "last_scan_at": N_("Last tracking scan"),
    "message": N_("Message"),
    "missing": N_("What is missing"),
    "order_no": N_("Order number"),
    "outcome": N_("Outcome"),
    "pack_items": N_("Items to pack"),
    "reason": N_("Reason"),
    "received_at": N_("Received at"),
    "replacement_name": N_("Replacement item"),
    "reply_by": N_("Reply by"),
    "respond_by": N_("Respond by"),
    "return_address": N_("Return address"),
    "review_hours": N_("Review time (hours)"),
    "rma_no": N_("RMA number"),
    "route": N_("Refund route"),
    "ship_by": N_("Ship by"),
    "shipping_both_ways": N_("Shipping both ways"),
    "shop_name": N_("Shop name"),
    "topic": N_("Topic"),
    "tracking_no": N_("Tracking number"),
    "valid_until": N_("Valid until"),
    "window_days": N_("Window (days)"),
}

# What a script variable takes (tickets/messages/scripts.py's VARIABLE_TYPES), as a hint.
VARIABLE_TYPE: Final = {
    "str": N_("text"),
    "int": N_("whole number"),
    "money": N_("amount, e.g. 15.00 CNY"),
    "date": N_("date, e.g. 2026-12-01"),
    "datetime": N_("date and time with its offset, e.g. 2026-12-01T18:00+08:00"),
    "list": N_("one per line"),
}

REFUND_STATUS: Final = {
    "proposed": N_("proposed"),
    "approved": N_("approved"),
    "issued": N_("issued"),
    "confirmed": N_("confirmed"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
    "unavailable": N_("unavailable"),
    "quote": N_("quote, not proposed yet"),
}

EVENT: Final[dict[str, str]] = {
    EventType.case_created: N_("Case opened"),
    EventType.case_routed: N_("Routed to group"),
    EventType.case_assigned: N_("Assigned"),
    EventType.status_changed: N_("Status changed"),
    EventType.inspection_recorded: N_("Inspection recorded"),
    EventType.refund_proposed: N_("Refund proposed"),
    EventType.refund_approved: N_("Refund approved"),
    EventType.refund_issued: N_("Refund issued"),
    EventType.refund_confirmed: N_("Refund arrived"),
    EventType.refund_failed: N_("Refund failed"),
    EventType.refund_withdrawn: N_("Refund withdrawn"),
    EventType.order_corrected: N_("Order corrected"),
    EventType.exchange_shipped: N_("Exchange shipped"),
    EventType.pickup_rebooked: N_("Pickup booked again"),
    EventType.sla_warning: N_("SLA warning"),
    EventType.sla_breached: N_("SLA breached"),
    EventType.sla_escalated: N_("SLA escalated"),
    EventType.customer_reminded: N_("Customer reminded"),
    EventType.note_added: N_("Internal note"),
    EventType.tag_added: N_("Tagged"),
    EventType.tag_removed: N_("Tag removed"),
    EventType.case_linked: N_("Linked to case"),
    EventType.case_unlinked: N_("Unlinked from case"),
    EventType.case_merged: N_("Merged into case"),
    EventType.case_merged_in: N_("Duplicate merged in"),
    EventType.reply_sent: N_("Reply sent"),
    EventType.customer_message: N_("Customer message"),
    EventType.risk_assessed: N_("Risk assessed"),
    EventType.policy_overridden: N_("Policy exception"),
    EventType.refusal_overridden: N_("Refund taken, shipping both ways the customer's"),
    EventType.send_back_requested: N_("Item to ship back to the customer"),
    EventType.automation_held: N_("Automation held"),
    EventType.case_auto_approved: N_("Approved automatically"),
    EventType.case_offered: N_("Offered back to the group"),
    EventType.satisfaction_recorded: N_("Customer rating"),
    EventType.evidence_added: N_("Evidence added"),
    EventType.bot_error: N_("Bot error"),
    EventType.delivery_failed: N_("Message not delivered"),
    EventType.delivery_undeliverable: N_("Message not sent"),
}

# An agent's notifications (tickets/notifications.py), by kind.
NOTIFICATION: Final = {
    "new_case": N_("New case in your group: %(number)s"),
    "customer_reply": N_("The customer replied on %(number)s"),
    "mention": N_("You were mentioned on %(number)s"),
    "assigned": N_("%(number)s was assigned to you"),
}

# Where a reply to the customer stands (tickets/messages/outbox.py).
DELIVERY: Final = {
    "queued": N_("queued"),
    "sent": N_("sent"),
    "failed": N_("not delivered"),
    "undeliverable": N_("not sent"),
}

# Why a message to the customer was not sent, by reason code (tickets/messages/outbox.py).
UNDELIVERABLE: Final = {
    "no_chat": N_("Not sent: the customer has no chat with us. Call them."),
    "channel_off:telegram": N_("Not sent: the Telegram bot is off."),
    "channel_off:web": N_("Not sent: the web chat is not running."),
}

SCRIPT_CATEGORY: Final = {
    "delay": N_("Delay"),
    "compensation": N_("Compensation"),
    "refusal": N_("Refusal"),
    "notification": N_("Notification"),
    "information": N_("Information"),
}

QUEUE: Final = {
    "mine": N_("Mine"),
    "unassigned": N_("Unassigned"),
    "group": N_("My group"),
    "breaching": N_("Breaching soon"),
    "overdue": N_("Overdue"),
    "waiting": N_("Waiting on customer"),
    "all": N_("All cases"),
}

ORDER_STATUS: Final = {
    "unpaid": N_("unpaid"),
    "paid": N_("paid, not shipped"),
    "shipped": N_("shipped"),
    "delivered": N_("delivered"),
    "cancelled": N_("order cancelled"),
    "refused": N_("refused on delivery"),
}

# Why a case or an order is in a case's customer history (tickets/cases/history.py).
HISTORY_WHY: Final = {
    "same_customer": N_("same customer"),
    "linked_customer": N_("linked account"),
    "same_phone": N_("same phone"),
    "same_address": N_("same address"),
}

ROLE: Final = {"agent": N_("Agent"), "lead": N_("Lead"), "admin": N_("Admin")}


# The policy's settings, by key, as a lead reads them on the policy page (units in the label).
POLICY_KEY: Final = {
    "address_max_length": N_("Longest address (characters)"),
    "address_min_length": N_("Shortest address (characters)"),
    "agent_language": N_("Agents' default language"),
    "am": N_("Morning"),
    "pm": N_("Afternoon"),
    "arrival_days": N_("Days for a refund to arrive, by route"),
    "auto_approval": N_("Auto-approval"),
    "cancel_reorder": N_("Cancel and reorder"),
    "claimant": N_("Claims for compensation"),
    "compensation_limits": N_("Compensation limits"),
    "currency": N_("Currency"),
    "days": N_("Days"),
    "deduct_outbound_shipping_when_below_free_threshold": N_(
        "Deduct outbound shipping when kept items fall below free shipping"
    ),
    "default_group": N_("Default group"),
    "delivered_refund_only_reasons": N_("Reasons for a refund without return after delivery"),
    "duplicate_request": N_("Duplicate request"),
    "eligibility": N_("Eligibility"),
    "enabled": N_("Enabled"),
    "end": N_("Ends"),
    "start": N_("Starts"),
    "escalate_after_minutes": N_("Escalate after (minutes)"),
    "evidence": N_("Evidence"),
    "excluded_categories": N_("Categories without no-reason returns"),
    "fake_phone": N_("Implausible phone number"),
    "food_categories": N_("Food categories"),
    "high_when_signals": N_("High risk from this many signals"),
    "holidays": N_("Holidays"),
    "home_country_code": N_("Home country code"),
    "home_pattern": N_("Home phone number pattern"),
    "in_transit_refund_only_reasons": N_("Reasons for a refund without return while in transit"),
    "keywords": N_("Keywords"),
    "kinds": N_("Kinds of request"),
    "large_refund_threshold": N_("Large refund: a second approver above (amount)"),
    "level": N_("Level"),
    "makeup_days": N_("Make-up working days"),
    "max_amount_minor": N_("Largest amount (in cents)"),
    "max_digits": N_("Most digits"),
    "max_risk": N_("Highest risk"),
    "min_cancelled": N_("Fewest cancelled orders"),
    "min_cases": N_("Fewest cases"),
    "min_digits": N_("Fewest digits"),
    "min_orders": N_("Fewest orders"),
    "min_photos": N_("Fewest photos"),
    "minutes": N_("Minutes"),
    "name": N_("Name"),
    "new_customer": N_("New customer"),
    "no_reason_days": N_("No-reason return window (days)"),
    "no_reason_law_applies": N_("The seven-day no-reason law applies"),
    "no_reason_reasons": N_("Reasons counted as no-reason"),
    "offensive_note": N_("Offensive words"),
    "offer_unanswered_after_minutes": N_("Offer back to the group when unanswered after (minutes)"),
    "office_address": N_("Office address words"),
    "order_statuses": N_("Order statuses"),
    "period_days": N_("Period (days)"),
    "photo_kinds": N_("Kinds needing photos"),
    "photo_reasons": N_("Reasons needing photos"),
    "pickup": N_("Courier pickup"),
    "pickup_address": N_("Pickup-point address words"),
    "production_date_reasons": N_("Reasons needing the production date"),
    "quick_refund": N_("Quick refund"),
    "reasons": N_("Reasons"),
    "refunds": N_("Refunds"),
    "refused_refund_only_reasons": N_(
        "Reasons for a refund without return after a refused delivery"
    ),
    "repeat_claims": N_("Repeated claims"),
    "resettle_threshold_promotions": N_("Re-settle threshold promotions"),
    "restocking_fee_rate": N_("Restocking fee (share of the price)"),
    "return_address": N_("Return address"),
    "return_freight_cap": N_("Return freight reimbursed up to (amount)"),
    "risk": N_("Risk"),
    "rules": N_("Rules"),
    "same_address": N_("Same address"),
    "same_phone": N_("Same phone"),
    "sealed_only_categories": N_("Categories returned only sealed"),
    "shop_excluded_categories": N_("Categories the shop excludes"),
    "standard_shipping_fee": N_("Standard shipping fee (amount)"),
    "sweep_seconds": N_("SLA check every (seconds)"),
    "timezone": N_("Timezone"),
    "unshipped_refund_only_reasons": N_("Reasons for a refund before shipping"),
    "warn_fraction": N_("Warn when this share of the time is used"),
    "warn_minutes_left": N_("Warn with this many minutes left"),
    "monday": N_("Monday"),
    "tuesday": N_("Tuesday"),
    "wednesday": N_("Wednesday"),
    "thursday": N_("Thursday"),
    "friday": N_("Friday"),
    "saturday": N_("Saturday"),
    "sunday": N_("Sunday"),
    "gift": N_("Gift"),
    "goodwill": N_("Goodwill"),
}

# Product categories the default policy names (a shop's own show as written).
CATEGORY: Final = {
    "audio_visual": N_("Audio and video"),
    "software": N_("Software"),
    "food": N_("Food"),
    "fresh_food": N_("Fresh food"),
    "made_to_order": N_("Made to order"),
    "digital": N_("Digital goods"),
    "newspapers": N_("Newspapers"),
    "periodicals": N_("Periodicals"),
}

TABLES: Final = {
    "status": STATUS,
    "kind": KIND,
    "priority": PRIORITY,
    "channel": CHANNEL,
    "risk": RISK,
    "reason": REASON,
    "action": ACTION,
    "unit": UNIT,
    "clock": CLOCK,
    "refund_status": REFUND_STATUS,
    "event": EVENT,
    "delivery": DELIVERY,
    "undeliverable": UNDELIVERABLE,
    "script_category": SCRIPT_CATEGORY,
    "queue": QUEUE,
    "role": ROLE,
    "order_status": ORDER_STATUS,
    "sla_state": SLA_STATE,
    "group": GROUP,
    "payment": PAYMENT,
    "rule": RULE,
    "system_reason": SYSTEM_REASON,
    "actor": ACTOR,
    "variable": VARIABLE,
    "variable_type": VARIABLE_TYPE,
    "policy_key": POLICY_KEY,
    "category": CATEGORY,
    "history_why": HISTORY_WHY,
}


def label(table: str, code: str | None) -> str:
    """The English name of a code (untranslated; the template translates it), or the code."""
    if code is None:
        return ""
    return TABLES[table].get(code, code)
