"""The case lifecycle as data: which action moves which kind from which status to which.

A transition names its action, the statuses it leaves from, the status it goes to (None: the
status stays), the kinds it applies to, the roles allowed, and the parameters it needs. The
service checks a request against this table and nothing else, so the panel, the API and the bot
all obey the same rules, and `allowed_actions` is derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tickets.models import CaseKind, CaseStatus, Role

S = CaseStatus
K = CaseKind

ALL_KINDS = frozenset(CaseKind)
GOODS_KINDS = frozenset({K.return_refund, K.exchange})
REFUND_KINDS = frozenset({K.refund_only, K.return_refund})
MONEY_KINDS = frozenset({K.refund_only, K.return_refund, K.exchange})
TALK_KINDS = frozenset({K.complaint, K.delivery})
ANY_ROLE = frozenset(Role)
LEADS = frozenset({Role.lead, Role.admin})
TERMINAL = frozenset({S.closed, S.cancelled, S.refunded, S.resolved})
WORKING = frozenset(CaseStatus) - TERMINAL - {S.draft}


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
        frozenset({S.draft, S.submitted, S.needs_info, S.awaiting_return, S.refused}),
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
    Transition(
        "mark_in_transit",
        frozenset({S.awaiting_return}),
        S.in_transit,
        GOODS_KINDS,
        needs=("tracking_no|pickup",),
        by=frozenset({"agent", "customer"}),
        description="the parcel is on its way back",
    ),
    Transition(
        "mark_received",
        frozenset({S.awaiting_return, S.in_transit}),
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
    ),
    Transition(
        "issue_refund",
        frozenset({S.refund_pending}),
        S.refunded,
        REFUND_KINDS,
        description="send the money",
    ),
    Transition(
        "confirm_refund",
        frozenset({S.refunded}),
        None,
        REFUND_KINDS,
        description="the money arrived",
    ),
    Transition(
        "fail_refund",
        frozenset({S.refunded}),
        S.refund_pending,
        REFUND_KINDS,
        needs=("reason",),
        description="the payment failed; retry",
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
    *, action: str, kind: CaseKind, status: CaseStatus, by: str = "agent"
) -> Transition | None:
    """The transition this action takes from here, or None when the table has none."""
    for t in TRANSITIONS:
        if t.action == action and kind in t.kinds and status in t.sources and by in t.by:
            return t
    return None


def allowed_actions(
    *, kind: CaseKind, status: CaseStatus, role: Role | None = None, by: str = "agent"
) -> list[str]:
    """The actions open from this status for this kind (and role, when given), in table order."""
    out: list[str] = []
    for t in TRANSITIONS:
        if t.action in out or by not in t.by:
            continue
        if kind in t.kinds and status in t.sources and (role is None or role in t.roles):
            out.append(t.action)
    return out
