from fractions import Fraction

import pytest

from canary.routers.base import RouteTarget, Weights
from canary.routers.gatewayapi import HTTPRouteRouter
from canary.domain.providers import SMI_VERSIONS
from canary.routers.smi import TrafficSplitRouter
from e2e.mesh.objects import (
    ObjectError,
    owning_daemonset,
    owning_deployment,
    parse_http_route,
    parse_pod,
    parse_service,
    parse_traffic_split,
)
from tests.mesh.factories import http_route_obj, pod_obj, service_obj, split_obj

TARGET = RouteTarget(namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary", port=9898)


@pytest.mark.parametrize("version", SMI_VERSIONS)
@pytest.mark.parametrize("canary", [0, 10, 20, 50, 100])
def test_reads_every_traffic_split_version_the_controller_writes(version: str, canary: int) -> None:
    body = TrafficSplitRouter(version).build(TARGET, Weights.canary_at(canary))
    split = parse_traffic_split(body, body["apiVersion"])
    assert split.service == "podinfo"
    assert split.meta.api_version == f"split.smi-spec.io/{version}"
    weights = {b.service: b.weight for b in split.backends}
    total = sum(weights.values())
    assert weights["podinfo-canary"] / total == Fraction(canary, 100)
    assert not split.has_matches


def test_v1alpha1_quantities_read_as_fractions() -> None:
    body = split_obj("test", "podinfo", [("podinfo-primary", "900m"), ("podinfo-canary", "100m")], version="v1alpha1")
    split = parse_traffic_split(body, "split.smi-spec.io/v1alpha1")
    assert [b.weight for b in split.backends] == [Fraction(9, 10), Fraction(1, 10)]


def test_quantities_are_read_in_later_versions_too() -> None:
    # No conversion webhook: a v1alpha1 "500m" comes back unchanged through v1alpha2.
    body = split_obj("test", "podinfo", [("a", "500m"), ("b", 1)], version="v1alpha2")
    assert [b.weight for b in parse_traffic_split(body, "v1alpha2").backends] == [Fraction(1, 2), Fraction(1)]


def test_v1alpha3_matches_name_route_groups() -> None:
    body = split_obj("test", "podinfo", [("a", 1)], version="v1alpha3", matches=True)
    parsed = parse_traffic_split(body, "split.smi-spec.io/v1alpha3")
    assert parsed.has_matches and parsed.route_groups == ("ab",)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (None, "spec is missing"),
        ({"backends": [{"service": "a", "weight": 1}]}, "spec.service"),
        ({"service": "podinfo"}, "spec.backends"),
        ({"service": "podinfo", "backends": []}, "spec.backends"),
        ({"service": "podinfo", "backends": [{"weight": 1}]}, r"backends\[0\].service"),
        ({"service": "podinfo", "backends": [{"service": "a", "weight": "lots"}]}, r"backends\[0\].weight"),
        ({"service": "podinfo", "backends": [{"service": "a", "weight": -5}]}, "negative"),
        ({"service": "podinfo", "backends": [{"service": "a"}]}, "missing"),
    ],
)
def test_unusable_splits_are_refused_with_the_field(spec: object, message: str) -> None:
    body = {"apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit", "metadata": {"name": "x", "namespace": "t"}}
    if spec is not None:
        body["spec"] = spec
    with pytest.raises(ObjectError, match=message):
        parse_traffic_split(body, "split.smi-spec.io/v1alpha2")


@pytest.mark.parametrize("canary", [0, 30, 100])
def test_reads_the_http_route_the_controller_writes(canary: int) -> None:
    body = HTTPRouteRouter().build(TARGET, Weights.canary_at(canary))
    route = parse_http_route(body, body["apiVersion"])
    assert route.parent_services == ("podinfo",)
    assert len(route.rules) == 1
    (rule,) = route.rules
    assert rule.matches[0].catch_all
    assert {b.name: b.weight for b in rule.backends} == {"podinfo-primary": 100 - canary, "podinfo-canary": canary}
    assert all(b.problem is None for b in rule.backends)


def test_http_route_defaults() -> None:
    body = http_route_obj("test", "podinfo", [("a", None), ("b", 3)])
    route = parse_http_route(body, "gateway.networking.k8s.io/v1")
    assert [b.weight for b in route.rules[0].backends] == [1, 3]


def test_http_route_parents_services_gateways_and_ignored() -> None:
    body = http_route_obj("test", "podinfo", [("a", 1)])
    body["spec"]["parentRefs"] = [
        {"name": "gw"},  # a Gateway (the group and kind default to the Gateway API's Gateway)
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "infra"},
        {"group": "", "kind": "Service", "name": "other", "namespace": "elsewhere"},
        {"group": "example.com", "kind": "Mesh", "name": "m"},
        {"group": "", "kind": "Service", "name": "podinfo"},
    ]
    body["spec"]["hostnames"] = ["App.Example.com", "*.example.org"]
    route = parse_http_route(body, "gateway.networking.k8s.io/v1")
    assert route.parent_services == ("podinfo",)
    assert route.parent_gateways == ("test/gw", "infra/edge")
    assert route.hostnames == ("app.example.com", "*.example.org")
    assert len(route.ignored_parents) == 2


