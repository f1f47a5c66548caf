"""Measurements from the SMI Traffic Metrics API (``metrics.smi-spec.io/v1alpha1``).

The API is served through the Kubernetes API server, so this module never opens a connection
itself: it takes a ``fetch(path)`` coroutine function that GETs an API-server path and returns the
decoded JSON. The contract for ``fetch``:

* return the decoded body of a 200 answer;
* raise :class:`FetchError` with the HTTP status for any other answer, and with ``status=None``
  when the API server could not be reached; ``OSError`` and ``TimeoutError`` are accepted as
  "unreachable" too.

What is read, from one ``TrafficMetrics`` object of the canary workload for the window:

* ``request-success-rate``: ``success_count / (success_count + failure_count) * 100``, samples the
  total; a total of zero is no data.
* ``request-duration``: ``p99_response_latency`` converted to milliseconds from its ``unit``
  (``ms``, ``s``/``seconds``, ``us``, ``ns``); missing means no data; a latency without a unit is
  an error, since the specification's example says seconds and the reference server says ms.
* a MetricTemplate whose provider type is ``smi``: its ``query`` is the name of one TrafficMetrics
  metric, taken as is (latencies in milliseconds, counts as counts): ``p99_response_latency``,
  ``p90_response_latency``, ``p50_response_latency``, ``success_count`` or ``failure_count``.

Samples are ``success_count + failure_count`` whenever the object carries them, for latencies too.

For the judge's comparison, the TrafficMetrics objects of the canary and of the primary are read
(concurrently, two requests) and give each version's ``success_count + failure_count`` requests
and ``failure_count`` failures. The Traffic Metrics API carries latency only as three percentiles,
not as a histogram, so the comparison has no latency (``ArmSample.latency is None``) and the
judge's latency test cannot run on this provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from urllib.parse import quote

from kubernetes.utils.quantity import parse_quantity as _untyped_parse_quantity

from canary.config import MetricsSettings
from canary.domain.durations import format_duration
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE, TARGET_KINDS
from canary.errors import MetricError, ProviderUnavailable, TemplateError
from canary.metrics.retries import retrying
from canary.domain.samples import ArmSample, Comparison
from canary.metrics.base import CompareRequest, MeasureRequest, Measurement
from canary.metrics.queries import success_rate
from canary.metrics.templates import validate_dns_label, validate_dns_subdomain

API_PREFIX = "/apis/metrics.smi-spec.io/v1alpha1"
SUCCESS_COUNT = "success_count"
FAILURE_COUNT = "failure_count"
P99_LATENCY = "p99_response_latency"
LATENCY_METRICS = frozenset({"p50_response_latency", "p90_response_latency", P99_LATENCY})
KNOWN_METRICS = LATENCY_METRICS | {SUCCESS_COUNT, FAILURE_COUNT}

# The kubernetes package has no annotations; this is its documented signature.
parse_quantity = cast(Callable[[object], Decimal], _untyped_parse_quantity)

#: GETs an API-server path and returns the decoded JSON body (see the module docstring).
SmiFetch = Callable[[str], Awaitable[Mapping[str, Any]]]

_MS_PER_UNIT: dict[str, Decimal] = {
    "ns": Decimal("0.000001"),
    "nanoseconds": Decimal("0.000001"),
    "us": Decimal("0.001"),
    "µs": Decimal("0.001"),
    "microseconds": Decimal("0.001"),
    "ms": Decimal(1),
    "milliseconds": Decimal(1),
    "s": Decimal(1000),
    "sec": Decimal(1000),
    "seconds": Decimal(1000),
}
_TRANSIENT_STATUS = frozenset({408, 429})


class FetchError(Exception):
    """Raised by an :data:`SmiFetch` for a non-200 answer (``status``) or no answer (``None``)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status is not None else message)
        self.status = status


class _Transient(Exception):
    """Worth another attempt; becomes ProviderUnavailable when the attempts run out."""


@dataclass(frozen=True)
class TrafficMetricsSample:
    """The numbers of one TrafficMetrics object: latencies in ms, counts as counts."""

    values: Mapping[str, float]

    @property
    def total(self) -> float | None:
        if SUCCESS_COUNT not in self.values and FAILURE_COUNT not in self.values:
            return None
        return self.values.get(SUCCESS_COUNT, 0.0) + self.values.get(FAILURE_COUNT, 0.0)


def metrics_path(namespace: str, target: str, window_text: str, target_kind: str = "Deployment") -> str:
    """The API-server path of the canary workload's TrafficMetrics for a window."""
    ns = validate_dns_label(namespace, "namespace")
    name = validate_dns_subdomain(target, "target")
    if target_kind not in TARGET_KINDS:
        raise MetricError(f"no Traffic Metrics for a {target_kind!r} target ({', '.join(TARGET_KINDS)})")
    # The Traffic Metrics API names kinds by their plural resource (deployments, daemonsets).
    return f"{API_PREFIX}/namespaces/{ns}/{target_kind.lower()}s/{name}?t={quote(window_text)}"


