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
from canary.domain.bounds import CountBound
from canary.domain.durations import parse_duration
from canary.errors import SpecError

BUILTIN_SUCCESS_RATE = "request-success-rate"
BUILTIN_DURATION = "request-duration"
BUILTIN_METRICS = frozenset({BUILTIN_SUCCESS_RATE, BUILTIN_DURATION})
#: Values of ``spec.provider`` (the router); the CRD's enum lists the same.
ROUTER_PROVIDERS = ("smi", "smi:v1alpha4", "smi:v1alpha3", "smi:v1alpha2", "smi:v1alpha1", "gatewayapi")


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


@dataclass(frozen=True)
class TargetRef:
    name: str
    kind: str = "Deployment"
    api_version: str = "apps/v1"


@dataclass(frozen=True)
class ServiceSpec:
    port: int
    name: str  # apex Service name; defaults to the target's name
    port_name: str = "http"
    target_port: int | str | None = None


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
    provider: str | None = None
    progress_deadline_seconds: int = 600
    skip_analysis: bool = False
    suspend: bool = False
    revert_on_deletion: bool = False


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


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(path, "must be an object")
    return value


def _int(value: object, path: str, bound: CountBound) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, f"{value!r} must be an integer from {bound.floor} to {bound.ceiling}")
    if value < bound.floor:
        raise SpecError(path, f"{value} must be at least {bound.floor} (at most {bound.ceiling})")
    if value > bound.ceiling:
        raise SpecError(path, f"{value} must be at most {bound.ceiling} (at least {bound.floor})")
    return value


def _opt_int(m: Mapping[str, Any], key: str, path: str, bound: CountBound) -> int | None:
    return None if m.get(key) is None else _int(m[key], f"{path}.{key}", bound)


def _list(value: object, path: str, bound: CountBound) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(path, "must be a list")
    if len(value) > bound.ceiling:
        raise SpecError(path, f"has {len(value)} items; at most {bound.ceiling} are allowed")
    return value


