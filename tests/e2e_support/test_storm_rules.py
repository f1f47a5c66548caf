"""The kill storm's judge (e2e/harness/storm.py) on hand-made histories: it must catch what it
claims to catch, and stay quiet on the orders of writes the controller is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.harness.route_watch import Change
from e2e.harness.storm import (
    ReleasePlan,
    ReleaseResult,
    deployment_ready,
    phases_of,
    primary_versions,
    release_bound,
    route_percent,
    route_states,
    route_violations,
)

APEX = "storm-a"


def split(rv: int, primary: object, canary: object, version: str = "v1alpha2") -> Change:
    body = {"apiVersion": f"split.smi-spec.io/{version}", "metadata": {"name": APEX, "resourceVersion": str(rv)},
            "spec": {"backends": [{"service": f"{APEX}-primary", "weight": primary},
                                  {"service": f"{APEX}-canary", "weight": canary}]}}
    return Change(rv=rv, kind="TrafficSplit", name=APEX, type="MODIFIED", at=float(rv), body=body)


def target(rv: int, replicas: int, ready: int, *, name: str = APEX, version: str = "2",
           generation: int = 1, observed: int = 1) -> Change:
    body: dict[str, Any] = {
        "metadata": {"name": name, "resourceVersion": str(rv), "generation": generation},
        "spec": {"replicas": replicas,
                 "template": {"metadata": {"annotations": {"sim.canary.dev/version": version}}}},
        "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": replicas,
                   "availableReplicas": ready, "readyReplicas": ready},
    }
    return Change(rv=rv, kind="Deployment", name=name, type="MODIFIED", at=float(rv), body=body)


def canary(rv: int, phase: str, revision: str) -> Change:
    body = {"metadata": {"name": APEX, "resourceVersion": str(rv)},
            "status": {"phase": phase, "lastAppliedSpec": revision}}
    return Change(rv=rv, kind="Canary", name=APEX, type="MODIFIED", at=float(rv), body=body)


def test_the_allowed_orders_are_clean() -> None:
    # Scale up, ready, then weight; weight back to 0, then scale down.
    history = [split(1, 100, 0), target(2, 2, 0), target(3, 2, 2), split(4, 80, 20), split(5, 60, 40),
               split(6, 100, 0), target(7, 0, 0)]
    assert route_violations(history, APEX) == []
    assert route_states(history, APEX) == (4, 2)


def test_weight_written_before_the_canary_was_ready_is_caught() -> None:
    history = [split(1, 100, 0), target(2, 2, 0), split(3, 80, 20), target(4, 2, 2)]
    [violation] = route_violations(history, APEX)
    assert violation.rv == 3 and violation.rule == "weight on an unready canary"


def test_scale_down_before_the_route_moved_is_caught() -> None:
    history = [target(1, 2, 2), split(2, 60, 40), target(3, 0, 0), split(4, 100, 0)]
    [violation] = route_violations(history, APEX)
    assert violation.rv == 3 and "scaled to 0" in violation.detail


def test_order_is_the_writes_not_the_arrivals() -> None:
    # Arrived in the wrong order (two watch streams), written in the right one.
    arrived = [split(4, 80, 20), target(3, 2, 2), target(2, 2, 0)]
    assert route_violations(sorted(arrived, key=lambda c: c.rv), APEX) == []


def test_weights_must_add_up() -> None:
    assert [v.rule for v in route_violations([target(1, 2, 2), split(2, 70, 20)], APEX)] == [
        "weights do not add up to 100"
    ]
    assert route_violations([target(1, 2, 2), split(2, "600m", "400m", version="v1alpha1")], APEX) == []
    assert route_percent(split(1, "1", "0", version="v1alpha1").body) == {f"{APEX}-primary": 100, f"{APEX}-canary": 0}


@pytest.mark.parametrize(
    ("replicas", "ready", "generation", "observed", "expected"),
    [(2, 2, 1, 1, True), (0, 0, 1, 1, False), (2, 1, 1, 1, False), (2, 2, 2, 1, False)],
)
def test_deployment_ready(replicas: int, ready: int, generation: int, observed: int, expected: bool) -> None:
    body = target(1, replicas, ready, generation=generation, observed=observed).body
    assert deployment_ready(body)[0] is expected


PLAN = ReleasePlan(app=APEX, version="3", faulty=True, error_rate=0.6, interval_s=1, threshold=2,
                   step_weight=25, max_weight=50)


def test_a_faulty_release_that_succeeded_is_wrong() -> None:
    history = [canary(1, "Progressing", "r3"), canary(2, "Succeeded", "r3"), canary(3, "Failed", "r3")]
    result = ReleaseResult(plan=PLAN, revision="r3", shipped_at=0.0, ended_at=3.0, final_phase="Failed",
                           phases=phases_of(history, APEX, "r3"), kills=1)
    result.judge(primary_versions([target(1, 2, 2, name=f"{APEX}-primary", version="2")], APEX))
    assert result.problems == ["faulty release reached Succeeded: ['Progressing', 'Succeeded', 'Failed']"]


def test_a_release_over_its_bound_is_wrong_and_kills_extend_the_bound() -> None:
    assert release_bound(PLAN, 2) - release_bound(PLAN, 1) == 35.0
    late = ReleaseResult(plan=PLAN, revision="r3", shipped_at=0.0, ended_at=release_bound(PLAN, 0) + 1,
                         final_phase="Failed", phases=["Progressing", "Failed"], kills=0)
    late.judge([])
    assert len(late.problems) == 1 and "over its bound" in late.problems[0]


def test_a_healthy_release_must_reach_the_primary() -> None:
    healthy = ReleaseResult(plan=ReleasePlan(**{**PLAN.__dict__, "faulty": False, "error_rate": 0.0}),
                            revision="r3", shipped_at=0.0, ended_at=5.0, final_phase="Succeeded",
                            phases=["Progressing", "Succeeded"], kills=1)
    healthy.judge(["2"])
    assert healthy.problems == ["healthy version 3 is not on the primary: ['2']"]
