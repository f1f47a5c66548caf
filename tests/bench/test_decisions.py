"""The decision benchmark runs whole releases through the real decision and metrics code, and its
Flagger rule reproduces what issue 10 measured of that rule. Counts and outcomes only: nothing
here depends on how long anything takes."""

from __future__ import annotations

import pytest

from bench.decisions import scenario_index, FLAGGER, QUICK_RUNS, SCENARIOS, Results, report, rule_spec, simulate, targets
from bench.releases import Outcome

HEALTHY = "healthy @10rps"
GROSS = "errors +50pt @10rps"
LATENCY = "p99 x2 @100rps"


@pytest.fixture(scope="module")
def results() -> Results:
    return simulate([FLAGGER], [scenario_index(HEALTHY), scenario_index(GROSS), scenario_index(LATENCY)], QUICK_RUNS, seed=1)


def test_every_run_ends_and_is_counted(results: Results) -> None:
    for (rule, scenario), row in results.items():
        assert rule == FLAGGER
        assert len(row.results) == QUICK_RUNS
        assert all(r.outcome is not Outcome.STUCK for r in row.results)


def test_a_gross_failure_keeps_its_first_share_for_threshold_intervals_before_the_rollback(results: Results) -> None:
    threshold = rule_spec(FLAGGER).analysis.threshold
    for run in results[(FLAGGER, scenario_index(GROSS))].results:
        assert run.outcome is Outcome.ROLLBACK
        assert run.failed_checks == threshold
        assert run.max_canary_weight == 10
        assert run.exposure_intervals == threshold
        # 10 rps x 10% x 5 minutes x 50%: on the order of 150 failed requests, never a handful.
        assert 100 < run.canary_failures < 200


def test_a_healthy_canary_walks_every_step_and_is_promoted(results: Results) -> None:
    for run in results[(FLAGGER, scenario_index(HEALTHY))].results:
        assert run.outcome is Outcome.PROMOTE
        assert run.failed_checks == 0
        assert run.max_canary_weight == 50
        # 10 rps at 10, 20, ... 50% for a minute each: about 900 requests.
        assert 700 < run.canary_requests < 1100


def test_a_latency_regression_under_the_absolute_bound_is_never_seen(results: Results) -> None:
    assert all(r.outcome is Outcome.PROMOTE for r in results[(FLAGGER, scenario_index(LATENCY))].results)


def test_the_report_shows_every_row_and_judges_the_targets(results: Results) -> None:
    text = report(results, [FLAGGER], QUICK_RUNS, 1, 0.0)
    for name in (HEALTHY, GROSS, LATENCY):
        assert name in text
    verdicts = {c.target: c.passed for c in targets(results, FLAGGER, None)}
    assert verdicts["+100% p99 rolled back in >= 95% at >= 10 rps"] is False
    assert verdicts["50%-error canary rolled back within one interval in >= 99% at >= 1 rps"] is False
    assert verdicts["never stuck (every run ends within 3x its nominal duration)"] is True
