"""HTTPRoute shapes for the route options: exact bodies, read-back of every shape, refusals."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from canary.domain.spec import parse_canary_spec
from canary.errors import RouterError
from canary.routers.base import RouteOptions, RouteTarget, Weights
from canary.routers.gatewayapi import HTTPRouteRouter

ROUTER = HTTPRouteRouter()
REVISION = "0123456789abcdef"
PRIMARY = {"name": "podinfo-primary", "port": 9898}
CANARY = {"name": "podinfo-canary", "port": 9898}
GAMMA_PARENT = {"group": "", "kind": "Service", "name": "podinfo", "port": 9898}


def _options(service: dict[str, Any] | None = None, analysis: dict[str, Any] | None = None) -> RouteOptions:
    """Route options as parsed from a Flagger-style Canary spec."""
    spec = parse_canary_spec({
        "targetRef": {"name": "podinfo"},
        "service": {"port": 9898, **(service or {})},
        "analysis": {"interval": "1m", "threshold": 2, **(analysis or {"stepWeight": 10})},
    })
    return RouteOptions.of(spec)


def _target(options: RouteOptions, revision: str = REVISION) -> RouteTarget:
    return RouteTarget(namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary",
                       port=9898, options=options, revision=revision)


def _weighted(primary: int, canary: int) -> list[dict[str, Any]]:
    return [{**PRIMARY, "weight": primary}, {**CANARY, "weight": canary}]


NORTH_SOUTH = _options({
    "gatewayRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"},
                    {"name": "internal", "kind": "Gateway", "port": 8443}],
    "hosts": ["app.example.com", "www.example.com"],
    "timeout": "1m30s",
    "backendTimeout": "1.5s",
    "headers": {"request": {"set": {"x-b": "2", "x-a": "1"}, "add": {"x-via": "canary"}, "remove": ["x-debug"]},
                "response": {"set": {"x-served-by": "podinfo"}}},
    "rewrite": {"uri": "/v2", "authority": "backend.internal"},
})
NORTH_SOUTH_FILTERS = [
    {"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "x-a", "value": "1"}, {"name": "x-b", "value": "2"}],
        "add": [{"name": "x-via", "value": "canary"}],
        "remove": ["x-debug"],
    }},
    {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x-served-by", "value": "podinfo"}]}},
    {"type": "URLRewrite", "urlRewrite": {
        "hostname": "backend.internal", "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}},
]
NORTH_SOUTH_TIMEOUTS = {"request": "1m30s", "backendRequest": "1s500ms"}

AB = _options(analysis={"iterations": 5, "match": [
    {"headers": {"x-canary": {"exact": "insider"}}},
    {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}, "user-agent": {"prefix": "Mozilla/5.0 (X"}}},
    {"queryParams": {"beta": {"exact": "1"}}},
]})
AB_RULES = [
    {"matches": [{"headers": [{"name": "x-canary", "type": "Exact", "value": "insider"}]}], "backendRefs": [CANARY]},
    {"matches": [{"headers": [
        {"name": "cookie", "type": "RegularExpression", "value": "^(.*?;)?(canary=always)(;.*)?$"},
        {"name": "user-agent", "type": "RegularExpression", "value": "^Mozilla/5\\.0 \\(X.*"},
    ]}], "backendRefs": [CANARY]},
    {"matches": [{"queryParams": [{"name": "beta", "type": "Exact", "value": "1"}]}], "backendRefs": [CANARY]},
]
MIRROR = _options(analysis={"iterations": 5, "mirror": True})
MIRROR_HALF = _options(analysis={"iterations": 5, "mirror": True, "mirrorWeight": 50})
STICKY = _options(analysis={"stepWeight": 10, "sessionAffinity": {"cookieName": "flagger-cookie", "maxAge": 3600}})
STICKY_BOTH = _options(analysis={"stepWeight": 10, "sessionAffinity": {
    "cookieName": "canary-cookie", "primaryCookieName": "primary-cookie"}})


def _cookie_rule(name: str, backend: dict[str, Any]) -> dict[str, Any]:
    regex = f"^(.*;\\s*)?{name}={REVISION}(;.*)?$"
    return {"matches": [{"headers": [{"name": "cookie", "type": "RegularExpression", "value": regex}]}],
            "backendRefs": [backend]}


def _set_cookie(name: str, max_age: int) -> list[dict[str, Any]]:
    return [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
        "add": [{"name": "Set-Cookie", "value": f"{name}={REVISION}; Max-Age={max_age}; Path=/"}]}}]


# (options, weights, the spec build must write)
SHAPES: dict[str, tuple[RouteOptions, Weights, dict[str, Any]]] = {
    "gamma-plain": (RouteOptions(), Weights(90, 10), {
        "parentRefs": [GAMMA_PARENT], "rules": [{"backendRefs": _weighted(90, 10)}]}),
    "north-south": (NORTH_SOUTH, Weights(70, 30), {
        "parentRefs": [
            {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "gateways",
             "sectionName": "https"},
            {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "internal", "port": 8443},
        ],
        "hostnames": ["app.example.com", "www.example.com"],
        "rules": [{"filters": NORTH_SOUTH_FILTERS, "backendRefs": _weighted(70, 30), "timeouts": NORTH_SOUTH_TIMEOUTS}],
    }),
    "ab-experiment": (AB, Weights(100, 0, experiment=True), {
        "parentRefs": [GAMMA_PARENT], "rules": [*AB_RULES, {"backendRefs": _weighted(100, 0)}]}),
    "ab-outside-the-experiment": (AB, Weights(100, 0), {
        "parentRefs": [GAMMA_PARENT], "rules": [{"backendRefs": _weighted(100, 0)}]}),
    "ab-promoting": (AB, Weights(0, 100), {
        "parentRefs": [GAMMA_PARENT], "rules": [{"backendRefs": _weighted(0, 100)}]}),
    "mirror-all": (MIRROR, Weights(100, 0, experiment=True), {
        "parentRefs": [GAMMA_PARENT], "rules": [{
            "filters": [{"type": "RequestMirror", "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898}}}],
            "backendRefs": _weighted(100, 0)}]}),
    "mirror-half": (MIRROR_HALF, Weights(100, 0, experiment=True), {
        "parentRefs": [GAMMA_PARENT], "rules": [{
            "filters": [{"type": "RequestMirror", "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898},
                "percent": 50}}],
            "backendRefs": _weighted(100, 0)}]}),
    "sticky-at-zero": (STICKY, Weights(100, 0), {
        "parentRefs": [GAMMA_PARENT], "rules": [{"backendRefs": _weighted(100, 0)}]}),
    "sticky-canary": (STICKY, Weights(80, 20), {
        "parentRefs": [GAMMA_PARENT], "rules": [
            _cookie_rule("flagger-cookie", CANARY),
            {"backendRefs": [{**PRIMARY, "weight": 80},
                             {**CANARY, "weight": 20, "filters": _set_cookie("flagger-cookie", 3600)}]},
        ]}),
    "sticky-both": (STICKY_BOTH, Weights(60, 40), {
        "parentRefs": [GAMMA_PARENT], "rules": [
            _cookie_rule("canary-cookie", CANARY),
            _cookie_rule("primary-cookie", PRIMARY),
            {"backendRefs": [{**PRIMARY, "weight": 60, "filters": _set_cookie("primary-cookie", 86400)},
                             {**CANARY, "weight": 40, "filters": _set_cookie("canary-cookie", 86400)}]},
        ]}),
    "sticky-both-all-canary": (STICKY_BOTH, Weights(0, 100), {
        "parentRefs": [GAMMA_PARENT], "rules": [
            _cookie_rule("canary-cookie", CANARY),
            {"backendRefs": [{**PRIMARY, "weight": 0},
                             {**CANARY, "weight": 100, "filters": _set_cookie("canary-cookie", 86400)}]},
        ]}),
}
# North-south options combined with an experiment: every rule carries the filters and timeouts.
_COMBINED = dataclasses.replace(NORTH_SOUTH, match=AB.match[:1], fields=NORTH_SOUTH.fields + AB.fields)
SHAPES["north-south-ab"] = (_COMBINED, Weights(100, 0, experiment=True), {
    **SHAPES["north-south"][2],
    "rules": [
        {**AB_RULES[0], "filters": NORTH_SOUTH_FILTERS, "timeouts": NORTH_SOUTH_TIMEOUTS},
        {"filters": NORTH_SOUTH_FILTERS, "backendRefs": _weighted(100, 0), "timeouts": NORTH_SOUTH_TIMEOUTS},
    ],
})


@pytest.mark.parametrize("shape", list(SHAPES))
def test_build_exact_spec(shape: str) -> None:
    options, weights, spec = SHAPES[shape]
    body = ROUTER.build(_target(options), weights)
    assert body["spec"] == spec
    assert (body["apiVersion"], body["kind"], body["metadata"]) == (
        "gateway.networking.k8s.io/v1", "HTTPRoute", {"name": "podinfo", "namespace": "test"})


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_reads_back_as_written(shape: str) -> None:
    options, weights, _ = SHAPES[shape]
    assert ROUTER.read_weights(_target(options), ROUTER.build(_target(options), weights)) == weights


def _as_stored(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with every value the HTTPRoute CRD defaults filled in, lists reordered where
    order means nothing: what a read from the API server (or another client) may return."""
    stored = copy.deepcopy(body)
    spec = stored["spec"]
    spec["parentRefs"].reverse()
    spec.get("hostnames", []).reverse()
    for rule in spec["rules"]:
        rule.setdefault("matches", [{}])
        for match in rule["matches"]:
            match.setdefault("path", {"type": "PathPrefix", "value": "/"})
            for key in ("headers", "queryParams"):
                for condition in match.get(key, []):
                    condition.setdefault("type", "Exact")
                match.get(key, []).reverse()
        for ref in rule["backendRefs"]:
            ref.update(group="", kind="Service", namespace="test")
            ref.setdefault("weight", 1)
        rule["backendRefs"].reverse()
        for flt in rule.get("filters", []):
            if flt["type"] == "RequestMirror":
                flt["requestMirror"]["backendRef"]["namespace"] = "test"
    return stored


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_reads_back_with_the_api_servers_defaults(shape: str) -> None:
    options, weights, _ = SHAPES[shape]
    assert ROUTER.read_weights(_target(options), _as_stored(ROUTER.build(_target(options), weights))) == weights