def parse_traffic_metrics(body: Mapping[str, Any]) -> TrafficMetricsSample:
    """Read ``metrics[]`` of a TrafficMetrics object; raises MetricError for a malformed one."""
    items = body.get("metrics")
    if not isinstance(items, list):
        raise MetricError(f"expected a TrafficMetrics object with metrics[], got kind {body.get('kind')!r}")
    values: dict[str, float] = {}
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise MetricError(f"TrafficMetrics has a malformed metric {item!r:.200}")
        name: str = item["name"]
        raw = item.get("value")
        if raw is None or raw == "":
            continue
        try:
            quantity = parse_quantity(raw)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise MetricError(f"TrafficMetrics {name} has value {raw!r}, which is not a quantity") from exc
        unit = item.get("unit") or None
        if unit is not None:
            factor = _MS_PER_UNIT.get(str(unit))
            if factor is None:
                raise MetricError(
                    f"TrafficMetrics {name} has unit {unit!r}; known units: {', '.join(_MS_PER_UNIT)}"
                )
            quantity *= factor
        elif name in LATENCY_METRICS:
            raise MetricError(f"TrafficMetrics {name} has no unit; cannot tell milliseconds from seconds")
        values[name] = float(quantity)
    return TrafficMetricsSample(values=values)



class SmiMetricsProvider:
    """A :class:`~canary.metrics.base.MetricProvider` over the Traffic Metrics API (see module doc)."""

    def __init__(self, fetch: SmiFetch, settings: MetricsSettings) -> None:
        self._fetch = fetch
        self._settings = settings

    async def read(self, namespace: str, target: str, window_text: str,
                   target_kind: str = "Deployment") -> tuple[str, TrafficMetricsSample]:
        """Fetch and parse the workload's TrafficMetrics; returns the path read and the numbers."""
        path = metrics_path(namespace, target, window_text, target_kind)
        what = f"{target_kind.lower()} {namespace}/{target}"
        attempts = max(1, self._settings.retry_attempts)
        try:
            async for attempt in retrying(self._settings, _Transient):
                with attempt:
                    body = await self._fetch_once(path, what)
        except _Transient as exc:
            raise ProviderUnavailable(
                f"Traffic Metrics API did not answer for {what} "
                f"after {attempts} attempts: {exc}"
            ) from exc
        if not isinstance(body, Mapping):
            raise MetricError(f"Traffic Metrics API answered {path} with {type(body).__name__}, not an object")
        return path, parse_traffic_metrics(body)

    async def _fetch_once(self, path: str, what: str) -> Mapping[str, Any]:
        try:
            return await asyncio.wait_for(self._fetch(path), self._settings.query_timeout.total_seconds())
        except FetchError as exc:
            if exc.status is None or exc.status >= 500 or exc.status in _TRANSIENT_STATUS:
                raise _Transient(str(exc)) from exc
            if exc.status == 404:
                raise MetricError(
                    f"no Traffic Metrics for {what} (404): check that it exists, "
                    "is meshed, and that the v1alpha1.metrics.smi-spec.io APIService is installed"
                ) from exc
            raise MetricError(f"Traffic Metrics API refused {path}: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc

    async def measure(self, request: MeasureRequest) -> Measurement:
        wanted = self._metric_names(request)
        path, sample = await self.read(request.namespace, request.target, format_duration(request.window),
                                       request.target_kind)
        source = f"{path} ({', '.join(wanted)})"
        total = sample.total
        if wanted == (SUCCESS_COUNT, FAILURE_COUNT):
            success = sample.values.get(SUCCESS_COUNT, 0.0)
            failure = sample.values.get(FAILURE_COUNT, 0.0)
            return Measurement(value=success_rate(success, failure), source=source, samples=success + failure)
        (name,) = wanted
        value = sample.values.get(name)
        if name in LATENCY_METRICS and total == 0:
            # No requests in the window: whatever latency the server derived is not a measurement.
            value = None
        return Measurement(value=value, source=source, samples=total)

    async def compare(self, request: CompareRequest) -> Comparison:
        """Each version's counts from its own TrafficMetrics object; no latency (see module doc)."""
        window = format_duration(request.window)
        (canary_path, canary), (primary_path, primary) = await asyncio.gather(
            self.read(request.namespace, request.target, window, request.target_kind),
            self.read(request.namespace, request.primary, window, request.target_kind),
        )
        source = f"{canary_path} ({SUCCESS_COUNT}, {FAILURE_COUNT})\n{primary_path} ({SUCCESS_COUNT}, {FAILURE_COUNT})"
        return Comparison(canary=_arm(canary), primary=_arm(primary), source=source)

    @staticmethod
    def _metric_names(request: MeasureRequest) -> tuple[str, ...]:
        if request.template is not None:
            name = request.template.query.strip()
            if name not in KNOWN_METRICS:
                raise TemplateError(
                    f"an smi MetricTemplate's query names one TrafficMetrics metric; {name!r:.100} is not "
                    f"one of {', '.join(sorted(KNOWN_METRICS))}"
                )
            return (name,)
        if request.metric.name == BUILTIN_SUCCESS_RATE:
            return (SUCCESS_COUNT, FAILURE_COUNT)
        if request.metric.name == BUILTIN_DURATION:
            return (P99_LATENCY,)
        raise MetricError(f"{request.metric.name!r} is not a builtin metric; it needs a templateRef")


def _arm(sample: TrafficMetricsSample) -> ArmSample:
    """One version's counts; a negative count is no data, as a Prometheus answer's would be."""
    success = sample.values.get(SUCCESS_COUNT, 0.0)
    failure = sample.values.get(FAILURE_COUNT, 0.0)
    if success < 0 or failure < 0:
        return ArmSample(0.0, 0.0)
    return ArmSample(requests=success + failure, failures=failure)
