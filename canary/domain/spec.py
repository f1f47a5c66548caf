"""Typed Canary and MetricTemplate specs, parsed from the mappings the API server hands us.

The API server already applied the CRD's defaults and validation; parsing repeats the defaults
so that unit tests and older stored objects behave the same, and raises :class:`SpecError`
naming the field for anything only Python can check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from canary.domain import bounds
from canary.domain.alerts import AlertSpec, parse_alerts
from canary.domain.autoscaler_spec import AutoscalerRef, parse_autoscaler_ref
from canary.domain.durations import parse_duration
from canary.domain.flagger_fields import CANARY_FIELDS, METRIC_TEMPLATE_FIELDS, refuse_flagger_only_fields
from canary.domain.fields import flag, http_url, integer, items, mapping, number, optional_integer, string_map, text
from canary.domain.judge_spec import JudgeSpec, parse_judge
from canary.domain.providers import parse_provider
from canary.domain.route_spec import (
    HeaderOperations,
    ParentRef,
    RequestMatch,
    Rewrite,
    SessionAffinity,
    parse_headers,
    parse_match,
    parse_parent_ref,
    parse_rewrite,
    parse_session_affinity,
)
from canary.errors import SpecError

BUILTIN_SUCCESS_RATE = "request-success-rate"
BUILTIN_DURATION = "request-duration"
BUILTIN_METRICS = frozenset({BUILTIN_SUCCESS_RATE, BUILTIN_DURATION})


class WebhookType(StrEnum):
    CONFIRM_ROLLOUT = "confirm-rollout"
    PRE_ROLLOUT = "pre-rollout"
    ROLLOUT = "rollout"
    CONFIRM_TRAFFIC_INCREASE = "confirm-traffic-increase"
    CONFIRM_PROMOTION = "confirm-promotion"
    POST_ROLLOUT = "post-rollout"
    ROLLBACK = "rollback"
    EVENT = "event"


class NoDataPolicy(StrEnum):
    """What a check without samples means. Never a pass (see docs/analysis.md)."""

    HOLD = "hold"  # keep the current weight, count nothing, report "no traffic"
    FAIL = "fail"  # count a failed check, as Flagger does


class ProviderType(StrEnum):
    PROMETHEUS = "prometheus"
    SMI = "smi"


#: The kinds of workload a Canary can release (``spec.targetRef.kind``), as the CRD admits them.
TARGET_KINDS = ("Deployment", "DaemonSet")


@dataclass(frozen=True)
class TargetRef:
    name: str
    kind: str = "Deployment"
    api_version: str = "apps/v1"


@dataclass(frozen=True)
class CustomMetadata:
    """Labels and annotations added to one of the generated Services."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceSpec:
    port: int
    name: str  # apex Service name; defaults to the target's name
    port_name: str = "http"
    target_port: int | str | None = None
    app_protocol: str | None = None
    port_discovery: bool = False  # every other container port on the Services too
    apex: CustomMetadata = field(default_factory=CustomMetadata)
    primary: CustomMetadata = field(default_factory=CustomMetadata)
    canary: CustomMetadata = field(default_factory=CustomMetadata)
    # Route options: applied by the gatewayapi router, refused with smi.
    gateway_refs: tuple[ParentRef, ...] = ()
    hosts: tuple[str, ...] = ()
    timeout: timedelta | None = None
    backend_timeout: timedelta | None = None
    headers: HeaderOperations | None = None
    rewrite: Rewrite | None = None

    @property
    def route_options(self) -> tuple[str, ...]:
        """The route options set, as field paths (for refusing them where they cannot apply)."""
        set_ = {"gatewayRefs": self.gateway_refs, "hosts": self.hosts, "timeout": self.timeout,
                "backendTimeout": self.backend_timeout, "headers": self.headers, "rewrite": self.rewrite}
        return tuple(f"spec.service.{name}" for name, value in set_.items() if value)


@dataclass(frozen=True)
class ThresholdRange:
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class TemplateRef:
    name: str
    namespace: str | None = None  # None: the Canary's namespace


@dataclass(frozen=True)
class MetricSpec:
    name: str
    threshold_range: ThresholdRange
    interval: timedelta | None = None  # query window; None means the analysis interval
    template_ref: TemplateRef | None = None
    template_variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_builtin(self) -> bool:
        return self.template_ref is None


