from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from canary.domain.actions import Action, EnsureServices, RestoreTarget, ScaleCanary, SetRoute
from canary.domain.spec import parse_canary_spec
from canary.domain.status import CanaryStatus, CheckKind, CheckResult, Phase, Verdict
from canary.domain.weights import ALL_PRIMARY, Weights
from canary.errors import ApiError
from canary.kube.api import MERGE_PATCH
from canary.kube.cache import ClusterCache, Kind, ObjectKey
from canary.kube.execute import StaleWrite, Executor, Target, status_patch
from canary.kube.observe import observe
from canary.routers.smi import TrafficSplitRouter
from tests.kube.fake_cluster import FakeCluster, merge_patch
from tests.kube.harness import NS, T0, canary_body, cluster_with_app


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        pytest.param({"phase": "Progressing", "canaryWeight": 10}, {"phase": "Progressing", "canaryWeight": 10}, {},
                     id="unchanged"),
        pytest.param({"phase": "Progressing", "canaryWeight": 10}, {"phase": "Progressing", "canaryWeight": 20},
                     {"canaryWeight": 20}, id="scalar"),
        pytest.param({"phase": None}, {"phase": "Initializing"}, {"phase": "Initializing"}, id="first-value"),
        pytest.param({"waitingSince": "2026-01-01T00:00:00Z"}, {"waitingSince": None}, {"waitingSince": None},
                     id="value-cleared"),
        pytest.param({"handledAnnotations": {"pause": "true", "rollback": "x"}},
                     {"handledAnnotations": {"rollback": "x"}},
                     {"handledAnnotations": {"pause": None}}, id="nested-key-removed"),
        pytest.param({"handledAnnotations": {"pause": "true"}}, {"handledAnnotations": {}},
                     {"handledAnnotations": {"pause": None}}, id="nested-map-emptied"),
        pytest.param({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"c": 1}}}, {"a": {"b": {"d": None}}},
                     id="deeply-nested-removal"),
        pytest.param({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, {"a": {"c": 2}}, id="nested-key-added"),
        pytest.param({"checks": [{"name": "a"}, {"name": "b"}]}, {"checks": [{"name": "b"}]},
                     {"checks": [{"name": "b"}]}, id="lists-replaced-whole"),
        pytest.param({"checks": [{"name": "a"}]}, {"checks": []}, {"checks": []}, id="list-emptied"),
        pytest.param({"phase": "Succeeded", "kopf": {"progress": {"h": {"retries": 1}}}}, {"phase": "Failed"},
                     {"phase": "Failed"}, id="foreign-keys-untouched"),
        pytest.param({"a": "text"}, {"a": {"b": 1}}, {"a": {"b": 1}}, id="scalar-to-map"),
    ],
)
def test_status_patch(old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]) -> None:
    assert status_patch(old, new) == patch


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


CHECK = CheckResult(name="request-success-rate", kind=CheckKind.METRIC, source="q", verdict=Verdict.PASS, time=T0,
                    value=99.5, min=99)
STATUSES = [
    CanaryStatus(),
    CanaryStatus(phase=Phase.INITIALIZING, waiting_since=T0, primary_replicas=2),
    CanaryStatus(phase=Phase.PROGRESSING, canary_weight=20, checks=(CHECK,), last_analysis_time=T0,
                 handled_annotations={"pause": "true"}, last_applied_spec="b", last_promoted_spec="a"),
    CanaryStatus(phase=Phase.SUCCEEDED, last_applied_spec="b", last_promoted_spec="b", message="promoted"),
]


@pytest.mark.parametrize("old", STATUSES, ids=lambda s: str(s.phase))
@pytest.mark.parametrize("new", STATUSES, ids=lambda s: str(s.phase))
def test_applying_the_patch_gives_the_new_status_and_keeps_foreign_keys(old: CanaryStatus,
                                                                        new: CanaryStatus) -> None:
    stored = {**_strip_nulls(old.to_dict()), "kopf": {"progress": {"revert": {"retries": 2}}}}
    result = merge_patch(stored, status_patch(old.to_dict(), new.to_dict()))
    assert result == {**_strip_nulls(new.to_dict()), "kopf": {"progress": {"revert": {"retries": 2}}}}
    assert CanaryStatus.from_dict(result) == new


