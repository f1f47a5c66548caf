"""Whole releases through ``CanaryReconciler.reconcile_once`` against the in-memory cluster."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from canary.domain.event_facts import EventFacts
from canary.domain.status import CheckKind, ConditionType, Phase, Verdict
from canary.domain.weights import ALL_PRIMARY, Weights
from canary.errors import ApiError
from canary.kube.revision import REVISION_ANNOTATION
from tests.kube.fake_cluster import Call, FakeCluster
from tests.kube.harness import (
    GATEWAY, IMAGE, LINKERD_SMI, NS, SMI, FakeEngine, Release, canary_body, cluster_with_app, config_map, release,
)
from tests.kube.webhook_gate import Gate, serve_gate


def _index(cluster: FakeCluster, match: Callable[[Call], bool], start: int = 0) -> int:
    for i, call in enumerate(cluster.calls[start:], start):
        if match(call):
            return i
    raise AssertionError(f"no such call among {[(c.method, c.args[:1]) for c in cluster.calls[start:]]}")


def _is_route_write(weights: Weights) -> Callable[[Call], bool]:
    def match(call: Call) -> bool:
        return (call.method in ("create_namespaced_custom_object", "replace_namespaced_custom_object")
                and call.body.get("kind") in ("TrafficSplit", "HTTPRoute")
                and FakeCluster.route_weights(call) == weights)
    return match


def _is_target_scale(replicas: int) -> Callable[[Call], bool]:
    def match(call: Call) -> bool:
        return (call.method == "patch_namespaced_deployment" and call.args[0] == "podinfo"
                and call.body["spec"] == {"replicas": replicas}
                and bool(call.body["metadata"]["resourceVersion"]))
    return match


def _expected_primary_template(target: dict[str, Any], revision: str) -> dict[str, Any]:
    """The target's pod template with what makes it the primary's: the selector label suffixed,
    the copied ConfigMap/Secret renamed (the optional one that does not exist is not), and the
    revision annotation."""
    template: dict[str, Any] = copy.deepcopy(target["spec"]["template"])
    template["metadata"]["labels"]["app"] = "podinfo-primary"
    template["metadata"]["annotations"][REVISION_ANNOTATION] = revision
    container = template["spec"]["containers"][0]
    container["envFrom"][0]["configMapRef"]["name"] = "podinfo-config-primary"
    container["env"][0]["valueFrom"]["secretKeyRef"]["name"] = "podinfo-token-primary"
    assert template["spec"]["volumes"][0]["configMap"]["name"] == "podinfo-extra"
    return template


def _phase(r: Release) -> Phase | None:
    """Read through a call: mypy would carry an earlier assert's narrowing of ``r.status.phase``."""
    return r.status.phase


def _service(cluster: FakeCluster, name: str) -> dict[str, Any]:
    found = cluster.get("Service", NS, name)
    assert found is not None, f"no Service {name}"
    return found


