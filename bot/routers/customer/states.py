"""The customer's conversation states and the intake's steps: which step follows which, and the
limits on what a customer types.
"""

from __future__ import annotations

import re

from aiogram.fsm.state import State, StatesGroup

from bot.draft import Draft
from bot.eligibility import (
    needs_items,
)
from tickets.models import CaseKind

ORDER_NO = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")
# An order number with the last 4 digits of its phone after it ("T1001 8000"), the way the
# order step invites: one message instead of two.
ORDER_AND_DIGITS = re.compile(r"^(.*\S)\s+(\d{4})$")
TRACKING_NO = re.compile(r"^[A-Za-z0-9\-]{6,40}$")
PROOF_TRIES = 3
DESCRIPTION_MAX = 2000


class Intake(StatesGroup):
    order = State()
    proof = State()
    kind = State()
    items = State()
    reason = State()
    description = State()
    evidence = State()
    confirm = State()


class Tracking(StatesGroup):
    number = State()


class Talk(StatesGroup):
    message = State()


class PickupBooking(StatesGroup):
    slot = State()
    address = State()


class Rating(StatesGroup):
    comment = State()


# Side steps about one case (its number in the state's data as case_no): files sent meanwhile
# go to that case.
CASE_STEPS = {Tracking.number.state, PickupBooking.slot.state, PickupBooking.address.state}
RATING = re.compile(r"^\s*([1-5])\s*$")
BABEL_LOCALES = {"zh-CN": "zh_Hans_CN", "en": "en"}


STEPS = {
    Intake.order.state: "order",
    Intake.proof.state: "proof",
    Intake.kind.state: "kind",
    Intake.items.state: "items",
    Intake.reason.state: "reason",
    Intake.description.state: "description",
    Intake.evidence.state: "evidence",
    Intake.confirm.state: "confirm",
}
STATE_OF = {name: getattr(Intake, name) for name in STEPS.values()}
# Steps that expect typed text (the others expect a button).
TEXT_STEPS = {"order", "proof", "description"}


def previous_step(step: str, draft: Draft) -> str | None:
    """The step "back" returns to (None: leave the intake). Proof is never a target: going
    back to the order re-checks it."""
    kind = draft.kind
    back = {
        "proof": "order",
        "kind": "order",
        "items": "kind",
        # Items chosen for the customer (the order's one item, one unit) have no step to go
        # back to.
        "reason": (
            "items" if kind and needs_items(CaseKind(kind)) and not draft.items_auto else "kind"
        ),
        "description": "reason",
        "evidence": "description",
        "confirm": "evidence",
    }
    return back.get(step)