def test_http_route_invalid_backend_refs_carry_a_problem() -> None:
    rules = [
        {
            "backendRefs": [
                {"name": "ok"},
                {"name": "bucket", "group": "storage.example", "kind": "Bucket"},
                {"name": "far", "namespace": "elsewhere"},
            ]
        }
    ]
    route = parse_http_route(http_route_obj("test", "podinfo", [], rules=rules), "gateway.networking.k8s.io/v1")
    problems = [b.problem for b in route.rules[0].backends]
    assert problems[0] is None
    assert "Bucket" in (problems[1] or "")
    assert "cross-namespace" in (problems[2] or "")


def test_http_route_matches() -> None:
    rules = [
        {
            "matches": [
                {"path": {"type": "Exact", "value": "/api"}, "method": "get"},
                {"headers": [{"name": "X-Canary", "value": "yes"}], "queryParams": [{"name": "v", "value": "2"}]},
                {"path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"}},
            ],
            "backendRefs": [{"name": "a"}],
        }
    ]
    route = parse_http_route(http_route_obj("test", "podinfo", [], rules=rules), "v1")
    exact, header, regex = route.rules[0].matches
    assert exact.matches("GET", "/api", {}, {}) and not exact.matches("POST", "/api", {}, {})
    assert not exact.matches("GET", "/api/x", {}, {})
    assert header.matches("GET", "/anything", {"x-canary": "yes"}, {"v": "2"})
    assert not header.matches("GET", "/anything", {"x-canary": "yes"}, {})
    assert regex.matches("GET", "/v2/users", {}, {}) and not regex.matches("GET", "/x/v2/", {}, {})


def test_path_prefix_matches_whole_elements() -> None:
    rules = [{"matches": [{"path": {"type": "PathPrefix", "value": "/foo/"}}], "backendRefs": [{"name": "a"}]}]
    (match,) = parse_http_route(http_route_obj("t", "p", [], rules=rules), "v1").rules[0].matches
    assert match.matches("GET", "/foo", {}, {})
    assert match.matches("GET", "/foo/bar", {}, {})
    assert not match.matches("GET", "/foobar", {}, {})


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"backendRefs": [{"name": "a", "weight": -1}]}], "weight"),
        ([{"backendRefs": [{"weight": 1}]}], "name"),
        ([{"matches": [{"path": {"type": "Glob", "value": "/*"}}]}], "Glob"),
        ([{"matches": [{"path": {"type": "RegularExpression", "value": "("}}]}], "regular expression"),
        ("nope", "not a list"),
    ],
)
def test_unusable_http_routes(rules: object, message: str) -> None:
    body = http_route_obj("test", "podinfo", [])
    body["spec"]["rules"] = rules
    with pytest.raises(ObjectError, match=message):
        parse_http_route(body, "v1")


def test_service_selector() -> None:
    assert parse_service(service_obj("t", "s", {"app": "x"})).selector == {"app": "x"}
    assert parse_service(service_obj("t", "s", None)).selector is None
    assert parse_service(service_obj("t", "s", {})).selector is None


def test_pod_readiness_and_deployment() -> None:
    pod = parse_pod(pod_obj("test", "podinfo-primary", "x1y2z", {"app": "podinfo-primary"}, template_hash="7f9c"))
    assert pod.ready
    assert pod.deployment == "podinfo-primary"
    assert pod.pod_template_hash == "7f9c"
    assert pod.meta.name == "podinfo-primary-7f9c-x1y2z"
    assert not parse_pod(pod_obj("test", "podinfo", "a", {}, ready=False)).ready


def test_terminating_or_pending_pods_are_not_ready() -> None:
    body = pod_obj("test", "podinfo", "a", {})
    body["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert not parse_pod(body).ready
    body = pod_obj("test", "podinfo", "a", {})
    body["status"]["phase"] = "Pending"
    assert not parse_pod(body).ready
    body = pod_obj("test", "podinfo", "a", {})
    del body["status"]
    assert not parse_pod(body).ready


def test_owning_deployment_needs_a_replica_set_named_after_the_hash() -> None:
    rs = [{"kind": "ReplicaSet", "name": "web-abc12", "controller": True}]
    assert owning_deployment(rs, "abc12") == "web"
    assert owning_deployment(rs, "zzz") == ""
    assert owning_deployment([{"kind": "StatefulSet", "name": "db"}], "abc12") == ""
    assert owning_deployment(None, "abc12") == ""
    assert owning_deployment([{"kind": "ReplicaSet", "name": "-abc12"}], "abc12") == ""


def test_owning_daemonset_is_the_direct_controller() -> None:
    assert owning_daemonset([{"kind": "DaemonSet", "name": "agent", "controller": True}]) == "agent"
    assert owning_daemonset([{"kind": "DaemonSet", "name": "agent", "controller": False}]) == ""
    assert owning_daemonset([{"kind": "ReplicaSet", "name": "web-abc12", "controller": True}]) == ""
    assert owning_daemonset(None) == ""
