"""Which Gateway API features a Canary's HTTPRoute needs, what a GatewayClass publishes, and the
refusal when a class lacks one: pure, every option and both status shapes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from canary.domain.spec import parse_canary_spec
from canary.routers.base import RouteOptions, RouteTarget, Weights
from canary.routers.factory import gateways_to_check, router_for
from canary.routers.gateway_features import (
    GatewaySupport,
    gateway_features_problem,
    needed_features,
    supported_features,
)
from canary.routers.gatewayapi import HTTPRouteRouter

PUBLIC = {"gatewayRefs": [{"name": "public", "namespace": "gateways"}]}


def _options(service: dict[str, Any] | None = None, analysis: dict[str, Any] | None = None) -> RouteOptions:
    spec = parse_canary_spec({
        "targetRef": {"name": "podinfo"},
        "service": {"port": 9898, **(service or {})},
        "analysis": {"interval": "1m", "threshold": 2, **(analysis or {"stepWeight": 10})},
    })
    return RouteOptions.of(spec)


OPTIONS = [
    pytest.param({}, {}, {}, id="plain"),
    pytest.param({"hosts": ["a.example.com"], "gatewayRefs": [{"name": "public", "sectionName": "https"}]}, {}, {},
                 id="core-hosts-section"),
    pytest.param({"headers": {"request": {"set": {"x-a": "1"}}}}, {}, {}, id="request-headers-core"),
    pytest.param({"gatewayRefs": [{"name": "public"}, {"name": "internal", "port": 8443}]}, {},
                 {"spec.service.gatewayRefs[1].port": "HTTPRouteParentRefPort"}, id="parent-port"),
    pytest.param({"timeout": "30s"}, {}, {"spec.service.timeout": "HTTPRouteRequestTimeout"}, id="timeout"),
    pytest.param({"backendTimeout": "5s"}, {}, {"spec.service.backendTimeout": "HTTPRouteBackendTimeout"},
                 id="backend-timeout"),
    pytest.param({"headers": {"response": {"set": {"x-a": "1"}}}}, {},
                 {"spec.service.headers.response": "HTTPRouteResponseHeaderModification"}, id="response-headers"),
    pytest.param({"rewrite": {"uri": "/v2"}}, {}, {"spec.service.rewrite.uri": "HTTPRoutePathRewrite"},
                 id="path-rewrite"),
    pytest.param({"rewrite": {"authority": "b.internal"}}, {},
                 {"spec.service.rewrite.authority": "HTTPRouteHostRewrite"}, id="host-rewrite"),
    pytest.param({}, {"iterations": 5, "match": [{"headers": {"x-canary": {"exact": "1"}}}]}, {},
                 id="header-match-core"),
    pytest.param({}, {"iterations": 5, "match": [{"headers": {"x-canary": {"exact": "1"}}},
                                                 {"queryParams": {"canary": {"exact": "1"}}}]},
                 {"spec.analysis.match[1].queryParams": "HTTPRouteQueryParamMatching"}, id="query-match"),
    pytest.param({}, {"iterations": 5, "mirror": True}, {"spec.analysis.mirror": "HTTPRouteRequestMirror"},
                 id="mirror"),
    pytest.param({}, {"iterations": 5, "mirror": True, "mirrorWeight": 100},
                 {"spec.analysis.mirror": "HTTPRouteRequestMirror"}, id="mirror-all-is-no-percentage"),
    pytest.param({}, {"iterations": 5, "mirror": True, "mirrorWeight": 20},
                 {"spec.analysis.mirror": "HTTPRouteRequestMirror",
                  "spec.analysis.mirrorWeight": "HTTPRouteRequestPercentageMirror"}, id="mirror-weight"),
    pytest.param({}, {"stepWeight": 10, "sessionAffinity": {"cookieName": "c"}},
                 {"spec.analysis.sessionAffinity": "HTTPRouteResponseHeaderModification"}, id="session-affinity"),
]


@pytest.mark.parametrize(("service", "analysis", "wanted"), OPTIONS)
def test_each_option_needs_its_extended_feature(service: dict[str, Any], analysis: dict[str, Any],
                                                wanted: dict[str, str]) -> None:
    assert {n.field: n.feature for n in needed_features(_options(service, analysis))} == wanted


@pytest.mark.parametrize(("service", "analysis", "wanted"), OPTIONS)
def test_the_needed_features_are_those_the_written_route_uses(service: dict[str, Any], analysis: dict[str, Any],
                                                              wanted: dict[str, str]) -> None:
    """Read from the HTTPRoute the router writes at its most (the experiment stage, the canary at
    half), so a new filter in the router cannot go unchecked."""
    options = _options(service, analysis)
    target = RouteTarget(namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary",
                         port=9898, options=options, revision="0123456789abcdef")
    weights = [Weights(50, 50)] + ([Weights(100, 0, experiment=True)] if options.has_experiment else [])
    used: set[str] = set()
    for w in weights:
        used |= _features_used(HTTPRouteRouter().build(target, w)["spec"])
    assert used == {n.feature for n in needed_features(options)} == set(wanted.values())


def _features_used(spec: Mapping[str, Any]) -> set[str]:
    """Extended features by the Gateway API's own definitions, from the route's shape."""
    used: set[str] = set()
    if any(ref.get("kind") == "Gateway" and "port" in ref for ref in spec["parentRefs"]):
        used.add("HTTPRouteParentRefPort")
    for rule in spec["rules"]:
        timeouts = rule.get("timeouts", {})
        used |= {"HTTPRouteRequestTimeout"} if "request" in timeouts else set()
        used |= {"HTTPRouteBackendTimeout"} if "backendRequest" in timeouts else set()
        if any("queryParams" in m for m in rule.get("matches", [])):
            used.add("HTTPRouteQueryParamMatching")
        filters = [*rule.get("filters", []), *(f for b in rule["backendRefs"] for f in b.get("filters", []))]
        for f in filters:
            if f["type"] == "ResponseHeaderModifier":
                used.add("HTTPRouteResponseHeaderModification")
            if f["type"] == "RequestMirror":
                used.add("HTTPRouteRequestMirror")
                if "percent" in f["requestMirror"] or "fraction" in f["requestMirror"]:
                    used.add("HTTPRouteRequestPercentageMirror")
            if f["type"] == "URLRewrite":
                used |= {"HTTPRouteHostRewrite"} if "hostname" in f["urlRewrite"] else set()
                used |= {"HTTPRoutePathRewrite"} if "path" in f["urlRewrite"] else set()
    return used


@pytest.mark.parametrize(
    ("status", "wanted"),
    [
        pytest.param({"supportedFeatures": [{"name": "HTTPRoute"}, {"name": "HTTPRouteRequestMirror"}]},
                     frozenset({"HTTPRoute", "HTTPRouteRequestMirror"}), id="v1.2-objects"),
        pytest.param({"supportedFeatures": ["HTTPRoute", "HTTPRouteRequestTimeout"]},
                     frozenset({"HTTPRoute", "HTTPRouteRequestTimeout"}), id="v1.1-strings"),
        pytest.param({"supportedFeatures": []}, None, id="empty-is-unknown"),
        pytest.param({"conditions": []}, None, id="absent-is-unknown"),
        pytest.param(None, None, id="no-status"),
        pytest.param({"supportedFeatures": "HTTPRoute"}, None, id="not-a-list"),
        pytest.param({"supportedFeatures": [{"name": 3}, 7, {"name": "HTTPRoute"}]}, frozenset({"HTTPRoute"}),
                     id="malformed-items-skipped"),
    ],
)
def test_supported_features_reads_both_status_shapes(status: object, wanted: frozenset[str] | None) -> None:
    body: dict[str, Any] = {"spec": {"controllerName": "example.com/gw"}}
    if status is not None:
        body["status"] = status
    assert supported_features(body) == wanted


def _support(features: set[str] | None, name: str = "public") -> GatewaySupport:
    return GatewaySupport(namespace="gateways", name=name, class_name="traefik",
                          controller="traefik.io/gateway-controller",
                          features=None if features is None else frozenset(features))


MIRROR = _options(PUBLIC, {"iterations": 5, "mirror": True})


def test_a_mirror_on_a_class_without_request_mirror_is_refused_naming_everything() -> None:
    problem = gateway_features_problem(MIRROR, [_support({"HTTPRoute", "HTTPRouteQueryParamMatching"})])
    assert problem is not None
    assert (problem.field, problem.reason) == ("spec.analysis.mirror", "GatewayFeatureUnsupported")
    for part in ("spec.analysis.mirror needs HTTPRouteRequestMirror", "Gateway gateways/public",
                 "GatewayClass 'traefik'", "traefik.io/gateway-controller", "status.supportedFeatures",
                 "Remove spec.analysis.mirror, or use a Gateway whose class supports HTTPRouteRequestMirror"):
        assert part in problem.message


def test_every_missing_feature_is_named_and_the_first_field_is_the_problem_field() -> None:
    options = _options({**PUBLIC, "timeout": "30s"}, {"iterations": 5, "mirror": True, "mirrorWeight": 10})
    problem = gateway_features_problem(options, [_support({"HTTPRoute", "HTTPRouteRequestMirror"})])
    assert problem is not None and problem.field == "spec.service.timeout"
    assert ("spec.service.timeout needs HTTPRouteRequestTimeout; spec.analysis.mirrorWeight needs "
            "HTTPRouteRequestPercentageMirror") in problem.message
    assert "Remove spec.service.timeout, spec.analysis.mirrorWeight" in problem.message


@pytest.mark.parametrize(
    "gateways",
    [
        pytest.param([_support({"HTTPRoute", "HTTPRouteRequestMirror"})], id="class-lists-it"),
        pytest.param([_support(None)], id="class-publishes-nothing"),
        pytest.param([], id="no-gateway-readable"),
    ],
)
def test_not_refused_when_supported_or_unknown(gateways: list[GatewaySupport]) -> None:
    assert gateway_features_problem(MIRROR, gateways) is None


def test_any_attached_gateway_lacking_the_feature_refuses() -> None:
    problem = gateway_features_problem(MIRROR, [_support(None), _support({"HTTPRoute"}, name="internal")])
    assert problem is not None and "Gateway gateways/internal" in problem.message


@pytest.mark.parametrize(
    ("service", "analysis", "namespace", "wanted"),
    [
        pytest.param({"gatewayRefs": [{"name": "public"}, {"name": "edge", "namespace": "infra"},
                                      {"name": "public"}]},
                     {"iterations": 5, "mirror": True}, "apps", (("apps", "public"), ("infra", "edge")),
                     id="each-gateway-once-default-namespace"),
        pytest.param(PUBLIC, {"stepWeight": 10}, "apps", (), id="no-extended-feature-no-lookup"),
        pytest.param({}, {"iterations": 5, "mirror": True}, "apps", (), id="gamma-no-gateway"),
        pytest.param({"gatewayRefs": [{"name": "podinfo", "kind": "Service", "group": ""}]},
                     {"iterations": 5, "mirror": True}, "apps", (), id="service-parent"),
    ],
)
def test_which_gateways_are_read(service: dict[str, Any], analysis: dict[str, Any], namespace: str,
                                 wanted: tuple[tuple[str, str], ...]) -> None:
    router = router_for("gatewayapi", {"v1"})
    assert gateways_to_check(router, _options(service, analysis), namespace) == wanted


def test_only_an_httproute_reads_gateways() -> None:
    assert gateways_to_check(router_for("smi", {"v1alpha2"}), MIRROR, "apps") == ()
