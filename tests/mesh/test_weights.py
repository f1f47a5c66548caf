from fractions import Fraction

import pytest

from e2e.mesh.weights import WeightError, parse_httproute_weight, parse_quantity, parse_split_weight, weight_json


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, Fraction(0)),
        (80, Fraction(80)),
        (1000, Fraction(1000)),
        (0.5, Fraction(1, 2)),
        ("1", Fraction(1)),
        ("0", Fraction(0)),
        ("0m", Fraction(0)),
        ("500m", Fraction(1, 2)),
        ("1000m", Fraction(1)),
        ("900m", Fraction(9, 10)),
        ("100m", Fraction(1, 10)),
        ("0.5", Fraction(1, 2)),
        (".25", Fraction(1, 4)),
        ("1k", Fraction(1000)),
        ("1Ki", Fraction(1024)),
        ("1e3", Fraction(1000)),
        ("2E-1", Fraction(1, 5)),
        ("+3", Fraction(3)),
        ("250u", Fraction(1, 4000)),
        ("1P", Fraction(10**15)),
    ],
)
def test_split_weights_are_integers_or_quantities(value: object, expected: Fraction) -> None:
    assert parse_split_weight(value) == expected


@pytest.mark.parametrize(
    "value",
    [True, False, None, -1, "-1", "-500m", "abc", "1.2.3", "", " 1", "1 ", "1mi", "NaN", "Infinity", "1_000", "1E",
     float("nan"), float("inf"), [], {}, "9" * 70, 10**20],
)
def test_bad_split_weights_are_refused_with_the_value(value: object) -> None:
    with pytest.raises(WeightError):
        parse_split_weight(value)


def test_quantity_error_message_quotes_the_text() -> None:
    with pytest.raises(WeightError, match="'8o0m'"):
        parse_quantity("8o0m")


@pytest.mark.parametrize(("value", "expected"), [(None, 1), (0, 0), (1, 1), (90, 90), (1_000_000, 1_000_000)])
def test_httproute_weights_default_to_one(value: object, expected: int) -> None:
    assert parse_httproute_weight(value) == expected


@pytest.mark.parametrize("value", [-1, 1_000_001, "10", 1.5, True])
def test_bad_httproute_weights(value: object) -> None:
    with pytest.raises(WeightError):
        parse_httproute_weight(value)


def test_weight_json_keeps_integers_integral() -> None:
    assert weight_json(Fraction(80)) == 80 and isinstance(weight_json(Fraction(80)), int)
    assert weight_json(Fraction(9, 10)) == 0.9