def test_relative_weights_of_the_split_rule_read_as_percentages() -> None:
    body = ROUTER.build(_target(STICKY), Weights(80, 20))
    split = body["spec"]["rules"][-1]["backendRefs"]
    split[0]["weight"], split[1]["weight"] = 4000, 1000
    assert ROUTER.read_weights(_target(STICKY), body) == Weights(80, 20)


def _mutations() -> list[Any]:
    """(shape, change, id): a route this controller did not write for the shape's options."""
    def spec_of(shape: str) -> Any:
        options, weights, _ = SHAPES[shape]
        return options, ROUTER.build(_target(options), weights)

    cases: list[Any] = []

    def case(shape: str, change: Any, name: str) -> None:
        cases.append(pytest.param(shape, change, id=name))

    case("north-south", lambda s: s["parentRefs"].pop(), "a-gateway-missing")
    case("north-south", lambda s: s["parentRefs"].append(GAMMA_PARENT), "an-extra-parent")
    case("north-south", lambda s: s["parentRefs"][0].update(sectionName="http"), "other-listener")
    case("north-south", lambda s: s.pop("hostnames"), "hostnames-dropped")
    case("north-south", lambda s: s["hostnames"].append("evil.example.com"), "extra-hostname")
    case("north-south", lambda s: s["rules"][0].pop("timeouts"), "timeouts-dropped")
    case("north-south", lambda s: s["rules"][0]["timeouts"].update(request="1m"), "timeout-changed")
    case("north-south", lambda s: s["rules"][0]["filters"].pop(0), "header-filter-dropped")
    case("north-south", lambda s: s["rules"][0]["filters"][2]["urlRewrite"].pop("path"), "rewrite-changed")
    case("gamma-plain", lambda s: s.update(hostnames=["app.example.com"]), "hostnames-not-asked-for")
    case("gamma-plain", lambda s: s["rules"][0].update(timeouts={"request": "1s"}), "timeouts-not-asked-for")
    case("ab-experiment", lambda s: s["rules"].pop(0), "an-ab-rule-missing")
    case("ab-experiment", lambda s: s["rules"][0]["matches"][0]["headers"][0].update(value="x"), "ab-value-changed")
    case("ab-experiment", lambda s: s["rules"][0].update(backendRefs=[PRIMARY]), "ab-rule-to-primary")
    case("ab-experiment", lambda s: s["rules"].insert(0, copy.deepcopy(s["rules"][-1])), "extra-split-rule")
    case("ab-outside-the-experiment", lambda s: s["rules"].insert(0, AB_RULES[0]), "ab-rule-outside-experiment")
    case("mirror-all", lambda s: s["rules"][0]["filters"][0]["requestMirror"]["backendRef"].update(
        name="podinfo-primary"), "mirror-to-primary")
    case("mirror-half", lambda s: s["rules"][0]["filters"][0]["requestMirror"].pop("percent"), "percent-pruned")
    case("sticky-canary", lambda s: s["rules"].pop(0), "cookie-rule-missing")
    case("sticky-canary", lambda s: s["rules"][-1]["backendRefs"][1].pop("filters"), "set-cookie-missing")
    case("sticky-canary", lambda s: s["rules"][0]["matches"][0]["headers"][0].update(
        value="^(.*;\\s*)?flagger-cookie=fedcba9876543210(;.*)?$"), "cookie-of-another-run")
    case("sticky-at-zero", lambda s: s["rules"].insert(0, _cookie_rule("flagger-cookie", CANARY)),
         "cookie-rule-at-zero")
    case("gamma-plain", lambda s: s.update(useDefaultGateways="All"), "unknown-spec-field")
    return [pytest.param(*p.values, spec_of, id=p.id) for p in cases]


