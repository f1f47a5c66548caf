"""Request paths to what they ask for."""

from __future__ import annotations

import pytest

from canary.metricsserver.paths import (
    Discovery,
    DiscoveryDoc,
    GetEdges,
    GetObject,
    ListObjects,
    OpenApi,
    OpenApiDoc,
    Target,
    parse_path,
)
from canary.metricsserver.resources import Kind

API = "/apis/metrics.smi-spec.io/v1alpha1"


@pytest.mark.parametrize(("path", "target"), [
    ("/apis", Discovery(DiscoveryDoc.GROUP_LIST)),
    ("/apis/", Discovery(DiscoveryDoc.GROUP_LIST)),
    ("/apis/metrics.smi-spec.io", Discovery(DiscoveryDoc.GROUP)),
    (API, Discovery(DiscoveryDoc.RESOURCES)),
    (API + "/", Discovery(DiscoveryDoc.RESOURCES)),
    (f"{API}/namespaces", ListObjects(Kind.NAMESPACES, None)),
    (f"{API}/namespaces/shop", GetObject(Kind.NAMESPACES, None, "shop")),
    (f"{API}/namespaces/shop/edges", GetEdges(Kind.NAMESPACES, None, "shop")),
    (f"{API}/pods", ListObjects(Kind.PODS, None)),
    (f"{API}/namespaces/shop/deployments", ListObjects(Kind.DEPLOYMENTS, "shop")),
    (f"{API}/namespaces/shop/daemonsets/d", GetObject(Kind.DAEMONSETS, "shop", "d")),
    (f"{API}/namespaces/shop/statefulsets/s/edges", GetEdges(Kind.STATEFULSETS, "shop", "s")),
    ("/openapi/v2", OpenApi(OpenApiDoc.V2)),
    ("/openapi/v3", OpenApi(OpenApiDoc.V3_ROOT)),
    ("/openapi/v3/apis/metrics.smi-spec.io/v1alpha1", OpenApi(OpenApiDoc.V3_GROUP_VERSION)),
])
def test_served_paths(path: str, target: Target) -> None:
    assert parse_path(path) == target


@pytest.mark.parametrize("path", [
    "", "/", "/api", "/apis/metrics.smi-spec.io/v1alpha2", "/apis/split.smi-spec.io/v1alpha2",
    f"{API}/namespaces/shop/services/x", f"{API}/services", f"{API}/namespaces/shop/deployments/d/log",
    f"{API}/namespaces/shop/deployments/d/edges/x", f"{API}//namespaces", f"{API}/namespaces/shop/edges/x",
    f"{API}/namespaces/shop/namespaces/x", "/openapi/v1", "/openapi/v3/apis/apps/v1",
])
def test_other_paths_are_not_served(path: str) -> None:
    assert parse_path(path) is None
