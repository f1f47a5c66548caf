"""Step arithmetic: stepWeight/maxWeight, stepWeights, promotion steps, and the 100% invariant."""

from __future__ import annotations

from typing import Any

import pytest

from canary.domain.spec import AnalysisSpec, parse_analysis
from canary.domain.weights import ALL_PRIMARY, Weights, max_weight, next_promotion_weight, next_weight


def analysis(**raw: Any) -> AnalysisSpec:
    return parse_analysis(raw)


def walk(spec: AnalysisSpec) -> list[int]:
    """Every canary weight a run passes through when each check passes."""
    weights = [0]
    while (nxt := next_weight(spec, weights[-1])) is not None:
        assert nxt > weights[-1], "a step must raise the weight"
        weights.append(nxt)
        assert len(weights) < 200
    return weights


def promotion_walk(spec: AnalysisSpec, start: int) -> list[int]:
    weights = [start]
    while weights[-1] > 0:
        weights.append(next_promotion_weight(spec, weights[-1]))
        assert weights[-1] < weights[-2]
    return weights


@pytest.mark.parametrize("primary, canary", [(100, 0), (0, 100), (50, 50), (75, 25), (1, 99)])
def test_weights_that_sum_to_100_are_accepted(primary: int, canary: int) -> None:
    w = Weights(primary, canary)
    assert str(w) == f"{primary}/{canary}"
    assert Weights.canary_at(canary) == w


@pytest.mark.parametrize("primary, canary", [(100, 1), (50, 49), (-1, 101), (101, -1), (0, 0), (60, 60)],
                         ids=["101", "99", "neg-primary", "neg-canary", "zero", "120"])
def test_weights_that_do_not_sum_to_100_are_rejected(primary: int, canary: int) -> None:
    with pytest.raises(ValueError, match="sum to 100"):
        Weights(primary, canary)


def test_all_primary() -> None:
    assert ALL_PRIMARY == Weights(primary=100, canary=0)


@pytest.mark.parametrize("raw, expected", [
    ({"stepWeight": 10}, 50),
    ({"stepWeight": 10, "maxWeight": 30}, 30),
    ({"stepWeight": 100, "maxWeight": 100}, 100),
    ({"stepWeights": [1, 2, 3]}, 3),
    ({"stepWeights": [10, 20], "maxWeight": 80}, 20),  # as in Flagger: the steps are the plan
    ({"iterations": 4}, 50),
], ids=["step-default-max", "step-max", "all-in-one", "steps-last", "steps-max", "blue-green"])
def test_max_weight(raw: dict[str, Any], expected: int) -> None:
    assert max_weight(analysis(**raw)) == expected


@pytest.mark.parametrize("raw, expected", [
    ({"stepWeight": 25}, [0, 25, 50]),
    ({"stepWeight": 10, "maxWeight": 30}, [0, 10, 20, 30]),
    ({"stepWeight": 20, "maxWeight": 50}, [0, 20, 40, 50]),
    ({"stepWeight": 30, "maxWeight": 100}, [0, 30, 60, 90, 100]),
    ({"stepWeight": 50, "maxWeight": 50}, [0, 50]),
    ({"stepWeight": 1, "maxWeight": 3}, [0, 1, 2, 3]),
    ({"stepWeights": [1, 5, 10, 50]}, [0, 1, 5, 10, 50]),
    ({"stepWeights": [10, 20], "maxWeight": 80}, [0, 10, 20]),
    ({"stepWeights": [100]}, [0, 100]),
], ids=["25-50", "10-30", "20-50-capped", "30-100-capped", "one-step", "tiny", "list", "list-below-max",
        "list-100"])
def test_canary_weight_walk(raw: dict[str, Any], expected: list[int]) -> None:
    spec = analysis(**raw)
    walk_ = walk(spec)
    assert walk_ == expected
    assert max(walk_) <= max_weight(spec)
    for w in walk_:
        assert Weights.canary_at(w).primary + w == 100


@pytest.mark.parametrize("current", [0, 10, 49, 50, 51, 100])
@pytest.mark.parametrize("raw", [{"stepWeight": 10}, {"stepWeights": [5, 50]}], ids=["step", "steps"])
def test_next_weight_never_exceeds_max_and_stops_at_it(raw: dict[str, Any], current: int) -> None:
    spec = analysis(**raw)
    nxt = next_weight(spec, current)
    if current >= 50:
        assert nxt is None
    else:
        assert nxt is not None and current < nxt <= 50


@pytest.mark.parametrize("current, expected", [(0, 5), (4, 5), (5, 50), (6, 50), (49, 50)])
def test_step_weights_resume_from_an_off_list_weight(current: int, expected: int) -> None:
    # A spec edited mid-run can leave the status between two listed steps.
    assert next_weight(analysis(stepWeights=[5, 50]), current) == expected


def test_blue_green_has_no_weight_steps() -> None:
    spec = analysis(iterations=3)
    assert spec.blue_green
    assert next_weight(spec, 0) is None


@pytest.mark.parametrize("raw, start, expected", [
    ({"stepWeight": 25}, 50, [50, 0]),
    ({"stepWeight": 25, "stepWeightPromotion": 20}, 50, [50, 30, 10, 0]),
    ({"stepWeight": 25, "stepWeightPromotion": 25}, 50, [50, 25, 0]),
    ({"stepWeight": 25, "stepWeightPromotion": 100}, 50, [50, 0]),
    ({"stepWeight": 10, "maxWeight": 100, "stepWeightPromotion": 30}, 100, [100, 70, 40, 10, 0]),
], ids=["no-promotion-steps", "20", "exact", "oversized", "from-100"])
def test_promotion_walk(raw: dict[str, Any], start: int, expected: list[int]) -> None:
    assert promotion_walk(analysis(**raw), start) == expected
