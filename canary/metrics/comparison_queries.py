r"""The canary-versus-primary queries as PromQL, per mesh, and the reading of their answers.

Two queries serve every look of the judge, whatever the number of versions: one returns both
versions' request counts per outcome, the other both versions' latency bucket counts, each
grouped by the label that names the workload. With namespace ``test``, canary ``podinfo`` and a
1 m window, on Linkerd::

    sum by (deployment, classification) (increase(response_total{namespace="test",
        deployment=~"podinfo|podinfo-primary", direction="inbound"}[1m]))
    sum by (deployment, le) (increase(response_latency_ms_bucket{...the same selector...}[1m]))

Istio groups by ``destination_workload``, OSM by ``destination_name``, a Linkerd DaemonSet by
``daemonset``; the outcome label and the failure rule are those of ``request-success-rate``
(:mod:`canary.metrics.queries`).

Traefik groups by ``service``, its backend Service, and selects both Services (``<apex>-canary``
and ``<apex>-primary``) by the names it gives them, every port and both of its Kubernetes
providers (:mod:`canary.metrics.traefik_services`); with namespace ``test`` and apex ``podinfo``::

    sum by (service, code) (increase(traefik_service_requests_total{service=~"test-podinfo-canary-http-[0-9]+@kubernetesgateway|test-podinfo-canary-[0-9]+@kubernetescrd|test-podinfo-primary-http-[0-9]+@kubernetesgateway|test-podinfo-primary-[0-9]+@kubernetescrd"}[1m]))

One version may so come back as several series (one per port or provider); each series is put
in its version's arm by matching its label against that version's own pattern in Python, and
the arm's counts are the sum. Traefik's ``le`` is in seconds; the arms' histograms are in ms.

Both names are validated as Kubernetes names (RFC 1123 subdomains: lower-case letters, digits,
``-`` and ``.``) before they go into the regular expression. Of those characters only ``.`` means
something in a regular expression, so it is escaped; ``-`` is literal outside a character class.
PromQL anchors regular-expression matchers at both ends, so ``podinfo`` does not select
``podinfo-old``. The backslash is doubled because PromQL reads ``\\`` in a double-quoted string
as one backslash and refuses an unknown escape such as ``\\.``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from canary.config import Mesh
from canary.domain.durations import format_duration
from canary.domain.samples import ArmSample, Comparison, Histogram
from canary.errors import MetricError
from canary.metrics.queries import MESHES, Series, arm_pattern, histogram_from_buckets, is_failure
from canary.metrics.templates import validate_dns_subdomain


def promql_string(pattern: str) -> str:
    """A regular expression written for a double-quoted PromQL string (backslashes doubled)."""
    return pattern.replace("\\", "\\\\")


@dataclass(frozen=True)
class ComparisonQuery:
    """The outcome query and, when latency is measured, the bucket query for both versions."""

    outcomes: str
    latency: str | None
    version_label: str  # the label that names the version in both answers
    outcome_label: str
    canary: str  # the canary's name: its workload, or its Service for a mesh that names Services
    primary: str
    #: Regular expressions (Python's re, the same as in the queries) matching exactly the values
    #: of ``version_label`` that are the canary's and the primary's.
    canary_values: str
    primary_values: str
    le_unit_ms: float  # milliseconds per unit of the bucket answer's ``le``

    def arm_of(self, value: str) -> str | None:
        """``canary`` or ``primary`` when ``value`` of ``version_label`` is that version's, else None."""
        for name, pattern in ((self.canary, self.canary_values), (self.primary, self.primary_values)):
            if re.fullmatch(pattern, value):
                return name
        return None

    @property
    def source(self) -> str:
        """The queries as shown in status: one per line."""
        return self.outcomes if self.latency is None else f"{self.outcomes}\n{self.latency}"


