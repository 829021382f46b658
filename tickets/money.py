"""Money at the edges: decimal strings to integer minor units and back, and exact allocation.

Amounts are integers of the currency's minor unit (fen, cents; yen has none). Decimal is used
only to parse and to print; never float.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision


def exponent(currency: str) -> int:
    """How many decimal places the currency has (CNY 2, JPY 0)."""
    return int(get_currency_precision(currency.upper()))


def to_minor(value: str | Decimal | int, currency: str) -> int:
    """'19.99' CNY -> 1999. Refuses more decimals than the currency has, and non-numbers."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not an amount: write it like 19.99") from exc
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount: write it like 19.99")
    places = exponent(currency)
    scaled = amount.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {places} decimal places for {currency}")
    return int(scaled)


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
