from __future__ import annotations

from fractions import Fraction

import pytest

from canary.routers.base import Weights
from canary.routers.quantity import pair_percentages, parse_weight, to_percentages


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1, Fraction(1), id="int"),
        pytest.param(0, Fraction(0), id="int-zero"),
        pytest.param("1", Fraction(1), id="string-one"),
        pytest.param("1000m", Fraction(1), id="milli-whole"),
        pytest.param("500m", Fraction(1, 2), id="milli"),
        pytest.param("0m", Fraction(0), id="milli-zero"),
        pytest.param("0.5", Fraction(1, 2), id="decimal"),
        pytest.param(".5", Fraction(1, 2), id="decimal-no-leading-digit"),
        pytest.param("1k", Fraction(1000), id="kilo"),
        pytest.param("1Ki", Fraction(1024), id="binary"),
        pytest.param("1e3", Fraction(1000), id="exponent"),
        pytest.param("+2", Fraction(2), id="plus-sign"),
        pytest.param(0.25, Fraction(1, 4), id="float"),
        pytest.param(50.0, Fraction(50), id="integral-float"),
        pytest.param("1e-12", Fraction(1, 10**9), id="below-nano-rounds-up"),
    ],
)
def test_parse_weight_accepts(value: object, expected: Fraction) -> None:
    assert parse_weight(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="missing"),
        pytest.param(True, id="bool"),
        pytest.param(-1, id="negative-int"),
        pytest.param("-500m", id="negative-quantity"),
        pytest.param("", id="empty"),
        pytest.param("abc", id="text"),
        pytest.param("NaN", id="nan-text"),
        pytest.param("Infinity", id="infinity-text"),
        pytest.param(float("nan"), id="nan-float"),
        pytest.param(float("inf"), id="inf-float"),
        pytest.param("1_000", id="underscore"),
        pytest.param(" 1", id="blank"),
        pytest.param("1ki", id="bad-binary-suffix"),
        pytest.param("1K", id="uppercase-kilo"),
        pytest.param("1e999999999", id="huge-exponent"),
        pytest.param(10**30, id="huge-int"),
        pytest.param("1" * 65, id="too-long"),
        pytest.param([1], id="list"),
    ],
)
def test_parse_weight_rejects(value: object) -> None:
    assert parse_weight(value) is None


@pytest.mark.parametrize(
    ("primary", "canary", "expected"),
    [
        pytest.param(1000, 500, Weights(67, 33), id="thirds"),
        pytest.param(500, 1000, Weights(33, 67), id="thirds-reversed"),
        pytest.param(1, 1, Weights(50, 50), id="equal"),
        pytest.param(0, 7, Weights(0, 100), id="all-canary"),
        pytest.param(7, 0, Weights(100, 0), id="all-primary"),
        pytest.param(2, 1, Weights(67, 33), id="small-thirds"),
        pytest.param(1, 2, Weights(33, 67), id="small-thirds-reversed"),
        pytest.param(199, 1, Weights(100, 0), id="tie-0.5-to-even"),
        pytest.param(1, 199, Weights(0, 100), id="tie-99.5-to-even"),
        pytest.param(195, 5, Weights(98, 2), id="tie-2.5-to-even"),
        pytest.param(5, 195, Weights(2, 98), id="tie-97.5-to-even"),
    ],
)
def test_to_percentages(primary: int, canary: int, expected: Weights) -> None:
    assert to_percentages(Fraction(primary), Fraction(canary)) == expected


def test_to_percentages_all_zero_is_none() -> None:
    assert to_percentages(Fraction(0), Fraction(0)) is None


@pytest.mark.parametrize(
    "primary",
    [pytest.param(p, id=str(p)) for p in (1, 3, 7, 13, 999, 1001)],
)
def test_to_percentages_is_symmetric(primary: int) -> None:
    # Rounding must not favour either side: swapping the inputs swaps the outputs.
    for canary in range(0, 2000, 7):
        weights = to_percentages(Fraction(primary), Fraction(canary))
        swapped = to_percentages(Fraction(canary), Fraction(primary))
        assert weights is not None and swapped is not None
        assert (swapped.primary, swapped.canary) == (weights.canary, weights.primary)


@pytest.mark.parametrize(
    ("backends", "expected"),
    [
        pytest.param([("p", Fraction(9)), ("c", Fraction(1))], Weights(90, 10), id="ordered"),
        pytest.param([("c", Fraction(1)), ("p", Fraction(9))], Weights(90, 10), id="reversed"),
        pytest.param([("p", Fraction(1))], None, id="missing"),
        pytest.param([("p", Fraction(1)), ("c", Fraction(1)), ("x", Fraction(1))], None, id="extra"),
        pytest.param([("p", Fraction(1)), ("p", Fraction(1))], None, id="repeated"),
        pytest.param([("p", Fraction(1)), (None, Fraction(1))], None, id="nameless"),
        pytest.param([], None, id="empty"),
    ],
)
def test_pair_percentages(backends: list[tuple[object, Fraction]], expected: Weights | None) -> None:
    assert pair_percentages(backends, primary="p", canary="c") == expected
