"""A DaemonSet released like a Deployment (Flagger's ``targetRef.kind: DaemonSet``).

The controller runs as a real process; the DaemonSet controller of the real kube-controller-
manager schedules one pod per kwok Node, and "scaled to zero" is the controller's node selector
that no Node matches. Traffic goes through the simulated mesh, and its own counts prove the split.
The builtin checks read the DaemonSet's own series (Linkerd's ``daemonset`` label), from
Prometheus or through the Traffic Metrics API; with no data they would hold the release.
"""

from __future__ import annotations

from typing import Any

import pytest

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import ReleaseWatcher, route_shares, template_version
from e2e.harness.traffic import assert_share_matches, requests_by_canary_weight

NAME = "podinfo"
RPS = 40
#: The controller's node selector for "no pods" (canary/kube/workload_kinds/daemonset.py), read
#: here off the object as an outsider would.
SCALE_TO_ZERO = ("canary.dev/scale-to-zero", "true")
ALL_TO_PRIMARY = {f"{NAME}-primary": 1.0, f"{NAME}-canary": 0.0}


def _running_pods(kube: Kube, app_label: str) -> list[dict[str, Any]]:
    return [p for p in kube.pods(f"app={app_label}")
            if not p["metadata"].get("deletionTimestamp") and (p.get("status") or {}).get("phase") == "Running"]


def _rolled_out(ds: dict[str, Any], nodes: int) -> bool:
    st = ds.get("status") or {}
    return (int(st.get("observedGeneration") or 0) >= int(ds["metadata"]["generation"])
            and int(st.get("desiredNumberScheduled") or 0) == nodes
            and int(st.get("updatedNumberScheduled") or 0) == nodes
            and int(st.get("numberAvailable") or 0) == nodes)


def _scaled_to_zero(kube: Kube) -> bool:
    selector = (kube.daemonset(NAME)["spec"]["template"]["spec"].get("nodeSelector") or {})
    return selector.get(SCALE_TO_ZERO[0]) == SCALE_TO_ZERO[1] and _running_pods(kube, NAME) == []


