"""The builtin checks as PromQL, per mesh, and the arithmetic that turns their answers into values.

``request-success-rate`` is ONE query returning request counts over the window per outcome; Python
then derives both the percentage and the sample count (total requests) from the same numbers, so
the two can never disagree, and a window without requests is recognisably "no data" instead of a
0/0 that PromQL would turn into an empty vector or NaN.

* Linkerd labels every response with ``classification`` (``success`` | ``failure``), so the query
  groups by it and a series with ``classification="failure"`` counts as failed.
* Istio and OSM have no such label, so the query groups by ``response_code`` and Python counts
  codes starting with ``5`` as failed, the same rule as the usual ``response_code=~"5.*"``. This
  was preferred over ``label_replace`` into a synthetic outcome label: the query stays readable,
  the answer (one series per status code, a handful at most) shows users which codes were seen,
  and the failure rule is plain Python that unit tests cover.

``request-duration`` is the p99 latency in milliseconds from the mesh's latency histogram. The
query returns the histogram's bucket counts over the window (``sum by (le) (increase(...))``) and
Python interpolates the quantile as ``histogram_quantile`` does
(:meth:`canary.domain.samples.Histogram.quantile`). Asking for the buckets instead of the
quantile costs one series per bucket and buys the request count (the ``+Inf`` bucket), so that
``minSampleSize`` applies to latency as it does to the success rate.

Selectors match the canary workload exactly (``=``, not ``=~``), by the label each mesh gives
its kind (Linkerd: ``deployment``/``daemonset``; OSM: ``destination_kind``; Istio's workload name
has no kind), and namespace and target are validated as Kubernetes names before substitution, as
in :mod:`canary.metrics.templates`.

Traefik (``--mesh traefik``) is a gateway, not a mesh: it counts requests per backend Service, so
its selector matches the canary's Service (``<apex>-canary``) by the names Traefik gives it
(:mod:`canary.metrics.traefik_services`), with ``code`` as the outcome (5xx failed, as for Istio).
Its latency histogram is in seconds: ``le`` is read in seconds and the buckets' bounds are turned
into milliseconds in Python, so the p99 is in the same unit as every other mesh's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from canary.config import Mesh
from canary.domain.durations import format_duration
from canary.domain.samples import Histogram
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_METRICS, BUILTIN_SUCCESS_RATE, TARGET_KINDS
from canary.errors import MetricError
from canary.metrics.templates import validate_dns_label, validate_dns_subdomain
from canary.metrics.traefik_services import service_pattern


#: One series of an instant query's answer: its labels and its value.
Series = tuple[Mapping[str, str], float]


@dataclass(frozen=True)
class MeshMetrics:
    """One mesh's metric names and labels. ``selector`` has ``{namespace}`` and ``{workload}``
    (whole matchers: ``="name"`` or ``=~"a|b"``), ``{kind}`` and ``{workload_label}`` to fill."""

    requests: str
    latency_bucket: str
    selector: str
    outcome_label: str
    workload_label: str  # the label that names the workload; {kind_label} is the kind in lower case
    #: The label that names the workload's namespace; None when the selector has no namespace
    #: matcher (Traefik's service label carries the namespace in its value).
    namespace_label: str | None
    #: Milliseconds per unit of the latency histogram's ``le`` (Traefik's are seconds).
    le_unit_ms: float = 1.0
    #: The series name a backend Service (``<apex>-canary``, ``<apex>-primary``) instead of a
    #: workload, as a gateway's do (Traefik's ``service`` label).
    by_service: bool = False

    def workload_label_for(self, target_kind: str) -> str:
        return self.workload_label.format(kind_label=target_kind.lower())

    def render_selector(self, *, namespace: str, target_kind: str, workload_matcher: str) -> str:
        """The selector with the namespace (validated here) and the workload matcher filled in."""
        matcher = f'="{validate_dns_label(namespace, "namespace")}"'
        return self.render_matchers(namespace_matcher=matcher, target_kind=target_kind,
                                    workload_matcher=workload_matcher)

    def render_matchers(self, *, namespace_matcher: str, target_kind: str, workload_matcher: str) -> str:
        """The selector with whole matchers filled in; the caller has made their values safe."""
        if target_kind not in TARGET_KINDS:
            raise MetricError(f"no builtin metrics for a {target_kind!r} target ({', '.join(TARGET_KINDS)})")
        return self.selector.format(
            namespace=namespace_matcher,
            kind=target_kind,
            workload_label=self.workload_label_for(target_kind),
            workload=workload_matcher,
        )


MESHES: dict[Mesh, MeshMetrics] = {
    Mesh.LINKERD: MeshMetrics(
        requests="response_total",
        latency_bucket="response_latency_ms_bucket",
        selector='namespace{namespace}, {workload_label}{workload}, direction="inbound"',
        outcome_label="classification",
        workload_label="{kind_label}",
        namespace_label="namespace",
    ),
    Mesh.ISTIO: MeshMetrics(
        requests="istio_requests_total",
        latency_bucket="istio_request_duration_milliseconds_bucket",
        selector='reporter="destination", destination_workload_namespace{namespace}, '
        "{workload_label}{workload}",
        outcome_label="response_code",
        workload_label="destination_workload",
        namespace_label="destination_workload_namespace",
    ),
    Mesh.OSM: MeshMetrics(
        requests="osm_request_total",
        latency_bucket="osm_request_duration_ms_bucket",
        selector='destination_namespace{namespace}, destination_kind="{kind}", '
        "{workload_label}{workload}",
        outcome_label="response_code",
        workload_label="destination_name",
        namespace_label="destination_namespace",
    ),
    Mesh.TRAEFIK: MeshMetrics(
        requests="traefik_service_requests_total",
        latency_bucket="traefik_service_request_duration_seconds_bucket",
        selector="{workload_label}{workload}",
        outcome_label="code",
        workload_label="service",
        namespace_label=None,
        le_unit_ms=1000.0,
        by_service=True,
    ),
}


def arm_pattern(mesh: Mesh, *, namespace: str, name: str) -> str:
    """A regular expression (RE2 and Python alike, backslashes single) matching exactly the values
    of the mesh's workload label that are one version's: ``name`` is its workload, or for a mesh
    whose series name Services (Traefik) its Service, under every name Traefik gives it. Raises
    ``TemplateError`` for a name that is unsafe to put into a query."""
    if MESHES[mesh].by_service:
        return service_pattern(namespace, name)
    # Of a Kubernetes name's characters only '.' means something in a regular expression.
    return validate_dns_subdomain(name, "target").replace(".", "\\.")


def is_failure(outcome_label: str, outcome: str) -> bool:
    """Whether requests whose ``outcome_label`` has value ``outcome`` failed: Linkerd's
    ``classification="failure"``, or a 5xx ``response_code`` for Istio and OSM."""
    if outcome_label == "classification":
        return outcome == "failure"
    return outcome.startswith("5")


@dataclass(frozen=True)
class SuccessRateQuery:
    """Per-outcome request counts; read the answer with :meth:`is_failure` and :func:`success_rate`."""

    promql: str
    mesh: Mesh
    outcome_label: str  # the label the query groups by

    def is_failure(self, outcome: str) -> bool:
        """Whether a series whose ``outcome_label`` has value ``outcome`` counts failed requests."""
        return is_failure(self.outcome_label, outcome)


#: The latency quantile of the builtin ``request-duration`` check.
DURATION_QUANTILE = 0.99


@dataclass(frozen=True)
class DurationQuery:
    """Bucket counts per ``le``; read the answer with :func:`histogram_from_buckets` and take
    its :data:`DURATION_QUANTILE` quantile."""

    promql: str
    mesh: Mesh
    le_unit_ms: float = 1.0  # milliseconds per unit of the answer's ``le``


BuiltinQuery = SuccessRateQuery | DurationQuery


def builtin_query(metric: str, mesh: Mesh, *, namespace: str, target: str, window: timedelta,
                  target_kind: str = "Deployment", canary_service: str | None = None) -> BuiltinQuery:
    """The PromQL for builtin ``metric`` on ``mesh`` of the ``target_kind`` workload ``target``, or
    of the Service ``canary_service`` for a mesh whose series name Services (Traefik).

    Raises ``TemplateError`` for names that are unsafe to substitute and ``MetricError`` for a
    name that is not a builtin or a missing ``canary_service``.
    """
    m = MESHES[mesh]
    target = validate_dns_subdomain(target, "target")
    if not m.by_service:
        matcher = f'="{target}"'
    elif canary_service is None:
        validate_dns_label(namespace, "namespace")  # an unsafe name is the first thing to report
        raise MetricError(f"the {mesh.value} metrics name backend Services, and no Service was given to select")
    else:
        # A Service pattern has no backslash to double for the PromQL string (traefik_services).
        matcher = f'=~"{arm_pattern(mesh, namespace=namespace, name=canary_service)}"'
    selector = m.render_selector(namespace=namespace, target_kind=target_kind, workload_matcher=matcher)
    w = format_duration(window)
    if metric == BUILTIN_SUCCESS_RATE:
        promql = f"sum by ({m.outcome_label}) (increase({m.requests}{{{selector}}}[{w}]))"
        return SuccessRateQuery(promql=promql, mesh=mesh, outcome_label=m.outcome_label)
    if metric == BUILTIN_DURATION:
        promql = f"sum by (le) (increase({m.latency_bucket}{{{selector}}}[{w}]))"
        return DurationQuery(promql=promql, mesh=mesh, le_unit_ms=m.le_unit_ms)
    raise MetricError(
        f"{metric!r} is not a builtin metric ({', '.join(sorted(BUILTIN_METRICS))}); it needs a templateRef"
    )


def success_rate(success: float, failure: float) -> float | None:
    """Percentage of successful requests, or None when there were none (never a pass)."""
    total = success + failure
    if total <= 0:
        return None
    return success / total * 100.0


def split_outcomes(query: SuccessRateQuery, counts: Iterable[tuple[str, float]]) -> tuple[float, float]:
    """Sum ``(outcome, count)`` pairs into ``(success, failure)`` using the query's failure rule."""
    success = failure = 0.0
    for outcome, count in counts:
        if query.is_failure(outcome):
            failure += count
        else:
            success += count
    return success, failure


def parse_le(text: str) -> float:
    """A bucket's ``le`` label as a number (``+Inf`` is ``inf``); MetricError if it is not one."""
    try:
        bound = float(text)
    except ValueError as exc:
        raise MetricError(f"a latency bucket has le={text!r:.50}, which is not a number") from exc
    if math.isnan(bound):
        raise MetricError("a latency bucket has le=NaN")
    return bound


def histogram_from_buckets(buckets: Iterable[tuple[str, float]], le_unit_ms: float = 1.0) -> Histogram:
    """A histogram in ms from ``(le, cumulative count)`` pairs in any order, ``le`` counted in
    units of ``le_unit_ms`` milliseconds; MetricError for a bound that is not a number or that
    appears twice (the query sums by ``le``, so it cannot)."""
    by_bound: dict[float, float] = {}
    for le, count in buckets:
        # Scaling every bound scales histogram_quantile's linear interpolation with it.
        bound = parse_le(le) * le_unit_ms
        if bound in by_bound:
            raise MetricError(f"the latency buckets repeat le={le!r:.50}")
        by_bound[bound] = count
    bounds = tuple(sorted(by_bound))
    return Histogram(bounds=bounds, counts=tuple(by_bound[b] for b in bounds))
