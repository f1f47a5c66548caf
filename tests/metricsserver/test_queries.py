"""Query sets per mesh and kind, overrides from a YAML file, and refusal of unsafe names."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from canary.config import Mesh
from canary.errors import TemplateError
from canary.metricsserver.config import ConfigError
from canary.metricsserver.meshes import SERVED_MESHES, default_query_set
from canary.metricsserver.overrides import check_template, load_query_set, with_overrides
from canary.metricsserver.queries import (
    METRICS,
    Direction,
    ObjectLabels,
    Query,
    UnsupportedKind,
    edge_queries,
    resource_queries,
)
from canary.metricsserver.resources import Kind

MINUTE = timedelta(minutes=1)


def by_metric(queries: list[Query]) -> dict[str, str]:
    return {q.metric: q.promql for q in queries}


def test_linkerd_deployment_exactly() -> None:
    queries = by_metric(resource_queries(default_query_set(Mesh.LINKERD), Kind.DEPLOYMENTS, namespace="test",
                                         name="podinfo", window=MINUTE))
    selector = 'namespace="test", deployment="podinfo", direction="inbound"'
    assert queries == {
        "success_count": f'sum by (namespace, deployment) (increase(response_total{{{selector}, '
                         'classification="success"}[1m]))',
        "failure_count": f'sum by (namespace, deployment) (increase(response_total{{{selector}, '
                         'classification="failure"}[1m]))',
        "p99_response_latency": "histogram_quantile(0.99, sum by (namespace, deployment, le) "
                                f"(rate(response_latency_ms_bucket{{{selector}}}[1m])))",
        "p90_response_latency": "histogram_quantile(0.9, sum by (namespace, deployment, le) "
                                f"(rate(response_latency_ms_bucket{{{selector}}}[1m])))",
        "p50_response_latency": "histogram_quantile(0.5, sum by (namespace, deployment, le) "
                                f"(rate(response_latency_ms_bucket{{{selector}}}[1m])))",
    }


EXPECTED_SELECTORS = {
    (Mesh.LINKERD, Kind.DEPLOYMENTS): 'namespace="test", deployment="x"',
    (Mesh.LINKERD, Kind.PODS): 'namespace="test", pod="x"',
    (Mesh.LINKERD, Kind.DAEMONSETS): 'namespace="test", daemonset="x"',
    (Mesh.LINKERD, Kind.STATEFULSETS): 'namespace="test", statefulset="x"',
    (Mesh.ISTIO, Kind.DEPLOYMENTS): 'destination_workload_namespace="test", destination_workload="x"',
    (Mesh.ISTIO, Kind.DAEMONSETS): 'destination_workload_namespace="test", destination_workload="x"',
    (Mesh.ISTIO, Kind.STATEFULSETS): 'destination_workload_namespace="test", destination_workload="x"',
    (Mesh.OSM, Kind.DEPLOYMENTS): 'destination_namespace="test", destination_name="x", destination_kind="Deployment"',
    (Mesh.OSM, Kind.DAEMONSETS): 'destination_namespace="test", destination_name="x", destination_kind="DaemonSet"',
    (Mesh.OSM, Kind.STATEFULSETS):
        'destination_namespace="test", destination_name="x", destination_kind="StatefulSet"',
    (Mesh.OSM, Kind.PODS): 'destination_namespace="test", destination_pod="x"',
}


@pytest.mark.parametrize(("mesh", "kind"), list(EXPECTED_SELECTORS), ids=lambda v: str(v.value))
def test_every_mesh_and_kind(mesh: Mesh, kind: Kind) -> None:
    queries = resource_queries(default_query_set(mesh), kind, namespace="test", name="x", window=MINUTE)
    assert [q.metric for q in queries] == list(METRICS)
    for query in queries:
        assert EXPECTED_SELECTORS[(mesh, kind)] in query.promql
        assert "[1m]" in query.promql and "{{" not in query.promql


@pytest.mark.parametrize(("mesh", "failure"), [(Mesh.LINKERD, 'classification="failure"'),
                                               (Mesh.ISTIO, 'response_code=~"5.."'),
                                               (Mesh.OSM, 'response_code=~"5.."')])
def test_failures_per_mesh(mesh: Mesh, failure: str) -> None:
    queries = by_metric(resource_queries(default_query_set(mesh), Kind.DEPLOYMENTS, namespace="a", name="b",
                                         window=MINUTE))
    assert failure in queries["failure_count"]
    assert failure not in queries["success_count"]


@pytest.mark.parametrize("mesh", SERVED_MESHES)
def test_namespaces(mesh: Mesh) -> None:
    qs = default_query_set(mesh)
    one = by_metric(resource_queries(qs, Kind.NAMESPACES, namespace=None, name="shop", window=MINUTE))
    label = qs.labels(Kind.NAMESPACES).resource.name
    assert f'{label}="shop"' in one["success_count"]
    assert f"by ({label})" in one["success_count"]
    every = by_metric(resource_queries(qs, Kind.NAMESPACES, namespace=None, name=None, window=MINUTE))
    assert f'{label}!=""' in every["success_count"]


def test_lists_select_every_object_of_the_kind() -> None:
    qs = default_query_set(Mesh.LINKERD)
    in_namespace = by_metric(resource_queries(qs, Kind.PODS, namespace="test", name=None, window=MINUTE))
    assert 'namespace="test", pod!=""' in in_namespace["success_count"]
    everywhere = by_metric(resource_queries(qs, Kind.PODS, namespace=None, name=None, window=MINUTE))
    assert 'namespace!="", pod!=""' in everywhere["success_count"]


def test_edges_swap_client_and_server() -> None:
    qs = default_query_set(Mesh.LINKERD)
    to = edge_queries(qs, Kind.DEPLOYMENTS, Direction.TO, namespace="test", name="podinfo", window=MINUTE)
    sent = by_metric(to)["success_count"]
    assert 'namespace="test", deployment="podinfo", dst_deployment!=""' in sent
    assert 'direction="outbound"' in sent and "by (dst_namespace, dst_deployment)" in sent
    assert to[0].key == ObjectLabels("dst_deployment", "dst_namespace")
    received = by_metric(edge_queries(qs, Kind.DEPLOYMENTS, Direction.FROM, namespace="test", name="podinfo",
                                      window=MINUTE))["success_count"]
    assert 'dst_namespace="test", dst_deployment="podinfo", deployment!=""' in received
    assert "by (namespace, deployment)" in received


def test_osm_edges_keep_the_peer_kind() -> None:
    sent = by_metric(edge_queries(default_query_set(Mesh.OSM), Kind.DEPLOYMENTS, Direction.TO, namespace="a",
                                  name="b", window=MINUTE))["failure_count"]
    assert ('source_namespace="a", source_name="b", source_kind="Deployment", destination_name!="", '
            'destination_kind="Deployment"') in sent


def test_window_is_a_prometheus_range() -> None:
    queries = resource_queries(default_query_set(Mesh.LINKERD), Kind.DEPLOYMENTS, namespace="a", name="b",
                               window=timedelta(seconds=90))
    assert all("[1m30s]" in q.promql for q in queries)


def test_istio_has_no_pods() -> None:
    with pytest.raises(UnsupportedKind, match="no Pod label"):
        resource_queries(default_query_set(Mesh.ISTIO), Kind.PODS, namespace="a", name="b", window=MINUTE)


@pytest.mark.parametrize("name", [
    'x"} or vector(1) or {a="', "x\"}", "Podinfo", "a b", "x,y", "x)", "x\n", "", "-x", "a" * 254, "x{{ by }}",
])
def test_injection_attempts_refused(name: str) -> None:
    qs = default_query_set(Mesh.LINKERD)
    with pytest.raises(TemplateError):
        resource_queries(qs, Kind.DEPLOYMENTS, namespace="test", name=name, window=MINUTE)
    with pytest.raises(TemplateError):
        edge_queries(qs, Kind.DEPLOYMENTS, Direction.FROM, namespace="test", name=name, window=MINUTE)
    with pytest.raises(TemplateError):
        resource_queries(qs, Kind.DEPLOYMENTS, namespace=name, name=None, window=MINUTE)


def test_dots_are_allowed_in_object_names_but_not_namespaces() -> None:
    qs = default_query_set(Mesh.LINKERD)
    assert resource_queries(qs, Kind.PODS, namespace="a", name="x.y", window=MINUTE)
    with pytest.raises(TemplateError):
        resource_queries(qs, Kind.NAMESPACES, namespace=None, name="x.y", window=MINUTE)


# --- overrides --------------------------------------------------------------------------------


def test_overrides_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "queries.yaml"
    path.write_text(
        "resource:\n"
        "  success_count: 'sum by ({{ by }}) (increase(ok_total{ {{ selector }} }[{{window}}]))'\n"
        "kinds:\n"
        "  pods:\n"
        "    resource: {name: destination_pod, namespace: destination_workload_namespace}\n"
        "    client: {name: source_pod, namespace: source_workload_namespace}\n"
        "    server: {name: destination_pod, namespace: destination_workload_namespace}\n"
        "  daemonsets: null\n"
        "ignored_peers: [unknown, kubelet]\n"
    )
    qs = load_query_set(Mesh.ISTIO, str(path))
    queries = by_metric(resource_queries(qs, Kind.PODS, namespace="a", name="p", window=MINUTE))
    assert queries["success_count"] == ('sum by (destination_workload_namespace, destination_pod) '
                                        '(increase(ok_total{ destination_workload_namespace="a", '
                                        'destination_pod="p" }[1m]))')
    assert "istio_requests_total" in queries["failure_count"]  # not overridden: the default stays
    with pytest.raises(UnsupportedKind, match="switched off"):
        resource_queries(qs, Kind.DAEMONSETS, namespace="a", name="d", window=MINUTE)
    assert qs.ignored_peers == {"unknown", "kubelet"}


def test_constant_matchers_from_a_file() -> None:
    qs = with_overrides(default_query_set(Mesh.OSM), {"kinds": {"deployments": {
        "resource": {"name": "dst", "namespace": "dst_ns", "match": {"dst_kind": "apps/v1.Deployment"}}}}})
    assert 'dst_ns="a", dst="b", dst_kind="apps/v1.Deployment"' in resource_queries(
        qs, Kind.DEPLOYMENTS, namespace="a", name="b", window=MINUTE)[0].promql
    with pytest.raises(UnsupportedKind, match="edges"):
        edge_queries(qs, Kind.DEPLOYMENTS, Direction.TO, namespace="a", name="b", window=MINUTE)


def test_an_empty_file_keeps_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_query_set(Mesh.OSM, str(path)) == default_query_set(Mesh.OSM)


@pytest.mark.parametrize(("data", "message"), [
    ([], "expected a mapping"),
    ({"resources": {}}, "unknown key"),
    ({"resource": {"p95_response_latency": "x"}}, "not a Traffic Metrics metric"),
    ({"resource": {"success_count": 3}}, "expected a query"),
    ({"resource": {"success_count": "sum(x{ {{ selector }} }[{{ window }}])"}}, "must use {{ by }}"),
    ({"edges": {"failure_count": "sum by ({{ by }}) (x[{{ window }}])"}}, "must use {{ selector }}"),
    ({"resource": {"success_count": "sum by ({{ by }}) (x{ {{ selector }} }[5m])"}}, "must use {{ window }}"),
    ({"resource": {"success_count": "{{ by }}{{ selector }}{{ window }}{{ namespace }}"}}, "unknown placeholder"),
    ({"resource": {"success_count": "{{ by }}{{ selector }}{{ window }} {{ oops"}}, "unclosed"),
    ({"kinds": {"replicasets": {"resource": {"name": "rs", "namespace": "ns"}}}}, "unknown kind"),
    ({"kinds": {"pods": {"resource": {"name": "pod name", "namespace": "ns"}}}}, "not a Prometheus label name"),
    ({"kinds": {"pods": {"resource": {"name": "pod"}}}}, "not a Prometheus label name"),
    ({"kinds": {"pods": {"resource": {"name": "pod", "namespace": "ns", "match": {"k": 'v"} or {'}}}}},
     "may only contain"),
    ({"kinds": {"pods": {"resource": {"name": "p", "namespace": "n"}, "client": {"name": "c", "namespace": "n"}}}},
     "both client and server"),
    ({"kinds": {"namespaces": {"resource": {"name": "ns", "namespace": "x"}}}}, "named by its name label alone"),
    ({"ignored_peers": "unknown"}, "list of strings"),
])
def test_bad_overrides_are_refused(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        with_overrides(default_query_set(Mesh.LINKERD), data)


def test_unreadable_or_broken_files_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--queries-file .*cannot read"):
        load_query_set(Mesh.LINKERD, str(tmp_path / "missing.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("resource: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_query_set(Mesh.LINKERD, str(broken))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("resource: {success_count: 'x'}")
    with pytest.raises(ConfigError, match=r"--queries-file .*wrong.yaml: resource.success_count"):
        load_query_set(Mesh.LINKERD, str(wrong))


@pytest.mark.parametrize("mesh", SERVED_MESHES)
def test_default_templates_pass_their_own_checks(mesh: Mesh) -> None:
    qs = default_query_set(mesh)
    for scope, templates in (("resource", qs.resource), ("edges", qs.edges)):
        assert set(templates) == set(METRICS)
        for metric, template in templates.items():
            check_template(template, f"{scope}.{metric}")