# --- the executor against the in-memory API server ----------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _target(cluster: FakeCluster, cache: ClusterCache, canary: dict[str, Any]) -> Target:
    for (kind, namespace, name), obj in cluster.objects.items():
        cache_kind = {"Deployment": Kind.DEPLOYMENT, "Service": Kind.SERVICE, "ConfigMap": Kind.CONFIG_MAP,
                      "Secret": Kind.SECRET}.get(kind)
        if cache_kind is not None:
            cache.put(ObjectKey(cache_kind, namespace, name), copy.deepcopy(obj))
        elif kind == "TrafficSplit":
            cache.put(ObjectKey.route("split.smi-spec.io", namespace, name), copy.deepcopy(obj))
    spec = parse_canary_spec(canary["spec"])
    router = TrafficSplitRouter("v1alpha2")
    return Target(canary=canary, spec=spec, observation=observe(canary, spec, cache, router), router=router)


async def test_first_status_write_includes_zero_values(session: aiohttp.ClientSession) -> None:
    # kubectl's WEIGHT and FAILEDCHECKS columns read these fields; a diff against the defaults
    # would leave them out of the first write and the columns blank.
    cluster = cluster_with_app()
    stored = cluster.apply(canary_body())
    executor = Executor(cluster.api, ClusterCache(), session)
    assert await executor.write_status(stored, CanaryStatus(), CanaryStatus(phase=Phase.INITIALIZED)) is not None
    [call] = cluster.calls
    assert call.body["status"]["canaryWeight"] == 0 and call.body["status"]["failedChecks"] == 0


async def test_write_status_skips_an_unchanged_status(session: aiohttp.ClientSession) -> None:
    cluster = cluster_with_app()
    stored = cluster.apply(canary_body())
    executor = Executor(cluster.api, ClusterCache(), session)
    same = CanaryStatus(phase=Phase.INITIALIZED)
    assert await executor.write_status(stored, same, same) is None
    assert cluster.calls == []
    written = await executor.write_status(stored, same, same.with_(phase=Phase.PROGRESSING))
    assert written is not None and written["status"]["phase"] == "Progressing"
    [call] = cluster.calls
    assert call.method == "patch_namespaced_custom_object_status"
    assert call.kwargs == {"_content_type": MERGE_PATCH}
    assert call.body == {"metadata": {"resourceVersion": stored["metadata"]["resourceVersion"]},
                         "status": {"phase": "Progressing"}}


async def test_a_status_written_since_the_decision_refuses_ours(session: aiohttp.ClientSession) -> None:
    # A former leader, or a person, wrote the status after our snapshot: ours must not land.
    cluster = cluster_with_app()
    stored = cluster.apply(canary_body())
    executor = Executor(cluster.api, ClusterCache(), session)
    newer = await executor.write_status(stored, CanaryStatus(), CanaryStatus(phase=Phase.SUCCEEDED))
    assert newer is not None
    with pytest.raises(StaleWrite):
        await executor.write_status(stored, CanaryStatus(), CanaryStatus(phase=Phase.PROGRESSING, canary_weight=40))
    assert cluster.get("Canary", NS, "podinfo")["status"]["phase"] == "Succeeded"


async def test_adopting_an_apex_service_replaces_its_selector_and_keeps_other_ports(
        session: aiohttp.ClientSession) -> None:
    cluster = cluster_with_app()
    cluster.apply({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": NS, "annotations": {"owner": "platform-team"}},
        "spec": {"selector": {"app": "podinfo", "tier": "web"},
                 "ports": [{"name": "metrics", "port": 9797}, {"name": "http", "port": 9898, "targetPort": 8080}]},
    })
    cache = ClusterCache()
    canary = cluster.apply(canary_body())
    executor = Executor(cluster.api, cache, session)
    await executor.run(_target(cluster, cache, canary), EnsureServices(), CanaryStatus(phase=Phase.INITIALIZING))
    apex = cluster.get("Service", NS, "podinfo")
    assert apex is not None
    assert apex["spec"]["selector"] == {"app": "podinfo-primary"}
    assert apex["spec"]["ports"] == [
        {"name": "metrics", "port": 9797, "targetPort": 9797, "protocol": "TCP"},
        {"name": "http", "port": 9898, "targetPort": "http", "protocol": "TCP"},
    ]
    assert apex["metadata"]["annotations"] == {"owner": "platform-team"}
    # Converged: a second pass, once the watch delivered the result, writes nothing.
    before = len(cluster.writes())
    await executor.run(_target(cluster, cache, canary), EnsureServices(), CanaryStatus(phase=Phase.INITIALIZING))
    assert len(cluster.writes()) == before


