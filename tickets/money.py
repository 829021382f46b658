"""Money at the edges: decimal strings to integer minor units and back, and exact allocation.

Amounts are integers of the currency's minor unit (fen, cents; yen has none). Decimal is used
only to parse and to print; never float.
"""

from __future__ import annotations

import re
from decimal import Decimal

from babel.numbers import get_currency_precision


def exponent(currency: str) -> int:
    """How many decimal places the currency has (CNY 2, JPY 0)."""
    return int(get_currency_precision(currency.upper()))


# The largest amount accepted anywhere, in the currency's major unit, unless a caller passes
# the shop's own ceiling (AFTERSALES_MAX_AMOUNT). No real order line, payment or compensation
# reaches it, and it keeps every minor-unit amount far inside a 64-bit column.
DEFAULT_MAX_AMOUNT = Decimal(100_000_000)
# Hard bound on the digits before the point: checked before any arithmetic, so a hostile
# "1e300000" or a 10 000-digit string costs microseconds instead of minutes.
MAX_INT_DIGITS = 15
_MAX_TEXT = 40
# Plain digits with an optional fraction: no sign, exponent, NaN, infinity or separators.
_AMOUNT_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class AmountError(ValueError):
    """An amount that is not one: the message says what to write instead."""


def _shown(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 24 else text[:20] + "...")


def bounded_decimal(value: str | Decimal | int, *, maximum: Decimal | int | None = None) -> Decimal:
    """The amount `value` stands for, refused (AmountError) unless it is plain digits from 0 to
    `maximum` (DEFAULT_MAX_AMOUNT when not given): no sign, exponent, NaN or infinity. Every
    check is constant-time, so no input makes the conversion slow."""
    ceiling = DEFAULT_MAX_AMOUNT if maximum is None else Decimal(maximum)
    if isinstance(value, bool):
        raise AmountError(f"{value!r} is not an amount: write it like 19.99")
    if isinstance(value, int):
        if not 0 <= value < 10**MAX_INT_DIGITS:
            raise AmountError(f"{_shown(value)} is not an amount between 0 and {ceiling}")
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_TEXT or not _AMOUNT_TEXT.fullmatch(text):
            raise AmountError(
                f"{_shown(text)} is not an amount: write plain digits like 19.99 "
                "(no sign, exponent or separators)"
            )
        amount = Decimal(text)
    else:
        raise AmountError(f"{_shown(value)} is not an amount: write it like 19.99")
    if not amount.is_finite():
        raise AmountError(f"{_shown(value)} is not an amount: write it like 19.99")
    if amount.is_signed() and amount != 0:
        raise AmountError(f"{_shown(value)} is negative: amounts are 0 or more")
    # adjusted() is the exponent of the leading digit: a constant-time size check.
    if amount != 0 and (amount.adjusted() >= MAX_INT_DIGITS or amount > ceiling):
        raise AmountError(f"{_shown(value)} is more than the largest amount accepted ({ceiling})")
    return amount


def parse_amount(
    value: str | Decimal | int, currency: str, *, maximum: Decimal | int | None = None
) -> int:
    """The one money parser: '19.99' CNY -> 1999 minor units.

    `bounded_decimal`'s rules (plain digits, 0 to `maximum`), then at most the currency's
    decimals (Babel's table: CNY 2, JPY 0); an AmountError (a ValueError) says what is wrong."""
    places = exponent(currency)
    amount = bounded_decimal(value, maximum=maximum)
    if amount != 0 and amount.adjusted() < -places - 1:
        raise AmountError(f"{_shown(value)} has more than {places} decimal places for {currency}")
    scaled = amount.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{amount} has more than {places} decimal places for {currency}")
    return int(scaled)


def to_minor(value: str | Decimal | int, currency: str) -> int:
    """'19.99' CNY -> 1999 (parse_amount with the default ceiling)."""
    return parse_amount(value, currency)


def to_decimal(minor: int, currency: str) -> Decimal:
    """1999 CNY -> Decimal('19.99')."""
    places = exponent(currency)
    return Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def format_amount(minor: int, currency: str) -> str:
    """1999 CNY -> '19.99': the decimal string of the JSON contracts."""
    return str(to_decimal(minor, currency))


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split `total` in proportion to `weights` so the parts add up to it exactly.

    Largest remainder: each part gets the floor of its exact share, and the units left over go
    to the largest remainders; ties go to the later position (so 53.05 over three units gives
    17.68, 17.68, 17.69 as in MONEY.md). Zero weights get zero. Deterministic.
    """
    if total < 0:
        raise ValueError("cannot allocate a negative total")
    weight_sum = sum(weights)
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    if weight_sum == 0:
        if total == 0:
            return [0] * len(weights)
        raise ValueError("cannot allocate a non-zero total over zero weights")
    parts = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    left = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (remainders[i], i), reverse=True)
    for i in order[:left]:
        parts[i] += 1
    return parts