@pytest.mark.parametrize("metrics_source", ["prometheus", "smi"])
def test_a_daemonset_is_initialized_analysed_and_promoted(env: Environment, kube: Kube,
                                                          start_controller: StartController, metrics_source: str,
                                                          request: pytest.FixtureRequest) -> None:
    env.use_flavour("linkerd")
    if metrics_source == "smi":
        request.getfixturevalue("smi_metrics")  # starts the metrics server once per session
        start_controller(metrics_source="smi")
    else:
        start_controller()
    nodes = len(kube.core.list_node().items)
    assert nodes >= 2, "one pod per Node: a split needs more than one Node to mean anything"
    kube.create(app.daemonset(NAME, kube.namespace, annotations=app.behaviour("1")))
    kube.create(app.canary(NAME, kube.namespace, target_kind="DaemonSet", step_weight=20, max_weight=60))

    kube.wait_for_phase(NAME, "Initialized", timeout=90)
    primary = wait_for(lambda: kube.daemonset(f"{NAME}-primary"), lambda ds: _rolled_out(ds, nodes), timeout=60,
                       what=f"{NAME}-primary on every Node")
    assert template_version(primary) == "1"
    assert "nodeSelector" not in primary["spec"]["template"]["spec"], "the primary must run on every Node"
    wait_for(lambda: len(_running_pods(kube, f"{NAME}-primary")), lambda n: n == nodes, timeout=30,
             what=f"one {NAME}-primary pod per Node")
    wait_for(lambda: _scaled_to_zero(kube), bool, timeout=30, what=f"{NAME} scheduled on no Node")
    assert route_shares(kube, NAME, env.route_provider) == ALL_TO_PRIMARY

    env.mesh.client.set_load(kube.namespace, NAME, RPS)
    with ReleaseWatcher(kube, NAME) as watcher:
        env.mesh.client.reset_stats(kube.namespace, NAME)
        before = kube.status(NAME).get("lastAppliedSpec")
        kube.patch_daemonset_template_annotations(NAME, app.behaviour("2"))
        wait_for(lambda: kube.status(NAME), lambda st: st.get("lastAppliedSpec") != before, timeout=30,
                 what="the controller to start the release")
        final = kube.wait_for_phase(NAME, "Succeeded", "Failed", timeout=150)

    assert final["phase"] == "Succeeded", final
    sources = {c["name"]: str(c.get("source", "")) for c in final.get("checks") or [] if c.get("kind") == "metric"}
    assert set(sources) == {"request-success-rate", "request-duration"}, final.get("checks")
    expected = (f"/namespaces/{kube.namespace}/daemonsets/{NAME}?" if metrics_source == "smi"
                else f'daemonset="{NAME}"')
    assert all(expected in source for source in sources.values()), sources
    assert [w for w in watcher.weights() if w] == [20, 40, 60], watcher.samples
    promoted = wait_for(lambda: kube.daemonset(f"{NAME}-primary"), lambda ds: _rolled_out(ds, nodes), timeout=60,
                        what=f"{NAME}-primary rolled out with the promoted template")
    assert template_version(promoted) == "2", "the primary must run the promoted template"
    assert "nodeSelector" not in promoted["spec"]["template"]["spec"]
    assert route_shares(kube, NAME, env.route_provider) == ALL_TO_PRIMARY
    wait_for(lambda: _scaled_to_zero(kube), bool, timeout=30, what=f"{NAME} back on no Node after promotion")

    # The canary's pods (scheduled again for the analysis) served their share at every step.
    by_weight = requests_by_canary_weight(env.mesh.client.stats(kube.namespace, NAME), f"{NAME}-canary")
    for weight in (20, 40, 60):
        assert weight in by_weight, f"the data plane never routed at {weight}%: {by_weight}"
        assert_share_matches(by_weight[weight], weight / 100)


def test_a_daemonset_version_with_errors_is_rolled_back(env: Environment, kube: Kube,
                                                         start_controller: StartController) -> None:
    env.use_flavour("linkerd")
    start_controller()
    nodes = len(kube.core.list_node().items)
    kube.create(app.daemonset(NAME, kube.namespace, annotations=app.behaviour("1")))
    kube.create(app.canary(NAME, kube.namespace, target_kind="DaemonSet", threshold=2))
    kube.wait_for_phase(NAME, "Initialized", timeout=90)
    primary_before = wait_for(lambda: kube.daemonset(f"{NAME}-primary"), lambda ds: _rolled_out(ds, nodes),
                              timeout=60, what=f"{NAME}-primary on every Node")
    env.mesh.client.set_load(kube.namespace, NAME, RPS)

    before = kube.status(NAME).get("lastAppliedSpec")
    kube.patch_daemonset_template_annotations(NAME, app.behaviour("2-broken", error_rate=0.5))
    wait_for(lambda: kube.status(NAME), lambda st: st.get("lastAppliedSpec") != before, timeout=30,
             what="the controller to start the release")
    final = kube.wait_for_phase(NAME, "Failed", "Succeeded", timeout=120)

    assert final["phase"] == "Failed", final
    failed = [c for c in final.get("checks") or [] if c["name"] == "request-success-rate" and c["verdict"] != "Pass"]
    assert failed, f"the rollback must come from the success-rate check: {final.get('checks')}"
    primary = kube.daemonset(f"{NAME}-primary")
    assert primary["metadata"]["generation"] == primary_before["metadata"]["generation"], "the primary never changed"
    assert template_version(primary) == "1"
    wait_for(lambda: route_shares(kube, NAME, env.route_provider), lambda shares: shares == ALL_TO_PRIMARY,
             timeout=30, what="all traffic back on the primary")
    wait_for(lambda: _scaled_to_zero(kube), bool, timeout=30, what=f"{NAME} back on no Node after the rollback")
