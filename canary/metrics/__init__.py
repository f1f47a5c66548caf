"""Metric providers (Prometheus, SMI Traffic Metrics) and the engine that runs a tick's checks."""

from canary.metrics.base import CompareRequest, ComparisonProvider, MeasureRequest, Measurement, MetricProvider
from canary.metrics.engine import Credentials, MeasureResult, MetricsEngine
from canary.metrics.prometheus import PrometheusProvider
from canary.metrics.smi import FetchError, SmiFetch, SmiMetricsProvider

__all__ = [
    "CompareRequest",
    "ComparisonProvider",
    "Credentials",
    "FetchError",
    "MeasureRequest",
    "MeasureResult",
    "Measurement",
    "MetricProvider",
    "MetricsEngine",
    "PrometheusProvider",
    "SmiFetch",
    "SmiMetricsProvider",
]