# --- initialization ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("served", "provider", "api_version", "kind"),
    [
        pytest.param(LINKERD_SMI, "smi", f"{SMI}/v1alpha2", "TrafficSplit", id="linkerd-v1alpha1+v1alpha2"),
        pytest.param({SMI: ["v1alpha3"]}, "smi", f"{SMI}/v1alpha3", "TrafficSplit", id="traefik-v1alpha3"),
        pytest.param({SMI: ["v1alpha4"]}, "smi", f"{SMI}/v1alpha4", "TrafficSplit", id="sdk-v1alpha4"),
        pytest.param(LINKERD_SMI, "smi:v1alpha1", f"{SMI}/v1alpha1", "TrafficSplit", id="pinned-v1alpha1"),
        pytest.param({**LINKERD_SMI, GATEWAY: ["v1"]}, "gatewayapi", f"{GATEWAY}/v1", "HTTPRoute", id="gatewayapi"),
        pytest.param(LINKERD_SMI, None, f"{SMI}/v1alpha2", "TrafficSplit", id="default-provider"),
    ],
)
async def test_initialization(served: dict[str, list[str]], provider: str | None, api_version: str,
                              kind: str) -> None:
    cluster = cluster_with_app(served)
    target = copy.deepcopy(cluster.get("Deployment", NS, "podinfo"))
    assert target is not None
    async with release(cluster, canary_body(provider=provider)) as r:
        await r.initialize()
        status = r.status
        assert status.phase is Phase.INITIALIZED
        assert status.last_applied_spec == status.last_promoted_spec != ""
        assert r.condition(ConditionType.READY)[0] is True
        assert [e["reason"] for e in cluster.events()] == ["Initializing", "Initialized"]

    primary = r.deployment("podinfo-primary")
    assert primary["spec"]["selector"] == {"matchLabels": {"app": "podinfo-primary"}}
    assert primary["spec"]["replicas"] == 2
    assert primary["spec"]["template"] == _expected_primary_template(target, status.last_applied_spec)
    assert primary["metadata"]["annotations"] == {REVISION_ANNOTATION: status.last_applied_spec}
    assert primary["metadata"]["ownerReferences"][0]["uid"] == "canary-uid-1"
    copied = cluster.get("ConfigMap", NS, "podinfo-config-primary")
    assert copied is not None and copied["data"] == config_map()["data"]
    token = cluster.get("Secret", NS, "podinfo-token-primary")
    assert token is not None and token["data"] == {"token": "czNjcjN0"}

    assert _service(cluster, "podinfo")["spec"]["selector"] == {"app": "podinfo-primary"}
    assert _service(cluster, "podinfo-primary")["spec"]["selector"] == {"app": "podinfo-primary"}
    assert _service(cluster, "podinfo-canary")["spec"]["selector"] == {"app": "podinfo"}

    route = cluster.get(kind, NS, "podinfo")
    assert route is not None
    assert route["apiVersion"] == api_version
    assert cluster.route_writes() == [ALL_PRIMARY]
    assert r.deployment("podinfo")["spec"]["replicas"] == 0
    # Traffic is on the primary before the target loses its pods.
    assert _index(cluster, _is_route_write(ALL_PRIMARY)) < _index(cluster, _is_target_scale(0))
    # Services are made only for a primary that exists (and is ready: see the next test).
    assert _index(cluster, lambda c: c.method == "create_namespaced_deployment") < \
        _index(cluster, lambda c: c.method == "create_namespaced_service")


APEX_IN_USE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "podinfo", "namespace": NS},
              "spec": {"selector": {"app": "podinfo"}, "ports": [{"name": "http", "port": 9898}]}}


async def test_initialization_waits_for_an_unready_primary_and_never_routes_to_it() -> None:
    cluster = cluster_with_app()
    cluster.apply(APEX_IN_USE)
    cluster.set_ready(NS, "podinfo-primary", False)
    async with release(cluster) as r:
        for _ in range(4):
            await r.reconcile()
            r.advance()
        assert r.status.phase is Phase.INITIALIZING
        # The apex Service keeps serving the target's pods until the primary is ready.
        assert _service(cluster, "podinfo")["spec"]["selector"] == {"app": "podinfo"}
        assert cluster.named("create_namespaced_service") == cluster.named("patch_namespaced_service") == []
        assert cluster.route_writes() == []
        assert r.deployment("podinfo")["spec"]["replicas"] == 2
        r.advance(timedelta(seconds=130))
        await r.reconcile()
        [not_ready] = cluster.events("NotReady")
        assert "podinfo-primary not ready after progressDeadlineSeconds (120s)" in not_ready["message"]
        assert "0 of 2 updated replicas available" in not_ready["message"]
        cluster.set_ready(NS, "podinfo-primary", True)
        cluster.tick()
        await r.run_until_phase(Phase.INITIALIZED)
    assert _service(cluster, "podinfo")["spec"]["selector"] == {"app": "podinfo-primary"}


