"""The reason codes a request can give, and whose side each puts the cost on: the one home of
that vocabulary (the refund calculator, the eligibility rules, the policy file's checks and the
API's schemas all read it here).

Seller-fault reasons make the shop pay the freight and forbid a restocking fee (MONEY.md rules
7-9); customer-choice reasons are the no-reason return's; complaints name no goods.
Pure: no imports of the project, so the pure calculator can read it as well as the models' users.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why the customer asks (stored as the value on the case)."""

    quality_defect = "quality_defect"
    damaged_in_transit = "damaged_in_transit"
    wrong_item = "wrong_item"
    missing_item = "missing_item"
    not_as_described = "not_as_described"
    late_delivery = "late_delivery"
    no_reason = "no_reason"
    size_fit = "size_fit"
    changed_mind = "changed_mind"
    service = "service"
    other = "other"
    # A customer's words for a person, no claim ("talk to a person", a question about a closed
    # order): a conversation an agent answers, opened as a complaint that names no goods.
    question = "question"


R = Reason
SELLER_FAULT_REASONS: tuple[Reason, ...] = (
    R.quality_defect,
    R.damaged_in_transit,
    R.wrong_item,
    R.missing_item,
    R.not_as_described,
    R.late_delivery,
)
CUSTOMER_CHOICE_REASONS: tuple[Reason, ...] = (R.no_reason, R.size_fit, R.changed_mind)
COMPLAINT_REASONS: tuple[Reason, ...] = (R.service, R.other)
CONVERSATION_REASONS: tuple[Reason, ...] = (R.question,)
# Every code, in the order forms and lists show them.
REASONS: tuple[Reason, ...] = (
    SELLER_FAULT_REASONS + CUSTOMER_CHOICE_REASONS + COMPLAINT_REASONS + CONVERSATION_REASONS
)
