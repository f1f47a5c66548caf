"""Measurements from Prometheus's instant-query API, through ``prometheus_api_client``.

The client is synchronous (``requests``), so every call runs in a worker thread and the event
loop never blocks. Errors are sorted at this boundary:

* connection errors, timeouts and HTTP 408/429/5xx are transient: retried with exponential
  back-off, ``settings.retry_attempts`` attempts in all, then :class:`ProviderUnavailable`;
* any other HTTP error (a 400 for a PromQL syntax error, 401/403 for credentials, 422 for an
  execution error) and answers of an unexpected shape are :class:`MetricError` at once, with
  Prometheus's own error text, because asking again would get the same answer;
* an empty vector, NaN or +-Inf is no data: ``Measurement(value=None)``, never an error.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from canary.config import MetricsSettings
from canary.errors import MetricError, ProviderUnavailable
from canary.domain.samples import Comparison
from canary.metrics.retries import retrying
from canary.metrics.base import CompareRequest, MeasureRequest, Measurement
from canary.metrics.comparison_queries import comparison_query, read_comparison
from canary.metrics.queries import (
    Series as Series,  # re-exported: the metrics server reads answers by this name
    builtin_query,
)
from canary.metrics.readings import read_builtin
from canary.metrics.templates import render_request

_TRANSIENT_STATUS = frozenset({408, 429})
_ERROR_TEXT_LIMIT = 300


class _HttpStatusError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class _Transient(Exception):
    """Worth another attempt; becomes ProviderUnavailable when the attempts run out."""


def _raise_for_status(response: requests.Response, *args: object, **kwargs: object) -> None:
    # Installed as a response hook so the status code survives as data: the client itself only
    # reports non-200 answers as a formatted message.
    if response.status_code < 400:
        return
    detail = response.text[:_ERROR_TEXT_LIMIT]
    try:
        body = response.json()
        if isinstance(body, Mapping) and body.get("status") == "error":
            detail = f"{body.get('errorType', 'error')}: {body.get('error', '')}"
    except ValueError:
        pass
    raise _HttpStatusError(response.status_code, detail)



def parse_result(result: object) -> list[Series]:
    """Turn ``data.result`` of an instant query (vector or scalar) into series.

    ``prometheus_api_client`` drops ``resultType``, so the shape tells them apart: a vector is a
    list of ``{metric, value}`` objects, a scalar a bare ``[timestamp, "value"]`` pair.
    """
    if not isinstance(result, list):
        raise MetricError(f"Prometheus answered with an unexpected result {result!r:.200}")
    if len(result) == 2 and isinstance(result[0], int | float) and not isinstance(result[0], bool):
        return [({}, _sample_value(result[1]))]
    series: list[Series] = []
    for item in result:
        if not isinstance(item, Mapping):
            raise MetricError(f"Prometheus answered with an unexpected result {result!r:.200}")
        if "values" in item:
            raise MetricError("the query returned a range vector; write an instant query (no [range] at the end)")
        value = item.get("value")
        if not isinstance(value, list) or len(value) != 2:
            raise MetricError(f"Prometheus answered with an unexpected sample {item!r:.200}")
        labels = item.get("metric") or {}
        if not isinstance(labels, Mapping):
            raise MetricError(f"Prometheus answered with unexpected labels {labels!r:.200}")
        series.append(({str(k): str(v) for k, v in labels.items()}, _sample_value(value[1])))
    return series


def _sample_value(raw: object) -> float:
    # Prometheus sends values as strings ("1.5", "NaN", "+Inf"); float() reads all of them.
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        try:
            return float(raw)
        except ValueError:
            pass
    raise MetricError(f"the query returned {raw!r:.100}, which is not a number")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class QueryKind(StrEnum):
    """What one PromQL query answers, as the query counter labels it."""

    #: One builtin check of several Canaries (:mod:`canary.metrics.batching`).
    BATCHED = "batched"
    #: One Canary's: a template's query, a builtin check alone in its batch, a judge's comparison.
    SINGLE = "single"


#: Told of every query sent (once per query, whatever its retries): the controller counts them.
QueryObserver = Callable[[QueryKind], None]


class PrometheusProvider:
    """A :class:`~canary.metrics.base.MetricProvider` for one Prometheus address.

    Builtin checks use ``settings.mesh``'s queries (:mod:`canary.metrics.queries`); a template's
    query is rendered (:mod:`canary.metrics.templates`) and must answer with one value: a scalar
    or a vector of at most one series. Authentication is either ``bearer_token`` or
    ``basic_auth``; ``headers`` are sent as well. One instance serves concurrent
    measurements, each in its own worker thread over the shared connection pool.
    """

    def __init__(
        self,
        address: str,
        settings: MetricsSettings,
        *,
        headers: Mapping[str, str] | None = None,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        insecure_skip_verify: bool = False,
        on_query: QueryObserver | None = None,
    ) -> None:
        if bearer_token is not None and basic_auth is not None:
            raise MetricError(f"Prometheus at {address}: set a bearer token or basic auth, not both")
        self.address = address.rstrip("/")
        self._settings = settings
        self._on_query = on_query
        all_headers = dict(headers or {})
        if bearer_token is not None:
            all_headers["Authorization"] = f"Bearer {bearer_token}"
        session = requests.Session()
        session.verify = not insecure_skip_verify
        session.hooks["response"].append(_raise_for_status)
        self._timeout = settings.query_timeout.total_seconds()
        try:
            self._client = PrometheusConnect(
                url=self.address,
                headers=all_headers or None,
                auth=basic_auth,
                session=session,
                timeout=self._timeout,
                # tenacity does the retrying, with the controller's settings and without
                # blocking a worker thread in urllib3's sleeps.
                retry=Retry(total=0, read=False, redirect=False, raise_on_status=False),
            )
        except (TypeError, ValueError) as exc:
            raise MetricError(f"Prometheus address {address!r} is not usable: {exc}") from exc

    def close(self) -> None:
        self._client.close()

    @property
    def settings(self) -> MetricsSettings:
        return self._settings

    async def query(self, promql: str, kind: QueryKind = QueryKind.SINGLE) -> list[Series]:
        """Run an instant query with bounded retries; raises ProviderUnavailable or MetricError."""
        if self._on_query is not None:
            self._on_query(kind)
        attempts = max(1, self._settings.retry_attempts)
        try:
            async for attempt in retrying(self._settings, _Transient):
                with attempt:
                    raw = await asyncio.to_thread(self._query_blocking, promql)
        except _Transient as exc:
            raise ProviderUnavailable(
                f"Prometheus at {self.address} did not answer after {attempts} attempts: {exc}"
            ) from exc
        return parse_result(raw)

    def _query_blocking(self, promql: str) -> Any:
        try:
            return self._client.custom_query(query=promql, timeout=self._timeout)
        except _HttpStatusError as exc:
            if exc.status >= 500 or exc.status in _TRANSIENT_STATUS:
                raise _Transient(str(exc)) from exc
            raise MetricError(f"Prometheus at {self.address} refused the query: {exc}") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        except requests.JSONDecodeError as exc:
            raise MetricError(f"Prometheus at {self.address} answered with something other than JSON") from exc
        except requests.RequestException as exc:
            raise MetricError(f"Prometheus at {self.address} could not be queried: {exc}") from exc
        except (KeyError, TypeError) as exc:
            raise MetricError(f"Prometheus at {self.address} answered without data.result") from exc

    async def measure(self, request: MeasureRequest) -> Measurement:
        if request.template is not None:
            promql = render_request(request.template.query, request)
            return self._single_value(promql, await self.query(promql))
        builtin = builtin_query(
            request.metric.name,
            request.mesh or self._settings.mesh,
            namespace=request.namespace,
            target=request.target,
            window=request.window,
            target_kind=request.target_kind,
            canary_service=request.canary_service,
        )
        return read_builtin(builtin, await self.query(builtin.promql))

    async def compare(self, request: CompareRequest) -> Comparison:
        """Both versions' counts (and latency buckets) in two concurrent queries, whatever the
        number of versions (:mod:`canary.metrics.comparison_queries`)."""
        query = comparison_query(
            request.mesh or self._settings.mesh,
            namespace=request.namespace,
            canary=request.target,
            primary=request.primary,
            window=request.window,
            target_kind=request.target_kind,
            latency=request.latency,
            services=request.services,
        )
        if query.latency is None:
            return read_comparison(query, await self.query(query.outcomes), None)
        outcomes, buckets = await asyncio.gather(self.query(query.outcomes), self.query(query.latency))
        return read_comparison(query, outcomes, buckets)

    @staticmethod
    def _single_value(promql: str, series: Sequence[Series]) -> Measurement:
        if len(series) > 1:
            shown = ", ".join(str(dict(labels)) for labels, _ in series[:3])
            raise MetricError(
                f"the query returned {len(series)} series ({shown}{', ...' if len(series) > 3 else ''}); "
                "it must aggregate them to a single value, e.g. wrap it in sum()"
            )
        if not series:
            return Measurement(value=None, source=promql)
        return Measurement(value=_finite(series[0][1]), source=promql)
