"""``provider: kubernetes``: no route object, blue/green only, every route option refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from canary.domain.observed import Problem
from canary.domain.spec import parse_canary_spec
from canary.domain.weights import ALL_PRIMARY, Weights
from canary.errors import RouterError
from canary.routers.base import RouteTarget
from canary.routers.factory import route_options_problem
from canary.routers.options import RouteOptions
from canary.routers.services import ServicesRouter

TARGET = RouteTarget(namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary", port=9898)


def _options(analysis: dict[str, Any], service: dict[str, Any] | None = None) -> RouteOptions:
    return RouteOptions.of(parse_canary_spec({
        "provider": "kubernetes",
        "targetRef": {"name": "podinfo"},
        "service": {"port": 9898, **(service or {})},
        "analysis": {"interval": "1m", "threshold": 2, **analysis},
    }))


def test_the_router_writes_nothing_and_reads_the_apex_as_all_primary() -> None:
    router = ServicesRouter()
    assert router.resource is None
    assert router.companions(TARGET) == () and router.companion_resources == ()
    assert router.read_weights(TARGET, {}) == ALL_PRIMARY


def test_the_router_refuses_to_build_a_split() -> None:
    with pytest.raises(RouterError, match="writes no route object"):
        ServicesRouter().build(TARGET, Weights.canary_at(10))


def test_blue_green_with_iterations_is_accepted() -> None:
    assert route_options_problem("kubernetes", _options({"iterations": 5})) is None


@pytest.mark.parametrize(("analysis", "field"), [
    ({"stepWeight": 10, "maxWeight": 50}, "spec.analysis.stepWeight"),
    ({"stepWeights": [10, 50]}, "spec.analysis.stepWeights"),
    ({"stepWeight": 10, "iterations": 5}, "spec.analysis.stepWeight"),
])
def test_a_weighted_analysis_is_refused_by_name(analysis: dict[str, Any], field: str) -> None:
    problem = route_options_problem("kubernetes", _options(analysis))
    assert problem is not None
    assert (problem.field, problem.reason) == (field, "InvalidSpec")
    assert problem.message.startswith(f"{field}: provider 'kubernetes' is blue/green: set iterations")


@pytest.mark.parametrize(("analysis", "service", "field"), [
    ({"iterations": 3, "match": [{"headers": {"x-a": {"exact": "1"}}}]}, {}, "spec.analysis.match"),
    ({"iterations": 3, "mirror": True}, {}, "spec.analysis.mirror"),
    ({"iterations": 3, "sessionAffinity": {"cookieName": "c"}}, {}, "spec.analysis.sessionAffinity"),
    ({"iterations": 3}, {"gatewayRefs": [{"name": "public"}]}, "spec.service.gatewayRefs"),
    ({"iterations": 3}, {"hosts": ["app.example.com"]}, "spec.service.hosts"),
    ({"iterations": 3}, {"timeout": "30s"}, "spec.service.timeout"),
    ({"iterations": 3}, {"headers": {"request": {"set": {"x-a": "1"}}}}, "spec.service.headers"),
    ({"iterations": 3}, {"rewrite": {"uri": "/v2"}}, "spec.service.rewrite"),
])
def test_every_route_option_is_refused_by_name(analysis: dict[str, Any], service: dict[str, Any], field: str) -> None:
    assert route_options_problem("kubernetes", _options(analysis, service)) == Problem(
        field, "InvalidSpec",
        f"{field} needs a route object, and spec.provider 'kubernetes' writes none (the apex Service selects the "
        f"primary; the canary is reached only through <service>-canary). Set spec.provider: gatewayapi, or "
        f"remove {field}",
    )