@dataclass(frozen=True)
class WebhookSpec:
    name: str
    type: WebhookType
    url: str
    timeout: timedelta = timedelta(seconds=10)
    retries: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Flagger's muteAlert: a gate of this hook that holds the release sends no chat alert.
    mute_alert: bool = False


@dataclass(frozen=True)
class AnalysisSpec:
    interval: timedelta = timedelta(minutes=1)
    threshold: int = 5
    max_weight: int | None = None
    step_weight: int | None = None
    step_weights: tuple[int, ...] = ()
    step_weight_promotion: int | None = None
    iterations: int | None = None  # blue/green: this many checks at full canary exposure, no split
    metrics: tuple[MetricSpec, ...] = ()
    webhooks: tuple[WebhookSpec, ...] = ()
    no_data_policy: NoDataPolicy = NoDataPolicy.HOLD
    min_sample_size: int = 1
    #: Ticks in a row a metrics provider outage holds the release; the next ones count as failed.
    consecutive_error_limit: int = 4
    #: Ticks in a row noDataPolicy hold holds the release; the next ones count as failed.
    consecutive_no_data_limit: int = 10
    primary_ready_threshold: int = 100
    canary_ready_threshold: int = 100
    match: tuple[RequestMatch, ...] = ()
    mirror: bool = False
    mirror_weight: int | None = None
    session_affinity: SessionAffinity | None = None
    judge: JudgeSpec | None = None
    alerts: tuple[AlertSpec, ...] = ()

    @property
    def route_options(self) -> tuple[str, ...]:
        set_ = {"match": self.match, "mirror": self.mirror, "sessionAffinity": self.session_affinity}
        return tuple(f"spec.analysis.{name}" for name, value in set_.items() if value)

    def hooks(self, kind: WebhookType) -> tuple[WebhookSpec, ...]:
        return tuple(h for h in self.webhooks if h.type is kind)

    @property
    def blue_green(self) -> bool:
        return self.iterations is not None and self.step_weight is None and not self.step_weights


@dataclass(frozen=True)
class CanarySpec:
    target_ref: TargetRef
    service: ServiceSpec
    analysis: AnalysisSpec
    provider: str | None = None  # a key of canary.domain.providers.PROVIDERS
    metrics_server: str | None = None  # Flagger's per-Canary Prometheus for the builtin checks
    progress_deadline_seconds: int = 600
    skip_analysis: bool = False
    suspend: bool = False
    revert_on_deletion: bool = False
    autoscaler_ref: AutoscalerRef | None = None


@dataclass(frozen=True)
class ProviderSpec:
    type: ProviderType
    address: str | None = None
    secret_ref: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class MetricTemplateSpec:
    provider: ProviderSpec
    query: str


# --- parsing -------------------------------------------------------------------------------


def parse_metric(raw: Mapping[str, Any], path: str) -> MetricSpec:
    name = text(raw.get("name"), f"{path}.name")
    tr = mapping(raw.get("thresholdRange"), f"{path}.thresholdRange")
    lo = None if tr.get("min") is None else number(tr["min"], f"{path}.thresholdRange.min")
    hi = None if tr.get("max") is None else number(tr["max"], f"{path}.thresholdRange.max")
    if raw.get("threshold") is not None:
        # Flagger's deprecated single bound, which Flagger still reads as a minimum for the success
        # rate and a maximum for anything else.
        if raw.get("thresholdRange") is not None:
            raise SpecError(f"{path}.threshold", "set thresholdRange or the deprecated threshold, not both")
        legacy = number(raw["threshold"], f"{path}.threshold")
        lo, hi = (legacy, None) if name == BUILTIN_SUCCESS_RATE else (None, legacy)
    if lo is None and hi is None:
        raise SpecError(f"{path}.thresholdRange", "set min, max or both")
    if lo is not None and hi is not None and lo > hi:
        raise SpecError(f"{path}.thresholdRange", f"min {lo} is above max {hi}")
    ref_raw = raw.get("templateRef")
    ref = None
    if ref_raw is not None:
        ref_map = mapping(ref_raw, f"{path}.templateRef")
        ref = TemplateRef(
            name=text(ref_map.get("name"), f"{path}.templateRef.name"),
            namespace=ref_map.get("namespace") or None,
        )
    elif name not in BUILTIN_METRICS:
        raise SpecError(
            f"{path}.templateRef",
            f"metric {name!r} is not a builtin ({', '.join(sorted(BUILTIN_METRICS))}); "
            "add a templateRef to a MetricTemplate",
        )
    interval = (None if raw.get("interval") is None
                else parse_duration(raw["interval"], f"{path}.interval", bounds.METRIC_INTERVAL))
    return MetricSpec(
        name=name,
        threshold_range=ThresholdRange(lo, hi),
        interval=interval,
        template_ref=ref,
        template_variables=string_map(raw.get("templateVariables"), f"{path}.templateVariables"),
    )


