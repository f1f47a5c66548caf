"""SMI A/B: TrafficSplits whose ``matches`` name HTTPRouteGroups (v1alpha3/v1alpha4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from e2e.mesh.dataplane import DataPlane
from e2e.mesh.errors import ObjectError
from e2e.mesh.objects import parse_traffic_split
from e2e.mesh.route_groups import HTTPRouteGroup, parse_http_route_group
from e2e.mesh.routes import Route
from e2e.mesh.routing import Observed, build_table
from tests.mesh.factories import meta, podinfo_world, split, split_obj
from tests.mesh.test_dataplane import until

NS = "test"


def group(name: str, routes: list[dict[str, Any]], *, version: str = "v1alpha4") -> HTTPRouteGroup:
    body = {
        "apiVersion": f"specs.smi-spec.io/{version}",
        "kind": "HTTPRouteGroup",
        "metadata": meta(NS, name),
        "spec": {"matches": routes},
    }
    return parse_http_route_group(body, body["apiVersion"])


def ab_split(groups: list[str], backends: list[tuple[str, int]], *, name: str = "podinfo-ab", created: str = "2025-01-02T00:00:00Z") -> Any:
    body = split_obj(NS, "podinfo", backends, version="v1alpha4", name=name, created=created)
    body["spec"]["matches"] = [{"kind": "HTTPRouteGroup", "name": g} for g in groups]
    return parse_traffic_split(body, body["apiVersion"])


def route_for(*objects: Any) -> Route:
    services, pods = podinfo_world(NS)
    observed = Observed(
        services=tuple(services),
        pods=tuple(pods),
        splits=tuple(o for o in objects if not isinstance(o, HTTPRouteGroup)),
        route_groups=tuple(o for o in objects if isinstance(o, HTTPRouteGroup)),
    )
    route = build_table(observed).route(NS, "podinfo")
    assert route is not None
    return route


def backend(route: Route, path: str = "/", method: str = "GET", headers: dict[str, str] | None = None) -> str | None:
    index = route.select(method, path, headers or {}, {})
    return None if index is None else route.rules[index].backends[0].service


INSIDER_GROUP = group("insiders", [{"name": "by-header", "headers": {"x-canary": "insider|tester"}}])
MAIN_SPLIT = split(NS, "podinfo", [("podinfo-primary", 100), ("podinfo-canary", 0)], version="v1alpha4")
AB_SPLIT = ab_split(["insiders"], [("podinfo-canary", 100)])


# --- parsing ------------------------------------------------------------------------------------


def test_header_regexes_must_match_the_whole_value() -> None:
    route = route_for(MAIN_SPLIT, AB_SPLIT, INSIDER_GROUP)
    assert backend(route, headers={"x-canary": "tester"}) == "podinfo-canary"
    assert backend(route, headers={"x-canary": "insider"}) == "podinfo-canary"
    assert backend(route, headers={"x-canary": "insiders"}) == "podinfo-primary"
    assert backend(route) == "podinfo-primary"


def test_path_regex_is_anchored_at_the_start_and_methods_restrict() -> None:
    api = group("api", [{"name": "writes", "pathRegex": "/api/v[0-9]+", "methods": ["POST", "put"]}])
    route = route_for(MAIN_SPLIT, ab_split(["api"], [("podinfo-canary", 1)]), api)
    assert backend(route, "/api/v2/orders", "POST") == "podinfo-canary"
    assert backend(route, "/api/v2", "PUT") == "podinfo-canary"
    assert backend(route, "/api/v2/orders", "GET") == "podinfo-primary"
    assert backend(route, "/x/api/v2", "POST") == "podinfo-primary"


def test_any_route_of_the_group_matches_and_a_star_is_any_method() -> None:
    both = group("both", [{"name": "a", "pathRegex": "/a", "methods": ["*"]}, {"name": "b", "headers": {"x-b": "1"}}])
    route = route_for(MAIN_SPLIT, ab_split(["both"], [("podinfo-canary", 1)]), both)
    assert backend(route, "/a/1", "DELETE") == "podinfo-canary"
    assert backend(route, "/z", headers={"x-b": "1"}) == "podinfo-canary"
    assert backend(route, "/z") == "podinfo-primary"


def test_older_versions_write_headers_as_a_list_at_the_top_level() -> None:
    body = {
        "apiVersion": "specs.smi-spec.io/v1alpha1",
        "kind": "HTTPRouteGroup",
        "metadata": meta(NS, "old"),
        "matches": [{"name": "r", "pathRegex": "/x", "headers": [{"x-a": "1"}]}],
    }
    parsed = parse_http_route_group(body, body["apiVersion"])
    (match,) = parsed.matches
    assert match.headers[0].name == "x-a" and match.path == "/x"


@pytest.mark.parametrize(
    "routes",
    [[{"pathRegex": "/x"}], [{"name": "r", "pathRegex": "("}], [{"name": "r", "headers": {"x": "["}}], [{"name": "r", "methods": "GET"}]],
)
def test_invalid_groups_are_refused(routes: list[dict[str, Any]]) -> None:
    with pytest.raises(ObjectError):
        group("bad", routes)


# --- routing ------------------------------------------------------------------------------------


def test_the_split_without_matches_is_rule_0_and_applies_to_the_rest() -> None:
    route = route_for(AB_SPLIT, MAIN_SPLIT, INSIDER_GROUP)
    assert [s.name for s in route.sources] == ["podinfo", "podinfo-ab"]
    assert route.rules[0].weights() == {"podinfo-primary": 100, "podinfo-canary": 0}
    assert route.rules[1].weights() == {"podinfo-canary": 100}


def test_without_a_plain_split_the_rest_goes_to_the_apex_endpoints() -> None:
    route = route_for(AB_SPLIT, INSIDER_GROUP)
    assert backend(route) == "podinfo"
    assert backend(route, headers={"x-canary": "insider"}) == "podinfo-canary"


def test_a_missing_group_matches_nothing_and_is_reported() -> None:
    route = route_for(MAIN_SPLIT, AB_SPLIT)
    assert backend(route, headers={"x-canary": "insider"}) == "podinfo-primary"
    assert any("HTTPRouteGroup insiders does not exist" in w for w in route.warnings)


def test_other_match_kinds_are_reported() -> None:
    body = split_obj(NS, "podinfo", [("podinfo-canary", 1)], version="v1alpha4", name="tcp")
    body["spec"]["matches"] = [{"kind": "TCPRoute", "name": "t"}]
    route = route_for(MAIN_SPLIT, parse_traffic_split(body, body["apiVersion"]))
    assert any("TCPRoute t" in w for w in route.warnings)


def test_the_older_of_two_match_splits_is_tried_first() -> None:
    older = ab_split(["insiders"], [("podinfo-canary", 1)], name="a-older", created="2025-01-02T00:00:00Z")
    newer = ab_split(["insiders"], [("podinfo", 1)], name="b-newer", created="2025-01-03T00:00:00Z")
    route = route_for(MAIN_SPLIT, newer, older, INSIDER_GROUP)
    assert backend(route, headers={"x-canary": "insider"}) == "podinfo-canary"


# --- the data plane -----------------------------------------------------------------------------


@pytest.fixture
async def plane() -> AsyncIterator[DataPlane]:
    dp = DataPlane(seed=7)
    await dp.start()
    try:
        yield dp
    finally:
        await dp.close()


async def test_smi_ab_routes_only_matching_requests_to_the_canary(plane: DataPlane) -> None:
    services, pods = podinfo_world(NS)
    await plane.apply(
        Observed(
            services=tuple(services), pods=tuple(pods), splits=(MAIN_SPLIT, AB_SPLIT), route_groups=(INSIDER_GROUP,)
        )
    )
    assert plane.loadgen is not None
    streams = [
        plane.loadgen.set(NS, "podinfo", 200, name="insiders", headers={"x-canary": "insider"}),
        plane.loadgen.set(NS, "podinfo", 200, name="others"),
    ]

    def counts() -> dict[str, dict[str, int]]:
        snap: dict[str, dict[str, int]] = plane.stats.snapshot(NS, "podinfo")["streams"]
        return snap

    await until(lambda: all(sum(counts().get(n, {}).values()) >= 100 for n in ("insiders", "others")))
    for name in ("insiders", "others"):
        plane.loadgen.set(NS, "podinfo", 0, name=name)
    await until(lambda: all(s is not None and s.in_flight == 0 for s in streams))
    assert set(counts()["insiders"]) == {"podinfo-canary"}
    assert set(counts()["others"]) == {"podinfo-primary"}
