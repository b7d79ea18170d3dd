"""Money: Decimal with two places (fen), never float."""

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import models
from django.utils.translation import get_language

FEN = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_DIGITS = 18
WAN = Decimal("10000")
YI = Decimal("100000000")


class MoneyField(models.DecimalField):
    """numeric(18,2) in the database."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", MAX_DIGITS)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "grants.money.MoneyField", args, kwargs


def to_money(value: Decimal | int | str) -> Decimal:
    """Parse a money amount, refusing floats (binary fractions are not money). Rounds half up once, to the fen."""
    if isinstance(value, float):
        raise TypeError("Money must not be a float; pass a Decimal, an int or a string.")
    if isinstance(value, bool):
        raise TypeError("Money must not be a bool.")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount of money.") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite amount of money.")
    return amount.quantize(FEN, rounding=ROUND_HALF_UP)


def apply_rate(amount: Decimal, rate: Decimal) -> Decimal:
    """A rate-limited amount, rounded down to the fen so a cap is never exceeded by rounding."""
    return (amount * rate).quantize(FEN, rounding=ROUND_DOWN)


def split_largest_remainder(total: Decimal, weights: list[int] | list[Decimal]) -> list[Decimal]:
    """Split `total` into parts proportional to `weights`, in whole fen, summing exactly to `total`.

    Every part first gets the floor of its exact share; the fen left over go one each to the parts with the
    largest remainders, the earlier part winning ties.
    """
    if not weights:
        raise ValueError("Cannot split an amount into no parts.")
    if any(Decimal(w) < 0 for w in weights) or sum(Decimal(w) for w in weights) <= 0:
        raise ValueError("Weights must be non-negative and not all zero.")
    total_fen = int(to_money(total) / FEN)
    weight_sum = sum(Decimal(w) for w in weights)
    exact = [Decimal(total_fen) * Decimal(w) / weight_sum for w in weights]
    floors = [int(e) for e in exact]  # int() truncates towards zero; the shares are non-negative
    left = total_fen - sum(floors)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in by_remainder[:left]:
        floors[i] += 1
    return [Decimal(f) * FEN for f in floors]


def format_money(amount: Decimal, language: str | None = None) -> str:
    """An amount for people, in `language` (by default the active one): the one money format of the templates,
    the admin, the services' messages and the notices.

    English: CNY 1,234,567.50. Chinese: 亿元 or 万元 where the amount is a round figure in them (two decimals at most:
    6 亿元, 2.5 亿元, 300 万元, 123.45 万元), otherwise yuan with separators (1,234,567.89 元), so that no fen is lost.
    """
    amount = to_money(amount)
    language = language or get_language() or ""
    if language.startswith("zh"):
        for unit, name in ((YI, "亿元"), (WAN, "万元")):
            if abs(amount) >= unit and amount % (unit / 100) == 0:
                return f"{(amount / unit).normalize():f} {name}"
        return f"{amount:,.2f} 元"
    return f"CNY {amount:,.2f}"