async def test_an_idle_initialized_canary_makes_no_api_calls() -> None:
    async with release(cluster_with_app()) as r:
        await r.initialize()
        await r.reconcile()  # the watch echoes of the last writes
        calls = len(r.cluster.calls)
        for _ in range(3):
            r.advance(timedelta(minutes=10))
            assert await r.reconcile() is not None
        assert r.cluster.calls[calls:] == []


# --- releases ---------------------------------------------------------------------------------


async def test_a_new_image_walks_every_step_and_promotes() -> None:
    cluster = cluster_with_app()
    engine = FakeEngine(value=99.9)
    async with release(cluster, engine=engine) as r:
        await r.initialize()
        old_primary_template = r.deployment("podinfo-primary")["spec"]["template"]
        start = len(cluster.calls)
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.canary_weight == 50)
        # Nothing of the new version reached the primary while it was analysed.
        assert r.deployment("podinfo-primary")["spec"]["template"] == old_primary_template
        await r.run_until_phase(Phase.SUCCEEDED)
        status = r.status

    assert cluster.route_writes()[1:] == [Weights.canary_at(w) for w in (10, 20, 30, 40, 50)] + [ALL_PRIMARY]
    target = r.deployment("podinfo")
    assert target["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:6.0.1"
    assert target["spec"]["replicas"] == 0
    primary = r.deployment("podinfo-primary")
    assert primary["spec"]["template"] == _expected_primary_template(target, status.last_applied_spec)
    assert primary["metadata"]["annotations"][REVISION_ANNOTATION] == status.last_applied_spec
    assert status.last_promoted_spec == status.last_applied_spec
    assert status.canary_weight == 0
    # The canary got its pods back before any traffic, and lost them only after the traffic.
    assert _index(cluster, _is_target_scale(2), start) < _index(cluster, _is_route_write(Weights.canary_at(10)), start)
    assert _index(cluster, _is_route_write(ALL_PRIMARY), start) < _index(cluster, _is_target_scale(0), start)
    # Metrics are measured only once the canary has traffic: weights 10..50.
    assert len(engine.asked) == 5
    assert [e["reason"] for e in cluster.events()][2:] == [
        "Started", "Advanced", "Advanced", "Advanced", "Advanced", "Advanced", "Promoting", "Finalising", "Succeeded"]


async def test_a_failing_metric_rolls_back_routing_before_scaling_down() -> None:
    cluster = cluster_with_app()
    engine = FakeEngine(value=97.5)
    async with release(cluster, engine=engine) as r:
        await r.initialize()
        primary_before = r.deployment("podinfo-primary")
        start = len(cluster.calls)
        r.push("6.0.1")
        await r.run_until_phase(Phase.FAILED)
        status = r.status

    assert cluster.route_writes()[1:] == [Weights.canary_at(10), ALL_PRIMARY]
    rolled_back = _index(cluster, _is_route_write(ALL_PRIMARY), start)
    assert rolled_back < _index(cluster, _is_target_scale(0), start)
    assert r.deployment("podinfo")["spec"]["replicas"] == 0
    assert r.deployment("podinfo-primary")["spec"] == primary_before["spec"]
    assert status.failed_checks == 2
    assert status.last_promoted_spec != status.last_applied_spec
    [check] = status.checks
    assert (check.name, check.value, check.min) == ("request-success-rate", 97.5, 99)
    [failed] = cluster.events("CheckFailed")
    [rollback] = cluster.events("RolledBack")
    assert failed["type"] == rollback["type"] == "Warning"
    assert "97.5 is below the minimum 99" in rollback["message"]
    # The rollback's Event carries what it knew for notifiers and `canary report`.
    facts = EventFacts.from_event(rollback)
    assert facts is not None and facts.phase is Phase.FAILED and facts.canary_weight == 0
    assert facts.time is not None and facts.time.isoformat().startswith(rollback["firstTimestamp"][:19])
    [fact] = facts.failing_checks
    assert (fact.name, fact.value, fact.min, fact.verdict) == ("request-success-rate", 97.5, 99, Verdict.FAIL)
    ready, reason, _ = r.condition(ConditionType.STALLED)
    assert (ready, reason) == (True, "RolledBack")


async def test_a_configmap_change_starts_a_release_and_promotes_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await r.initialize()
        await r.reconcile()
        before = r.status.last_promoted_spec
        primary_generation = r.deployment("podinfo-primary")["metadata"]["generation"]
        woken: list[str] = []
        monkeypatch.setattr(r.reconciler, "wake", lambda: woken.append("wake"))
        cluster.apply(config_map({"PODINFO_UI_COLOR": "unrelated"}, name="other-config"))
        assert woken == []
        cluster.apply(config_map({"PODINFO_UI_COLOR": "#ff0000"}))
        assert woken == ["wake"]
        await r.reconcile()
        assert r.status.phase is Phase.PROGRESSING
        assert r.status.last_applied_spec != before
        # The primary keeps reading the copy taken at the last promotion.
        copy_before = cluster.get("ConfigMap", NS, "podinfo-config-primary")
        assert copy_before is not None and copy_before["data"] == {"PODINFO_UI_COLOR": "#34577c"}
        await r.run_until_phase(Phase.SUCCEEDED)
        status = r.status

    copied = cluster.get("ConfigMap", NS, "podinfo-config-primary")
    assert copied is not None and copied["data"] == {"PODINFO_UI_COLOR": "#ff0000"}
    assert status.last_promoted_spec == status.last_applied_spec != before
    primary = r.deployment("podinfo-primary")
    assert primary["metadata"]["annotations"][REVISION_ANNOTATION] == status.last_promoted_spec
    # The template itself did not change, yet the primary rolled out so its pods read the new copy.
    assert primary["metadata"]["generation"] > primary_generation
    assert primary["spec"]["template"]["metadata"]["annotations"][REVISION_ANNOTATION] == status.last_promoted_spec


async def test_status_patches_carry_phase_weight_and_checks() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.canary_weight == 20)

    patches = [c.body for c in cluster.named("patch_namespaced_custom_object_status")]
    assert all(set(p) == {"metadata", "status"} and set(p["metadata"]) == {"resourceVersion"} for p in patches)
    started = next(p["status"] for p in patches if p["status"].get("phase") == "Progressing")
    assert started.get("canaryWeight", 0) == 0
    assert len(started["lastAppliedSpec"]) == 16
    at_20 = next(p["status"] for p in patches if p["status"].get("canaryWeight") == 20)
    [check] = at_20["checks"]
    assert check == {
        "name": "request-success-rate", "kind": CheckKind.METRIC.value,
        "source": "success rate of test/podinfo over 0:01:00", "verdict": "Pass",
        "time": check["time"], "value": "99.9", "min": "99", "samples": "250", "message": "within bounds",
    }
    assert {c["type"] for c in at_20["conditions"]} == {"Ready", "Reconciling", "Stalled", "Promoted"}
    assert "lastAnalysisTime" in at_20


