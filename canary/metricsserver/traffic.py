"""Run a request's queries and fold their series into numbers per object.

The queries of one request run concurrently. Each answer's series are attributed to an object
(or, for edges, a peer) by the query's key labels; a series that names no object is ignored.
Counts of the same object are added up; a latency is kept only when it is a finite number
(``histogram_quantile`` gives NaN for a window without requests).

Errors of the Prometheus adapter (``ProviderUnavailable``, ``MetricError``) pass through unchanged:
an answer missing one of its queries would be a wrong answer, not a partial one.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from canary.metrics.prometheus import Series
from canary.metricsserver.queries import FAILURE_COUNT, QUANTILES, SUCCESS_COUNT, Query
from canary.metricsserver.resources import ObjectKey


class QueryRunner(Protocol):
    """An instant-query client: :class:`canary.metrics.prometheus.PrometheusProvider` is one."""

    async def query(self, promql: str) -> list[Series]: ...


@dataclass
class Traffic:
    """What one object (or one edge) did in the window: request counts, latencies in ms."""

    success: float = 0.0
    failure: float = 0.0
    latencies: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.success + self.failure


async def collect(runner: QueryRunner, queries: Sequence[Query]) -> dict[ObjectKey, Traffic]:
    """Run ``queries`` concurrently; the numbers per object their answers name."""
    answers = await asyncio.gather(*(runner.query(q.promql) for q in queries))
    return fold(zip(queries, answers, strict=True))


def fold(answers: Iterable[tuple[Query, list[Series]]]) -> dict[ObjectKey, Traffic]:
    """Attribute each series of each answer to its object. Pure."""
    result: dict[ObjectKey, Traffic] = {}
    for query, series in answers:
        for labels, value in series:
            key = query.key.identify(labels)
            if key is None or not math.isfinite(value):
                continue
            traffic = result.setdefault(key, Traffic())
            if query.metric == SUCCESS_COUNT:
                traffic.success += max(value, 0.0)
            elif query.metric == FAILURE_COUNT:
                traffic.failure += max(value, 0.0)
            elif query.metric in QUANTILES:
                traffic.latencies[query.metric] = value
    return result


def without(traffic: Mapping[ObjectKey, Traffic], ignored_names: frozenset[str]) -> dict[ObjectKey, Traffic]:
    """Drop peers that are not workloads (Istio's ``unknown``) and peers without requests."""
    return {
        key: t for key, t in traffic.items()
        if key[1] not in ignored_names and (key[0] is None or key[0] not in ignored_names) and t.total > 0
    }
