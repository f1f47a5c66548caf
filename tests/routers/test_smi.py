from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from canary.domain.providers import SMI_VERSIONS
from canary.errors import RouterError
from canary.routers.base import RouteOptions, RouteTarget, Weights
from canary.routers.smi import TrafficSplitRouter, milli_quantity

OWNER = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "Canary",
    "name": "podinfo",
    "uid": "0b6f2c1e-0000-4000-8000-000000000001",
    "controller": True,
    "blockOwnerDeletion": True,
}
TARGET = RouteTarget(
    namespace="test",
    apex="podinfo",
    primary="podinfo-primary",
    canary="podinfo-canary",
    port=9898,
    owner=OWNER,
    labels={"app.kubernetes.io/managed-by": "canary"},
)
BARE_TARGET = RouteTarget(
    namespace="test", apex="podinfo", primary="podinfo-primary", canary="podinfo-canary", port=9898
)
ALL_VERSIONS = [pytest.param(v, id=v) for v in SMI_VERSIONS]


def _expected(version: str, primary: int | str, canary: int | str) -> dict[str, Any]:
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": {
            "name": "podinfo",
            "namespace": "test",
            "labels": {"app.kubernetes.io/managed-by": "canary"},
            "ownerReferences": [OWNER],
        },
        "spec": {
            "service": "podinfo",
            "backends": [
                {"service": "podinfo-primary", "weight": primary},
                {"service": "podinfo-canary", "weight": canary},
            ],
        },
    }


@pytest.mark.parametrize(
    ("version", "canary", "expected"),
    [
        pytest.param("v1alpha4", 10, _expected("v1alpha4", 90, 10), id="v1alpha4-10"),
        pytest.param("v1alpha3", 10, _expected("v1alpha3", 90, 10), id="v1alpha3-10"),
        pytest.param("v1alpha2", 10, _expected("v1alpha2", 90, 10), id="v1alpha2-10"),
        pytest.param("v1alpha1", 10, _expected("v1alpha1", "900m", "100m"), id="v1alpha1-10"),
        pytest.param("v1alpha1", 0, _expected("v1alpha1", "1", "0"), id="v1alpha1-0"),
        pytest.param("v1alpha1", 100, _expected("v1alpha1", "0", "1"), id="v1alpha1-100"),
        pytest.param("v1alpha1", 1, _expected("v1alpha1", "990m", "10m"), id="v1alpha1-1"),
        pytest.param("v1alpha1", 50, _expected("v1alpha1", "500m", "500m"), id="v1alpha1-50"),
        pytest.param("v1alpha2", 0, _expected("v1alpha2", 100, 0), id="v1alpha2-0"),
        pytest.param("v1alpha4", 100, _expected("v1alpha4", 0, 100), id="v1alpha4-100"),
    ],
)
def test_build_exact_body(version: str, canary: int, expected: dict[str, Any]) -> None:
    assert TrafficSplitRouter(version).build(TARGET, Weights.canary_at(canary)) == expected


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_build_leaves_out_empty_owner_and_labels(version: str) -> None:
    body = TrafficSplitRouter(version).build(BARE_TARGET, Weights.canary_at(0))
    assert body["metadata"] == {"name": "podinfo", "namespace": "test"}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_build_writes_no_matches(version: str) -> None:
    body = TrafficSplitRouter(version).build(TARGET, Weights.canary_at(20))
    assert set(body["spec"]) == {"service", "backends"}


@pytest.mark.parametrize("version", [pytest.param(v, id=v) for v in ("v1alpha2", "v1alpha3", "v1alpha4")])
def test_integer_weights_sum_to_100(version: str) -> None:
    router = TrafficSplitRouter(version)
    for canary in range(101):
        backends = router.build(TARGET, Weights.canary_at(canary))["spec"]["backends"]
        assert [b["weight"] for b in backends] == [100 - canary, canary]
        assert all(type(b["weight"]) is int for b in backends)


def test_v1alpha1_weights_sum_to_one() -> None:
    router = TrafficSplitRouter("v1alpha1")
    for canary in range(101):
        backends = router.build(TARGET, Weights.canary_at(canary))["spec"]["backends"]
        milli = [_milli(b["weight"]) for b in backends]
        assert milli == [(100 - canary) * 10, canary * 10]
        assert sum(milli) == 1000


def _milli(text: str) -> int:
    return int(text[:-1]) if text.endswith("m") else int(text) * 1000


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_round_trip(version: str) -> None:
    router = TrafficSplitRouter(version)
    for canary in range(101):
        weights = Weights.canary_at(canary)
        assert router.read_weights(TARGET, router.build(TARGET, weights)) == weights


@pytest.mark.parametrize(
    ("milli", "text"),
    [
        pytest.param(0, "0", id="zero"),
        pytest.param(10, "10m", id="ten"),
        pytest.param(900, "900m", id="fraction"),
        pytest.param(1000, "1", id="one"),
        pytest.param(1500, "1500m", id="one-and-a-half"),
        pytest.param(2000, "2", id="two"),
    ],
)
def test_milli_quantity_is_go_canonical(milli: int, text: str) -> None:
    assert milli_quantity(milli) == text


@pytest.mark.parametrize("milli", [pytest.param(-1, id="negative"), pytest.param(10**6, id="kilo")])
def test_milli_quantity_out_of_range(milli: int) -> None:
    with pytest.raises(ValueError):
        milli_quantity(milli)


def test_unknown_version_is_rejected() -> None:
    with pytest.raises(ValueError, match="v1beta1"):
        TrafficSplitRouter("v1beta1")


