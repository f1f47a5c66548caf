"""Ticks record when they were planned, so a late controller never pushes a release back."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from canary.domain.schedule import DUE_TOLERANCE, ROUND_SPREAD, next_in, on_grid, place_in_round, planned_time, until_due
from canary.domain.status import Phase
from tests.domain.world import SUCCESS_RATE, World, initialized, make_spec

T = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=timezone.utc)
TEN = timedelta(seconds=10)


def test_a_run_continuing_a_series_records_its_planned_time() -> None:
    last = T - timedelta(seconds=10, milliseconds=300)  # this pass is 300 ms late
    assert planned_time(T, last, TEN) == last + TEN
    assert next_in(T, last + TEN, TEN) == TEN - timedelta(milliseconds=300)


def test_a_new_series_continues_from_the_next_whole_second_for_whole_second_intervals() -> None:
    second = T.replace(microsecond=0)
    assert until_due(T, None, TEN) == timedelta(0)
    assert planned_time(T, None, TEN) == second + timedelta(seconds=1)
    assert next_in(T, second + timedelta(seconds=1), TEN) == TEN + timedelta(milliseconds=750), \
        "the first interval is longer by less than a second, never shorter"
    # A pass on (or within the tolerance past) a whole second keeps it.
    assert planned_time(second + DUE_TOLERANCE, None, TEN) == second
    # After a gap longer than an interval (a pause, an outage) the old grid means nothing.
    assert planned_time(T, T - 3 * TEN, TEN) == second + timedelta(seconds=1)


@pytest.mark.parametrize("every", [timedelta(milliseconds=500), timedelta(seconds=1.5)])
def test_sub_second_and_fractional_intervals_keep_their_phase(every: timedelta) -> None:
    assert on_grid(T, every) == T
    assert planned_time(T, None, every) == T


def test_due_within_the_tolerance_and_not_before() -> None:
    assert until_due(T, T - TEN + DUE_TOLERANCE, TEN) == timedelta(0)
    assert until_due(T, T - TEN + 2 * DUE_TOLERANCE, TEN) == 2 * DUE_TOLERANCE
    assert until_due(T, T - timedelta(seconds=4), TEN) == timedelta(seconds=6)


def test_a_stored_time_near_the_end_of_the_calendar_does_not_overflow() -> None:
    far = datetime.max.replace(tzinfo=timezone.utc) - timedelta(seconds=1)
    assert until_due(T, far, TEN) > timedelta(0)


@pytest.mark.parametrize("late", [timedelta(milliseconds=1), timedelta(milliseconds=300), timedelta(seconds=4)])
def test_late_passes_do_not_accumulate_over_a_release(late: timedelta) -> None:
    """Every pass runs ``late`` after the wake-up the controller asked for; the ticks stay on the
    grid of the first, and the release takes interval × steps, as it would on time."""
    world: World = initialized(make_spec(interval="10s", stepWeight=10, maxWeight=50, metrics=[SUCCESS_RATE]))
    world.now += timedelta(milliseconds=730)
    world.push("rev2")
    decision = world.reconcile()
    ticks: list[datetime] = []
    for _ in range(40):
        if world.status.phase is not Phase.PROGRESSING:
            break
        assert decision.requeue_after is not None
        world.now += decision.requeue_after + late
        before = world.status.last_analysis_time
        decision = world.reconcile()
        if world.status.last_analysis_time != before and world.status.last_analysis_time is not None:
            ticks.append(world.status.last_analysis_time)
    assert world.status.phase is Phase.PROMOTING
    first = ticks[0]
    assert first.microsecond == 0, "the first tick of a run records the next whole second"
    assert ticks == [first + k * TEN for k in range(len(ticks))], "every tick on the first tick's grid"


def test_a_canary_keeps_its_place_in_the_round_and_the_places_spread_out() -> None:
    keys = [f"ns{i % 7}/app-{i}" for i in range(1000)]
    places = [place_in_round(key) for key in keys]
    assert places == [place_in_round(key) for key in keys]
    assert all(timedelta(0) <= place < ROUND_SPREAD for place in places)
    # 1000 names in 2000 places: most are alone in theirs, so most pairs have an order.
    assert len(set(places)) > 700


def test_the_place_is_the_same_in_another_process() -> None:
    # str hash() is salted per process; the place must not be, or a restart reshuffles the round.
    code = "from canary.domain.schedule import place_in_round as p; print(p('default/podinfo').microseconds)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert int(out) == place_in_round("default/podinfo").microseconds