async def test_the_canary_is_only_ever_written_through_its_status_subresource() -> None:
    cluster = cluster_with_app()
    original = canary_body()
    engine = FakeEngine()
    async with release(cluster, original, engine=engine) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until_phase(Phase.SUCCEEDED)
        engine.value = 10
        r.advance()
        r.push("6.0.2")
        await r.run_until_phase(Phase.FAILED)
    canary_calls = {c.method for c in cluster.calls if c.touches("canaries")}
    assert canary_calls == {"patch_namespaced_custom_object_status"}
    stored = r.canary
    assert stored["spec"] == original["spec"]
    assert {k: v for k, v in stored["metadata"].items() if k not in ("resourceVersion", "creationTimestamp")} == {
        **original["metadata"], "generation": 1}


async def test_a_route_changed_by_hand_is_put_back_with_an_event() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await r.initialize()
        await r.reconcile()
        route = cluster.get("TrafficSplit", NS, "podinfo")
        assert route is not None
        route["spec"]["backends"][0]["weight"] = 50
        route["spec"]["backends"][1]["weight"] = 50
        cluster.apply(route)
        start = len(cluster.calls)
        await r.reconcile()
    [event] = cluster.events("RouteRestored")
    assert event["type"] == "Warning"
    assert "found 50/50" in event["message"] and "expected 100/0" in event["message"]
    assert event["involvedObject"]["kind"] == "Canary" and event["involvedObject"]["name"] == "podinfo"
    assert [c.method for c in cluster.calls[start:]] == ["create_namespaced_event", "replace_namespaced_custom_object"]
    restored = cluster.get("TrafficSplit", NS, "podinfo")
    assert restored is not None
    assert [b["weight"] for b in restored["spec"]["backends"]] == [100, 0]


