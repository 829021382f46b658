"""Human names for the codes the core uses (statuses, kinds, actions ...), marked for
translation. The core speaks in codes so the JSON API stays stable; an agent reads words."""

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
}

REFUND_STATUS: Final = {
    "proposed": N_("proposed"),
    "approved": N_("approved"),
    "issued": N_("issued"),
    "confirmed": N_("confirmed"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
    "unavailable": N_("unavailable"),
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

ROLE: Final = {"agent": N_("Agent"), "lead": N_("Lead"), "admin": N_("Admin")}

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
}


def label(table: str, code: str | None) -> str:
    """The English name of a code (untranslated; the template translates it), or the code."""
    if code is None:
        return ""
    return TABLES[table].get(code, code)
