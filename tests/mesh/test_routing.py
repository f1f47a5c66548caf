import random
from collections import Counter
from fractions import Fraction

import pytest

from canary.routers.base import RouteTarget, Weights
from canary.routers.gatewayapi import HTTPRouteRouter
from canary.domain.providers import SMI_VERSIONS
from canary.routers.smi import TrafficSplitRouter
from e2e.mesh.objects import parse_http_route, parse_traffic_split
from e2e.mesh.routes import Backend, Rejected, Rule
from e2e.mesh.routing import EMPTY_TABLE, Observed, build_table, carry_since, route_json
from tests.mesh.factories import http_route, http_route_obj, pod, podinfo_world, service, split

TARGET = RouteTarget(namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary", port=9898)


def world(**extra: object) -> Observed:
    services, pods = podinfo_world()
    return Observed(services=tuple(services), pods=tuple(pods), **extra)  # type: ignore[arg-type]


def endpoints_of(observed: Observed, apex: str) -> dict[str, list[str]]:
    route = build_table(observed).route("test", apex)
    assert route is not None
    return {b.service: [e.name for e in b.endpoints] for b in route.rules[0].backends}


def test_without_split_a_service_routes_to_its_own_ready_pods() -> None:
    table = build_table(world())
    route = table.route("test", "podinfo")
    assert route is not None
    assert [s.kind for s in route.sources] == ["Service"]
    (rule,) = route.rules
    (backend,) = rule.backends
    assert backend.service == "podinfo"
    assert sorted(e.deployment for e in backend.endpoints) == ["podinfo-primary", "podinfo-primary"]
    # Every Service is addressable, not only apexes.
    assert {k for k in table.routes} == {("test", "podinfo"), ("test", "podinfo-primary"), ("test", "podinfo-canary")}


@pytest.mark.parametrize("version", SMI_VERSIONS)
def test_split_routes_the_apex_to_its_backends(version: str) -> None:
    body = TrafficSplitRouter(version).build(TARGET, Weights.canary_at(20))
    observed = world(splits=(parse_traffic_split(body, body["apiVersion"]),))
    route = build_table(observed).route("test", "podinfo")
    assert route is not None
    assert route.sources[0].kind == "TrafficSplit" and route.sources[0].api_version.endswith(version)
    weights = route.rules[0].weights()
    assert weights["podinfo-canary"] / sum(weights.values()) == Fraction(1, 5)
    assert endpoints_of(observed, "podinfo") == {
        "podinfo-primary": ["podinfo-primary-6b7c8d9f5-aaaaa", "podinfo-primary-6b7c8d9f5-bbbbb"],
        "podinfo-canary": ["podinfo-5d8f7c9b4-ccccc", "podinfo-5d8f7c9b4-ddddd"],
    }


def test_http_route_routes_the_apex() -> None:
    body = HTTPRouteRouter().build(TARGET, Weights.canary_at(40))
    observed = world(http_routes=(parse_http_route(body, body["apiVersion"]),))
    route = build_table(observed).route("test", "podinfo")
    assert route is not None
    assert route.sources[0].kind == "HTTPRoute"
    assert route.rules[0].weights() == {"podinfo-primary": 60, "podinfo-canary": 40}


def test_http_route_wins_over_traffic_split() -> None:
    observed = world(
        splits=(split("test", "podinfo", [("podinfo-primary", 100), ("podinfo-canary", 0)]),),
        http_routes=(http_route("test", "podinfo", [("podinfo-primary", 0), ("podinfo-canary", 1)]),),
    )
    table = build_table(observed)
    route = table.route("test", "podinfo")
    assert route is not None and route.sources[0].kind == "HTTPRoute"
    assert any(r.kind == "TrafficSplit" and "overridden" in r.reason for r in table.rejected)


def test_the_oldest_of_two_splits_applies() -> None:
    older = split("test", "podinfo", [("podinfo-canary", 1)], name="b-old", created="2024-01-01T00:00:00Z")
    newer = split("test", "podinfo", [("podinfo-primary", 1)], name="a-new", created="2025-06-01T00:00:00Z")
    table = build_table(world(splits=(newer, older)))
    route = table.route("test", "podinfo")
    assert route is not None and route.sources[0].name == "b-old"
    assert [r.name for r in table.rejected] == ["a-new"]


def test_split_for_a_missing_apex_routes_nothing_and_is_reported() -> None:
    table = build_table(world(splits=(split("test", "ghost", [("podinfo-canary", 1)]),)))
    assert table.route("test", "ghost") is None
    assert table.rejected[0].name == "ghost" and "does not exist" in table.rejected[0].reason


def test_missing_backend_service_has_a_problem() -> None:
    services, pods = podinfo_world()
    observed = Observed(
        services=tuple(s for s in services if s.meta.name != "podinfo-canary"),
        pods=tuple(pods),
        splits=(split("test", "podinfo", [("podinfo-primary", 100), ("podinfo-canary", 0)]),),
    )
    route = build_table(observed).route("test", "podinfo")
    assert route is not None
    canary = route.rules[0].backends[1]
    assert canary.problem is not None and "does not exist" in canary.problem
    assert canary.problem_status == 503


def test_unready_pods_and_other_namespaces_are_not_endpoints() -> None:
    services, pods = podinfo_world()
    pods.append(pod("test", "podinfo", "unrdy", {"app": "podinfo"}, ready=False))
    pods.append(pod("other", "podinfo", "elsew", {"app": "podinfo"}))
    observed = Observed(services=tuple(services), pods=tuple(pods))
    assert endpoints_of(observed, "podinfo-canary") == {
        "podinfo-canary": ["podinfo-5d8f7c9b4-ccccc", "podinfo-5d8f7c9b4-ddddd"]
    }


def test_selector_must_be_a_subset_of_pod_labels() -> None:
    services = (
        service("t", "narrow", {"app": "web", "track": "stable"}),
        service("t", "wide", {"app": "web"}),
        service("t", "none", None),
    )
    pods = (
        pod("t", "web", "a1", {"app": "web", "track": "stable", "extra": "x"}),
        pod("t", "web", "b2", {"app": "web", "track": "canary"}),
        pod("t", "web", "c3", {"app": "api"}),
    )
    table = build_table(Observed(services=services, pods=pods))

    def names(apex: str) -> list[str]:
        route = table.route("t", apex)
        assert route is not None
        return [e.name.rsplit("-", 1)[1] for e in route.rules[0].backends[0].endpoints]

    assert names("narrow") == ["a1"]
    assert names("wide") == ["a1", "b2"]
    assert names("none") == []


def test_zero_weight_sum() -> None:
    observed = world(splits=(split("test", "podinfo", [("podinfo-primary", 0), ("podinfo-canary", "0m")]),))
    route = build_table(observed).route("test", "podinfo")
    assert route is not None
    rule = route.rules[0]
    assert rule.pick(random.Random(1)) is None
    assert rule.zero_weight_status == 503
    http = world(http_routes=(http_route("test", "podinfo", [("podinfo-primary", 0)]),))
    http_rule = build_table(http).route("test", "podinfo").rules[0]  # type: ignore[union-attr]
    assert http_rule.pick(random.Random(1)) is None and http_rule.zero_weight_status == 500


def test_route_without_parent_service_is_reported() -> None:
    table = build_table(world(http_routes=(http_route("test", "ghost", [("podinfo-canary", 1)]),)))
    assert [r.name for r in table.rejected] == ["ghost"]


def test_rejected_objects_are_passed_through() -> None:
    bad = Rejected("TrafficSplit", "test", "broken", "spec.backends[0].weight: nope")
    assert build_table(world(rejected=(bad,))).rejected == (bad,)


def test_http_route_rule_precedence() -> None:
    rules = [
        {"backendRefs": [{"name": "podinfo-primary"}]},  # catch-all, first in the list
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": [{"name": "podinfo-canary"}]},
        {"matches": [{"path": {"type": "Exact", "value": "/api/v1"}}], "backendRefs": [{"name": "podinfo"}]},
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "headers": [{"name": "x-canary", "value": "1"}]}],
            "backendRefs": [{"name": "podinfo-canary"}],
        },
    ]
    body = http_route_obj("test", "podinfo", [], rules=rules)
    route = build_table(world(http_routes=(parse_http_route(body, "v1"),))).route("test", "podinfo")
    assert route is not None

    def rule_for(path: str, headers: dict[str, str] | None = None) -> int | None:
        return route.select("GET", path, headers or {}, {})

    assert rule_for("/") == 0
    assert rule_for("/api/users") == 1
    assert rule_for("/api/v1") == 2
    assert rule_for("/api/users", {"x-canary": "1"}) == 3


