"""Bounded holds: a metrics outage and a quiet service hold the release, up to their limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from canary.domain.machine import RollbackCause
from canary.domain.spec import CanarySpec
from canary.domain.status import CanaryStatus, Phase, Verdict
from canary.domain.weights import ALL_PRIMARY
from tests.domain.world import SUCCESS_RATE, World, always, answers, initialized, make_spec


def release(spec: CanarySpec, **kwargs: Any) -> World:
    world = initialized(spec, **kwargs)
    world.events.clear()
    world.decisions.clear()
    world.push("rev2")
    return world


def done(world: World) -> bool:
    return world.status.phase in (Phase.SUCCEEDED, Phase.FAILED)


def at_weight(weight: int) -> Any:
    return lambda w: w.status.canary_weight == weight


OUTAGE = answers(metrics=Verdict.UNAVAILABLE)
QUIET = answers(metrics=Verdict.NO_DATA)


def ticks(world: World, n: int) -> list[str]:
    """``n`` more analysis ticks; the event reasons they recorded."""
    before = len(world.events)
    for _ in range(n):
        world.advance()
    return [e.reason for e in world.events[before:]]


# --- a metrics outage ---------------------------------------------------------------------------


def test_a_prometheus_outage_does_not_roll_back_a_healthy_release_before_the_error_limit() -> None:
    # Threshold 2: before, the second tick of an outage rolled the release back.
    spec = make_spec(threshold=2, stepWeight=10, maxWeight=30, metrics=[SUCCESS_RATE])
    world = release(spec)
    world.run_until(at_weight(10))
    world.answer = OUTAGE
    assert ticks(world, 4) == ["MetricsUnavailable"] * 4
    held = world.status
    assert (held.phase, held.canary_weight, held.failed_checks, held.consecutive_errors) == (
        Phase.PROGRESSING, 10, 0, 4)
    assert [c.verdict for c in held.checks] == [Verdict.UNAVAILABLE]
    unavailable = world.events[-1]
    assert unavailable.warning and "the metrics provider is unavailable" in unavailable.message
    assert "holding at 10% (4/4 ticks in a row" in unavailable.message
    # The provider answers again: the count starts over and the release goes on.
    world.answer = always(Verdict.PASS)
    assert ticks(world, 1) == ["Advanced"]
    assert (world.status.canary_weight, world.status.consecutive_errors) == (20, 0)
    # A second outage as long as the limit holds again without a failure.
    world.answer = OUTAGE
    ticks(world, 4)
    assert (world.status.canary_weight, world.status.failed_checks) == (20, 0)
    world.answer = always(Verdict.PASS)
    world.run_until(done)
    assert world.status.phase is Phase.SUCCEEDED
    assert world.violations == []


def test_an_outage_past_the_error_limit_counts_failed_ticks_and_says_so() -> None:
    spec = make_spec(threshold=2, consecutiveErrorLimit=3, metrics=[SUCCESS_RATE])
    world = release(spec)
    world.run_until(at_weight(25))
    world.answer = OUTAGE
    assert ticks(world, 3) == ["MetricsUnavailable"] * 3
    assert ticks(world, 1) == ["CheckFailed"]
    assert world.status.failed_checks == 1
    assert "the metrics provider was unavailable 4 ticks in a row, more than consecutiveErrorLimit 3" in (
        world.events[-1].message)
    assert ticks(world, 1) == ["RolledBack"]
    failed = world.status
    assert (failed.phase, failed.failed_checks, failed.consecutive_errors) == (Phase.FAILED, 2, 5)
    assert failed.message.startswith("2 failed checks reached the threshold 2: the metrics provider was "
                                     "unavailable 5 ticks in a row")
    last = world.decisions[-1].outcome
    assert last is not None and last.cause == RollbackCause.THRESHOLD.value
    assert world.route.weights == ALL_PRIMARY


def test_an_error_limit_of_zero_counts_every_outage_tick_as_flagger_does() -> None:
    spec = make_spec(threshold=2, consecutiveErrorLimit=0, metrics=[SUCCESS_RATE])
    world = release(spec)
    world.run_until(at_weight(25))
    world.answer = OUTAGE
    assert ticks(world, 2) == ["CheckFailed", "RolledBack"]


def test_a_canary_failure_during_an_outage_still_counts() -> None:
    # Two checks: one provider down, the other answering with a failure. The failure is evidence.
    spec = make_spec(threshold=3, metrics=[SUCCESS_RATE])
    world = release(spec)
    world.run_until(at_weight(25))
    world.answer = lambda probe, w: (
        always(Verdict.UNAVAILABLE)(probe, w) + always(Verdict.FAIL)(probe, w))
    assert ticks(world, 1) == ["CheckFailed"]
    assert (world.status.failed_checks, world.status.consecutive_errors) == (1, 1)


# --- no data -----------------------------------------------------------------------------------


def test_a_quiet_service_holds_up_to_the_no_data_limit_then_fails() -> None:
    spec = make_spec(threshold=2, consecutiveNoDataLimit=3, metrics=[SUCCESS_RATE])
    world = release(spec)
    world.run_until(at_weight(25))
    world.answer = QUIET
    assert ticks(world, 3) == ["NoTraffic"] * 3
    assert "(noDataPolicy hold, 3/3 ticks in a row" in world.events[-1].message
    assert (world.status.failed_checks, world.status.consecutive_no_data) == (0, 3)
    assert ticks(world, 2) == ["CheckFailed", "RolledBack"]
    assert "no data 5 ticks in a row, more than consecutiveNoDataLimit 3" in world.status.message


def test_traffic_resets_the_no_data_count() -> None:
    spec = make_spec(threshold=2, stepWeight=10, maxWeight=40, consecutiveNoDataLimit=2, metrics=[SUCCESS_RATE])
    world = release(spec)
    world.run_until(at_weight(10))
    for weight in (20, 30, 40):
        world.answer = QUIET
        assert ticks(world, 2) == ["NoTraffic"] * 2
        world.answer = always(Verdict.PASS)
        ticks(world, 1)
        assert (world.status.canary_weight, world.status.consecutive_no_data) == (weight, 0)
    assert world.status.failed_checks == 0


def test_a_new_run_starts_with_both_counts_at_zero() -> None:
    spec = make_spec(metrics=[SUCCESS_RATE], stepWeight=None, maxWeight=None, iterations=3)
    world = release(spec, answer=answers(metrics=Verdict.UNAVAILABLE))
    world.advance()
    world.advance()
    assert world.status.consecutive_errors >= 1
    world.status = world.status.with_(consecutive_no_data=7)
    world.push("rev3")
    world.advance(timedelta(seconds=1))
    assert "Restarted" in world.reasons()
    assert (world.status.consecutive_errors, world.status.consecutive_no_data) == (0, 0)


def test_the_counts_survive_a_restart_through_the_status() -> None:
    status = CanaryStatus(phase=Phase.PROGRESSING, consecutive_errors=3, consecutive_no_data=9)
    assert CanaryStatus.from_dict(status.to_dict()) == status
    assert (status.to_dict()["consecutiveErrors"], status.to_dict()["consecutiveNoData"]) == (3, 9)
