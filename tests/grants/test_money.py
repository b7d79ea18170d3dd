"""Money (§4): Decimal with two places, never float; largest-remainder splits; rate-limited amounts round down."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grants.money import apply_rate, format_money, split_largest_remainder, to_money

ZERO = Decimal("0.00")
fen_amounts = st.integers(min_value=0, max_value=10**15).map(lambda n: Decimal(n) / 100)


def test_to_money_refuses_floats_and_bools():
    with pytest.raises(TypeError):
        to_money(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        to_money(True)


@pytest.mark.parametrize("bad", ["", "abc", "NaN", "Infinity", "1e", "12,5"])
def test_to_money_refuses_what_is_not_an_amount(bad):
    with pytest.raises(ValueError):
        to_money(bad)


def test_to_money_rounds_half_up_once_to_the_fen():
    assert to_money("1.005") == Decimal("1.01")
    assert to_money("1.0049") == Decimal("1.00")
    assert to_money(7) == Decimal("7.00")
    assert to_money(" 12.5 ") == Decimal("12.50")


def test_rate_limited_amounts_round_down():
    assert apply_rate(Decimal("100.99"), Decimal("0.30")) == Decimal("30.29")  # 30.297 down, not up
    assert apply_rate(Decimal("0.03"), Decimal("0.30")) == Decimal("0.00")


def test_split_gives_the_earlier_part_the_tie():
    assert split_largest_remainder(Decimal("100.00"), [1, 1, 1]) == [
        Decimal("33.34"),
        Decimal("33.33"),
        Decimal("33.33"),
    ]
    assert split_largest_remainder(Decimal("0.02"), [1, 1, 1]) == [Decimal("0.01"), Decimal("0.01"), ZERO]


def test_split_by_weights():
    assert split_largest_remainder(Decimal("10.00"), [Decimal("0.4"), Decimal("0.3"), Decimal("0.3")]) == [
        Decimal("4.00"),
        Decimal("3.00"),
        Decimal("3.00"),
    ]
    assert split_largest_remainder(Decimal("1.00"), [0, 1]) == [ZERO, Decimal("1.00")]


@pytest.mark.parametrize("weights", [[], [0, 0], [1, -1]])
def test_split_refuses_weights_that_split_nothing(weights):
    with pytest.raises(ValueError):
        split_largest_remainder(Decimal("1.00"), weights)


@given(total=fen_amounts, parts=st.integers(min_value=1, max_value=40))
def test_equal_split_sums_to_the_whole_and_differs_by_at_most_a_fen(total, parts):
    split = split_largest_remainder(total, [1] * parts)
    assert sum(split, ZERO) == total
    assert max(split) - min(split) <= Decimal("0.01")
    assert split == sorted(split, reverse=True)  # the extra fen go to the earlier parts
    assert all(p.as_tuple().exponent == -2 for p in split)


@given(
    total=fen_amounts,
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20).filter(any),
)
def test_weighted_split_sums_to_the_whole_and_stays_within_a_fen_of_the_exact_share(total, weights):
    split = split_largest_remainder(total, weights)
    assert sum(split, ZERO) == total
    whole = sum(weights)
    for part, weight in zip(split, weights, strict=True):
        exact = total * weight / whole
        assert part >= 0
        assert abs(part - exact) < Decimal("0.01")
        if weight == 0:
            assert part == 0


@given(
    total=fen_amounts,
    share=st.integers(min_value=1, max_value=99).map(lambda n: Decimal(n) / 100),
    years=st.integers(min_value=2, max_value=6),
)
def test_first_share_split_keeps_the_rest_equal(total, share, years):
    rest = (1 - share) / (years - 1)
    split = split_largest_remainder(total, [share] + [rest] * (years - 1))
    assert sum(split, ZERO) == total
    assert max(split[1:]) - min(split[1:]) <= Decimal("0.01")


def test_format_money():
    assert format_money(Decimal("1234567.5")) == "CNY 1,234,567.50"
    assert format_money(Decimal("600000000"), "zh-hans") == "6 亿元"
    assert format_money(Decimal("50000"), "zh-hans") == "5 万元"
    assert format_money(Decimal("12.30"), "zh-hans") == "12.30 元"