@pytest.mark.parametrize(("shape", "change", "spec_of"), _mutations())
def test_a_route_not_written_for_these_options_reads_as_none(shape: str, change: Any, spec_of: Any) -> None:
    options, body = spec_of(shape)
    change(body["spec"])
    assert ROUTER.read_weights(_target(options), body) is None


def test_options_changed_since_the_route_was_written_read_as_none() -> None:
    written = ROUTER.build(_target(RouteOptions()), Weights(90, 10))
    assert ROUTER.read_weights(_target(NORTH_SOUTH), written) is None


def test_an_experiment_route_read_without_experiment_options_is_none() -> None:
    written = ROUTER.build(_target(MIRROR), Weights(100, 0, experiment=True))
    assert ROUTER.read_weights(_target(RouteOptions()), written) is None


def test_experiment_without_match_or_mirror_is_refused() -> None:
    with pytest.raises(RouterError, match="neither spec.analysis.match nor spec.analysis.mirror"):
        ROUTER.build(_target(NORTH_SOUTH), Weights(100, 0, experiment=True))


def test_session_affinity_without_a_revision_is_refused_and_unreadable() -> None:
    with pytest.raises(RouterError, match="session affinity needs the revision"):
        ROUTER.build(_target(STICKY, revision=""), Weights(90, 10))
    written = ROUTER.build(_target(STICKY), Weights(90, 10))
    assert ROUTER.read_weights(_target(STICKY, revision=""), written) is None


