"""The reason codes a request can give, and whose side each puts the cost on: the one home of
that vocabulary (the refund calculator, the eligibility rules, the policy file's checks and the
API's schemas all read it here).

Seller-fault reasons make the shop pay the freight and forbid a restocking fee (MONEY.md rules
7-9); customer-choice reasons are the no-reason return's; complaints name no goods.
Pure: no imports, so the pure calculator can read it as well as the models' users.
"""

from __future__ import annotations

SELLER_FAULT_REASONS = (
    "quality_defect",
    "damaged_in_transit",
    "wrong_item",
    "missing_item",
    "not_as_described",
    "late_delivery",
)
CUSTOMER_CHOICE_REASONS = ("no_reason", "size_fit", "changed_mind")
COMPLAINT_REASONS = ("service", "other")
# Every code, in the order forms and lists show them.
REASONS = SELLER_FAULT_REASONS + CUSTOMER_CHOICE_REASONS + COMPLAINT_REASONS