async def test_a_new_revision_during_the_run_sends_traffic_back_and_starts_over() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.canary_weight == 20)
        first = r.status.last_applied_spec
        r.push("6.0.2")
        r.advance(timedelta(seconds=3))
        await r.reconcile()
        assert (r.status.phase, r.status.canary_weight) == (Phase.PROGRESSING, 0)
        assert r.status.last_applied_spec != first
        assert cluster.route_writes()[-1] == ALL_PRIMARY
        await r.run_until_phase(Phase.SUCCEEDED)
    assert cluster.route_writes()[1:] == [Weights.canary_at(w) for w in (10, 20)] + [ALL_PRIMARY] + [
        Weights.canary_at(w) for w in (10, 20, 30, 40, 50)] + [ALL_PRIMARY]
    assert r.deployment("podinfo-primary")["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:6.0.2"
    [restarted] = cluster.events("Restarted")
    assert "starting over" in restarted["message"]


async def test_revert_on_deletion_gives_the_apex_back_to_the_target() -> None:
    cluster = cluster_with_app()
    async with release(cluster, canary_body(revertOnDeletion=True)) as r:
        await r.initialize()
        await r.reconcile()
        assert r.canary["metadata"]["finalizers"] == ["canary.dev/revert-on-deletion"]
        start = len(cluster.calls)
        cluster.delete("Canary", NS, "podinfo")
        await r.run_until(lambda rel: cluster.get("Canary", NS, "podinfo") is None)
    scaled_up = _index(cluster, _is_target_scale(2), start)
    all_to_target = _index(cluster, _is_route_write(Weights(primary=0, canary=100)), start)
    apex_back = _index(cluster, lambda c: c.method == "patch_namespaced_service", start)
    route_gone = _index(cluster, lambda c: c.method == "delete_namespaced_custom_object", start)
    assert scaled_up < all_to_target < apex_back < route_gone
    apex = _service(cluster, "podinfo")
    assert apex["spec"]["selector"] == {"app": "podinfo"}
    assert "ownerReferences" not in apex["metadata"]
    assert cluster.get("TrafficSplit", NS, "podinfo") is None
    assert [e["reason"] for e in cluster.events()][-2:] == ["Terminating", "Terminated"]
    # The finalizer goes last, in a write of its own, once the target serves again.
    assert cluster.calls[-1].method == "patch_namespaced_custom_object"
    assert _index(cluster, lambda c: c.method == "patch_namespaced_custom_object", start) > route_gone


async def test_the_finalizer_follows_revert_on_deletion() -> None:
    cluster = cluster_with_app()
    async with release(cluster, canary_body(revertOnDeletion=True)) as r:
        await r.initialize()
        canary = r.canary
        canary["metadata"]["finalizers"] = ["example.com/keep", "canary.dev/revert-on-deletion"]
        cluster.objects[("Canary", NS, "podinfo")]["metadata"]["finalizers"] = canary["metadata"]["finalizers"]
        canary["spec"]["revertOnDeletion"] = False
        cluster.apply(canary)
        await r.reconcile()
        # Dropping the option drops our finalizer and nobody else's.
        assert r.canary["metadata"]["finalizers"] == ["example.com/keep"]


async def test_a_deletion_without_revert_on_deletion_is_not_held() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await r.initialize()
        assert not r.canary["metadata"].get("finalizers")
        cluster.delete("Canary", NS, "podinfo")
        assert cluster.get("Canary", NS, "podinfo") is None


# --- crash safety -----------------------------------------------------------------------------


async def test_a_restarted_controller_continues_without_repeating_a_step() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.canary_weight == 20)
        first = r.reconciler
        await r.restart()
        assert r.reconciler is not first
        writes = len(cluster.writes())
        # Woken by the restart itself, before the next step is due: nothing to do, nothing written.
        r.advance(timedelta(seconds=5))
        await r.reconcile()
        assert cluster.writes()[writes:] == []
        r.advance(timedelta(minutes=1))
        await r.reconcile()
        assert r.status.canary_weight == 30
    assert cluster.route_writes()[1:] == [Weights.canary_at(w) for w in (10, 20, 30)]


