"""The agents' cards (their Telegram chat and the panel) in English, by key: the gettext msgids.

tickets/messages/notices.py `agent_texts` looks them up by key in the agents' language; this
table marks each (`N_`) so `pybabel extract` finds it. Chinese lives in
templates/agents/zh_CN/LC_MESSAGES/agents.po (domain `agents`). {number} is the case, {clock}
its clock's name (`clocks.*`), {due} the due time in the shop's timezone. Keys under `clocks.`,
`kinds.` and `reasons.` are names filled into the cards.
"""

from __future__ import annotations

from typing import Final

from tickets.catalogs import N_

CARDS: Final[dict[str, str]] = {
    # sla
    "sla.warning": N_(
        "⏰ {number}: {clock} due soon ({due}, {minutes_left} min left) · group {group} · "
        "assignee {assignee}"
    ),
    "sla.breached": N_(
        "🔴 {number}: {clock} breached (due {due}) · group {group} · assignee {assignee}"
    ),
    "sla.escalated": N_(
        "🚨 {number}: {clock} still late, priority raised to {priority}; leads {leads}, please look"
    ),
    # case
    "case.offered": N_(
        "↩️ {number}: {offered_from} did not answer in time; the case is back with group {group}"
    ),
    "case.send_back": N_(
        "📦 {number}: the customer wants the item that failed inspection back; please ship it "
        "to them free · group {group} · assignee {assignee}"
    ),
    "case.created": N_("🆕 {number}: {kind} · {reason} · {customer} · group {group} · risk {risk}"),
    # cards
    "nobody": N_("nobody"),
    "automation_held": N_(
        "Automatic approval held by risk {level}: {signals}. A person decides; the customer "
        "was told a person checks it within the review time."
    ),
    "webhook_disabled": N_(
        "⚠️ Webhook {id} ({url}) is switched off: {reason}. Fix the receiver, then enable it "
        "again in the panel (Admin › Webhooks) and replay what it missed."
    ),
    # clocks
    "clocks.first_response": N_("first response"),
    "clocks.review": N_("review"),
    "clocks.transit": N_("return parcel in transit"),
    "clocks.inspection": N_("inspection"),
    "clocks.refund_arrival": N_("refund arrival"),
    "clocks.complaint_resolution": N_("complaint resolution"),
    "clocks.refused_delivery_contact": N_("refused-delivery contact"),
    "clocks.platform_evidence": N_("platform evidence"),
    "clocks.pickup_collection": N_("pickup not collected"),
    "clocks.customer_shipping": N_("customer shipping"),
    "clocks.customer_reply": N_("customer reply"),
    # kinds
    "kinds.refund_only": N_("refund only"),
    "kinds.return_refund": N_("return and refund"),
    "kinds.exchange": N_("exchange"),
    "kinds.complaint": N_("complaint"),
    "kinds.delivery": N_("delivery problem"),
    # reasons
    "reasons.quality_defect": N_("quality defect"),
    "reasons.damaged_in_transit": N_("damaged in transit"),
    "reasons.wrong_item": N_("wrong item"),
    "reasons.missing_item": N_("missing item"),
    "reasons.not_as_described": N_("not as described"),
    "reasons.late_delivery": N_("late delivery"),
    "reasons.no_reason": N_("no-reason return"),
    "reasons.size_fit": N_("size or fit"),
    "reasons.changed_mind": N_("changed mind"),
    "reasons.service": N_("service"),
    "reasons.other": N_("other"),
    "reasons.question": N_("question"),
}
