"""Crash safety: the controller may die at any instruction and still finish every release the same way.

Each scenario runs once undisturbed (the baseline). Then, for every decision of that run, it
runs again with the controller dying around that decision:

- ``actions-lost``: the status was written, none of the actions were carried out; the
  restarted controller reconciles at once, or only one step later (``-late``);
- ``first-action-only`` / ``last-action-lost``: killed in the middle of the actions;
- ``not-written``: killed before the status write (nothing happened); restarted at once or later.

Every variant must end in the same final state, pass through the same weights without skipping
or repeating one, announce each milestone exactly as often, and never route to a canary that
the deciding reconciliation saw unready nor scale one down while it has traffic (the world
records both as violations while it applies actions).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from canary.domain.machine import Probe
from canary.domain.status import Phase, Verdict
from canary.domain.weights import Weights
from tests.domain.world import SUCCESS_RATE, T0, World, check, distinct, hook, initialized, make_spec

STEP = timedelta(seconds=20)
MILESTONES = ("Initializing", "Initialized", "Started", "Restarted", "Advanced", "Promoting", "Finalising",
              "Succeeded", "RolledBack", "PromotionFailed", "Cancelled", "Terminating", "Terminated", "Paused",
              "Resumed")


def passing(probe: Probe, world: World) -> tuple[Any, ...]:
    """Every check passes; the rollback webhook says "do not roll back"."""
    return (check(probe.value, Verdict.FAIL if probe is Probe.ROLLBACK else Verdict.PASS),)


def failing_from(weight: int) -> Callable[[Probe, World], tuple[Any, ...]]:
    def answer(probe: Probe, world: World) -> tuple[Any, ...]:
        bad = probe is Probe.METRICS and world.status.canary_weight >= weight
        return (check(probe.value, Verdict.FAIL if bad or probe is Probe.ROLLBACK else Verdict.PASS),)
    return answer


def gates_closed_until(minutes: int) -> Callable[[Probe, World], tuple[Any, ...]]:
    def answer(probe: Probe, world: World) -> tuple[Any, ...]:
        closed = probe.value.startswith("confirm") and world.now < T0 + timedelta(minutes=minutes)
        return (check(probe.value, Verdict.FAIL if closed or probe is Probe.ROLLBACK else Verdict.PASS),)
    return answer


@dataclass(frozen=True)
class Scenario:
    start: Callable[[bool], World]
    done: Callable[[World], bool]
    #: Something the outside world does once the release reaches a point (a push, a deletion).
    trigger: Callable[[World], None] = lambda world: None


def _release(slow: bool, answer: Callable[[Probe, World], tuple[Any, ...]] = passing, **analysis: Any) -> World:
    world = initialized(make_spec(**analysis), slow=slow, answer=answer)
    world.decisions.clear()
    world.events.clear()
    world.route_history.clear()
    world.push("rev2")
    return world


def _finished(world: World) -> bool:
    return world.status.phase in (Phase.SUCCEEDED, Phase.FAILED)


def _push_rev3_at_50(world: World) -> None:
    if world.target_rev == "rev2" and world.route.weights == Weights(50, 50):
        world.push("rev3")


def _delete_at_25(world: World) -> None:
    if world.route.weights == Weights(75, 25):
        world.deleting = True


def _rollback_by_hand_at_25(world: World) -> None:
    if world.route.weights == Weights(75, 25):
        world.annotations["canary.dev/rollback"] = "paged: latency"


def _pause_at_25_for_5m(world: World) -> None:
    key = "canary.dev/pause"
    if "paused_at" not in world.notes and world.route.weights == Weights(75, 25):
        world.annotations[key] = "true"
        world.notes["paused_at"] = world.now
    elif key in world.annotations and world.now - world.notes["paused_at"] >= timedelta(minutes=5):
        del world.annotations[key]


def _fresh(slow: bool) -> World:
    return World(spec=make_spec(), slow=slow)


ALL_HOOKS = [hook(k) for k in ("pre-rollout", "rollout", "rollback", "confirm-traffic-increase", "confirm-promotion",
                               "post-rollout")]
SCENARIOS: dict[str, Scenario] = {
    "initialisation": Scenario(_fresh, lambda w: w.status.phase is Phase.INITIALIZED and w.target_replicas == 0),
    "canary": Scenario(lambda slow: _release(slow, metrics=[SUCCESS_RATE]), _finished),
    "step-weights-all-hooks": Scenario(
        lambda slow: _release(slow, stepWeight=None, maxWeight=None, stepWeights=[5, 20, 40], metrics=[SUCCESS_RATE],
                              webhooks=ALL_HOOKS), _finished),
    "promotion-steps": Scenario(
        lambda slow: _release(slow, stepWeight=20, maxWeight=60, stepWeightPromotion=25), _finished),
    "blue-green": Scenario(
        lambda slow: _release(slow, stepWeight=None, maxWeight=None, iterations=3, metrics=[SUCCESS_RATE]),
        _finished),
    "gates-closed-a-while": Scenario(
        lambda slow: _release(slow, gates_closed_until(3), webhooks=[hook("confirm-rollout"),
                                                                     hook("confirm-promotion")]), _finished),
    "rollback-at-50": Scenario(
        lambda slow: _release(slow, failing_from(50), metrics=[SUCCESS_RATE], threshold=2), _finished),
    "restart-at-50": Scenario(
        lambda slow: _release(slow, metrics=[SUCCESS_RATE]),
        lambda w: _finished(w) and w.status.last_applied_spec == "rev3", _push_rev3_at_50),
    "rollback-annotation-at-25": Scenario(
        lambda slow: _release(slow, metrics=[SUCCESS_RATE]), _finished, _rollback_by_hand_at_25),
    "pause-at-25": Scenario(
        lambda slow: _release(slow, metrics=[SUCCESS_RATE]), _finished, _pause_at_25_for_5m),
    "delete-at-25": Scenario(
        lambda slow: _release(slow, _spec={"revertOnDeletion": True}),
        lambda w: w.status.phase is Phase.TERMINATED, _delete_at_25),
}


def _lose_actions(world: World) -> None:
    world.reconcile(apply=0)
    world.reconcile()


def _not_written(world: World) -> None:
    before = world.observe()
    lost = world.reconcile(write=False)
    same_facts = world.observe() == before  # readiness may have moved on in the slow world
    again = world.reconcile()
    if same_facts:
        assert again == lost, "the same facts at the same time give the same decision"


def _partial(applied: int, *, late: bool = False, write: bool = True) -> Callable[[World], None]:
    def crash(world: World) -> None:
        world.reconcile(apply=applied, write=write)
        if not late:
            world.reconcile()
    return crash


CRASHES: dict[str, Callable[[World], None]] = {
    "actions-lost": _lose_actions,
    "actions-lost-late": _partial(0, late=True),
    "first-action-only": _partial(1),
    "last-action-lost": _partial(-1),
    "not-written": _not_written,
    "not-written-late": _partial(0, late=True, write=False),
}


@dataclass
class Run:
    world: World
    decisions: int


def drive(name: str, slow: bool, crash: tuple[int, str] | None = None) -> Run:
    scenario = SCENARIOS[name]
    world = scenario.start(slow)
    n = 0
    for _ in range(300):
        if scenario.done(world):
            break
        scenario.trigger(world)
        world.now += STEP
        if crash is not None and crash[0] == n:
            CRASHES[crash[1]](world)
        else:
            world.reconcile()
        n += 1
    else:
        raise AssertionError(f"{name}: not done: {world.status.phase} {world.status.canary_weight}")
    # Let the cluster settle: whatever the last decision ordered is carried out.
    for _ in range(3):
        world.now += STEP
        world.reconcile()
    return Run(world, n)


def final_state(world: World) -> tuple[Any, ...]:
    s = world.status
    return (s.phase, s.last_applied_spec, s.last_promoted_spec, s.canary_weight, s.failed_checks,
            dict(s.handled_annotations),
            world.route.weights if world.route.exists else None, world.target_replicas, world.primary.checksum,
            world.services)


def milestones(world: World) -> Counter[str]:
    return Counter(r for r in world.reasons() if r in MILESTONES)


def route_steps(world: World) -> list[int]:
    # Dips to 0% while a canary is briefly unready are allowed; the steps themselves are not.
    return distinct(w.canary for w in world.route_history if w.canary > 0)


BASELINES = {(name, slow): drive(name, slow) for name in SCENARIOS for slow in (False, True)}


def _cases() -> list[Any]:
    cases = []
    for (name, slow), run in BASELINES.items():
        for index in range(run.decisions):
            for kind in CRASHES:
                cases.append(pytest.param(name, slow, index, kind,
                                          id=f"{name}-{'slow' if slow else 'instant'}-d{index}-{kind}"))
    return cases


@pytest.mark.parametrize("name, slow", list(BASELINES), ids=[f"{n}-{'slow' if s else 'instant'}" for n, s in BASELINES])
def test_baseline_is_a_clean_release(name: str, slow: bool) -> None:
    world = BASELINES[(name, slow)].world
    expected = {"rollback-annotation-at-25": Phase.FAILED, "rollback-at-50": Phase.FAILED,
                "delete-at-25": Phase.TERMINATED, "initialisation": Phase.INITIALIZED}.get(name, Phase.SUCCEEDED)
    assert world.status.phase is expected
    if name == "pause-at-25":
        paused = [d.status.canary_weight for d in world.decisions
                  if d.status.handled_annotations.get("pause") == "true"]
        assert len(paused) > 5 and set(paused) == {25}, "the weight stayed put while paused"
    assert world.violations == []
    assert "RouteRestored" not in world.reasons()
    assert world.decisions[-1].actions == ()


@pytest.mark.parametrize("name, slow, index, kind", _cases())
def test_a_crash_at_any_decision_changes_nothing(name: str, slow: bool, index: int, kind: str) -> None:
    baseline = BASELINES[(name, slow)].world
    world = drive(name, slow, (index, kind)).world
    assert world.violations == []
    assert final_state(world) == final_state(baseline)
    assert world.weights_seen() == baseline.weights_seen(), "a weight step was skipped or repeated"
    assert route_steps(world) == route_steps(baseline)
    assert milestones(world) == milestones(baseline)
    if kind.startswith("not-written"):
        assert "RouteRestored" not in world.reasons()
