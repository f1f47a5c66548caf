from __future__ import annotations

import copy
from typing import Any

import pytest

from canary.routers.base import RouteTarget, Weights
from canary.routers.gatewayapi import HTTPRouteRouter

OWNER = {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo", "uid": "u-1", "controller": True}
TARGET = RouteTarget(
    namespace="test",
    apex="podinfo",
    primary="podinfo-primary",
    canary="podinfo-canary",
    port=9898,
    owner=OWNER,
    labels={"app": "podinfo"},
)
ROUTER = HTTPRouteRouter()


def _route(refs: Any, parent: Any = None, **rule: Any) -> dict[str, Any]:
    parents = [{"group": "", "kind": "Service", "name": "podinfo", "port": 9898}] if parent is None else parent
    return {"spec": {"parentRefs": parents, "rules": [{"backendRefs": refs, **rule}]}}


def _refs(primary: Any, canary: Any) -> list[dict[str, Any]]:
    return [
        {"name": "podinfo-primary", "port": 9898, "weight": primary},
        {"name": "podinfo-canary", "port": 9898, "weight": canary},
    ]


def test_build_exact_body() -> None:
    assert ROUTER.build(TARGET, Weights.canary_at(25)) == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "podinfo",
            "namespace": "test",
            "labels": {"app": "podinfo"},
            "ownerReferences": [OWNER],
        },
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "podinfo", "port": 9898}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "podinfo-primary", "port": 9898, "weight": 75},
                        {"name": "podinfo-canary", "port": 9898, "weight": 25},
                    ]
                }
            ],
        },
    }


