"""A DaemonSet released end to end against the in-memory cluster: the same phases, routes and
order of writes as a Deployment, with "scaled to zero" meaning "scheduled on no node"."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from canary.domain.status import Phase
from canary.domain.weights import ALL_PRIMARY, Weights
from canary.kube.revision import REVISION_ANNOTATION
from canary.kube.workload_kinds.daemonset import SCALE_TO_ZERO_KEY
from tests.kube.fake_cluster import Call, FakeCluster
from tests.kube.harness import (
    IMAGE, LINKERD_SMI, NS, FakeEngine, canary_body, config_map, release, secret, target_daemonset,
)


def _cluster() -> FakeCluster:
    cluster = FakeCluster(served={k: list(v) for k, v in LINKERD_SMI.items()})
    for body in (config_map(), secret(), target_daemonset()):
        cluster.apply(body)
    cluster.tick()
    return cluster


def _canary() -> dict[str, Any]:
    body = canary_body()
    body["spec"]["targetRef"]["kind"] = "DaemonSet"
    return body


def _daemonset(cluster: FakeCluster, name: str) -> dict[str, Any]:
    found = cluster.get("DaemonSet", NS, name)
    assert found is not None, f"no DaemonSet {name}"
    return found


def _scheduled_nodes(cluster: FakeCluster, name: str) -> int:
    return int((_daemonset(cluster, name).get("status") or {}).get("desiredNumberScheduled") or 0)


def _is_target_scale(to_zero: bool) -> Callable[[Call], bool]:
    def match(call: Call) -> bool:
        if call.method != "patch_namespaced_daemon_set" or call.args[0] != "podinfo":
            return False
        selector = call.body["spec"]["template"]["spec"]["nodeSelector"]
        return selector == {SCALE_TO_ZERO_KEY: "true" if to_zero else None} and bool(
            call.body["metadata"]["resourceVersion"])
    return match


def _index(cluster: FakeCluster, match: Callable[[Call], bool], start: int = 0) -> int:
    return next(i for i, call in enumerate(cluster.calls[start:], start) if match(call))


def _route_write(weights: Weights) -> Callable[[Call], bool]:
    def match(call: Call) -> bool:
        return call.method in ("create_namespaced_custom_object", "replace_namespaced_custom_object") and \
            call.body.get("kind") == "TrafficSplit" and FakeCluster.route_weights(call) == weights
    return match


async def test_a_daemonset_is_initialized_then_released_and_promoted() -> None:
    cluster = _cluster()
    assert _scheduled_nodes(cluster, "podinfo") == 3
    engine = FakeEngine(value=99.9)
    async with release(cluster, _canary(), engine=engine) as r:
        await r.initialize()
        initialized = r.status
        primary = _daemonset(cluster, "podinfo-primary")
        assert primary["metadata"]["annotations"] == {REVISION_ANNOTATION: initialized.last_applied_spec}
        assert primary["spec"]["selector"] == {"matchLabels": {"app": "podinfo-primary"}}
        assert "replicas" not in primary["spec"]
        assert "nodeSelector" not in primary["spec"]["template"]["spec"]
        assert _scheduled_nodes(cluster, "podinfo-primary") == 3
        # The target is "scaled to zero": still there, on no node, after traffic left it.
        assert _daemonset(cluster, "podinfo")["spec"]["template"]["spec"]["nodeSelector"] == {
            SCALE_TO_ZERO_KEY: "true"}
        assert _scheduled_nodes(cluster, "podinfo") == 0
        assert _index(cluster, _route_write(ALL_PRIMARY)) < _index(cluster, _is_target_scale(True))
        assert cluster.get("Deployment", NS, "podinfo-primary") is None

        start = len(cluster.calls)
        pushed = copy.deepcopy(_daemonset(cluster, "podinfo"))
        pushed["spec"]["template"]["spec"]["containers"][0]["image"] = f"{IMAGE}:6.0.1"
        cluster.apply(pushed)
        await r.run_until(lambda rel: rel.status.canary_weight == 50)
        # Scheduled again for the analysis, and the primary untouched meanwhile.
        assert _scheduled_nodes(cluster, "podinfo") == 3
        assert _daemonset(cluster, "podinfo-primary")["spec"] == primary["spec"]
        await r.run_until_phase(Phase.SUCCEEDED)
        status = r.status

    # Measured as a DaemonSet: the builtin checks pick the mesh's label for the kind.
    assert engine.asked and {r.target_kind for asked in engine.asked for r in asked} == {"DaemonSet"}
    assert status.last_applied_spec != initialized.last_applied_spec
    assert status.last_promoted_spec == status.last_applied_spec
    assert cluster.route_writes()[1:] == [Weights.canary_at(w) for w in (10, 20, 30, 40, 50)] + [ALL_PRIMARY]
    promoted = _daemonset(cluster, "podinfo-primary")
    assert promoted["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:6.0.1"
    assert promoted["spec"]["template"]["metadata"]["annotations"][REVISION_ANNOTATION] == status.last_applied_spec
    assert "nodeSelector" not in promoted["spec"]["template"]["spec"]
    assert _scheduled_nodes(cluster, "podinfo") == 0
    # Pods before traffic, traffic away before the pods go.
    assert _index(cluster, _is_target_scale(False), start) < _index(cluster, _route_write(Weights.canary_at(10)), start)
    assert _index(cluster, _route_write(ALL_PRIMARY), start) < _index(cluster, _is_target_scale(True), start)


async def test_scaling_the_target_to_zero_is_not_a_new_revision() -> None:
    cluster = _cluster()
    async with release(cluster, _canary()) as r:
        await r.initialize()
        revision = r.status.last_applied_spec
        await r.reconcile()  # the watch echoes of the last writes
        calls = len(cluster.calls)
        await r.reconcile()
        assert r.status.phase is Phase.INITIALIZED and r.status.last_applied_spec == revision
        assert cluster.writes()[calls:] == []