def parse_webhook(raw: Mapping[str, Any], path: str) -> WebhookSpec:
    kind_raw = raw.get("type", WebhookType.ROLLOUT.value)
    try:
        kind = WebhookType(kind_raw)
    except ValueError as exc:
        allowed = ", ".join(t.value for t in WebhookType)
        raise SpecError(f"{path}.type", f"{kind_raw!r} is not one of {allowed}") from exc
    timeout = parse_duration(raw.get("timeout", "10s"), f"{path}.timeout", bounds.WEBHOOK_TIMEOUT)
    return WebhookSpec(
        name=text(raw.get("name"), f"{path}.name"),
        type=kind,
        url=http_url(raw.get("url"), f"{path}.url"),
        timeout=timeout,
        retries=integer(raw.get("retries", 0), f"{path}.retries", bounds.WEBHOOK_RETRIES),
        metadata=string_map(raw.get("metadata"), f"{path}.metadata"),
        mute_alert=flag(raw, "muteAlert", path),
    )


def _metadata(value: object, path: str) -> CustomMetadata:
    m = mapping(value, path)
    return CustomMetadata(labels=string_map(m.get("labels"), f"{path}.labels"),
                          annotations=string_map(m.get("annotations"), f"{path}.annotations"))


def parse_service(svc: Mapping[str, Any], target_name: str) -> ServiceSpec:
    target_port = svc.get("targetPort")
    if target_port is not None and not isinstance(target_port, int | str):
        raise SpecError("spec.service.targetPort", "must be a port number or a port name")
    path = "spec.service"
    timeout = None if svc.get("timeout") is None else parse_duration(svc["timeout"], f"{path}.timeout",
                                                                     bounds.ROUTE_TIMEOUT)
    backend_timeout = (None if svc.get("backendTimeout") is None
                       else parse_duration(svc["backendTimeout"], f"{path}.backendTimeout",
                                           bounds.ROUTE_BACKEND_TIMEOUT))
    if timeout is not None and backend_timeout is not None and backend_timeout > timeout:
        raise SpecError(f"{path}.backendTimeout", "must not be longer than spec.service.timeout")
    refs = items(svc.get("gatewayRefs"), f"{path}.gatewayRefs", bounds.GATEWAY_REFS_ITEMS)
    hosts = items(svc.get("hosts"), f"{path}.hosts", bounds.HOSTS_ITEMS)
    app_protocol = svc.get("appProtocol")
    return ServiceSpec(
        port=integer(svc.get("port"), f"{path}.port", bounds.SERVICE_PORT),
        name=svc.get("name") or target_name,
        port_name=svc.get("portName") or "http",
        target_port=target_port,
        app_protocol=None if app_protocol is None else text(app_protocol, f"{path}.appProtocol"),
        port_discovery=flag(svc, "portDiscovery", path),
        apex=_metadata(svc.get("apex"), f"{path}.apex"),
        primary=_metadata(svc.get("primary"), f"{path}.primary"),
        canary=_metadata(svc.get("canary"), f"{path}.canary"),
        gateway_refs=tuple(parse_parent_ref(mapping(r, f"{path}.gatewayRefs[{i}]"), f"{path}.gatewayRefs[{i}]")
                           for i, r in enumerate(refs)),
        hosts=tuple(text(h, f"{path}.hosts[{i}]") for i, h in enumerate(hosts)),
        timeout=timeout,
        backend_timeout=backend_timeout,
        headers=parse_headers(svc.get("headers"), f"{path}.headers"),
        rewrite=parse_rewrite(svc.get("rewrite"), f"{path}.rewrite"),
    )