def comparison_query(
    mesh: Mesh,
    *,
    namespace: str,
    canary: str,
    primary: str,
    window: timedelta,
    target_kind: str = "Deployment",
    latency: bool = True,
    services: tuple[str, str] | None = None,
) -> ComparisonQuery:
    """The PromQL comparing ``canary`` with ``primary`` (both ``target_kind`` workloads) on ``mesh``;
    for a mesh whose series name Services (Traefik), ``services`` are the canary's and the
    primary's Services, and they name the arms.

    Raises ``TemplateError`` for names that are unsafe to substitute and ``MetricError`` for a
    kind without builtin metrics, a primary named like the canary, or missing ``services``.
    """
    canary = validate_dns_subdomain(canary, "target")
    primary = validate_dns_subdomain(primary, "primary")
    m = MESHES[mesh]
    if m.by_service:
        if services is None:
            raise MetricError(f"the {mesh.value} metrics name backend Services, and no Services were given to compare")
        canary, primary = services
    if canary == primary:
        raise MetricError(f"the canary and the primary are both {canary!r}; nothing to compare")
    canary_values = arm_pattern(mesh, namespace=namespace, name=canary)
    primary_values = arm_pattern(mesh, namespace=namespace, name=primary)
    selector = m.render_selector(
        namespace=namespace,
        target_kind=target_kind,
        workload_matcher=f'=~"{promql_string(canary_values)}|{promql_string(primary_values)}"',
    )
    version = m.workload_label_for(target_kind)
    w = format_duration(window)
    outcomes = f"sum by ({version}, {m.outcome_label}) (increase({m.requests}{{{selector}}}[{w}]))"
    buckets = f"sum by ({version}, le) (increase({m.latency_bucket}{{{selector}}}[{w}]))" if latency else None
    return ComparisonQuery(
        outcomes=outcomes,
        latency=buckets,
        version_label=version,
        outcome_label=m.outcome_label,
        canary=canary,
        primary=primary,
        canary_values=canary_values,
        primary_values=primary_values,
        le_unit_ms=m.le_unit_ms,
    )


def read_comparison(
    query: ComparisonQuery, outcomes: Sequence[Series], buckets: Sequence[Series] | None
) -> Comparison:
    """Both versions' samples from the answers to ``query.outcomes`` and ``query.latency``.

    A version without series has no requests (and an empty histogram). A version with any
    negative, NaN or infinite value is treated the same way: the statistics must never see such
    a count, and "no data" is what such an answer means. A series of a workload the query did
    not select, or without the outcome or ``le`` label, is a broken answer: MetricError.
    A version's buckets without ``+Inf`` give it an empty histogram (its counts stay): without
    the total, "slower than a bound" cannot be counted.
    """
    outcome_rows = _split(query, outcomes, query.outcome_label)
    bucket_rows = _split(query, buckets, "le") if buckets is not None else None
    arms = []
    for version in (query.canary, query.primary):
        counts = outcome_rows[version]
        histogram: Histogram | None = None
        if bucket_rows is not None:
            histogram = histogram_from_buckets(_sum_by_le(bucket_rows[version]), query.le_unit_ms)
            if histogram.bounds and not math.isinf(histogram.bounds[-1]):
                histogram = Histogram((), ())
        if not _all_counts(counts) or (bucket_rows is not None and not _all_counts(bucket_rows[version])):
            arms.append(ArmSample(0.0, 0.0, Histogram((), ()) if histogram is not None else None))
            continue
        failures = sum(value for outcome, value in counts if is_failure(query.outcome_label, outcome))
        requests = sum(value for _, value in counts)
        arms.append(ArmSample(requests=requests, failures=failures, latency=histogram))
    return Comparison(canary=arms[0], primary=arms[1], source=query.source)


def _split(query: ComparisonQuery, series: Iterable[Series], label: str) -> dict[str, list[tuple[str, float]]]:
    """Series per version, as ``(value of label, count)`` pairs."""
    rows: dict[str, list[tuple[str, float]]] = {query.canary: [], query.primary: []}
    for labels, value in series:
        version = query.arm_of(labels.get(query.version_label, ""))
        if version is None:
            raise MetricError(
                f"the comparison query returned a series of {query.version_label}="
                f"{labels.get(query.version_label)!r:.100}, "
                f"neither {query.canary!r} nor {query.primary!r}"
            )
        outcome = labels.get(label)
        if outcome is None:
            raise MetricError(f"the comparison query returned a series without {label!r}: {dict(labels)!r:.200}")
        rows[version].append((outcome, value))
    return rows


def _sum_by_le(rows: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """One version's buckets summed per ``le``: a version named by a Service pattern (Traefik) may
    answer with a histogram per port or provider, and cumulative counts of equal bounds add up."""
    sums: dict[str, float] = {}
    for le, count in rows:
        sums[le] = sums.get(le, 0.0) + count
    return list(sums.items())


def _all_counts(rows: Iterable[tuple[str, float]]) -> bool:
    return all(math.isfinite(value) and value >= 0 for _, value in rows)