def test_a_prefix_is_matched_literally() -> None:
    options = _options(analysis={"iterations": 2, "match": [{"headers": {"x-v": {"prefix": "1.2+[a]"}}}]})
    rule = ROUTER.build(_target(options), Weights(100, 0, experiment=True))["spec"]["rules"][0]
    assert rule["matches"][0]["headers"][0]["value"] == "^1\\.2\\+\\[a\\].*"


@pytest.mark.parametrize(
    ("cookie", "matches"),
    [
        ("flagger-cookie=0123456789abcdef", True),
        ("a=1; flagger-cookie=0123456789abcdef", True),
        ("a=1;flagger-cookie=0123456789abcdef; b=2", True),
        ("xflagger-cookie=0123456789abcdef", False),
        ("flagger-cookie=0123456789abcdef0", False),
        ("flagger-cookie=fedcba9876543210", False),
        ("other=flagger-cookie=0123456789abcdef", False),
    ],
)
def test_the_cookie_rule_matches_only_this_runs_cookie(cookie: str, matches: bool) -> None:
    import re

    rule = ROUTER.build(_target(STICKY), Weights(90, 10))["spec"]["rules"][0]
    regex = rule["matches"][0]["headers"][0]["value"]
    # Whole-value (Envoy) and search semantics agree, since the expression is anchored.
    assert (re.fullmatch(regex, cookie) is not None) == matches
    assert (re.search(regex, cookie) is not None) == matches