def parse_analysis(raw: Mapping[str, Any], path: str = "spec.analysis") -> AnalysisSpec:
    step_weight = optional_integer(raw, "stepWeight", path, bounds.STEP_WEIGHT)
    step_weights = tuple(
        integer(w, f"{path}.stepWeights[{i}]", bounds.STEP_WEIGHTS_ITEM)
        for i, w in enumerate(items(raw.get("stepWeights"), f"{path}.stepWeights", bounds.STEP_WEIGHTS_ITEMS))
    )
    if step_weight is not None and step_weights:
        raise SpecError(f"{path}.stepWeights", "set either stepWeight or stepWeights, not both")
    if any(b <= a for a, b in zip(step_weights, step_weights[1:])):
        raise SpecError(f"{path}.stepWeights", "weights must increase from one step to the next")
    iterations = optional_integer(raw, "iterations", path, bounds.ITERATIONS)
    if step_weight is None and not step_weights and iterations is None:
        raise SpecError(path, "set stepWeight or stepWeights (canary) or iterations (blue/green)")
    max_weight = optional_integer(raw, "maxWeight", path, bounds.MAX_WEIGHT)
    if step_weight is not None and max_weight is None:
        max_weight = 50
    if step_weights:
        # As in Flagger, the steps are the whole plan: the last one leads to promotion, and
        # maxWeight (still range-checked) takes no part.
        max_weight = step_weights[-1]
    if step_weight is not None and max_weight is not None and max_weight < step_weight:
        raise SpecError(f"{path}.maxWeight", f"{max_weight} is below stepWeight {step_weight}: no step would fit")
    if raw.get("match") and (step_weight is not None or step_weights or iterations is None):
        raise SpecError(f"{path}.match", "A/B testing sends matching requests to the canary for iterations "
                                         "checks: set iterations, without stepWeight or stepWeights")
    mirror = flag(raw, "mirror", path)
    mirror_weight = optional_integer(raw, "mirrorWeight", path, bounds.MIRROR_WEIGHT)
    if mirror_weight is not None and not mirror:
        raise SpecError(f"{path}.mirrorWeight", "has no effect without mirror: true; set both or neither")
    if mirror and (step_weight is not None or step_weights or iterations is None):
        raise SpecError(f"{path}.mirror", "mirroring is a blue/green stage: set iterations, without "
                                          "stepWeight or stepWeights")
    policy_raw = raw.get("noDataPolicy", NoDataPolicy.HOLD.value)
    try:
        policy = NoDataPolicy(policy_raw)
    except ValueError as exc:
        raise SpecError(f"{path}.noDataPolicy", f"{policy_raw!r} is not one of hold, fail") from exc
    return AnalysisSpec(
        interval=parse_duration(raw.get("interval", "1m"), f"{path}.interval", bounds.ANALYSIS_INTERVAL),
        threshold=integer(raw.get("threshold", 5), f"{path}.threshold", bounds.THRESHOLD),
        max_weight=max_weight,
        step_weight=step_weight,
        step_weights=step_weights,
        step_weight_promotion=optional_integer(raw, "stepWeightPromotion", path, bounds.STEP_WEIGHT_PROMOTION),
        iterations=iterations,
        metrics=tuple(parse_metric(mapping(m, f"{path}.metrics[{i}]"), f"{path}.metrics[{i}]")
                      for i, m in enumerate(items(raw.get("metrics"), f"{path}.metrics", bounds.METRICS_ITEMS))),
        webhooks=tuple(parse_webhook(mapping(h, f"{path}.webhooks[{i}]"), f"{path}.webhooks[{i}]")
                       for i, h in enumerate(items(raw.get("webhooks"), f"{path}.webhooks", bounds.WEBHOOKS_ITEMS))),
        no_data_policy=policy,
        min_sample_size=integer(raw.get("minSampleSize", 1), f"{path}.minSampleSize", bounds.MIN_SAMPLE_SIZE),
        consecutive_error_limit=integer(raw.get("consecutiveErrorLimit", 4), f"{path}.consecutiveErrorLimit",
                                        bounds.CONSECUTIVE_ERROR_LIMIT),
        consecutive_no_data_limit=integer(raw.get("consecutiveNoDataLimit", 10), f"{path}.consecutiveNoDataLimit",
                                          bounds.CONSECUTIVE_NO_DATA_LIMIT),
        primary_ready_threshold=integer(raw.get("primaryReadyThreshold", 100), f"{path}.primaryReadyThreshold",
                                     bounds.PRIMARY_READY_THRESHOLD),
        canary_ready_threshold=integer(raw.get("canaryReadyThreshold", 100), f"{path}.canaryReadyThreshold",
                                    bounds.CANARY_READY_THRESHOLD),
        match=tuple(parse_match(mapping(m, f"{path}.match[{i}]"), f"{path}.match[{i}]")
                    for i, m in enumerate(items(raw.get("match"), f"{path}.match", bounds.MATCH_ITEMS))),
        mirror=mirror,
        mirror_weight=mirror_weight,
        session_affinity=parse_session_affinity(raw.get("sessionAffinity"), f"{path}.sessionAffinity"),
        judge=parse_judge(raw.get("judge"), f"{path}.judge"),
        alerts=parse_alerts(raw.get("alerts"), f"{path}.alerts"),
    )