def _str(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(path, "must be a non-empty string")
    return value


def _bool(m: Mapping[str, Any], key: str, path: str) -> bool:
    value = m.get(key, False)
    if not isinstance(value, bool):
        # bool("false") is True: a quoted boolean must be refused, not read backwards.
        raise SpecError(f"{path}.{key}", f"{value!r} must be true or false, without quotes")
    return value


def _http_url(value: object, path: str) -> str:
    url = _str(value, path)
    if not url.startswith(("http://", "https://")):
        raise SpecError(path, f"{url!r} must start with http:// or https://")
    return url


def _float(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(path, f"{value!r} must be a number")
    return float(value)


def _str_map(value: object, path: str) -> dict[str, str]:
    out = {}
    for key, item in _mapping(value, path).items():
        if not isinstance(item, str):
            raise SpecError(f"{path}.{key}", f"{item!r} must be a string; quote it")
        out[str(key)] = item
    return out


def parse_metric(raw: Mapping[str, Any], path: str) -> MetricSpec:
    name = _str(raw.get("name"), f"{path}.name")
    tr = _mapping(raw.get("thresholdRange"), f"{path}.thresholdRange")
    lo = None if tr.get("min") is None else _float(tr["min"], f"{path}.thresholdRange.min")
    hi = None if tr.get("max") is None else _float(tr["max"], f"{path}.thresholdRange.max")
    if lo is None and hi is None:
        raise SpecError(f"{path}.thresholdRange", "set min, max or both")
    if lo is not None and hi is not None and lo > hi:
        raise SpecError(f"{path}.thresholdRange", f"min {lo} is above max {hi}")
    ref_raw = raw.get("templateRef")
    ref = None
    if ref_raw is not None:
        ref_map = _mapping(ref_raw, f"{path}.templateRef")
        ref = TemplateRef(
            name=_str(ref_map.get("name"), f"{path}.templateRef.name"),
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
        template_variables=_str_map(raw.get("templateVariables"), f"{path}.templateVariables"),
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
        name=_str(raw.get("name"), f"{path}.name"),
        type=kind,
        url=_http_url(raw.get("url"), f"{path}.url"),
        timeout=timeout,
        retries=_int(raw.get("retries", 0), f"{path}.retries", bounds.WEBHOOK_RETRIES),
        metadata=_str_map(raw.get("metadata"), f"{path}.metadata"),
    )


def parse_analysis(raw: Mapping[str, Any], path: str = "spec.analysis") -> AnalysisSpec:
    step_weight = _opt_int(raw, "stepWeight", path, bounds.STEP_WEIGHT)
    step_weights = tuple(
        _int(w, f"{path}.stepWeights[{i}]", bounds.STEP_WEIGHTS_ITEM)
        for i, w in enumerate(_list(raw.get("stepWeights"), f"{path}.stepWeights", bounds.STEP_WEIGHTS_ITEMS))
    )
    if step_weight is not None and step_weights:
        raise SpecError(f"{path}.stepWeights", "set either stepWeight or stepWeights, not both")
    if any(b <= a for a, b in zip(step_weights, step_weights[1:])):
        raise SpecError(f"{path}.stepWeights", "weights must increase from one step to the next")
    iterations = _opt_int(raw, "iterations", path, bounds.ITERATIONS)
    if step_weight is None and not step_weights and iterations is None:
        raise SpecError(path, "set stepWeight or stepWeights (canary) or iterations (blue/green)")
    max_weight = _opt_int(raw, "maxWeight", path, bounds.MAX_WEIGHT)
    if step_weight is not None and max_weight is None:
        max_weight = 50
    if step_weights:
        max_weight = step_weights[-1] if max_weight is None else max_weight
        if step_weights[-1] > max_weight:
            raise SpecError(f"{path}.stepWeights", f"last step {step_weights[-1]} is above maxWeight {max_weight}")
    if step_weight is not None and max_weight is not None and max_weight < step_weight:
        raise SpecError(f"{path}.maxWeight", f"{max_weight} is below stepWeight {step_weight}: no step would fit")
    policy_raw = raw.get("noDataPolicy", NoDataPolicy.HOLD.value)
    try:
        policy = NoDataPolicy(policy_raw)
    except ValueError as exc:
        raise SpecError(f"{path}.noDataPolicy", f"{policy_raw!r} is not one of hold, fail") from exc
    return AnalysisSpec(
        interval=parse_duration(raw.get("interval", "1m"), f"{path}.interval", bounds.ANALYSIS_INTERVAL),
        threshold=_int(raw.get("threshold", 5), f"{path}.threshold", bounds.THRESHOLD),
        max_weight=max_weight,
        step_weight=step_weight,
        step_weights=step_weights,
        step_weight_promotion=_opt_int(raw, "stepWeightPromotion", path, bounds.STEP_WEIGHT_PROMOTION),
        iterations=iterations,
        metrics=tuple(parse_metric(_mapping(m, f"{path}.metrics[{i}]"), f"{path}.metrics[{i}]")
                      for i, m in enumerate(_list(raw.get("metrics"), f"{path}.metrics", bounds.METRICS_ITEMS))),
        webhooks=tuple(parse_webhook(_mapping(h, f"{path}.webhooks[{i}]"), f"{path}.webhooks[{i}]")
                       for i, h in enumerate(_list(raw.get("webhooks"), f"{path}.webhooks", bounds.WEBHOOKS_ITEMS))),
        no_data_policy=policy,
        min_sample_size=_int(raw.get("minSampleSize", 1), f"{path}.minSampleSize", bounds.MIN_SAMPLE_SIZE),
    )


def parse_canary_spec(raw: Mapping[str, Any]) -> CanarySpec:
    """Parse ``.spec`` of a Canary; raises :class:`SpecError` naming the first wrong field."""
    target = _mapping(raw.get("targetRef"), "spec.targetRef")
    kind = target.get("kind", "Deployment")
    if kind != "Deployment":
        raise SpecError("spec.targetRef.kind", f"{kind!r} is not supported; point targetRef at a Deployment")
    target_ref = TargetRef(
        name=_str(target.get("name"), "spec.targetRef.name"),
        kind=kind,
        api_version=target.get("apiVersion", "apps/v1"),
    )
    svc = _mapping(raw.get("service"), "spec.service")
    target_port = svc.get("targetPort")
    if target_port is not None and not isinstance(target_port, int | str):
        raise SpecError("spec.service.targetPort", "must be a port number or a port name")
    service = ServiceSpec(
        port=_int(svc.get("port"), "spec.service.port", bounds.SERVICE_PORT),
        name=svc.get("name") or target_ref.name,
        port_name=svc.get("portName") or "http",
        target_port=target_port,
    )
    provider = raw.get("provider") or None
    if provider is not None and provider not in ROUTER_PROVIDERS:
        raise SpecError("spec.provider", f"{provider!r} is not one of {', '.join(ROUTER_PROVIDERS)}")
    analysis_raw = raw.get("analysis")
    if analysis_raw is None:
        raise SpecError("spec.analysis", "is required: set interval, threshold and stepWeight or iterations")
    return CanarySpec(
        target_ref=target_ref,
        service=service,
        analysis=parse_analysis(_mapping(analysis_raw, "spec.analysis")),
        provider=provider,
        progress_deadline_seconds=_int(raw.get("progressDeadlineSeconds", 600), "spec.progressDeadlineSeconds",
                                       bounds.PROGRESS_DEADLINE_SECONDS),
        skip_analysis=_bool(raw, "skipAnalysis", "spec"),
        suspend=_bool(raw, "suspend", "spec"),
        revert_on_deletion=_bool(raw, "revertOnDeletion", "spec"),
    )


def parse_metric_template_spec(raw: Mapping[str, Any]) -> MetricTemplateSpec:
    prov = _mapping(raw.get("provider"), "spec.provider")
    type_raw = prov.get("type", ProviderType.PROMETHEUS.value)
    try:
        ptype = ProviderType(type_raw)
    except ValueError as exc:
        raise SpecError("spec.provider.type", f"{type_raw!r} is not one of prometheus, smi") from exc
    secret_ref = None
    if prov.get("secretRef") is not None:
        secret = _mapping(prov["secretRef"], "spec.provider.secretRef")
        secret_ref = _str(secret.get("name"), "spec.provider.secretRef.name")
    address = None if prov.get("address") is None else _http_url(prov["address"], "spec.provider.address")
    return MetricTemplateSpec(
        provider=ProviderSpec(
            type=ptype,
            address=address,
            secret_ref=secret_ref,
            insecure_skip_verify=_bool(prov, "insecureSkipVerify", "spec.provider"),
        ),
        query=_str(raw.get("query"), "spec.query"),
    )
