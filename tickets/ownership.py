"""Proving an order is yours, with the guesses bounded over a day, not per conversation.

A customer who is not yet the order's customer proves it with the order's phone (a shared
contact, or its last four digits). Four digits are 10 000 guesses; three wrong ones ended a
conversation, but `/start <order>` began a new one, and after 11 guesses an attacker was linked
to a stranger's order. So failures are counted in the database per order and per person (a
Telegram account, later a web-chat visitor) over a day, whichever front end they came through,
and once either count reaches its limit no proof is even checked until the day has passed.

A try is counted before it is checked (`attempt`), with both counts held while they are read and
raised: guesses sent at once (several web-chat tabs, several Telegram accounts on one order)
cannot all be checked against one remaining guess. A try that proves the order is taken back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tickets import throttle
from tickets.limits import Limits

ORDER = "proof_order"
PERSON = "proof_person"
WINDOW = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ProofBudget:
    """Guesses left today for this order and this person (the smaller counts)."""

    left: int

    @property
    def exhausted(self) -> bool:
        return self.left <= 0


def _keys(order_no: str, person: str) -> tuple[str, str]:
    return throttle.key_of(order_no), throttle.key_of(person)


def proof_budget(
    session: Session, *, order_no: str, person: str, now: datetime, limits: Limits
) -> ProofBudget:
    """How many more wrong proofs this person may make on this order today. `person` names
    the one proving, with its channel: "telegram:5001", "web:<visitor id>"."""
    order_key, person_key = _keys(order_no, person)
    on_order = throttle.count(session, scope=ORDER, key=order_key, now=now, window=WINDOW)
    by_person = throttle.count(session, scope=PERSON, key=person_key, now=now, window=WINDOW)
    return ProofBudget(
        left=min(
            limits.proof_tries_per_order - on_order.failures,
            limits.proof_tries_per_person - by_person.failures,
        )
    )


@dataclass(frozen=True, slots=True)
class ProofOutcome:
    """One try at proving an order: proven, or not (then `budget` says what is left today;
    `checked` is False when none was left and the proof was not even looked at)."""

    proven: bool
    budget: ProofBudget
    checked: bool = True


def attempt(
    session: Session,
    *,
    order_no: str,
    person: str,
    now: datetime,
    limits: Limits,
    matches: Callable[[], bool],
) -> ProofOutcome:
    """Try a proof (`matches` compares it with the order's phone): refused unchecked once
    today's wrong tries on this order or by this person are used up; else counted as wrong
    before it is checked, and taken back when it proves the order."""
    order_key, person_key = _keys(order_no, person)
    throttle.lock(session, [(ORDER, order_key), (PERSON, person_key)])
    before = proof_budget(session, order_no=order_no, person=person, now=now, limits=limits)
    if before.exhausted:
        return ProofOutcome(proven=False, budget=before, checked=False)
    on_order = throttle.fail(session, scope=ORDER, key=order_key, now=now, window=WINDOW)
    by_person = throttle.fail(session, scope=PERSON, key=person_key, now=now, window=WINDOW)
    if matches():
        throttle.take_back(session, scope=ORDER, key=order_key)
        throttle.take_back(session, scope=PERSON, key=person_key)
        return ProofOutcome(proven=True, budget=before)
    left = min(limits.proof_tries_per_order - on_order, limits.proof_tries_per_person - by_person)
    return ProofOutcome(proven=False, budget=ProofBudget(left=left))