async def test_a_route_changed_since_the_decision_is_not_overwritten(session: aiohttp.ClientSession) -> None:
    cluster = cluster_with_app()
    canary = cluster.apply(canary_body())
    cache = ClusterCache()
    executor = Executor(cluster.api, cache, session)
    await executor.run(_target(cluster, cache, canary), SetRoute(ALL_PRIMARY), CanaryStatus())
    target = _target(cluster, cache, canary)
    # Someone changes the route after the decision's snapshot: the decision rests on a stale view.
    route = cluster.get("TrafficSplit", NS, "podinfo")
    assert route is not None
    route["spec"]["backends"][0]["weight"] = 1
    cluster.apply(route)
    with pytest.raises(StaleWrite) as caught:
        await executor.run(target, SetRoute(Weights(primary=90, canary=10)), CanaryStatus())
    assert caught.value.key == ObjectKey.route("split.smi-spec.io", NS, "podinfo")
    # One conditional write, refused; no read-and-retry of the same write.
    assert [c.method for c in cluster.calls[-1:]] == ["replace_namespaced_custom_object"]
    stored = cluster.get("TrafficSplit", NS, "podinfo")
    assert stored is not None
    assert [b["weight"] for b in stored["spec"]["backends"]] == [1, 0]


@pytest.mark.parametrize("action", [ScaleCanary(0), EnsureServices()], ids=["scale", "services"])
async def test_workload_writes_are_conditional_on_the_observed_version(session: aiohttp.ClientSession,
                                                                       action: Action) -> None:
    cluster = cluster_with_app()
    canary = cluster.apply(canary_body())
    cache = ClusterCache()
    executor = Executor(cluster.api, cache, session)
    if isinstance(action, EnsureServices):
        # An existing apex Service to adopt, changed after the snapshot.
        cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "podinfo", "namespace": NS},
                       "spec": {"selector": {"app": "other"}, "ports": [{"name": "http", "port": 9898}]}})
    target = _target(cluster, cache, canary)
    kind, name = ("Deployment", "podinfo") if isinstance(action, ScaleCanary) else ("Service", "podinfo")
    changed = cluster.get(kind, NS, name)
    assert changed is not None
    changed["metadata"].setdefault("labels", {})["touched"] = "yes"
    cluster.apply(changed)
    with pytest.raises(StaleWrite):
        await executor.run(target, action, CanaryStatus(phase=Phase.INITIALIZING))


async def test_a_failed_action_raises_for_the_caller_to_retry(session: aiohttp.ClientSession) -> None:
    cluster = cluster_with_app()
    canary = cluster.apply(canary_body())
    cache = ClusterCache()
    cluster.fail_next("create_namespaced_custom_object")
    with pytest.raises(ApiError):
        await Executor(cluster.api, cache, session).run(_target(cluster, cache, canary), SetRoute(ALL_PRIMARY),
                                                        CanaryStatus())


async def test_restore_target_points_the_apex_back_and_deletes_the_route(session: aiohttp.ClientSession) -> None:
    cluster = cluster_with_app()
    canary = cluster.apply(canary_body())
    cache = ClusterCache()
    executor = Executor(cluster.api, cache, session)
    await executor.run(_target(cluster, cache, canary), EnsureServices(), CanaryStatus())
    await executor.run(_target(cluster, cache, canary), SetRoute(ALL_PRIMARY), CanaryStatus())
    await executor.run(_target(cluster, cache, canary), RestoreTarget(), CanaryStatus(phase=Phase.TERMINATING))
    apex = cluster.get("Service", NS, "podinfo")
    assert apex is not None
    assert apex["spec"]["selector"] == {"app": "podinfo"}
    assert "ownerReferences" not in apex["metadata"]
    assert cluster.get("TrafficSplit", NS, "podinfo") is None
    # Idempotent: the route is gone already, which is fine.
    await executor.run(_target(cluster, cache, canary), RestoreTarget(), CanaryStatus(phase=Phase.TERMINATING))