async def _crash_between_status_and_route_write(r: Release) -> None:
    await r.initialize()
    r.push("6.0.1")
    await r.run_until(lambda rel: rel.status.canary_weight == 10)
    r.advance()
    r.cluster.fail_next("replace_namespaced_custom_object")
    with pytest.raises(ApiError):
        await r.reconcile()
    # The status says 20 but the route still says 90/10: the controller died in between.
    assert r.status.canary_weight == 20
    assert _backend_weights(r.cluster) == [90, 10]
    await r.restart()
    await r.reconcile()


def _backend_weights(cluster: FakeCluster) -> list[int]:
    stored = cluster.get("TrafficSplit", NS, "podinfo")
    assert stored is not None
    return [b["weight"] for b in stored["spec"]["backends"]]


async def test_a_crash_between_status_and_route_write_is_repaired_on_restart() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await _crash_between_status_and_route_write(r)
        assert r.status.canary_weight == 20
        assert _backend_weights(cluster) == [80, 20]
        r.advance(timedelta(minutes=1))
        await r.reconcile()
        assert r.status.canary_weight == 30
    assert cluster.route_writes()[1:] == [Weights.canary_at(w) for w in (10, 20, 20, 30)]


async def test_repairing_our_own_unfinished_step_is_not_reported_as_outside_drift() -> None:
    cluster = cluster_with_app()
    async with release(cluster) as r:
        await _crash_between_status_and_route_write(r)
    assert cluster.events("RouteRestored") == []


# --- problems ---------------------------------------------------------------------------------


async def test_an_invalid_spec_is_stalled_with_one_event_and_touches_nothing() -> None:
    cluster = cluster_with_app()
    async with release(cluster, canary_body(analysis={"stepWeight": 60, "maxWeight": 50})) as r:
        await r.reconcile()
        stalled, reason, message = r.condition(ConditionType.STALLED)
        assert (stalled, reason) == (True, "InvalidSpec")
        assert "spec.analysis.maxWeight" in message
        assert r.condition(ConditionType.READY)[0] is False
        [event] = cluster.events("InvalidSpec")
        assert event["type"] == "Warning" and "spec.analysis.maxWeight" in event["message"]
        assert {c.method for c in cluster.writes()} == {"patch_namespaced_custom_object_status",
                                                        "create_namespaced_event"}
        calls = len(cluster.calls)
        r.advance(timedelta(minutes=5))
        await r.reconcile()
        assert cluster.calls[calls:] == []


