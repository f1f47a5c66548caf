"""The default query set of each mesh, and which labels each one provides. Pure.

What each mesh provides
-----------------------

**Linkerd** (``--mesh linkerd``, the default). The proxies' ``response_total`` (with
``classification`` success|failure) and ``response_latency_ms_bucket``. Prometheus' Linkerd
scrape configuration adds ``namespace``, ``pod``, ``deployment``, ``daemonset`` and
``statefulset`` from the Pod. Inbound series (``direction="inbound"``) are the receiving Pod's
view and feed ``resource``; outbound series (``direction="outbound"``) are the meshed client's
view and carry the destination as ``dst_namespace``, ``dst_deployment``, ``dst_pod``,
``dst_daemonset``, ``dst_statefulset``: they feed ``edges``. Every kind is answered.

**Istio** (``--mesh istio``). ``istio_requests_total`` and
``istio_request_duration_milliseconds_bucket``, always ``reporter="destination"`` (each request
counted once, by the receiving sidecar, for resources and edges alike); a failure is a
``response_code`` of 5xx. Objects are named by ``destination_workload`` /
``destination_workload_namespace``, peers that sent by ``source_workload`` /
``source_workload_namespace``. Istio's workload name is the owning Deployment, DaemonSet or
StatefulSet *without its kind*, so a Deployment and a StatefulSet of the same name in one
namespace share their numbers. Istio's standard metrics have **no Pod label**, so ``pods`` is
answered with 501 unless the query file maps one in (``kinds: pods: ...``). Sources outside the
mesh are reported as ``unknown`` and never become edges.

**Open Service Mesh** (``--mesh osm``). ``osm_request_total`` and
``osm_request_duration_ms_bucket`` with ``destination_namespace``, ``destination_kind``
(``Deployment``, ``DaemonSet``, ``StatefulSet``), ``destination_name`` and ``destination_pod``,
and the same ``source_*`` labels; a failure is a ``response_code`` of 5xx. Every kind is
answered; Pods through ``destination_pod`` / ``source_pod``.
"""

from __future__ import annotations

from canary.config import Mesh
from canary.metricsserver.queries import FAILURE_COUNT, QUANTILES, SUCCESS_COUNT, KindLabels, ObjectLabels, QuerySet
from canary.metricsserver.resources import Kind


def _latency(bucket: str, extra: str) -> dict[str, str]:
    return {
        metric: f"histogram_quantile({q}, sum by ({{{{ by }}}}, le) "
                f"(rate({bucket}{{{{{{ selector }}}}{extra}}}[{{{{ window }}}}])))"
        for metric, q in QUANTILES.items()
    }


def _counts(requests: str, success: str, failure: str) -> dict[str, str]:
    return {
        metric: f"sum by ({{{{ by }}}}) (increase({requests}{{{{{{ selector }}}}{matchers}}}[{{{{ window }}}}]))"
        for metric, matchers in ((SUCCESS_COUNT, success), (FAILURE_COUNT, failure))
    }


def _linkerd() -> QuerySet:
    def kind(label: str) -> KindLabels:
        return KindLabels(
            resource=ObjectLabels(label, "namespace"),
            client=ObjectLabels(label, "namespace"),
            server=ObjectLabels(f"dst_{label}", "dst_namespace"),
        )

    def direction(d: str) -> tuple[dict[str, str], dict[str, str]]:
        counts = _counts("response_total", f', direction="{d}", classification="success"',
                         f', direction="{d}", classification="failure"')
        return counts, _latency("response_latency_ms_bucket", f', direction="{d}"')

    inbound_counts, inbound_latency = direction("inbound")
    outbound_counts, outbound_latency = direction("outbound")
    return QuerySet(
        mesh=Mesh.LINKERD.value,
        resource={**inbound_latency, **inbound_counts},
        edges={**outbound_latency, **outbound_counts},
        kinds={
            Kind.DEPLOYMENTS: kind("deployment"),
            Kind.PODS: kind("pod"),
            Kind.DAEMONSETS: kind("daemonset"),
            Kind.STATEFULSETS: kind("statefulset"),
            Kind.NAMESPACES: KindLabels(
                resource=ObjectLabels("namespace"),
                client=ObjectLabels("namespace"),
                server=ObjectLabels("dst_namespace"),
            ),
        },
    )


def _istio() -> QuerySet:
    workload = KindLabels(
        resource=ObjectLabels("destination_workload", "destination_workload_namespace"),
        client=ObjectLabels("source_workload", "source_workload_namespace"),
        server=ObjectLabels("destination_workload", "destination_workload_namespace"),
    )
    queries = {
        **_latency("istio_request_duration_milliseconds_bucket", ', reporter="destination"'),
        **_counts("istio_requests_total", ', reporter="destination", response_code!~"5.."',
                  ', reporter="destination", response_code=~"5.."'),
    }
    return QuerySet(
        mesh=Mesh.ISTIO.value,
        resource=queries,
        edges=queries,
        kinds={
            Kind.DEPLOYMENTS: workload,
            Kind.DAEMONSETS: workload,
            Kind.STATEFULSETS: workload,
            Kind.NAMESPACES: KindLabels(
                resource=ObjectLabels("destination_workload_namespace"),
                client=ObjectLabels("source_workload_namespace"),
                server=ObjectLabels("destination_workload_namespace"),
            ),
        },
        unsupported={
            Kind.PODS: "Istio's standard metrics carry no Pod label (destination_workload names the "
                       "owning workload); relabel one in and map it under kinds.pods in --queries-file",
        },
        ignored_peers=frozenset({"unknown"}),
    )


def _osm() -> QuerySet:
    def kind(object_kind: str | None, name: str) -> KindLabels:
        def side(prefix: str) -> ObjectLabels:
            match = ((f"{prefix}_kind", object_kind),) if object_kind else ()
            return ObjectLabels(f"{prefix}_{name}", f"{prefix}_namespace", match)

        return KindLabels(resource=side("destination"), client=side("source"), server=side("destination"))

    queries = {
        **_latency("osm_request_duration_ms_bucket", ""),
        **_counts("osm_request_total", ', response_code!~"5.."', ', response_code=~"5.."'),
    }
    return QuerySet(
        mesh=Mesh.OSM.value,
        resource=queries,
        edges=queries,
        kinds={
            Kind.DEPLOYMENTS: kind("Deployment", "name"),
            Kind.DAEMONSETS: kind("DaemonSet", "name"),
            Kind.STATEFULSETS: kind("StatefulSet", "name"),
            Kind.PODS: kind(None, "pod"),
            Kind.NAMESPACES: KindLabels(
                resource=ObjectLabels("destination_namespace"),
                client=ObjectLabels("source_namespace"),
                server=ObjectLabels("destination_namespace"),
            ),
        },
        ignored_peers=frozenset({"unknown"}),
    )


_QUERY_SETS = {Mesh.LINKERD: _linkerd, Mesh.ISTIO: _istio, Mesh.OSM: _osm}

#: The meshes the Traffic Metrics API is served for. Traefik's metrics are per backend Service
#: with no client side, so they cannot answer for pods, edges or namespaces: not served.
SERVED_MESHES: tuple[Mesh, ...] = tuple(_QUERY_SETS)


def default_query_set(mesh: Mesh) -> QuerySet:
    return _QUERY_SETS[mesh]()


