"""What holds a case for one person's deliberate decision: the customer's evidence still
awaited, a platform dispute, high risk.

One home for the rule, asked by every front end: a bulk action leaves such a case out (the
panel's bulk approve, saying why), and approving it alone asks the person to confirm what they
checked (the panel's form, the API's `confirm`), never a bare click.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickets.exceptions import ConfirmationRequired, HeldForPerson
from tickets.models import CaseStatus, Ticket
from tickets.schemas import ActionRequest

AWAITING_EVIDENCE = "awaiting_evidence"
PLATFORM_DISPUTE = "platform_dispute"
HIGH_RISK = "high_risk"

# Actions a bulk click may not take on a held case: a look at each case is the point.
BULK_HELD_ACTIONS = frozenset({"approve"})
# Actions a person confirms on a held case, and which holds they confirm. A platform dispute is
# approved alone after the platform's ruling, by whoever reads it: no box to tick.
CONFIRMED_ACTIONS: dict[str, frozenset[str]] = {
    "approve": frozenset({AWAITING_EVIDENCE, HIGH_RISK}),
}


@dataclass(frozen=True)
class Hold:
    code: str
    text: str  # the core's words (the API's message); the panel shows its own, translated


def holds_on(ticket: Ticket) -> list[Hold]:
    """Why the policy holds this case for a person, if it does."""
    out = []
    if ticket.status == CaseStatus.needs_info.value:
        out.append(Hold(AWAITING_EVIDENCE, "it waits for the customer's evidence or answer"))
    if ticket.status == CaseStatus.escalated.value:
        out.append(Hold(PLATFORM_DISPUTE, "a platform dispute: its ruling decides the case"))
    if ticket.risk_level == "high":
        signals = "; ".join(_signal_text(s) for s in ticket.risk_signals or [])
        out.append(Hold(HIGH_RISK, "high risk" + (f" ({signals})" if signals else "")))
    return out


def _signal_text(signal: object) -> str:
    if isinstance(signal, dict):
        return str(signal.get("text") or signal.get("code") or "")
    return str(signal)


def to_confirm(ticket: Ticket, action: str) -> list[Hold]:
    """The holds a person must confirm to take `action` on this case alone."""
    codes = CONFIRMED_ACTIONS.get(action, frozenset())
    return [h for h in holds_on(ticket) if h.code in codes]


def _confirmed(hold: Hold, ticket: Ticket, request: ActionRequest) -> bool:
    if hold.code in request.confirm:
        return True
    # High risk: typing the case number is as deliberate as ticking "I have checked".
    # Compared without spaces, dashes and letter case: "as 20261122 0001" is the number too.
    return hold.code == HIGH_RISK and _bare(request.confirm_number or "") == _bare(ticket.number)


def _bare(number: str) -> str:
    return "".join(c for c in number if c.isalnum()).upper()


def check_confirmed(ticket: Ticket, request: ActionRequest) -> None:
    """ConfirmationRequired unless the request confirms every hold its action asks about."""
    missing = [h for h in to_confirm(ticket, request.action) if not _confirmed(h, ticket, request)]
    if not missing:
        return
    codes = [h.code for h in missing]
    how = ", ".join(codes) + (", or type the case number" if HIGH_RISK in codes else "")
    raise ConfirmationRequired(
        f"'{request.action}' on case {ticket.number} needs a deliberate confirmation: "
        f"{'; '.join(h.text for h in missing)} (confirm: {how})",
        codes,
    )


def check_bulk(ticket: Ticket, action: str) -> None:
    """HeldForPerson when a bulk `action` must leave this case out, naming why."""
    if action not in BULK_HELD_ACTIONS:
        return
    held = holds_on(ticket)
    if held:
        raise HeldForPerson(
            f"case {ticket.number} is left out: "
            + "; ".join(h.text for h in held)
            + ": open it and decide it on its own",
            holds=[h.code for h in held],
        )
