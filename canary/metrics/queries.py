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

``request-duration`` is the p99 latency in milliseconds from the mesh's latency histogram.

Selectors match the canary workload exactly (``=``, not ``=~``), by the label each mesh gives
its kind (Linkerd: ``deployment``/``daemonset``; OSM: ``destination_kind``; Istio's workload name
has no kind), and namespace and target are validated as Kubernetes names before substitution, as
in :mod:`canary.metrics.templates`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from canary.config import Mesh
from canary.domain.durations import format_duration
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_METRICS, BUILTIN_SUCCESS_RATE, TARGET_KINDS
from canary.errors import MetricError
from canary.metrics.templates import validate_dns_label, validate_dns_subdomain


@dataclass(frozen=True)
class _MeshMetrics:
    requests: str
    latency_bucket: str
    selector: str  # with {namespace} and {target} to fill
    outcome_label: str


_MESHES: dict[Mesh, _MeshMetrics] = {
    Mesh.LINKERD: _MeshMetrics(
        requests="response_total",
        latency_bucket="response_latency_ms_bucket",
        selector='namespace="{namespace}", {kind_label}="{target}", direction="inbound"',
        outcome_label="classification",
    ),
    Mesh.ISTIO: _MeshMetrics(
        requests="istio_requests_total",
        latency_bucket="istio_request_duration_milliseconds_bucket",
        selector='reporter="destination", destination_workload_namespace="{namespace}", '
        'destination_workload="{target}"',
        outcome_label="response_code",
    ),
    Mesh.OSM: _MeshMetrics(
        requests="osm_request_total",
        latency_bucket="osm_request_duration_ms_bucket",
        selector='destination_namespace="{namespace}", destination_kind="{kind}", '
        'destination_name="{target}"',
        outcome_label="response_code",
    ),
}


@dataclass(frozen=True)
class SuccessRateQuery:
    """Per-outcome request counts; read the answer with :meth:`is_failure` and :func:`success_rate`."""

    promql: str
    mesh: Mesh
    outcome_label: str  # the label the query groups by

    def is_failure(self, outcome: str) -> bool:
        """Whether a series whose ``outcome_label`` has value ``outcome`` counts failed requests."""
        if self.outcome_label == "classification":
            return outcome == "failure"
        return outcome.startswith("5")


@dataclass(frozen=True)
class DurationQuery:
    """A single-value query: the p99 latency in milliseconds."""

    promql: str
    mesh: Mesh


BuiltinQuery = SuccessRateQuery | DurationQuery


def builtin_query(metric: str, mesh: Mesh, *, namespace: str, target: str, window: timedelta,
                  target_kind: str = "Deployment") -> BuiltinQuery:
    """The PromQL for builtin ``metric`` on ``mesh`` of the ``target_kind`` workload ``target``.

    Raises ``TemplateError`` for names that are unsafe to substitute and ``MetricError`` for a
    name that is not a builtin.
    """
    m = _MESHES[mesh]
    if target_kind not in TARGET_KINDS:
        raise MetricError(f"no builtin metrics for a {target_kind!r} target ({', '.join(TARGET_KINDS)})")
    selector = m.selector.format(
        namespace=validate_dns_label(namespace, "namespace"),
        target=validate_dns_subdomain(target, "target"),
        kind=target_kind,
        kind_label=target_kind.lower(),
    )
    w = format_duration(window)
    if metric == BUILTIN_SUCCESS_RATE:
        promql = f"sum by ({m.outcome_label}) (increase({m.requests}{{{selector}}}[{w}]))"
        return SuccessRateQuery(promql=promql, mesh=mesh, outcome_label=m.outcome_label)
    if metric == BUILTIN_DURATION:
        promql = f"histogram_quantile(0.99, sum by (le) (rate({m.latency_bucket}{{{selector}}}[{w}])))"
        return DurationQuery(promql=promql, mesh=mesh)
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