@pytest.mark.parametrize(
    ("served", "provider", "hint"),
    [
        pytest.param({}, "smi", "trafficsplits.split.smi-spec.io", id="no-trafficsplit-crd"),
        pytest.param(LINKERD_SMI, "smi:v1alpha4", "pins TrafficSplit v1alpha4", id="pinned-version-not-served"),
        pytest.param(LINKERD_SMI, "gatewayapi", "httproutes.gateway.networking.k8s.io/v1", id="no-gateway-api"),
    ],
)
async def test_missing_router_crds_stall_naming_spec_provider(served: dict[str, list[str]], provider: str,
                                                              hint: str) -> None:
    cluster = cluster_with_app(served)
    async with release(cluster, canary_body(provider=provider)) as r:
        for _ in range(3):
            await r.reconcile()
            r.advance()
        stalled, reason, message = r.condition(ConditionType.STALLED)
    assert (stalled, reason) == (True, "RouterUnavailable")
    assert "spec.provider" in message and hint in message
    assert r.status.phase is None
    assert cluster.route_writes() == []


async def test_a_stalled_new_canary_never_points_the_apex_at_an_unready_primary() -> None:
    cluster = cluster_with_app()
    cluster.apply(APEX_IN_USE)
    cluster.set_ready(NS, "podinfo-primary", False)
    metrics = [{"name": "errors", "thresholdRange": {"max": 1}, "templateRef": {"name": "not-created-yet"}}]
    async with release(cluster, canary_body(analysis={"metrics": metrics})) as r:
        for _ in range(3):
            await r.reconcile()
            r.advance()
        assert r.condition(ConditionType.STALLED)[1] == "MetricTemplateNotFound"
    assert _service(cluster, "podinfo")["spec"]["selector"] == {"app": "podinfo"}


# --- metric templates and webhooks ------------------------------------------------------------


async def test_a_metric_template_with_credentials_is_measured_with_the_secret() -> None:
    cluster = cluster_with_app()
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-auth", "namespace": NS},
                   "data": {"token": "dG9rZW4="}})
    cluster.apply({"apiVersion": "canary.dev/v1alpha1", "kind": "MetricTemplate",
                   "metadata": {"name": "error-rate", "namespace": NS},
                   "spec": {"provider": {"type": "prometheus", "address": "http://prom:9090",
                                         "secretRef": {"name": "prom-auth"}},
                            "query": "sum(rate(errors{namespace='{{ namespace }}'}[{{ interval }}]))"}})
    metrics = [{"name": "errors", "thresholdRange": {"max": 100}, "templateRef": {"name": "error-rate"}}]
    engine = FakeEngine(value=1)
    async with release(cluster, canary_body(analysis={"metrics": metrics}), engine=engine) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.canary_weight == 20)
    [request] = engine.asked[0]
    assert request.template is not None and request.template.provider.secret_ref == "prom-auth"
    assert engine.credentials[0] == {"prom-auth": {"token": "token"}}
    assert ("read_namespaced_secret", ("prom-auth", NS)) in [(c.method, c.args) for c in cluster.calls]


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    async with serve_gate() as found:
        yield found


async def test_a_confirm_rollout_webhook_holds_the_release_until_it_says_yes(gate: Gate) -> None:
    cluster = cluster_with_app()
    hooks = [{"name": "approve", "type": "confirm-rollout", "url": gate.url, "timeout": "2s"}]
    async with release(cluster, canary_body(analysis={"webhooks": hooks})) as r:
        await r.initialize()
        assert gate.received == []
        promoted = r.status.last_promoted_spec
        r.push("6.0.1")
        await r.reconcile()
        assert _phase(r) is Phase.WAITING
        assert r.deployment("podinfo")["spec"]["replicas"] == 0
        [payload] = gate.received
        assert payload["name"] == "podinfo" and payload["namespace"] == NS
        # The gate is asked about the revision about to start, not the one running.
        assert payload["checksum"] != promoted
        [check] = r.status.checks
        assert (check.kind, check.source, check.message) == (CheckKind.WEBHOOK, gate.url, "HTTP 403: not yet")
        gate.status = 200
        r.advance()
        await r.reconcile()
        assert _phase(r) is Phase.PROGRESSING
        assert r.status.last_applied_spec == payload["checksum"]