def test_no_matching_rule() -> None:
    rules = [{"matches": [{"path": {"type": "Exact", "value": "/only"}}], "backendRefs": [{"name": "podinfo"}]}]
    body = http_route_obj("test", "podinfo", [], rules=rules)
    route = build_table(world(http_routes=(parse_http_route(body, "v1"),))).route("test", "podinfo")
    assert route is not None
    assert route.select("GET", "/other", {}, {}) is None


def test_two_http_routes_merge_oldest_first() -> None:
    a = http_route("test", "podinfo", [("podinfo-primary", 1)], name="young", created="2025-02-01T00:00:00Z")
    b = http_route("test", "podinfo", [("podinfo-canary", 1)], name="old", created="2025-01-01T00:00:00Z")
    route = build_table(world(http_routes=(a, b))).route("test", "podinfo")
    assert route is not None
    assert [s.name for s in route.sources] == ["old", "young"]
    # Both are catch-alls: the older route's rule wins the tie.
    assert route.rules[route.select("GET", "/", {}, {}) or 0].backends[0].service == "podinfo-canary"


def test_since_is_kept_while_the_configuration_is_unchanged() -> None:
    first = carry_since(EMPTY_TABLE, build_table(world()), now=100.0)
    assert first.route("test", "podinfo").since == 100.0  # type: ignore[union-attr]
    same = carry_since(first, build_table(world()), now=200.0)
    assert same.route("test", "podinfo").since == 100.0  # type: ignore[union-attr]
    changed = carry_since(
        same, build_table(world(splits=(split("test", "podinfo", [("podinfo-primary", 1)]),))), now=300.0
    )
    assert changed.route("test", "podinfo").since == 300.0  # type: ignore[union-attr]
    assert changed.route("test", "podinfo-canary").since == 100.0  # type: ignore[union-attr]


