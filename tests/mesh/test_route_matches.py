"""HTTPRoute matches, the Gateway API's precedence between them, and north-south routes
(HTTPRoutes attached to a Gateway, chosen by hostname)."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.mesh.objects import parse_http_route
from e2e.mesh.routes import Route
from e2e.mesh.routing import Observed, build_table
from tests.mesh.factories import http_route_obj, podinfo_world

NS = "test"


def to(service: str) -> list[dict[str, Any]]:
    return [{"name": service, "port": 9898}]


def route_of(*rule_sets: list[dict[str, Any]], **kw: Any) -> Route:
    """The apex route made of one HTTPRoute per rule set (named r0, r1, ... created in order)."""
    services, pods = podinfo_world(NS)
    http_routes = tuple(
        parse_http_route(
            http_route_obj(NS, "podinfo", [], rules=rules, name=f"r{i}", created=f"2025-01-0{i + 1}T00:00:00Z", **kw),
            "v1",
        )
        for i, rules in enumerate(rule_sets)
    )
    route = build_table(Observed(services=tuple(services), pods=tuple(pods), http_routes=http_routes)).route(NS, "podinfo")
    assert route is not None
    return route


def backend_for(
    route: Route,
    path: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> str | None:
    index = route.select(method, path, headers or {}, query or {})
    return None if index is None else route.rules[index].backends[0].service


# --- each kind of match -----------------------------------------------------------------------


def test_a_rule_without_matches_matches_everything() -> None:
    route = route_of([{"backendRefs": to("podinfo-primary")}])
    assert backend_for(route, "/any/path", method="DELETE", headers={"x": "y"}, query={"q": "1"}) == "podinfo-primary"


def test_header_exact_match_and_the_rest_falls_through() -> None:
    route = route_of(
        [
            {"matches": [{"headers": [{"name": "X-Canary", "value": "insider"}]}], "backendRefs": to("podinfo-canary")},
            {"backendRefs": to("podinfo-primary")},
        ]
    )
    # Header names compare without regard to case (the proxy passes them lower-cased or as a
    # case-insensitive mapping); values exactly.
    assert backend_for(route, headers={"x-canary": "insider"}) == "podinfo-canary"
    assert backend_for(route, headers={"x-canary": "Insider"}) == "podinfo-primary"
    assert backend_for(route) == "podinfo-primary"


def test_cookie_by_regular_expression_header_match() -> None:
    # How Flagger's gatewayapi router expresses analysis.match cookie conditions.
    cookie = {"name": "cookie", "type": "RegularExpression", "value": ".*canary=always.*"}
    route = route_of(
        [{"matches": [{"headers": [cookie]}], "backendRefs": to("podinfo-canary")}, {"backendRefs": to("podinfo-primary")}]
    )
    assert backend_for(route, headers={"cookie": "session=1; canary=always; x=2"}) == "podinfo-canary"
    assert backend_for(route, headers={"cookie": "canary=never"}) == "podinfo-primary"


def test_query_param_exact_match_is_case_sensitive_in_name_and_value() -> None:
    route = route_of(
        [
            {"matches": [{"queryParams": [{"name": "Beta", "value": "on"}]}], "backendRefs": to("podinfo-canary")},
            {"backendRefs": to("podinfo-primary")},
        ]
    )
    assert backend_for(route, query={"Beta": "on"}) == "podinfo-canary"
    assert backend_for(route, query={"beta": "on"}) == "podinfo-primary"
    assert backend_for(route, query={"Beta": "ON"}) == "podinfo-primary"


def test_method_match() -> None:
    route = route_of([{"matches": [{"method": "POST"}], "backendRefs": to("podinfo-canary")}, {"backendRefs": to("podinfo-primary")}])
    assert backend_for(route, method="POST") == "podinfo-canary"
    assert backend_for(route, method="GET") == "podinfo-primary"


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/api", "podinfo-canary"), ("/api/v1", "podinfo-canary"), ("/apiv1", "podinfo-primary"), ("/", "podinfo-primary")],
)
def test_path_prefix_matches_whole_elements(path: str, expected: str) -> None:
    route = route_of(
        [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api/"}}], "backendRefs": to("podinfo-canary")},
            {"backendRefs": to("podinfo-primary")},
        ]
    )
    assert backend_for(route, path) == expected


def test_conditions_of_one_match_are_anded_and_matches_of_one_rule_ored() -> None:
    rule = {
        "matches": [
            {"path": {"type": "Exact", "value": "/buy"}, "method": "POST", "headers": [{"name": "x-a", "value": "1"}]},
            {"queryParams": [{"name": "beta", "value": "1"}]},
        ],
        "backendRefs": to("podinfo-canary"),
    }
    route = route_of([rule, {"backendRefs": to("podinfo-primary")}])
    assert backend_for(route, "/buy", method="POST", headers={"x-a": "1"}) == "podinfo-canary"
    assert backend_for(route, "/buy", method="GET", headers={"x-a": "1"}) == "podinfo-primary"
    assert backend_for(route, "/buy", method="POST") == "podinfo-primary"
    assert backend_for(route, "/other", query={"beta": "1"}) == "podinfo-canary"


def test_only_the_first_of_equivalent_header_names_counts() -> None:
    headers = [{"name": "x-a", "value": "1"}, {"name": "X-A", "value": "2"}]
    route = route_of([{"matches": [{"headers": headers}], "backendRefs": to("podinfo-canary")}, {"backendRefs": to("podinfo-primary")}])
    assert backend_for(route, headers={"x-a": "1"}) == "podinfo-canary"


# --- precedence -------------------------------------------------------------------------------


def test_precedence_exact_path_then_longest_prefix_then_method_then_headers_then_query() -> None:
    # Listed least specific first: list order must not decide.
    rules = [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/a"}, "queryParams": [{"name": "q", "value": "1"}]}], "backendRefs": to("q1")},
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/a"}, "headers": [{"name": "h", "value": "1"}, {"name": "i", "value": "1"}]}],
            "backendRefs": to("h2"),
        },
        {"matches": [{"path": {"type": "PathPrefix", "value": "/a"}, "headers": [{"name": "h", "value": "1"}]}], "backendRefs": to("h1")},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/a"}, "method": "GET"}], "backendRefs": to("method")},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/a/b"}}], "backendRefs": to("longer")},
        {"matches": [{"path": {"type": "Exact", "value": "/a/b/c"}}], "backendRefs": to("exact")},
    ]
    route = route_of(rules)
    everything = {"h": "1", "i": "1"}
    assert backend_for(route, "/a/b/c", headers=everything, query={"q": "1"}) == "exact"
    assert backend_for(route, "/a/b/d", headers=everything, query={"q": "1"}) == "longer"
    assert backend_for(route, "/a/x", headers=everything, query={"q": "1"}) == "method"
    assert backend_for(route, "/a/x", method="PUT", headers=everything, query={"q": "1"}) == "h2"
    assert backend_for(route, "/a/x", method="PUT", headers={"h": "1"}, query={"q": "1"}) == "h1"
    assert backend_for(route, "/a/x", method="PUT", query={"q": "1"}) == "q1"
    assert backend_for(route, "/a/x", method="PUT") is None  # no rule matches: the proxy answers 404


def test_ties_go_to_the_older_route_then_to_the_first_rule() -> None:
    header = [{"name": "x", "value": "1"}]
    older = [{"matches": [{"headers": header}], "backendRefs": to("older-first")}, {"matches": [{"headers": header}], "backendRefs": to("older-second")}]
    newer = [{"matches": [{"headers": header}], "backendRefs": to("newer")}]
    assert backend_for(route_of(older, newer), headers={"x": "1"}) == "older-first"
    assert backend_for(route_of(newer, older), headers={"x": "1"}) == "newer"  # r0 is the older one here


def test_a_more_specific_match_in_a_newer_route_wins_over_an_older_catch_all() -> None:
    header = [{"name": "x-canary", "value": "insider"}]
    route = route_of([{"backendRefs": to("podinfo-primary")}], [{"matches": [{"headers": header}], "backendRefs": to("podinfo-canary")}])
    assert backend_for(route, headers={"x-canary": "insider"}) == "podinfo-canary"
    assert backend_for(route) == "podinfo-primary"


# --- north-south: HTTPRoutes attached to a Gateway ------------------------------------------


def gateway_route(name: str, hostnames: list[str], backend: str, *, created: str = "2025-01-01T00:00:00Z", rules: list[dict[str, Any]] | None = None, namespace: str = NS) -> Any:
    body = http_route_obj(namespace, "unused", [], rules=rules or [{"backendRefs": to(backend)}], name=name, created=created)
    body["spec"]["parentRefs"] = [{"name": "edge", "namespace": "infra"}]
    if hostnames:
        body["spec"]["hostnames"] = hostnames
    return parse_http_route(body, "v1")


def gateway_table(*http_routes: Any) -> Any:
    services, pods = podinfo_world(NS)
    return build_table(Observed(services=tuple(services), pods=tuple(pods), http_routes=http_routes))


def host_backend(table: Any, host: str, headers: dict[str, str] | None = None) -> str | None:
    route = table.for_host(host)
    if route is None:
        return None
    index = route.select("GET", "/", headers or {}, {})
    return None if index is None else str(route.rules[index].backends[0].service)


def test_gateway_route_serves_its_hostnames_only() -> None:
    table = gateway_table(gateway_route("app", ["app.example.com"], "podinfo-primary"))
    assert host_backend(table, "app.example.com") == "podinfo-primary"
    assert host_backend(table, "APP.example.com:8080") == "podinfo-primary"  # case and port do not matter
    assert table.for_host("other.example.com") is None
    route = table.for_host("app.example.com")
    assert (route.namespace, route.service, route.host) == ("", "app.example.com", "app.example.com")
    assert route.rules[0].backends[0].namespace == NS
    # A Gateway route is not a Service route: the apex keeps routing to its own endpoints.
    assert table.route(NS, "podinfo").sources[0].kind == "Service"
    assert not table.rejected


def test_wildcard_hostnames_and_their_specificity() -> None:
    table = gateway_table(
        gateway_route("any", [], "podinfo", created="2025-01-01T00:00:00Z"),
        gateway_route("wide", ["*.example.com"], "podinfo-primary", created="2025-01-02T00:00:00Z"),
        gateway_route("narrow", ["*.eu.example.com"], "podinfo-canary", created="2025-01-03T00:00:00Z"),
        gateway_route("exact", ["shop.eu.example.com"], "exact", created="2025-01-04T00:00:00Z"),
    )
    assert host_backend(table, "shop.eu.example.com") == "exact"
    assert host_backend(table, "blog.eu.example.com") == "podinfo-canary"
    assert host_backend(table, "a.b.example.com") == "podinfo-primary"
    assert host_backend(table, "example.com") == "podinfo"  # a wildcard needs one more label
    assert host_backend(table, "elsewhere.org") == "podinfo"  # no hostnames: every host


def test_routes_of_one_host_merge_by_match_precedence_before_age() -> None:
    header = [{"name": "x-canary", "value": "insider"}]
    table = gateway_table(
        gateway_route("base", ["app.example.com"], "podinfo-primary", created="2025-01-01T00:00:00Z"),
        gateway_route(
            "ab",
            ["app.example.com"],
            "",
            created="2025-01-02T00:00:00Z",
            rules=[{"matches": [{"headers": header}], "backendRefs": to("podinfo-canary")}],
        ),
    )
    assert host_backend(table, "app.example.com", {"x-canary": "insider"}) == "podinfo-canary"
    assert host_backend(table, "app.example.com") == "podinfo-primary"
    assert [s.name for s in table.for_host("app.example.com").sources] == ["base", "ab"]


def test_service_parents_ignore_hostnames() -> None:
    body = http_route_obj(NS, "podinfo", [("podinfo-canary", 1)])
    body["spec"]["hostnames"] = ["app.example.com"]
    services, pods = podinfo_world(NS)
    table = build_table(Observed(services=tuple(services), pods=tuple(pods), http_routes=(parse_http_route(body, "v1"),)))
    assert table.route(NS, "podinfo").sources[0].kind == "HTTPRoute"
    assert table.for_host("app.example.com") is None


def test_a_route_with_both_parents_routes_both_ways() -> None:
    body = http_route_obj(NS, "podinfo", [("podinfo-canary", 1)])
    body["spec"]["parentRefs"].append({"name": "edge"})
    body["spec"]["hostnames"] = ["app.example.com"]
    services, pods = podinfo_world(NS)
    table = build_table(Observed(services=tuple(services), pods=tuple(pods), http_routes=(parse_http_route(body, "v1"),)))
    assert table.route(NS, "podinfo").rules[0].backends[0].service == "podinfo-canary"
    assert host_backend(table, "app.example.com") == "podinfo-canary"


def test_route_with_neither_parent_kind_is_rejected() -> None:
    body = http_route_obj(NS, "podinfo", [("podinfo-canary", 1)])
    body["spec"]["parentRefs"] = [{"group": "example.com", "kind": "Mesh", "name": "m"}]
    table = gateway_table(parse_http_route(body, "v1"))
    assert [r.name for r in table.rejected] == ["podinfo"]


def test_mirrors_resolve_to_endpoints_or_a_problem() -> None:
    rules = [
        {
            "backendRefs": to("podinfo-primary"),
            "filters": [
                {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "podinfo-canary"}, "percent": 50}},
                {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "ghost"}}},
            ],
        }
    ]
    canary, ghost = route_of(rules).rules[0].mirrors
    assert len(canary.endpoints) == 2 and canary.problem is None and float(canary.fraction) == 0.5
    assert ghost.problem is not None and "does not exist" in ghost.problem


def test_a_changed_mirror_or_timeout_is_a_new_configuration() -> None:
    base = [{"backendRefs": to("podinfo-primary")}]
    mirrored = [{**base[0], "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "podinfo-canary"}}}]}]
    timed = [{**base[0], "timeouts": {"request": "1s"}}]
    signatures = {route_of(r).signature for r in (base, mirrored, timed)}
    assert len(signatures) == 3


def test_ignored_filters_are_reported() -> None:
    rules = [{"backendRefs": to("podinfo-primary"), "filters": [{"type": "RequestRedirect", "requestRedirect": {}}]}]
    assert any("RequestRedirect" in w for w in route_of(rules).warnings)
