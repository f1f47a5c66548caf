"""Answers the controller's real PromQL from simulated traffic, as Prometheus's HTTP API would.

Only the shapes the builtin Linkerd queries take are understood:

    [histogram_quantile(Q, ] sum by (LABELS) (increase|rate(METRIC{SELECTOR}[WINDOW])) [)]

with METRIC ``response_total`` (grouped by ``classification`` and/or ``deployment``) or
``response_latency_ms_bucket`` (by ``le`` and/or ``deployment``), and a selector of
``namespace="..."``, ``direction="inbound"`` and ``deployment="name"`` or ``deployment=~"a|b"``.
Anything else raises :class:`UnknownQuery`: the benchmark must fail loudly rather than answer a
query it does not understand with numbers that look plausible.

Series exist as Prometheus would have them: a ``classification`` series once that version has
served a response of that class, a version's latency buckets once it has served any request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.traffic import BOUNDS, Series, Traffic
from canary.domain.samples import Histogram

_QUERY = re.compile(
    r"""^\s*(?:histogram_quantile\(\s*(?P<quantile>[0-9.]+)\s*,\s*)?
    sum\s+by\s*\((?P<by>[^)]*)\)\s*
    \(\s*(?P<function>increase|rate)\(\s*(?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*
    \{(?P<selector>[^}]*)\}\s*\[(?P<window>[0-9a-z]+)\]\s*\)\s*\)\s*(?P<close>\))?\s*$""",
    re.VERBOSE,
)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}

REQUESTS = "response_total"
LATENCY_BUCKETS = "response_latency_ms_bucket"
_GROUPABLE = {REQUESTS: {"classification", "deployment"}, LATENCY_BUCKETS: {"le", "deployment"}}


class UnknownQuery(Exception):
    """A query the simulator does not understand; never answered with a guess."""


@dataclass(frozen=True)
class ParsedQuery:
    quantile: float | None
    by: tuple[str, ...]
    function: str
    metric: str
    deployments: tuple[str, ...]  # the workloads the selector matches, in the order given
    window_seconds: int


def _window_seconds(text: str, promql: str) -> int:
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UnknownQuery(f"window {text!r} in {promql!r}")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0 or seconds != int(seconds):
        raise UnknownQuery(f"window {text!r} is not a whole number of seconds (the simulator keeps seconds)")
    return int(seconds)


def parse(promql: str, *, namespace: str, workloads: tuple[str, ...]) -> ParsedQuery:
    """Read one of the known shapes; ``workloads`` are the deployments the simulator knows."""
    match = _QUERY.match(promql)
    if match is None or (match["quantile"] is None) != (match["close"] is None):
        raise UnknownQuery(promql)
    metric = match["metric"]
    if metric not in _GROUPABLE:
        raise UnknownQuery(f"metric {metric!r} in {promql!r}")
    by = tuple(label.strip() for label in match["by"].split(",") if label.strip())
    if not set(by) <= _GROUPABLE[metric]:
        raise UnknownQuery(f"grouping by {by} in {promql!r}")
    quantile = float(match["quantile"]) if match["quantile"] is not None else None
    if quantile is not None and (metric != LATENCY_BUCKETS or "le" not in by):
        raise UnknownQuery(f"histogram_quantile over something other than buckets by le: {promql!r}")
    deployments: tuple[str, ...] | None = None
    seen: set[str] = set()
    selector = match["selector"]
    position = 0
    while position < len(selector.rstrip()):
        matcher = _MATCHER.match(selector, position)
        if matcher is None:
            raise UnknownQuery(f"selector {selector!r} in {promql!r}")
        label, op, value, _ = matcher.groups()
        position = matcher.end()
        if label in seen:
            raise UnknownQuery(f"label {label!r} matched twice in {promql!r}")
        seen.add(label)
        if label == "namespace" and op == "=" and value == namespace:
            continue
        if label == "direction" and op == "=" and value == "inbound":
            continue
        if label == "deployment" and op in ("=", "=~"):
            pattern = re.escape(value) if op == "=" else value
            deployments = tuple(w for w in workloads if re.fullmatch(pattern, w))
            if not deployments:
                raise UnknownQuery(f"deployment{op}{value!r} matches no simulated workload ({workloads})")
            continue
        raise UnknownQuery(f"matcher {label}{op}{value!r} in {promql!r}")
    if deployments is None or not {"namespace", "direction"} <= seen:
        raise UnknownQuery(f"selector without namespace, direction and deployment: {promql!r}")
    return ParsedQuery(quantile=quantile, by=by, function=match["function"], metric=metric,
                       deployments=deployments, window_seconds=_window_seconds(match["window"], promql))


class SimulatedPrometheus:
    """Answers instant queries at the traffic's current second, in the JSON shape of
    ``data.result`` (a vector), which is what ``PrometheusConnect.custom_query`` returns."""

    def __init__(self, traffic: Traffic, *, namespace: str, canary: str, primary: str) -> None:
        self.traffic = traffic
        self.namespace = namespace
        self._series: dict[str, Series] = {canary: traffic.canary, primary: traffic.primary}
        self.queries = 0

    def answer(self, promql: str) -> list[dict[str, Any]]:
        query = parse(promql, namespace=self.namespace, workloads=tuple(self._series))
        self.queries += 1
        now = self.traffic.now
        start = max(now - query.window_seconds, 0)
        groups: dict[tuple[tuple[str, str], ...], float] = {}
        for deployment in query.deployments:
            for labels, value in self._increase(query.metric, self._series[deployment], start, now):
                labels = {"deployment": deployment, **labels}
                key = tuple((label, labels[label]) for label in query.by)
                groups[key] = groups.get(key, 0.0) + value
        if query.function == "rate":
            groups = {key: value / query.window_seconds for key, value in groups.items()}
        if query.quantile is not None:
            return self._quantiles(query.quantile, groups, now)
        return [_sample(dict(key), value, now) for key, value in groups.items()]

    @staticmethod
    def _increase(metric: str, series: Series, start: int, now: int) -> list[tuple[Mapping[str, str], float]]:
        requests = int(series.requests[now])
        if requests == 0:
            return []  # the version never served a request: none of its series exist yet
        if metric == REQUESTS:
            failures = int(series.failures[now])
            failed = float(series.failures[now] - series.failures[start])
            served = float(series.requests[now] - series.requests[start])
            out: list[tuple[Mapping[str, str], float]] = []
            if requests > failures:
                out.append(({"classification": "success"}, served - failed))
            if failures > 0:
                out.append(({"classification": "failure"}, failed))
            return out
        increase = series.buckets[now] - series.buckets[start]
        return [({"le": _le(bound)}, float(count)) for bound, count in zip(BOUNDS, increase, strict=True)]

    @staticmethod
    def _quantiles(q: float, groups: Mapping[tuple[tuple[str, str], ...], float], now: int) -> list[dict[str, Any]]:
        histograms: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
        for key, value in groups.items():
            rest = tuple((label, v) for label, v in key if label != "le")
            le = float(dict(key)["le"])
            histograms.setdefault(rest, {})[le] = value
        out = []
        for rest, buckets in histograms.items():
            bounds = tuple(sorted(buckets))
            quantile = Histogram(bounds, tuple(buckets[b] for b in bounds)).quantile(q)
            out.append(_sample(dict(rest), math.nan if quantile is None else quantile, now))
        return out


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def _sample(labels: Mapping[str, str], value: float, now: int) -> dict[str, Any]:
    return {"metric": dict(labels), "value": [float(now), repr(value) if math.isfinite(value) else "NaN"]}
