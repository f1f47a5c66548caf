"""``spec.analysis.judge``: which tests run, their defaults, and refusals that name the field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canary.domain.judge_spec import ErrorRateJudge, JudgeSpec, LatencyJudge, parse_judge
from canary.errors import SpecError

PATH = "spec.analysis.judge"


def test_absent_means_the_threshold_rule_alone() -> None:
    assert parse_judge(None, PATH) is None


def test_an_empty_judge_runs_both_tests_with_their_defaults() -> None:
    judge = parse_judge({}, PATH)
    assert judge == JudgeSpec(alpha=0.01, look_every=timedelta(seconds=15), error_rate=ErrorRateJudge(0.2, 0.5),
                              latency=LatencyJudge(0.5))
    assert judge is not None and judge.tests == 2


def test_naming_one_test_runs_only_that_one() -> None:
    judge = parse_judge({"latency": {"tolerance": 1}}, PATH)
    assert judge is not None and judge.error_rate is None and judge.latency == LatencyJudge(1.0)
    assert judge.tests == 1
    judge = parse_judge({"alpha": 0.05, "errorRate": {}}, PATH)
    assert judge is not None and judge.latency is None and judge.error_rate == ErrorRateJudge()
    assert judge.alpha == 0.05


@pytest.mark.parametrize(("raw", "field"), [
    ({"alpha": 0}, f"{PATH}.alpha"),
    ({"alpha": "0.01"}, f"{PATH}.alpha"),
    ({"lookEvery": "2h"}, f"{PATH}.lookEvery"),
    ({"errorRate": {"tolerance": 10.5}}, f"{PATH}.errorRate.tolerance"),
    ({"errorRate": {"minIncrease": -0.1}}, f"{PATH}.errorRate.minIncrease"),
    ({"latency": {"tolerance": -1}}, f"{PATH}.latency.tolerance"),
    ({"latency": "fast"}, f"{PATH}.latency"),
    ("on", PATH),
])
def test_bad_values_are_refused_by_name(raw: object, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_judge(raw, PATH)
    assert caught.value.field == field
