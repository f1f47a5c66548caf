"""Runs one analysis tick's measurements concurrently, each against the provider it needs.

Provider choice per request:

* a MetricTemplate with provider type ``prometheus``: its ``address``, or
  ``settings.prometheus_address`` when it has none;
* a MetricTemplate with provider type ``smi``: the Traffic Metrics API;
* a builtin check: the Canary's ``metricsServer`` when it names one, else ``settings.source``
  (Prometheus at ``settings.prometheus_address``, or SMI).

The judge's canary-versus-primary comparison (:meth:`MetricsEngine.compare`) is answered like a
builtin check.

Credentials. The caller resolves each template's ``secretRef`` and passes the Secrets' data as
``credentials``: a mapping from Secret name to its decoded string data. Keys read: ``token``
(sent as a bearer token) or ``username`` and ``password`` (basic auth); a Secret with a token
and a username is refused as ambiguous. A template whose Secret is not in ``credentials`` fails
with MetricError instead of querying without authentication.

One PrometheusProvider is kept per (address, secret, TLS verification); a changed Secret value
replaces that provider.

Builtin checks answered by Prometheus go through a :class:`~canary.metrics.batching.BuiltinBatcher`:
Canaries asking the same check at the same moment share one query. Every PromQL query sent is
reported to ``on_query`` (the controller counts them by kind).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from canary.config import MetricsSettings
from canary.domain.spec import ProviderType
from canary.errors import MetricError, TemplateError
from canary.domain.samples import Comparison
from canary.metrics.base import CompareRequest, ComparisonProvider, MeasureRequest, Measurement, MetricProvider
from canary.metrics.batching import BuiltinBatcher
from canary.metrics.prometheus import PrometheusProvider, QueryObserver
from canary.metrics.smi import SmiFetch, SmiMetricsProvider

#: Secret name -> the Secret's data as strings (``token``, or ``username`` and ``password``).
Credentials = Mapping[str, Mapping[str, str]]
MeasureResult = Measurement | MetricError | TemplateError

_CacheKey = tuple[str, str | None, bool]
_Auth = tuple[str | None, tuple[str, str] | None]


def _auth_from_secret(secret_name: str | None, credentials: Credentials) -> _Auth:
    if secret_name is None:
        return None, None
    data = credentials.get(secret_name)
    if data is None:
        raise MetricError(f"secret {secret_name!r} of the MetricTemplate's provider was not resolved")
    token = data.get("token") or None
    username = data.get("username") or None
    password = data.get("password")
    if token is not None and username is not None:
        raise MetricError(f"secret {secret_name!r} sets both token and username; keep one of them")
    if token is not None:
        return token, None
    if username is not None:
        return None, (username, password or "")
    raise MetricError(f"secret {secret_name!r} has neither token nor username and password")


class MetricsEngine:
    def __init__(self, settings: MetricsSettings, smi_fetch: SmiFetch | None = None, *,
                 on_query: QueryObserver | None = None, batcher: BuiltinBatcher | None = None) -> None:
        self._settings = settings
        self._smi = SmiMetricsProvider(smi_fetch, settings) if smi_fetch is not None else None
        self._prometheus: dict[_CacheKey, tuple[_Auth, PrometheusProvider]] = {}
        self._on_query = on_query
        self._batcher = batcher if batcher is not None else BuiltinBatcher()

    async def measure_all(
        self, requests: Sequence[MeasureRequest], credentials: Credentials | None = None
    ) -> list[MeasureResult]:
        """Measure every request concurrently; results are in the order of ``requests``.

        Provider and template failures are returned in place of the measurement so that one
        broken check does not hide the others; any other exception is a bug and propagates.
        """
        creds = credentials or {}
        return list(await asyncio.gather(*(self._measure_one(r, creds) for r in requests)))

    async def _measure_one(self, request: MeasureRequest, credentials: Credentials) -> MeasureResult:
        try:
            provider = self.provider_for(request, credentials)
            if request.template is None and isinstance(provider, PrometheusProvider):
                return await self._batcher.measure(provider, request)
            return await provider.measure(request)
        except (MetricError, TemplateError) as exc:
            return exc

    def provider_for(self, request: MeasureRequest, credentials: Credentials | None = None) -> MetricProvider:
        """The provider that should answer ``request`` (see the module docstring)."""
        template = request.template
        if template is not None:
            if template.provider.type is ProviderType.SMI:
                return self._smi_provider()
            return self._prometheus_provider(
                template.provider.address or self._settings.prometheus_address,
                template.provider.secret_ref,
                template.provider.insecure_skip_verify,
                credentials or {},
            )
        return self._builtin_provider(request.metrics_server)

    async def compare(self, request: CompareRequest) -> Comparison:
        """The canary and the primary over ``request.window``, from the provider that answers the
        builtin checks. Raises ``MetricError`` (a broken answer, an unsafe name) or its subclass
        ``ProviderUnavailable`` (no answer after bounded retries); ``TemplateError`` for unsafe
        names is turned into ``MetricError`` so that callers handle one family."""
        try:
            return await self.comparison_provider_for(request).compare(request)
        except TemplateError as exc:
            raise MetricError(str(exc)) from exc

    def comparison_provider_for(self, request: CompareRequest) -> ComparisonProvider:
        """The provider that should answer ``request``: the same as a builtin check's."""
        return self._builtin_provider(request.metrics_server)

    def _builtin_provider(self, metrics_server: str | None) -> PrometheusProvider | SmiMetricsProvider:
        if metrics_server is not None:
            # Flagger's spec.metricsServer: this Canary's builtin checks ask that Prometheus.
            return self._prometheus_provider(metrics_server, None, False, {})
        if self._settings.source is ProviderType.SMI:
            return self._smi_provider()
        return self._prometheus_provider(self._settings.prometheus_address, None, False, {})

    def _smi_provider(self) -> SmiMetricsProvider:
        if self._smi is None:
            raise MetricError("the SMI Traffic Metrics API is not available to this controller (no fetch configured)")
        return self._smi

    def _prometheus_provider(
        self, address: str, secret_name: str | None, insecure: bool, credentials: Credentials
    ) -> PrometheusProvider:
        auth = _auth_from_secret(secret_name, credentials)
        key: _CacheKey = (address.rstrip("/"), secret_name, insecure)
        cached = self._prometheus.get(key)
        if cached is not None and cached[0] == auth:
            return cached[1]
        token, basic = auth
        provider = PrometheusProvider(
            address, self._settings, bearer_token=token, basic_auth=basic, insecure_skip_verify=insecure,
            on_query=self._on_query,
        )
        # The replaced provider is not closed: a measurement of another Canary may still be
        # using it in a worker thread; its pool goes with it once nothing refers to it.
        self._prometheus[key] = (auth, provider)
        return provider

    def close(self) -> None:
        """Release the Prometheus clients' connection pools and cancel unanswered batches."""
        self._batcher.close()
        for _, provider in self._prometheus.values():
            provider.close()
        self._prometheus.clear()
