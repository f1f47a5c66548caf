"""``desired_route`` and ``converge``: the cluster a status asks for, reached in a safe order."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from canary.domain.actions import (
    EnsurePrimary, EnsureServices, PromotePrimary, RestoreTarget, ScaleCanary, SetRoute,
)
from canary.domain.machine import converge, desired_route, uses_experiment_route
from canary.domain.observed import RouteState, WorkloadState
from canary.domain.status import CanaryStatus, Phase
from canary.domain.weights import ALL_PRIMARY, Weights
from tests.domain.world import NOW, World, make_spec, running, seen

SERVING = {Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING}
SCALED_DOWN = {Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED, Phase.WAITING, Phase.FINALISING}


@pytest.mark.parametrize("revision", ["rev2", "rev3"], ids=["analysed-revision", "newer-revision"])
@pytest.mark.parametrize("ready", [True, False], ids=["ready", "unready"])
@pytest.mark.parametrize("phase", list(Phase), ids=str)
def test_desired_route(phase: Phase, ready: bool, revision: str) -> None:
    status = running(phase, 30)
    got = desired_route(status, seen(ready=ready, rev=revision))
    if phase is Phase.TERMINATING:
        expected = Weights(0, 100) if ready else ALL_PRIMARY
    elif phase in SERVING and ready and revision == "rev2":
        expected = Weights(70, 30)
    else:
        expected = ALL_PRIMARY
    assert got == expected


@pytest.mark.parametrize("target, primary, expected", [
    ("rev2", "rev1", [PromotePrimary("rev2")]),
    ("rev3", "rev1", []),  # a newer push must not be copied unanalysed
    ("rev2", "rev2", []),
    ("rev3", "rev2", []),
], ids=["copy", "newer-push", "copied", "copied-then-pushed"])
def test_promote_primary_only_copies_the_analysed_revision(target: str, primary: str,
                                                           expected: list[PromotePrimary]) -> None:
    actions = converge(running(Phase.PROMOTING, 50), seen(rev=target, primary_rev=primary,
                                                         route=Weights.canary_at(50) if target == "rev2" else ALL_PRIMARY))
    assert [a for a in actions if isinstance(a, PromotePrimary)] == expected


@pytest.mark.parametrize("phase", [p for p in Phase if p is not Phase.PROMOTING], ids=str)
def test_only_promoting_copies(phase: Phase) -> None:
    assert not any(isinstance(a, PromotePrimary) for a in converge(running(phase, 0), seen(ready=False)))


@pytest.mark.parametrize("replicas", [0, 3], ids=["scaled-down", "scaled-up"])
@pytest.mark.parametrize("phase", [p for p in Phase if p not in (Phase.TERMINATING, Phase.TERMINATED,
                                                                 Phase.INITIALIZING)], ids=str)
def test_canary_replicas_per_phase(phase: Phase, replicas: int) -> None:
    status = running(phase, 0, primary_replicas=4)
    scale = [a for a in converge(status, seen(ready=False, replicas=replicas)) if isinstance(a, ScaleCanary)]
    if phase in SERVING:
        assert scale == ([ScaleCanary(4)] if replicas == 0 else [])
    else:
        assert phase in SCALED_DOWN
        assert scale == ([ScaleCanary(0)] if replicas else [])


@pytest.mark.parametrize("primary_replicas, expected", [(0, 1), (1, 1), (6, 6)])
def test_a_canary_is_scaled_like_the_primary_and_never_to_zero(primary_replicas: int, expected: int) -> None:
    actions = converge(running(Phase.PROGRESSING, 0, primary_replicas=primary_replicas), seen(replicas=0, ready=False))
    assert actions == (ScaleCanary(expected),)


@pytest.mark.parametrize("primary, services, route, expected", [
    (None, False, None, [EnsurePrimary(2)]),
    (False, False, None, []),  # the apex Service waits for ready primary pods
    (True, False, None, [EnsureServices()]),
    (True, True, None, [SetRoute(ALL_PRIMARY)]),
    (True, True, Weights(50, 50), [SetRoute(ALL_PRIMARY)]),
    (True, True, ALL_PRIMARY, []),
], ids=["nothing", "primary-unready", "primary-ready", "services", "odd-route", "done"])
def test_initialising_builds_in_stages(primary: bool | None, services: bool, route: Weights | None,
                                       expected: list[object]) -> None:
    status = CanaryStatus(phase=Phase.INITIALIZING, primary_replicas=2)
    observed = seen(primary_exists=primary is not None, primary_ready=bool(primary), services=services, route=route,
                    rev="rev1", primary_rev="rev1")
    assert list(converge(status, observed)) == expected


def test_after_initialisation_an_unready_primary_still_gets_its_services() -> None:
    status = running(Phase.SUCCEEDED, 0)
    observed = seen(primary_ready=False, services=False, route=None, ready=False, replicas=0)
    assert list(converge(status, observed)) == [EnsureServices()]


@pytest.mark.parametrize("ready, replicas, route, expected", [
    (False, 0, Weights(75, 25), [ScaleCanary(2)]),
    (False, 2, Weights(75, 25), []),
    (True, 2, Weights(75, 25), [SetRoute(Weights(0, 100)), RestoreTarget()]),
    (True, 2, Weights(0, 100), [RestoreTarget()]),
    (True, 2, None, [RestoreTarget()]),  # Services adopted before the route existed
], ids=["scale-up", "warming", "route-then-restore", "restore", "services-only"])
def test_terminating(ready: bool, replicas: int, route: Weights | None, expected: list[object]) -> None:
    status = running(Phase.TERMINATING, 25)
    assert list(converge(status, seen(ready=ready, replicas=replicas, route=route))) == expected


def test_terminated_does_nothing() -> None:
    broken = seen(ready=False, replicas=0, route=Weights(0, 100), primary_exists=False, services=False)
    assert converge(running(Phase.TERMINATED, 0), broken) == ()


# --- converge reaches its fixed point ------------------------------------------------------------------

BREAKAGES = {
    "intact": lambda w: None,
    "route-drifted": lambda w: setattr(w, "route", RouteState(exists=True, weights=Weights(0, 100))),
    "route-unrecognised": lambda w: setattr(w, "route", RouteState(exists=True, weights=None)),
    "route-deleted": lambda w: setattr(w, "route", RouteState()),
    "primary-deleted": lambda w: setattr(w, "primary", WorkloadState()),
    "services-deleted": lambda w: setattr(w, "services", False),
    "canary-scaled-up": lambda w: setattr(w, "target_replicas", 5),
    "canary-scaled-down": lambda w: setattr(w, "target_replicas", 0),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
@pytest.mark.parametrize("phase", [Phase.INITIALIZED, Phase.WAITING, Phase.PROGRESSING, Phase.WAITING_PROMOTION,
                                   Phase.PROMOTING, Phase.FINALISING, Phase.SUCCEEDED, Phase.FAILED], ids=str)
def test_converge_repairs_the_cluster_within_three_rounds(phase: Phase, breakage: str) -> None:
    world = World(spec=make_spec(), target_rev="rev2", primary=WorkloadState(True, "rev1", True, 2), services=True,
                  route=RouteState(True, Weights(75, 25) if phase in SERVING else ALL_PRIMARY),
                  target_replicas=2 if phase in SERVING else 0, now=NOW)
    BREAKAGES[breakage](world)
    status = running(phase, 25 if phase in SERVING else 0)
    for _ in range(3):
        observed = world.observe()
        world._seen = observed
        actions = converge(status, observed)
        if not actions:
            break
        for action in actions:
            world.apply(action)
    else:
        raise AssertionError(f"still acting after three rounds: {actions}")
    assert world.violations == []
    assert world.route.weights == desired_route(status, world.observe())
    assert world.primary.exists and world.services
    assert (world.target_replicas > 0) is (phase in SERVING)
    if phase is Phase.PROMOTING:
        assert world.primary.checksum == "rev2"


def test_converge_is_a_function_of_status_and_observation_only() -> None:
    status = running(Phase.PROGRESSING, 25)
    observed = seen(route=ALL_PRIMARY)
    assert converge(status, observed) == converge(replace(status, last_analysis_time=NOW + timedelta(days=1)),
                                                  observed)


EXPERIMENT_PHASES = {Phase.PROGRESSING, Phase.WAITING_PROMOTION}


@pytest.mark.parametrize("phase", list(Phase), ids=str)
def test_a_b_and_mirroring_route_the_experiment_only_while_the_canary_is_judged(phase: Phase) -> None:
    got = desired_route(running(phase, 0), seen(ready=True, rev="rev2"), experiment=True)
    if phase is Phase.TERMINATING:
        assert got == Weights(0, 100)
    elif phase in EXPERIMENT_PHASES:
        assert got == Weights(100, 0, experiment=True)
    else:
        assert got == ALL_PRIMARY and not got.experiment


def test_an_unready_canary_gets_no_experiment_traffic() -> None:
    assert desired_route(running(Phase.PROGRESSING, 0), seen(ready=False, rev="rev2"), experiment=True) == ALL_PRIMARY


@pytest.mark.parametrize("analysis, experiment", [
    ({"stepWeight": None, "maxWeight": None, "iterations": 3,
      "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}, True),
    ({"stepWeight": None, "maxWeight": None, "iterations": 3, "mirror": True}, True),
    ({"stepWeight": None, "maxWeight": None, "iterations": 3}, False),
    ({}, False),
], ids=["a-b", "mirror", "blue-green", "canary"])
def test_the_decision_asks_for_the_experiment_route_from_the_spec(analysis: dict[str, object], experiment: bool) -> None:
    assert uses_experiment_route(make_spec(**analysis)) is experiment
