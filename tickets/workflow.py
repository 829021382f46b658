"""The case lifecycle as data: which action moves which kind from which status to which.

A transition names its action, the statuses it leaves from, the status it goes to (None: the
status stays), the kinds it applies to, the roles allowed, and the parameters it needs. The
service checks a request against this table and nothing else, so the panel, the API and the bot
all obey the same rules, and `allowed_actions` is derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tickets.exceptions import PermissionDenied
from tickets.models import GOODS_KINDS, CaseKind, CaseStatus, Role

S = CaseStatus
K = CaseKind

ALL_KINDS = frozenset(CaseKind)
REFUND_KINDS = frozenset({K.refund_only, K.return_refund})
MONEY_KINDS = frozenset({K.refund_only, K.return_refund, K.exchange})
TALK_KINDS = frozenset({K.complaint, K.delivery})
ANY_ROLE = frozenset(Role)
LEADS = frozenset({Role.lead, Role.admin})
TERMINAL = frozenset({S.closed, S.cancelled, S.refunded, S.resolved})
WORKING = frozenset(CaseStatus) - TERMINAL - {S.draft}
# A refund that holds its units in the ledger but has not gone out.
LIVE_REFUND = frozenset({"proposed", "approved"})

# Rights that are not a step of the lifecycle, by role. The core checks them (`require`), and
# every front end asks the core, never a list of its own: the panel, the API and the bot agree.
PERMISSIONS: dict[str, frozenset[Role]] = {
    # Open a case the policy refuses (a goodwill exception, recorded on the case).
    "override_policy": LEADS,
    # The team's figures: the dashboard, the SLA report and its breaches by agent.
    "view_reports": LEADS,
    # Take a case from the colleague it is assigned to (the bot's "take it" never did; the
    # panel and the API now agree). The assignee may hand their own case on to anyone.
    "reassign": LEADS,
}


def may(role: Role | str | None, permission: str) -> bool:
    """Whether this role has the right (None: not an agent, never)."""
    return role is not None and Role(role) in PERMISSIONS[permission]


def require(role: Role | str | None, permission: str) -> None:
    """PermissionDenied unless the role has the right, naming the roles that do."""
    if not may(role, permission):
        roles = " or ".join(sorted(r.value for r in PERMISSIONS[permission]))
        raise PermissionDenied(f"'{permission}' needs the role {roles}", permission=permission)


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[CaseStatus]
    target: CaseStatus | None
    kinds: frozenset[CaseKind] = ALL_KINDS
    roles: frozenset[Role] = ANY_ROLE
    # Parameters the action cannot do without; "a|b" means one of them.
    needs: tuple[str, ...] = ()
    # Who may take it: agents (panel, API), the customer (bot, web chat), the system (rules).
    by: frozenset[str] = field(default_factory=lambda: frozenset({"agent", "system"}))
    description: str = ""
    # Where the case's current refund must stand ("none": there is none), or None: anywhere.
    refund: frozenset[str] | None = None


TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        "approve",
        frozenset({S.submitted, S.needs_info, S.escalated}),
        S.awaiting_return,
        GOODS_KINDS,
        description="approve the return; the customer gets the RMA",
    ),
    Transition(
        "approve",
        frozenset({S.submitted, S.needs_info, S.escalated}),
        S.refund_pending,
        frozenset({K.refund_only}),
        description="approve a refund without return",
    ),
    Transition(
        "request_info",
        frozenset({S.submitted, S.escalated, S.inspecting}),
        S.needs_info,
        needs=("reason",),
        description="ask the customer for evidence or an answer",
    ),
    Transition(
        "refuse",
        frozenset({S.submitted, S.needs_info, S.inspecting, S.escalated}),
        S.refused,
        MONEY_KINDS,
        needs=("reason",),
        description="refuse, with the reason and an alternative",
    ),
    Transition(
        "cancel",
        frozenset(
            {S.draft, S.submitted, S.needs_info, S.awaiting_return, S.pickup_booked, S.refused}
        ),
        S.cancelled,
        by=frozenset({"agent", "customer", "system"}),
        description="withdraw the request",
    ),
    Transition(
        "escalate",
        frozenset(
            {
                S.submitted,
                S.needs_info,
                S.awaiting_return,
                S.pickup_booked,
                S.in_transit,
                S.inspecting,
                S.refund_pending,
                S.refused,
            }
        ),
        S.escalated,
        by=frozenset({"agent", "customer", "system"}),
        description="a platform or the customer escalated",
    ),
    Transition("assign", WORKING, None, description="give the case to an agent or group"),
    # A tracking number: the parcel is on its way (in transit). A pickup alone is only booked
    # (pickup booked, where it may be booked again): no courier has come yet. The service
    # decides, as for an inspection.
    Transition(
        "mark_in_transit",
        frozenset({S.awaiting_return, S.pickup_booked}),
        None,
        GOODS_KINDS,
        needs=("tracking_no|pickup",),
        by=frozenset({"agent", "customer"}),
        description="the parcel is on its way back (tracking number), or a pickup is booked",
    ),
    Transition(
        "mark_collected",
        frozenset({S.pickup_booked}),
        S.in_transit,
        GOODS_KINDS,
        by=frozenset({"agent", "system"}),
        description="the courier collected the booked pickup: the parcel is on its way back",
    ),
    Transition(
        "mark_received",
        frozenset({S.awaiting_return, S.pickup_booked, S.in_transit}),
        S.inspecting,
        GOODS_KINDS,
        description="the parcel arrived",
    ),
    # The target depends on the results (pass, partial pass, fail): the service decides.
    Transition(
        "inspect",
        frozenset({S.inspecting}),
        None,
        GOODS_KINDS,
        description="record the inspection per unit",
    ),
    Transition(
        "propose_refund",
        frozenset({S.refund_pending}),
        None,
        REFUND_KINDS,
        description="compute and propose the refund",
    ),
    Transition(
        "approve_refund",
        frozenset({S.refund_pending}),
        None,
        REFUND_KINDS,
        description="approve the proposed refund",
        refund=frozenset({"proposed"}),
    ),
    Transition(
        "issue_refund",
        frozenset({S.refund_pending}),
        S.refunded,
        REFUND_KINDS,
        description="send the money",
        refund=frozenset({"approved"}),
    ),
    # A refund proposed or approved holds its units (MONEY.md rule 10): withdrawing it frees
    # them, on the record. Closing or cancelling a case withdraws its refund the same way.
    Transition(
        "withdraw_refund",
        WORKING,
        None,
        REFUND_KINDS,
        description="withdraw the proposed or approved refund (its units are free again)",
        refund=LIVE_REFUND,
    ),
    Transition(
        "confirm_refund",
        frozenset({S.refunded}),
        None,
        REFUND_KINDS,
        description="the money arrived",
        refund=frozenset({"issued"}),
    ),
    Transition(
        "fail_refund",
        frozenset({S.refunded}),
        S.refund_pending,
        REFUND_KINDS,
        needs=("reason",),
        description="the payment failed; retry",
        refund=frozenset({"issued"}),
    ),
    Transition(
        "ship_exchange",
        frozenset({S.exchange_shipping}),
        None,
        frozenset({K.exchange}),
        needs=("tracking_no",),
        description="the replacement left the warehouse",
    ),
    Transition(
        "resolve",
        frozenset({S.submitted, S.needs_info, S.escalated}),
        S.resolved,
        TALK_KINDS,
        description="answered and resolved",
    ),
    Transition(
        "close",
        frozenset(
            {
                S.resolved,
                S.refunded,
                S.exchange_shipping,
                S.refused,
                S.needs_info,
                S.awaiting_return,
                S.pickup_booked,
                S.escalated,
            }
        ),
        S.closed,
        description="close the case",
    ),
    Transition(
        "reopen",
        frozenset({S.closed, S.refunded, S.resolved, S.cancelled}),
        S.submitted,
        roles=LEADS,
        description="reopen a finished case (leads only)",
    ),
    # The customer's answer to a refusal of goods the shop has back (a failed inspection,
    # notice_inspection_failed): the refund anyway, shipping both ways theirs (DOMAIN.md: a
    # refusal overridden at the customer's request), finance refunding the rest; or the item
    # back, shipped to them free by logistics (the case stays refused until an agent closes
    # it). The service checks the goods are back (tickets/cases/actions/returns.py). An agent
    # records it for a customer who answered another way (a phone call, an email).
    Transition(
        "refund_anyway",
        frozenset({S.refused}),
        S.refund_pending,
        frozenset({K.return_refund}),
        by=frozenset({"customer", "agent"}),
        description="the customer takes the refund less the shipping both ways",
    ),
    Transition(
        "send_back",
        frozenset({S.refused}),
        None,
        GOODS_KINDS,
        by=frozenset({"customer", "agent"}),
        description="the customer wants the refused item back, shipped free",
    ),
    # The customer answers a request for information, or amends a refused request.
    Transition(
        "resubmit",
        frozenset({S.needs_info, S.refused}),
        S.submitted,
        by=frozenset({"customer", "system"}),
        description="the customer answered",
    ),
)

ACTIONS: tuple[str, ...] = tuple(dict.fromkeys(t.action for t in TRANSITIONS))


def find_transition(
    *,
    action: str,
    kind: CaseKind,
    status: CaseStatus,
    by: str = "agent",
    refund: str | None = None,
) -> Transition | None:
    """The transition this action takes from here, or None when the table has none.
    `refund` is where the case's refund stands ("none" without one); None: not checked."""
    for t in TRANSITIONS:
        if t.action == action and kind in t.kinds and status in t.sources and by in t.by:
            if refund is not None and t.refund is not None and refund not in t.refund:
                continue
            return t
    return None


def allowed_actions(
    *,
    kind: CaseKind,
    status: CaseStatus,
    role: Role | None = None,
    by: str = "agent",
    refund: str | None = None,
) -> list[str]:
    """The actions open from this status for this kind (and role, and where the case's refund
    stands, when given), in table order."""
    out: list[str] = []
    for t in TRANSITIONS:
        if t.action in out or by not in t.by:
            continue
        if refund is not None and t.refund is not None and refund not in t.refund:
            continue
        if kind in t.kinds and status in t.sources and (role is None or role in t.roles):
            out.append(t.action)
    return out
