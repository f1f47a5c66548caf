"""Runs the probes the decision asked for: webhook gates and metric checks, concurrently.

Results come back as CheckResults, so the decision and the users see webhooks and metrics the
same way: what was asked, what came back, the verdict and why.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Mapping
from datetime import datetime, timedelta

import aiohttp

from canary.config import MetricsSettings
from canary.domain.analysis import MIN_QUERY_WINDOW, evaluate_metric, query_window
from canary.domain.judge import evaluate as judge_evaluate, step_window, unmeasured
from canary.domain.machine import PROBE_HOOKS, Probe
from canary.domain.providers import Mesh, parse_provider
from canary.domain.spec import MetricSpec, MetricTemplateSpec, parse_metric_template_spec
from canary.domain.status import CanaryStatus, CheckResult, Phase, Verdict
from canary.errors import ApiError, MetricError, ProviderUnavailable, SpecError, TemplateError
from canary.kube.api import KubeApi
from canary.kube.cache import ClusterCache, Kind, ObjectKey
from canary.kube.execute import Target
from canary.kube.workloads import CANARY_SUFFIX, primary_name
from canary.metrics.base import CompareRequest, MeasureRequest
from canary.metrics.engine import MetricsEngine
from canary.notify.webhooks import WebhookPayload, call_all


class ProbeRunner:
    def __init__(self, api: KubeApi, cache: ClusterCache, session: aiohttp.ClientSession,
                 engine: MetricsEngine, settings: MetricsSettings) -> None:
        self.api = api
        self.cache = cache
        self.session = session
        self.engine = engine
        self.settings = settings

    async def run(self, probes: frozenset[Probe], target: Target, status: CanaryStatus,
                  now: datetime) -> dict[Probe, tuple[CheckResult, ...]]:
        ordered = sorted(probes)
        results = await asyncio.gather(*(self._one(p, target, status, now) for p in ordered))
        return dict(zip(ordered, results, strict=True))

    async def _one(self, probe: Probe, target: Target, status: CanaryStatus,
                   now: datetime) -> tuple[CheckResult, ...]:
        if probe is Probe.METRICS:
            return await self._metrics(target, status, now)
        if probe is Probe.JUDGE:
            return await self._judge(target, status, now)
        hooks = target.spec.analysis.hooks(PROBE_HOOKS[probe])
        # confirm-rollout asks about the revision about to start; every other hook about the run.
        checksum = (target.observation.observed.target.checksum if probe is Probe.CONFIRM_ROLLOUT
                    else status.last_applied_spec)
        payload = WebhookPayload(name=target.name, namespace=target.namespace,
                                 phase=status.phase or Phase.INITIALIZING, checksum=checksum)
        outcomes = await call_all(self.session, hooks, payload)
        return tuple(o.as_check(now) for o in outcomes)

    async def _metrics(self, target: Target, status: CanaryStatus, now: datetime) -> tuple[CheckResult, ...]:
        analysis = target.spec.analysis
        mesh = _mesh(target)
        requests: list[MeasureRequest] = []
        failures: dict[int, str] = {}
        secrets: set[tuple[str, str]] = set()
        for index, metric in enumerate(analysis.metrics):
            try:
                template = self._template(target, metric)
            except (SpecError, TemplateError) as exc:
                failures[index] = str(exc)
                template = None
            if template is not None and template.provider.secret_ref and metric.template_ref is not None:
                # A template's Secret lives beside the template, which may be in another namespace.
                secrets.add((metric.template_ref.namespace or target.namespace, template.provider.secret_ref))
            requests.append(MeasureRequest(
                metric=metric, namespace=target.namespace, name=target.name, target=target.spec.target_ref.name,
                service=target.spec.service.name, template=template, target_kind=target.spec.target_ref.kind,
                window=shared_window(metric, analysis.interval, status.run_started, now),
                mesh=mesh, metrics_server=target.spec.metrics_server,
                canary_service=_canary_service(target),
            ))
        credentials = await self._credentials(secrets)
        runnable = [r for i, r in enumerate(requests) if i not in failures]
        measured = iter(await self.engine.measure_all(runnable, credentials))
        checks = []
        for index, request in enumerate(requests):
            metric = request.metric
            if index in failures:
                checks.append(evaluate_metric(metric, value=None, source="", now=now, error=failures[index]))
                continue
            result = next(measured)
            if isinstance(result, ProviderUnavailable):
                # Down, timing out or failing with 5xx after retries: no evidence about the canary.
                checks.append(evaluate_metric(metric, value=None, source=_source(request), now=now,
                                              unavailable=f"{type(result).__name__}: {result}"))
            elif isinstance(result, (MetricError, TemplateError)):
                checks.append(evaluate_metric(metric, value=None, source=_source(request), now=now,
                                              error=f"{type(result).__name__}: {result}"))
            else:
                checks.append(evaluate_metric(metric, value=result.value, source=result.source, now=now,
                                              samples=result.samples, min_samples=analysis.min_sample_size))
        return tuple(checks)

    async def _judge(self, target: Target, status: CanaryStatus, now: datetime) -> tuple[CheckResult, ...]:
        """Both versions over the current step (since the weight last moved), judged."""
        judge = target.spec.analysis.judge
        if judge is None:
            return ()
        workload = target.spec.target_ref.name
        request = CompareRequest(
            namespace=target.namespace, target=workload, primary=primary_name(workload),
            window=step_window(status.judge, status.run_started, now),
            mesh=_mesh(target),
            metrics_server=target.spec.metrics_server, target_kind=target.spec.target_ref.kind,
            latency=judge.latency is not None,
            services=(_canary_service(target), primary_name(target.spec.service.name)),
        )
        try:
            comparison = await self.engine.compare(request)
        except ProviderUnavailable as exc:
            # An outage of the metrics system says nothing about either version: hold, as metrics do.
            return unmeasured(judge, Verdict.UNAVAILABLE, f"{type(exc).__name__}: {exc}", now)
        except (MetricError, TemplateError) as exc:
            return unmeasured(judge, Verdict.ERROR, f"{type(exc).__name__}: {exc}", now)
        return judge_evaluate(judge, comparison, status.judge, now)

    def _template(self, target: Target, metric: MetricSpec) -> MetricTemplateSpec | None:
        if metric.template_ref is None:
            return None
        key = ObjectKey(Kind.METRIC_TEMPLATE, metric.template_ref.namespace or target.namespace,
                        metric.template_ref.name)
        body = self.cache.get(key)
        if body is None:
            raise TemplateError(f"MetricTemplate {key.namespace}/{key.name} not found")
        return parse_metric_template_spec(body.get("spec") or {})

    async def _credentials(self, refs: set[tuple[str, str]]) -> dict[str, Mapping[str, str]]:
        # Secrets are read only when a template needs one, and never cached: the cache keeps
        # digests of Secrets, not their contents.
        out: dict[str, Mapping[str, str]] = {}
        for namespace, name in sorted(refs):
            try:
                secret = self.api.to_dict(await self.api.call(self.api.core.read_namespaced_secret, name, namespace))
            except ApiError:
                continue  # the engine reports the unresolved secret on the check itself
            out[name] = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
        return out


def shared_window(metric: MetricSpec, analysis_interval: timedelta, run_started: datetime | None,
                  now: datetime) -> timedelta:
    """The domain's query window, cut to whole seconds while it is clipped to a young run.

    Clipped, the window is the time since the run began, to the millisecond, so no two Canaries
    would ask for the same one and none could share a batched query
    (:mod:`canary.metrics.batching`) for the first ``interval`` of every run. Cut to whole
    seconds, Canaries whose runs began in the same second ask alike. Cutting (never rounding up)
    keeps the window inside the run: it counts up to a second less of this revision's requests,
    never one of the revision before."""
    window = query_window(metric, analysis_interval, run_started, now)
    if window >= (metric.interval or analysis_interval):
        return window
    return max(timedelta(seconds=math.floor(window.total_seconds())), MIN_QUERY_WINDOW)


def _mesh(target: Target) -> Mesh | None:
    """The mesh whose metric names the builtin checks and the judge query: the Canary's provider's
    (linkerd, osm), or None for the controller's --mesh."""
    return parse_provider(target.spec.provider).metrics if target.spec.provider else None


def _canary_service(target: Target) -> str:
    """The Service that selects only the canary's pods, which a gateway's metrics name it by."""
    return f"{target.spec.service.name}{CANARY_SUFFIX}"


def _source(request: MeasureRequest) -> str:
    if request.template is not None:
        return request.template.query
    return request.metric.name