def test_build_leaves_out_empty_owner_and_labels() -> None:
    bare = RouteTarget(namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary", port=80)
    assert ROUTER.build(bare, Weights.canary_at(0))["metadata"] == {"name": "podinfo", "namespace": "test"}


def test_weights_sum_to_100_and_round_trip() -> None:
    for canary in range(101):
        weights = Weights.canary_at(canary)
        body = ROUTER.build(TARGET, weights)
        refs = body["spec"]["rules"][0]["backendRefs"]
        assert [r["weight"] for r in refs] == [100 - canary, canary]
        assert ROUTER.read_weights(TARGET, body) == weights


def test_reads_back_what_the_api_server_defaults() -> None:
    body = ROUTER.build(TARGET, Weights.canary_at(40))
    stored = copy.deepcopy(body)
    rule = stored["spec"]["rules"][0]
    rule["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
    for ref in rule["backendRefs"]:
        ref.update(group="", kind="Service")
    assert ROUTER.read_weights(TARGET, stored) == Weights(60, 40)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(
            _route([{"name": "podinfo-primary", "port": 9898}, {"name": "podinfo-canary", "port": 9898}]),
            Weights(50, 50),
            id="default-weight-both",
        ),
        pytest.param(
            _route([{"name": "podinfo-primary", "port": 9898}, {"name": "podinfo-canary", "port": 9898, "weight": 3}]),
            Weights(25, 75),
            id="default-weight-primary",
        ),
        pytest.param(
            _route([{"name": "podinfo-primary", "port": 9898, "weight": 0}, {"name": "podinfo-canary", "port": 9898}]),
            Weights(0, 100),
            id="default-weight-canary",
        ),
        pytest.param(_route(_refs(1000, 500)), Weights(67, 33), id="relative-1000-500"),
        pytest.param(_route(_refs(1_000_000, 0)), Weights(100, 0), id="maximum-weight"),
        pytest.param(_route(list(reversed(_refs(70, 30)))), Weights(70, 30), id="canary-listed-first"),
        pytest.param(
            _route(_refs(90, 10), matches=[{"path": {"type": "PathPrefix", "value": "/"}}]),
            Weights(90, 10),
            id="catch-all-match",
        ),
        pytest.param(_route(_refs(90, 10), matches=[{}]), Weights(90, 10), id="empty-match"),
        pytest.param(
            _route(_refs(90, 10), matches=[{"headers": [{"name": "x-beta", "value": "1"}]}, {}]),
            Weights(90, 10),
            id="one-catch-all-among-matches",
        ),
        pytest.param(
            _route(_refs(90, 10), parent=[{"group": "", "kind": "Service", "name": "podinfo"}]),
            Weights(90, 10),
            id="parent-without-port",
        ),
        pytest.param(
            _route(_refs(90, 10), parent=[{"group": "", "kind": "Service", "name": "podinfo", "namespace": "test"}]),
            Weights(90, 10),
            id="parent-same-namespace",
        ),
    ],
)
def test_read_weights_of_foreign_objects(obj: dict[str, Any], expected: Weights) -> None:
    assert ROUTER.read_weights(TARGET, obj) == expected


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param({}, id="no-spec"),
        pytest.param({"spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "podinfo"}]}}, id="no-rules"),
        pytest.param(_route(None), id="no-backend-refs"),
        pytest.param(_route(_refs(90, 10)[:1]), id="missing-canary"),
        pytest.param(_route([*_refs(90, 10), {"name": "other", "port": 9898, "weight": 5}]), id="extra-backend"),
        pytest.param(
            _route([{"name": "podinfo-primary", "port": 9898, "weight": 5}, {"name": "other", "port": 9898}]),
            id="unknown-backend",
        ),
        pytest.param(_route(_refs(0, 0)), id="all-zero"),
        pytest.param(_route(_refs("90", "10")), id="weight-string"),
        pytest.param(_route(_refs(True, False)), id="weight-bool"),
        pytest.param(_route(_refs(-1, 101)), id="weight-negative"),
        pytest.param(_route(_refs(1_000_001, 1)), id="weight-too-large"),
        pytest.param(
            _route([{"name": "podinfo-primary", "port": 8080, "weight": 90}, *_refs(90, 10)[1:]]),
            id="backend-other-port",
        ),
        pytest.param(
            _route([{"name": "podinfo-primary", "port": 9898, "weight": 90, "namespace": "prod"}, *_refs(90, 10)[1:]]),
            id="backend-other-namespace",
        ),
        pytest.param(
            _route(
                [{"name": "podinfo-primary", "port": 9898, "weight": 90, "kind": "ServiceImport"}, *_refs(90, 10)[1:]]
            ),
            id="backend-not-a-service",
        ),
        pytest.param(
            _route(_refs(90, 10), parent=[{"group": "", "kind": "Service", "name": "other"}]),
            id="parent-other-service",
        ),
        pytest.param(_route(_refs(90, 10), parent=[{"name": "podinfo"}]), id="parent-defaults-to-gateway"),
        pytest.param(
            _route(_refs(90, 10), parent=[{"group": "", "kind": "Service", "name": "podinfo", "port": 80}]),
            id="parent-other-port",
        ),
        pytest.param(
            _route(_refs(90, 10), parent=[{"group": "", "kind": "Service", "name": "podinfo", "namespace": "prod"}]),
            id="parent-other-namespace",
        ),
        pytest.param(
            _route(
                _refs(90, 10),
                parent=[
                    {"group": "", "kind": "Service", "name": "podinfo"},
                    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"},
                ],
            ),
            id="second-parent",
        ),
        pytest.param(_route(_refs(90, 10), parent=[]), id="no-parent"),
        pytest.param(
            _route(_refs(90, 10), matches=[{"headers": [{"name": "x-beta", "value": "1"}]}]),
            id="header-match",
        ),
        pytest.param(
            _route(_refs(90, 10), matches=[{"path": {"type": "PathPrefix", "value": "/api"}}]),
            id="path-match",
        ),
        pytest.param(_route(_refs(90, 10), matches=[{"method": "GET"}]), id="method-match"),
        pytest.param(
            {
                "spec": {
                    "parentRefs": [{"group": "", "kind": "Service", "name": "podinfo"}],
                    "rules": [{"backendRefs": _refs(90, 10)}, {"backendRefs": _refs(0, 100)}],
                }
            },
            id="two-rules",
        ),
    ],
)
def test_read_weights_of_objects_not_ours(obj: dict[str, Any]) -> None:
    assert ROUTER.read_weights(TARGET, obj) is None


def test_resource() -> None:
    resource = ROUTER.resource
    assert (resource.group, resource.version, resource.plural, resource.kind) == (
        "gateway.networking.k8s.io",
        "v1",
        "httproutes",
        "HTTPRoute",
    )
