from __future__ import annotations

import copy
from typing import Any

import pytest

from canary.domain.observed import Problem, RouteState
from canary.domain.spec import parse_canary_spec
from canary.domain.weights import Weights
from canary.kube.cache import ClusterCache, Kind, ObjectKey
from canary.kube.observe import Observation, observe
from canary.kube.revision import REVISION_ANNOTATION, ConfigRef
from canary.kube.workloads import owner_reference, service_bodies
from canary.routers.base import Router
from canary.routers.gatewayapi import HTTPRouteRouter
from canary.routers.smi import TrafficSplitRouter
from tests.kube.harness import NS, canary_body, config_map, secret, target_deployment

SMI_ROUTER = TrafficSplitRouter("v1alpha2")
READY = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}


def _canary(**spec: Any) -> dict[str, Any]:
    body = canary_body(**spec)
    body["metadata"].update(generation=4, annotations={"canary.dev/pause": "true"})
    return body


def _deployment(body: dict[str, Any], **status: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["metadata"]["generation"] = 1
    out["status"] = status or dict(READY)
    return out


def _cache(*, target: bool = True, services: bool = True, primary: dict[str, Any] | None = None,
           route: dict[str, Any] | None = None) -> ClusterCache:
    cache = ClusterCache()
    if target:
        cache.put(ObjectKey(Kind.DEPLOYMENT, NS, "podinfo"), _deployment(target_deployment()))
    cache.put(ObjectKey(Kind.CONFIG_MAP, NS, "podinfo-config"), config_map())
    cache.put(ObjectKey(Kind.SECRET, NS, "podinfo-token"), secret())
    if services:
        spec = parse_canary_spec(_canary()["spec"])
        for name, body in service_bodies(spec, NS, {"app": "podinfo"}, owner_reference(_canary())).items():
            cache.put(ObjectKey(Kind.SERVICE, NS, name), body)
    if primary is not None:
        cache.put(ObjectKey(Kind.DEPLOYMENT, NS, "podinfo-primary"), primary)
    if route is not None:
        cache.put(ObjectKey.route(SMI_ROUTER.resource.group, NS, "podinfo"), route)
    return cache


def _observe(cache: ClusterCache, canary: dict[str, Any] | None = None, router: Router | None = SMI_ROUTER,
             router_problem: Problem | None = None) -> Observation:
    body = canary or _canary()
    return observe(body, parse_canary_spec(body["spec"]), cache, router, router_problem)


def test_a_missing_target_is_a_problem_naming_target_ref() -> None:
    observed = _observe(_cache(target=False)).observed
    assert not observed.target.exists
    assert observed.problem is not None
    assert observed.problem.field == "spec.targetRef.name"
    assert observed.problem.reason == "TargetNotFound"
    assert "spec.targetRef.name" in observed.problem.message
    assert "'podinfo'" in observed.problem.message


@pytest.mark.parametrize("index", [0, 1])
def test_a_missing_metric_template_is_a_problem_naming_the_metric(index: int) -> None:
    metrics = [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]
    metrics.insert(index, {"name": "errors", "thresholdRange": {"max": 1}, "templateRef": {"name": "error-rate"}})
    canary = _canary(analysis={"metrics": metrics})
    observation = _observe(_cache(), canary)
    problem = observation.observed.problem
    assert problem is not None
    assert problem.field == f"spec.analysis.metrics[{index}].templateRef.name"
    assert problem.reason == "MetricTemplateNotFound"
    assert f"{NS}/error-rate" in problem.message
    assert ObjectKey(Kind.METRIC_TEMPLATE, NS, "error-rate") in observation.dependencies


def test_a_metric_template_in_another_namespace_is_looked_up_there() -> None:
    canary = _canary(analysis={"metrics": [{"name": "errors", "thresholdRange": {"max": 1},
                                            "templateRef": {"name": "error-rate", "namespace": "monitoring"}}]})
    cache = _cache()
    cache.put(ObjectKey(Kind.METRIC_TEMPLATE, "monitoring", "error-rate"), {"spec": {"query": "x"}})
    observation = _observe(cache, canary)
    assert observation.observed.problem is None
    assert ObjectKey(Kind.METRIC_TEMPLATE, "monitoring", "error-rate") in observation.dependencies


def test_the_router_problem_is_passed_through() -> None:
    problem = Problem("spec.provider", "RouterUnavailable", "no TrafficSplit CRD")
    observed = _observe(_cache(), router=None, router_problem=problem).observed
    assert observed.problem == problem
    assert observed.route == RouteState()


def test_a_refused_spec_is_reported_before_a_missing_target() -> None:
    # Creating the Deployment would not get the Canary past the refusal, so it is named first.
    problem = Problem("spec.analysis.match[0].queryParams", "InvalidSpec", "an HTTPRouteGroup matches headers")
    assert _observe(_cache(target=False), router=None, router_problem=problem).observed.problem == problem


def test_target_facts() -> None:
    observation = _observe(_cache())
    target = observation.observed.target
    assert (target.exists, target.ready, target.replicas, target.message) == (True, True, 2, "")
    assert len(target.checksum) == 16
    assert observation.configs == {ConfigRef("ConfigMap", "podinfo-config"), ConfigRef("Secret", "podinfo-token")}
    observed = observation.observed
    assert (observed.generation, observed.annotations) == (4, {"canary.dev/pause": "true"})
    assert not observed.deleting


def test_target_not_ready_carries_the_reason() -> None:
    cache = _cache()
    cache.put(ObjectKey(Kind.DEPLOYMENT, NS, "podinfo"),
              _deployment(target_deployment(), observedGeneration=1, replicas=2, updatedReplicas=2))
    target = _observe(cache).observed.target
    assert (target.ready, target.message) == (False, "0 of 2 updated replicas available")


def test_checksum_follows_referenced_config_data_only() -> None:
    cache = _cache()
    before = _observe(cache).observed.target.checksum
    cache.put(ObjectKey(Kind.CONFIG_MAP, NS, "unrelated"), config_map({"x": "1"}, name="unrelated"))
    assert _observe(cache).observed.target.checksum == before
    cache.put(ObjectKey(Kind.CONFIG_MAP, NS, "podinfo-config"), config_map({"PODINFO_UI_COLOR": "red"}))
    changed = _observe(cache).observed.target.checksum
    assert changed != before
    cache.put(ObjectKey(Kind.CONFIG_MAP, NS, "podinfo-config"), config_map())
    assert _observe(cache).observed.target.checksum == before


def test_an_optional_config_created_later_changes_the_checksum() -> None:
    cache = _cache()
    before = _observe(cache)
    assert ConfigRef("ConfigMap", "podinfo-extra") not in before.configs
    cache.put(ObjectKey(Kind.CONFIG_MAP, NS, "podinfo-extra"), config_map({"a": "b"}, name="podinfo-extra"))
    after = _observe(cache)
    assert after.observed.target.checksum != before.observed.target.checksum
    assert ConfigRef("ConfigMap", "podinfo-extra") in after.configs


@pytest.mark.parametrize(
    ("services", "selector", "ready"),
    [
        pytest.param(True, None, True, id="all-three-match"),
        pytest.param(False, None, False, id="none-exist"),
        pytest.param(True, {"app": "podinfo"}, False, id="apex-selects-the-canary"),
    ],
)
def test_services_ready(services: bool, selector: dict[str, str] | None, ready: bool) -> None:
    cache = _cache(services=services)
    if selector is not None:
        apex = copy.deepcopy(dict(cache.get(ObjectKey(Kind.SERVICE, NS, "podinfo")) or {}))
        apex["spec"]["selector"] = selector
        cache.put(ObjectKey(Kind.SERVICE, NS, "podinfo"), apex)
    assert _observe(cache).observed.services_ready is ready


def test_one_missing_service_is_not_ready() -> None:
    cache = _cache()
    cache.remove(ObjectKey(Kind.SERVICE, NS, "podinfo-canary"))
    assert _observe(cache).observed.services_ready is False


def test_primary_checksum_comes_from_its_annotation() -> None:
    primary = _deployment(target_deployment())
    primary["metadata"].update(name="podinfo-primary", annotations={REVISION_ANNOTATION: "abc123"})
    primary["spec"]["replicas"] = 3
    primary["status"] = {**READY, "observedGeneration": 0}
    state = _observe(_cache(primary=primary)).observed.primary
    assert (state.exists, state.checksum, state.replicas, state.ready) == (True, "abc123", 3, False)
    assert state.message == "the Deployment controller has not seen the latest spec yet"


def test_no_primary() -> None:
    assert not _observe(_cache()).observed.primary.exists


@pytest.mark.parametrize(
    ("router", "weights"),
    [
        pytest.param(SMI_ROUTER, Weights(primary=70, canary=30), id="smi-v1alpha2"),
        pytest.param(TrafficSplitRouter("v1alpha1"), Weights(primary=70, canary=30), id="smi-v1alpha1-quantities"),
        pytest.param(HTTPRouteRouter(), Weights(primary=70, canary=30), id="httproute"),
    ],
)
def test_route_weights_are_read_with_the_router(router: Router, weights: Weights) -> None:
    canary = _canary()
    rt = _observe(_cache(), canary).route_target
    assert rt is not None
    cache = _cache()
    cache.put(ObjectKey.route(router.resource.group, NS, "podinfo"), router.build(rt, weights))
    route = _observe(cache, canary, router).observed.route
    assert route == RouteState(exists=True, weights=weights)


def test_a_route_in_a_foreign_shape_exists_without_weights() -> None:
    route = {"spec": {"service": "podinfo", "backends": [{"service": "elsewhere", "weight": 100}]}}
    assert _observe(_cache(route=route)).observed.route == RouteState(exists=True, weights=None)


def test_dependencies_cover_every_object_the_decision_read() -> None:
    canary = _canary(analysis={"metrics": [{"name": "errors", "thresholdRange": {"max": 1},
                                            "templateRef": {"name": "error-rate"}}]})
    deps = _observe(_cache(), canary).dependencies
    assert deps == {
        ObjectKey(Kind.DEPLOYMENT, NS, "podinfo"),
        ObjectKey(Kind.DEPLOYMENT, NS, "podinfo-primary"),
        ObjectKey(Kind.SERVICE, NS, "podinfo"),
        ObjectKey(Kind.SERVICE, NS, "podinfo-primary"),
        ObjectKey(Kind.SERVICE, NS, "podinfo-canary"),
        ObjectKey(Kind.CONFIG_MAP, NS, "podinfo-config"),
        ObjectKey(Kind.CONFIG_MAP, NS, "podinfo-extra"),  # absent, but its creation changes the revision
        ObjectKey(Kind.SECRET, NS, "podinfo-token"),
        ObjectKey.route("split.smi-spec.io", NS, "podinfo"),
        ObjectKey(Kind.METRIC_TEMPLATE, NS, "error-rate"),
    }


def test_route_target_names() -> None:
    rt = _observe(_cache(), _canary(service={"port": 8080, "name": "frontend"})).route_target
    assert rt is not None
    assert (rt.namespace, rt.apex, rt.primary, rt.canary, rt.port) == (
        NS, "frontend", "frontend-primary", "frontend-canary", 8080)
    assert rt.owner["uid"] == "canary-uid-1"


def test_deleting_is_observed() -> None:
    canary = _canary()
    canary["metadata"]["deletionTimestamp"] = "2026-03-01T12:00:00Z"
    assert _observe(_cache(), canary).observed.deleting


def test_route_target_carries_the_route_options_and_the_revision_under_analysis() -> None:
    canary = _canary(provider="gatewayapi", service={"port": 9898, "hosts": ["app.example.com"], "timeout": "5s"})
    canary["status"] = {"lastAppliedSpec": "0123456789abcdef"}
    rt = _observe(_cache(), canary, router=HTTPRouteRouter()).route_target
    assert rt is not None
    assert rt.revision == "0123456789abcdef"
    assert rt.options.hosts == ("app.example.com",)
    assert rt.options.fields == ("spec.service.hosts", "spec.service.timeout")


def test_route_target_of_a_canary_without_status_has_no_revision() -> None:
    rt = _observe(_cache()).route_target
    assert rt is not None and rt.revision == "" and rt.options.fields == ()


def test_a_router_problem_is_reported_before_a_missing_target() -> None:
    # Creating the target would not make a spec the router cannot carry out work.
    problem = Problem("spec.analysis.match", "InvalidSpec", "applied only with spec.provider: gatewayapi")
    observed = _observe(_cache(target=False), router=None, router_problem=problem).observed
    assert observed.problem == problem