def _split(backends: Any, service: Any = "podinfo", **spec: Any) -> dict[str, Any]:
    return {"spec": {"service": service, "backends": backends, **spec}}


def _backends(primary: Any, canary: Any) -> list[dict[str, Any]]:
    return [{"service": "podinfo-primary", "weight": primary}, {"service": "podinfo-canary", "weight": canary}]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(_split(_backends("1", "0")), Weights(100, 0), id="quantity-string-one"),
        pytest.param(_split(_backends(1, 0)), Weights(100, 0), id="quantity-int-one"),
        pytest.param(_split(_backends("1000m", "0m")), Weights(100, 0), id="quantity-1000m"),
        pytest.param(_split(_backends("0.5", "0.5")), Weights(50, 50), id="quantity-decimal"),
        pytest.param(_split(_backends("500m", "1")), Weights(33, 67), id="quantity-mixed-forms"),
        pytest.param(_split(_backends("1k", "1k")), Weights(50, 50), id="quantity-kilo"),
        pytest.param(_split(_backends(1000, 500)), Weights(67, 33), id="relative-1000-500"),
        pytest.param(_split(_backends(3, 1)), Weights(75, 25), id="relative-small"),
        pytest.param(_split(_backends(90.0, 10.0)), Weights(90, 10), id="number-typed-weights"),
        pytest.param(_split(list(reversed(_backends(80, 20)))), Weights(80, 20), id="canary-listed-first"),
        pytest.param(_split(_backends(0, 5)), Weights(0, 100), id="all-canary"),
        pytest.param(_split(_backends(90, 10), matches=[]), Weights(90, 10), id="empty-matches"),
    ],
)
@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_read_weights_of_foreign_objects(version: str, obj: dict[str, Any], expected: Weights) -> None:
    # Every version reads every spelling: without a conversion webhook, an object written
    # through one version is returned unchanged through the others.
    assert TrafficSplitRouter(version).read_weights(TARGET, obj) == expected


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param({}, id="no-spec"),
        pytest.param({"spec": None}, id="null-spec"),
        pytest.param(_split(None), id="no-backends"),
        pytest.param(_split([]), id="empty-backends"),
        pytest.param(_split(_backends(90, 10)[:1]), id="missing-canary"),
        pytest.param(_split(_backends(90, 10)[1:]), id="missing-primary"),
        pytest.param(_split([*_backends(90, 10), {"service": "other", "weight": 1}]), id="extra-backend"),
        pytest.param(
            _split([{"service": "podinfo-primary", "weight": 90}, {"service": "other", "weight": 10}]),
            id="unknown-backend",
        ),
        pytest.param(
            _split([{"service": "podinfo-primary", "weight": 50}, {"service": "podinfo-primary", "weight": 50}]),
            id="repeated-backend",
        ),
        pytest.param(_split(_backends(90, 10), service="other"), id="service-differs"),
        pytest.param(_split(_backends(90, 10), service=None), id="service-missing"),
        pytest.param(_split(_backends(0, 0)), id="all-zero"),
        pytest.param(_split(_backends("0m", "0")), id="all-zero-quantities"),
        pytest.param(
            _split([{"service": "podinfo-primary"}, {"service": "podinfo-canary", "weight": 1}]), id="no-weight"
        ),
        pytest.param(_split(_backends(-10, 110)), id="negative-weight"),
        pytest.param(_split(_backends("ninety", "ten")), id="weight-not-a-quantity"),
        pytest.param(_split(_backends(True, False)), id="weight-bool"),
        pytest.param(_split(["podinfo-primary", "podinfo-canary"]), id="backend-not-a-mapping"),
        pytest.param(
            _split(_backends(90, 10), matches=[{"kind": "HTTPRouteGroup", "name": "beta-users"}]),
            id="with-matches",
        ),
    ],
)
@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_read_weights_of_objects_not_ours(version: str, obj: dict[str, Any]) -> None:
    assert TrafficSplitRouter(version).read_weights(TARGET, obj) is None


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_resource(version: str) -> None:
    resource = TrafficSplitRouter(version).resource
    assert (resource.group, resource.version, resource.plural, resource.kind) == (
        "split.smi-spec.io",
        version,
        "trafficsplits",
        "TrafficSplit",
    )
    assert resource.api_version == f"split.smi-spec.io/{version}"


@pytest.mark.parametrize("version", SMI_VERSIONS)
def test_the_experiment_stage_is_refused_not_dropped(version: str) -> None:
    with pytest.raises(RouterError, match=r"cannot route the experiment stage \(100/0\+experiment\)"):
        TrafficSplitRouter(version).build(TARGET, Weights(100, 0, experiment=True))


@pytest.mark.parametrize("version", SMI_VERSIONS)
def test_route_options_are_refused_not_dropped(version: str) -> None:
    options = RouteOptions(hosts=("app.example.com",), fields=("spec.service.hosts",))
    with pytest.raises(RouterError, match="cannot apply spec.service.hosts: they are applied only with spec.provider: "
                                          "gatewayapi"):
        TrafficSplitRouter(version).build(dataclasses.replace(TARGET, options=options), Weights(90, 10))


@pytest.mark.parametrize("version", SMI_VERSIONS)
def test_reads_are_never_the_experiment(version: str) -> None:
    router = TrafficSplitRouter(version)
    weights = router.read_weights(TARGET, router.build(TARGET, Weights(100, 0)))
    assert weights == Weights(100, 0) and not weights.experiment
