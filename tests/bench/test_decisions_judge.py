"""The judge rule in the decision benchmark, on the same seeds as the Flagger rule: what the
judge exists for must show (an early abort of a gross failure, a latency regression under the
absolute bound caught), and a healthy canary must still ship. Counts and causes only."""

from __future__ import annotations

import pytest

from bench.decisions import scenario_index, FLAGGER, JUDGE, QUICK_RUNS, SCENARIOS, Results, simulate
from bench.releases import Outcome

HEALTHY = "healthy @10rps"
GROSS = "errors +50pt @10rps"
LATENCY = "p99 x2 @100rps"


@pytest.fixture(scope="module")
def results() -> Results:
    return simulate([FLAGGER, JUDGE], [scenario_index(HEALTHY), scenario_index(GROSS), scenario_index(LATENCY)], QUICK_RUNS, seed=2)


def test_the_judge_aborts_a_gross_failure_within_one_interval_and_before_the_flagger_rule(results: Results) -> None:
    judged = results[(JUDGE, scenario_index(GROSS))].results
    flagger = results[(FLAGGER, scenario_index(GROSS))].results
    for mine, theirs in zip(judged, flagger, strict=True):
        assert mine.outcome is Outcome.ROLLBACK and mine.cause == "judge"
        assert mine.exposure_intervals is not None and mine.exposure_intervals <= 1.0
        assert theirs.exposure_intervals is not None and mine.exposure_intervals < theirs.exposure_intervals
        assert mine.canary_failures < theirs.canary_failures


def test_the_judge_catches_a_latency_regression_the_absolute_bound_lets_through(results: Results) -> None:
    assert all(r.outcome is Outcome.PROMOTE for r in results[(FLAGGER, scenario_index(LATENCY))].results)
    assert all(r.outcome is Outcome.ROLLBACK and r.cause == "judge" for r in results[(JUDGE, scenario_index(LATENCY))].results)


def test_a_healthy_canary_still_ships_under_the_judge(results: Results) -> None:
    rows = results[(JUDGE, scenario_index(HEALTHY))].results
    # alpha 1% bounds the false rollbacks; one in 20 would already be far above it.
    assert sum(r.outcome is Outcome.ROLLBACK for r in rows) <= 1
    assert all(r.outcome is not Outcome.STUCK for r in rows)


def test_woken_by_its_own_status_writes_the_judge_looks_between_ticks() -> None:
    # The real controller's watch delivers its own status write and runs another pass; that pass
    # schedules the judge's next look lookEvery later, so a gross failure ends before the first tick.
    echoed = simulate([JUDGE], [scenario_index(GROSS)], QUICK_RUNS, seed=2, watch_echo=True)
    for run in echoed[(JUDGE, scenario_index(GROSS))].results:
        assert run.outcome is Outcome.ROLLBACK and run.cause == "judge"
        assert run.exposure_intervals is not None and run.exposure_intervals < 1.0