def test_pod_churn_does_not_change_the_signature() -> None:
    services, pods = podinfo_world()
    s = (split("test", "podinfo", [("podinfo-primary", 80), ("podinfo-canary", 20)]),)
    before = build_table(Observed(services=tuple(services), pods=tuple(pods), splits=s)).route("test", "podinfo")
    after = build_table(Observed(services=tuple(services), pods=tuple(pods[:1]), splits=s)).route("test", "podinfo")
    assert before is not None and after is not None
    assert before.signature == after.signature


def test_route_json() -> None:
    observed = world(splits=(split("test", "podinfo", [("podinfo-primary", "800m"), ("podinfo-canary", "200m")], version="v1alpha1"),))
    out = route_json(build_table(observed).route("test", "podinfo"))  # type: ignore[arg-type]
    assert out["weights"] == {"podinfo-primary": 0.8, "podinfo-canary": 0.2}
    assert [b["percent"] for b in out["rules"][0]["backends"]] == [80.0, 20.0]
    assert out["sources"][0]["apiVersion"] == "split.smi-spec.io/v1alpha1"


# --- picking --------------------------------------------------------------------------------


def _rule(*weights: int | Fraction) -> Rule:
    return Rule(backends=tuple(Backend(service=f"b{i}", weight=Fraction(w), endpoints=()) for i, w in enumerate(weights)))


@pytest.mark.parametrize(
    "weights",
    [(80, 20), (90, 10), (1, 1), (1000, 500), (99, 1), (50, 0, 50), (0, 100), (Fraction(9, 10), Fraction(1, 10))],
)
def test_picks_follow_the_weights(weights: tuple[int, ...]) -> None:
    rng = random.Random(1234)
    rule = _rule(*weights)
    n = 20_000
    counts = Counter(rule.pick(rng).service for _ in range(n))  # type: ignore[union-attr]
    total = sum(Fraction(w) for w in weights)
    for i, w in enumerate(weights):
        p = float(Fraction(w) / total)
        observed = counts[f"b{i}"] / n
        # Five standard deviations of a binomial proportion: fails by chance about once in 3.5M.
        tolerance = 5 * (p * (1 - p) / n) ** 0.5
        assert abs(observed - p) <= tolerance, (weights, i, observed, p)
        if w == 0:
            assert counts[f"b{i}"] == 0


def test_one_percent_canary_gets_about_one_percent() -> None:
    rng = random.Random(7)
    rule = _rule(99, 1)
    hits = sum(rule.pick(rng).service == "b1" for _ in range(10_000))  # type: ignore[union-attr]
    assert 60 <= hits <= 140