def parse_canary_spec(raw: Mapping[str, Any]) -> CanarySpec:
    """Parse ``.spec`` of a Canary; raises :class:`SpecError` naming the first wrong field."""
    refuse_flagger_only_fields(raw, CANARY_FIELDS)
    target = mapping(raw.get("targetRef"), "spec.targetRef")
    kind = target.get("kind", "Deployment")
    if kind not in TARGET_KINDS:
        raise SpecError("spec.targetRef.kind", f"{kind!r} is not supported; point targetRef at a "
                        f"{' or a '.join(TARGET_KINDS)}")
    target_ref = TargetRef(
        name=text(target.get("name"), "spec.targetRef.name"),
        kind=kind,
        api_version=target.get("apiVersion", "apps/v1"),
    )
    service = parse_service(mapping(raw.get("service"), "spec.service"), target_ref.name)
    provider = raw.get("provider") or None
    if provider is not None:
        parse_provider(provider)
    analysis_raw, analysis_path = raw.get("analysis"), "spec.analysis"
    if raw.get("canaryAnalysis") is not None:
        # Flagger's deprecated name, which Flagger reads only when ``analysis`` is unset.
        if analysis_raw is not None:
            raise SpecError("spec.canaryAnalysis", "is the deprecated name of spec.analysis; set only one")
        analysis_raw, analysis_path = raw["canaryAnalysis"], "spec.canaryAnalysis"
    if analysis_raw is None:
        raise SpecError("spec.analysis", "is required: set interval, threshold and stepWeight or iterations")
    spec = CanarySpec(
        target_ref=target_ref,
        service=service,
        analysis=parse_analysis(mapping(analysis_raw, analysis_path), analysis_path),
        provider=provider,
        metrics_server=None if raw.get("metricsServer") is None else http_url(raw["metricsServer"],
                                                                              "spec.metricsServer"),
        progress_deadline_seconds=integer(raw.get("progressDeadlineSeconds", 600), "spec.progressDeadlineSeconds",
                                       bounds.PROGRESS_DEADLINE_SECONDS),
        skip_analysis=flag(raw, "skipAnalysis", "spec"),
        suspend=flag(raw, "suspend", "spec"),
        revert_on_deletion=flag(raw, "revertOnDeletion", "spec"),
        autoscaler_ref=parse_autoscaler_ref(raw.get("autoscalerRef")),
    )
    if spec.autoscaler_ref is not None and spec.target_ref.kind == "DaemonSet":
        raise SpecError("spec.autoscalerRef", "a DaemonSet runs one pod per node and has no replicas to scale; "
                        "remove autoscalerRef")
    return spec


def parse_metric_template_spec(raw: Mapping[str, Any]) -> MetricTemplateSpec:
    refuse_flagger_only_fields(raw, METRIC_TEMPLATE_FIELDS)
    prov = mapping(raw.get("provider"), "spec.provider")
    type_raw = prov.get("type", ProviderType.PROMETHEUS.value)
    try:
        ptype = ProviderType(type_raw)
    except ValueError as exc:
        raise SpecError("spec.provider.type", f"{type_raw!r} is not one of prometheus, smi") from exc
    secret_ref = None
    if prov.get("secretRef") is not None:
        secret = mapping(prov["secretRef"], "spec.provider.secretRef")
        secret_ref = text(secret.get("name"), "spec.provider.secretRef.name")
    address = None if prov.get("address") is None else http_url(prov["address"], "spec.provider.address")
    return MetricTemplateSpec(
        provider=ProviderSpec(
            type=ptype,
            address=address,
            secret_ref=secret_ref,
            insecure_skip_verify=flag(prov, "insecureSkipVerify", "spec.provider"),
        ),
        query=text(raw.get("query"), "spec.query"),
    )
