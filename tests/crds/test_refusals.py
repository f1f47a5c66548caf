"""Bad manifests: the schema refuses each one naming the field, and the parser refuses it too.

Each case changes one thing in a known-good object. Ids ending in ``schema-only`` are refused by
the CRD while ``canary.domain.spec`` still accepts them (or, for status, has no parser at all);
``test_parser_agrees`` pins that down so closing a gap in the parser shows up here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from canary.domain.flagger_fields import CANARY_FIELDS, refused
from canary.domain.providers import REFUSED_PROVIDERS
from canary.domain.spec import TARGET_KINDS, parse_canary_spec, parse_metric_template_spec
from canary.errors import SpecError
from tests.crds.schema_validator import (
    FieldError,
    Invalid,
    SchemaPath,
    base_canary,
    base_metric_template,
    full_status,
    iter_rules,
    iter_schema,
    load_crds,
)

DELETE = object()
PARSERS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "Canary": parse_canary_spec,
    "MetricTemplate": parse_metric_template_spec,
}


@dataclass(frozen=True)
class Bad:
    id: str
    changes: dict[str, Any]
    #: The path the API server's error must name.
    field: str
    kind: str = "Canary"
    #: False when only the schema refuses it (see the module docstring).
    parser_refuses: bool = True
    with_status: bool = False

    @property
    def test_id(self) -> str:
        if self.with_status:
            return f"{self.id}-schema-only-status"
        return self.id if self.parser_refuses else f"{self.id}-schema-only"

    def build(self) -> dict[str, Any]:
        obj = base_canary() if self.kind == "Canary" else base_metric_template()
        if self.with_status:
            obj["status"] = full_status()
        for path, value in self.changes.items():
            _set(obj, path, value)
        return obj


def _keys(path: str) -> list[str | int]:
    return [int(k[1:-1]) if k.startswith("[") else k for k in re.findall(r"\[\d+\]|[^.\[\]]+", path)]


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = _keys(path)
    node: Any = obj
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = copy.deepcopy(value)


A = "spec.analysis"
M0 = f"{A}.metrics[0]"
M1 = f"{A}.metrics[1]"
W0 = f"{A}.webhooks[0]"
METRIC = {"name": "request-success-rate", "thresholdRange": {"min": 99}}
HOOK = {"name": "h", "url": "http://h.test/"}

CASES = [
    # targetRef and service
    Bad("targetRef-missing", {"spec.targetRef": DELETE}, "spec.targetRef"),
    Bad("targetRef-name-missing", {"spec.targetRef.name": DELETE}, "spec.targetRef.name"),
    Bad("targetRef-name-empty", {"spec.targetRef.name": ""}, "spec.targetRef.name"),
    Bad("targetRef-kind-not-deployment", {"spec.targetRef.kind": "StatefulSet"}, "spec.targetRef.kind"),
    Bad("service-port-missing", {"spec.service.port": DELETE}, "spec.service.port"),
    Bad("service-port-zero", {"spec.service.port": 0}, "spec.service.port"),
    Bad("service-port-above-65535", {"spec.service.port": 65536}, "spec.service.port"),
    Bad("service-targetPort-not-int-or-string", {"spec.service.targetPort": 80.5}, "spec.service.targetPort"),
    # top-level spec fields
    Bad("provider-unknown", {"spec.provider": "linkerd2"}, "spec.provider"),
    Bad("progressDeadlineSeconds-zero", {"spec.progressDeadlineSeconds": 0}, "spec.progressDeadlineSeconds"),
    # Issue 8: 10^15 passed the schema (int32 has no maximum of its own) and overflowed decide().
    Bad("progressDeadlineSeconds-above-a-day", {"spec.progressDeadlineSeconds": 86401}, "spec.progressDeadlineSeconds"),
    Bad("progressDeadlineSeconds-huge", {"spec.progressDeadlineSeconds": 10**15}, "spec.progressDeadlineSeconds"),
    Bad("skipAnalysis-not-bool", {"spec.skipAnalysis": "true"}, "spec.skipAnalysis"),
    # A rule on spec (analysis or Flagger's canaryAnalysis), so the error names spec itself.
    Bad("analysis-missing", {A: DELETE}, "spec"),
    Bad("analysis-and-canaryAnalysis", {"spec.canaryAnalysis": {"interval": "1m", "stepWeight": 10}},
        "spec.canaryAnalysis"),
    # analysis scalars
    Bad("interval-not-a-duration", {f"{A}.interval": "1 minute"}, f"{A}.interval"),
    Bad("interval-zero", {f"{A}.interval": "0s"}, f"{A}.interval"),
    Bad("interval-too-long", {f"{A}.interval": "1s" * 20}, f"{A}.interval"),
    # Issue 8: these matched the old pattern, then overflowed timedelta or decide(), or became 0.
    Bad("interval-huge", {f"{A}.interval": "99999999999h"}, f"{A}.interval"),
    Bad("interval-above-a-day", {f"{A}.interval": "999999999h"}, f"{A}.interval"),
    Bad("interval-just-above-24h", {f"{A}.interval": "24h0.001ms"}, f"{A}.interval"),
    Bad("interval-zero-length", {f"{A}.interval": "0.0000001ms"}, f"{A}.interval"),
    Bad("interval-just-below-1s", {f"{A}.interval": "999ms"}, f"{A}.interval"),
    Bad("threshold-zero", {f"{A}.threshold": 0}, f"{A}.threshold"),
    Bad("threshold-above-1000", {f"{A}.threshold": 1001}, f"{A}.threshold"),
    Bad("maxWeight-zero", {f"{A}.maxWeight": 0}, f"{A}.maxWeight"),
    Bad("maxWeight-above-100", {f"{A}.maxWeight": 101}, f"{A}.maxWeight"),
    Bad("stepWeight-zero", {f"{A}.stepWeight": 0}, f"{A}.stepWeight"),
    Bad("stepWeight-above-100", {f"{A}.stepWeight": 101, f"{A}.maxWeight": 100}, f"{A}.stepWeight"),
    Bad("stepWeightPromotion-zero", {f"{A}.stepWeightPromotion": 0}, f"{A}.stepWeightPromotion"),
    Bad("stepWeightPromotion-above-100", {f"{A}.stepWeightPromotion": 101}, f"{A}.stepWeightPromotion"),
    Bad("iterations-zero", {f"{A}.iterations": 0}, f"{A}.iterations"),
    Bad("iterations-above-1000", {f"{A}.iterations": 1001}, f"{A}.iterations"),
    Bad("noDataPolicy-unknown", {f"{A}.noDataPolicy": "pass"}, f"{A}.noDataPolicy"),
    Bad("minSampleSize-zero", {f"{A}.minSampleSize": 0}, f"{A}.minSampleSize"),
    Bad("minSampleSize-above-a-billion", {f"{A}.minSampleSize": 1_000_000_001}, f"{A}.minSampleSize"),
    Bad("consecutiveErrorLimit-negative", {f"{A}.consecutiveErrorLimit": -1}, f"{A}.consecutiveErrorLimit"),
    Bad("consecutiveErrorLimit-above-100", {f"{A}.consecutiveErrorLimit": 101}, f"{A}.consecutiveErrorLimit"),
    Bad("consecutiveNoDataLimit-negative", {f"{A}.consecutiveNoDataLimit": -1}, f"{A}.consecutiveNoDataLimit"),
    Bad("consecutiveNoDataLimit-above-1000", {f"{A}.consecutiveNoDataLimit": 1001},
        f"{A}.consecutiveNoDataLimit"),
    Bad("judge-alpha-zero", {f"{A}.judge.alpha": 0}, f"{A}.judge.alpha"),
    Bad("judge-alpha-above-0.2", {f"{A}.judge.alpha": 0.3}, f"{A}.judge.alpha"),
    Bad("judge-lookEvery-zero", {f"{A}.judge.lookEvery": "0s"}, f"{A}.judge.lookEvery"),
    Bad("judge-lookEvery-not-a-duration", {f"{A}.judge.lookEvery": "often"}, f"{A}.judge.lookEvery"),
    Bad("judge-errors-tolerance-negative", {f"{A}.judge.errorRate.tolerance": -0.1}, f"{A}.judge.errorRate.tolerance"),
    Bad("judge-errors-tolerance-above-10", {f"{A}.judge.errorRate.tolerance": 11}, f"{A}.judge.errorRate.tolerance"),
    Bad("judge-minIncrease-negative", {f"{A}.judge.errorRate.minIncrease": -1}, f"{A}.judge.errorRate.minIncrease"),
    Bad("judge-minIncrease-above-100", {f"{A}.judge.errorRate.minIncrease": 101},
        f"{A}.judge.errorRate.minIncrease"),
    Bad("judge-latency-tolerance-negative", {f"{A}.judge.latency.tolerance": -1}, f"{A}.judge.latency.tolerance"),
    Bad("judge-latency-tolerance-above-10", {f"{A}.judge.latency.tolerance": 10.5}, f"{A}.judge.latency.tolerance"),
    # steps (CEL)
    Bad("stepWeight-and-stepWeights", {f"{A}.stepWeights": [10, 20]}, f"{A}.stepWeights"),
    Bad("no-stepWeight-stepWeights-or-iterations", {f"{A}.stepWeight": DELETE}, A),
    Bad("empty-stepWeights-only", {f"{A}.stepWeight": DELETE, f"{A}.stepWeights": []}, A),
    Bad("maxWeight-below-stepWeight", {f"{A}.stepWeight": 30, f"{A}.maxWeight": 20}, f"{A}.maxWeight"),
    Bad("stepWeight-above-default-maxWeight", {f"{A}.stepWeight": 60, f"{A}.maxWeight": DELETE}, f"{A}.maxWeight"),
    Bad("stepWeights-repeated", {f"{A}.stepWeight": DELETE, f"{A}.stepWeights": [10, 10, 20]}, f"{A}.stepWeights"),
    Bad("stepWeights-decreasing", {f"{A}.stepWeight": DELETE, f"{A}.stepWeights": [5, 30, 20]}, f"{A}.stepWeights"),
    Bad("stepWeights-item-zero", {f"{A}.stepWeight": DELETE, f"{A}.stepWeights": [0, 10]}, f"{A}.stepWeights[0]"),
    Bad("stepWeights-item-above-100",
        {f"{A}.stepWeight": DELETE, f"{A}.maxWeight": 100, f"{A}.stepWeights": [50, 101]}, f"{A}.stepWeights[1]"),
    Bad("stepWeights-too-many", {f"{A}.stepWeight": DELETE, f"{A}.stepWeights": list(range(1, 22))},
        f"{A}.stepWeights"),
    # metrics
    Bad("metrics-too-many", {f"{A}.metrics": [METRIC] * 21}, f"{A}.metrics"),
    Bad("metric-name-missing", {f"{M0}.name": DELETE}, f"{M0}.name"),
    Bad("metric-name-empty", {f"{M0}.name": ""}, f"{M0}.name"),
    Bad("metric-custom-without-templateRef", {f"{M1}.templateRef": DELETE}, f"{M1}.templateRef"),
    Bad("metric-templateRef-name-missing", {f"{M1}.templateRef.name": DELETE}, f"{M1}.templateRef.name"),
    Bad("metric-templateRef-name-empty", {f"{M1}.templateRef.name": ""}, f"{M1}.templateRef.name"),
    Bad("metric-templateVariables-not-strings", {f"{M1}.templateVariables": {"codes": 500}},
        f"{M1}.templateVariables.codes"),
    Bad("metric-interval-not-a-duration", {f"{M0}.interval": "5 min"}, f"{M0}.interval"),
    Bad("metric-interval-zero", {f"{M0}.interval": "0m"}, f"{M0}.interval"),
    Bad("metric-interval-huge", {f"{M0}.interval": "99999999999h"}, f"{M0}.interval"),
    Bad("metric-interval-above-a-day", {f"{M0}.interval": "25h"}, f"{M0}.interval"),
    Bad("metric-interval-zero-length", {f"{M0}.interval": "0.0000001ms"}, f"{M0}.interval"),
    Bad("metric-thresholdRange-missing", {f"{M0}.thresholdRange": DELETE}, f"{M0}.thresholdRange"),
    Bad("metric-thresholdRange-empty", {f"{M0}.thresholdRange": {}}, f"{M0}.thresholdRange"),
    Bad("metric-thresholdRange-min-above-max", {f"{M0}.thresholdRange": {"min": 99, "max": 95.5}},
        f"{M0}.thresholdRange"),
    Bad("metric-thresholdRange-min-not-a-number", {f"{M0}.thresholdRange.min": "99"}, f"{M0}.thresholdRange.min"),
    # alerts
    Bad("alerts-too-many", {f"{A}.alerts": [{"name": f"a{i}", "providerRef": {"name": "p"}} for i in range(11)]},
        f"{A}.alerts"),
    Bad("alert-severity-unknown", {f"{A}.alerts": [{"name": "a", "severity": "critical", "providerRef": {"name": "p"}}]},
        f"{A}.alerts[0].severity"),
    Bad("alert-name-empty", {f"{A}.alerts": [{"name": "", "providerRef": {"name": "p"}}]}, f"{A}.alerts[0].name"),
    Bad("alert-providerRef-name-empty", {f"{A}.alerts": [{"name": "a", "providerRef": {"name": ""}}]},
        f"{A}.alerts[0].providerRef.name"),
    # webhooks
    Bad("webhooks-too-many", {f"{A}.webhooks": [HOOK] * 21}, f"{A}.webhooks"),
    Bad("webhook-name-missing", {f"{W0}.name": DELETE}, f"{W0}.name"),
    Bad("webhook-name-empty", {f"{W0}.name": ""}, f"{W0}.name"),
    Bad("webhook-type-unknown", {f"{W0}.type": "pre-promotion"}, f"{W0}.type"),
    Bad("webhook-url-missing", {f"{W0}.url": DELETE}, f"{W0}.url"),
    Bad("webhook-url-not-http", {f"{W0}.url": "ftp://loadtester.test/"}, f"{W0}.url"),
    Bad("webhook-timeout-not-a-duration", {f"{W0}.timeout": "10"}, f"{W0}.timeout"),
    Bad("webhook-timeout-zero", {f"{W0}.timeout": "0ms"}, f"{W0}.timeout"),
    Bad("webhook-timeout-huge", {f"{W0}.timeout": "99999999999h"}, f"{W0}.timeout"),
    Bad("webhook-timeout-above-an-hour", {f"{W0}.timeout": "61m"}, f"{W0}.timeout"),
    Bad("webhook-timeout-below-100ms", {f"{W0}.timeout": "99ms"}, f"{W0}.timeout"),
    Bad("webhook-retries-negative", {f"{W0}.retries": -1}, f"{W0}.retries"),
    Bad("webhook-retries-above-10", {f"{W0}.retries": 11}, f"{W0}.retries"),
    Bad("webhook-metadata-not-strings", {f"{W0}.metadata": {"replicas": 3}}, f"{W0}.metadata.replicas"),
    # status (written by the controller; nothing parses it as a spec)
    Bad("phase-unknown", {"status.phase": "Paused"}, "status.phase", with_status=True),
    Bad("weight-not-an-integer", {"status.canaryWeight": "20"}, "status.canaryWeight", with_status=True),
    Bad("weight-above-100", {"status.canaryWeight": 101}, "status.canaryWeight", with_status=True),
    Bad("weight-negative", {"status.canaryWeight": -1}, "status.canaryWeight", with_status=True),
    Bad("failed-checks-negative", {"status.failedChecks": -1}, "status.failedChecks", with_status=True),
    Bad("consecutive-errors-negative", {"status.consecutiveErrors": -1}, "status.consecutiveErrors", with_status=True),
    Bad("consecutive-no-data-negative", {"status.consecutiveNoData": -1}, "status.consecutiveNoData",
        with_status=True),
    Bad("iterations-negative", {"status.iterations": -1}, "status.iterations", with_status=True),
    Bad("primary-replicas-negative", {"status.primaryReplicas": -1}, "status.primaryReplicas", with_status=True),
    Bad("time-not-rfc3339", {"status.lastTransitionTime": "yesterday"}, "status.lastTransitionTime", with_status=True),
    Bad("check-kind-unknown", {"status.checks[0].kind": "probe"}, "status.checks[0].kind", with_status=True),
    Bad("check-verdict-unknown", {"status.checks[0].verdict": "Maybe"}, "status.checks[0].verdict", with_status=True),
    Bad("check-value-a-number", {"status.checks[0].value": 99.5}, "status.checks[0].value", with_status=True),
    Bad("condition-status-unknown", {"status.conditions[0].status": "Yes"}, "status.conditions[0].status",
        with_status=True),
    Bad("condition-type-repeated", {"status.conditions[1].type": "Ready"}, "status.conditions[1]", with_status=True),
    Bad("condition-type-missing", {"status.conditions[0].type": DELETE}, "status.conditions[0].type",
        with_status=True),
    # MetricTemplate
    Bad("template-provider-unknown", {"spec.provider.type": "datadog"}, "spec.provider.type", kind="MetricTemplate"),
    Bad("template-address-not-http", {"spec.provider.address": "prometheus:9090"}, "spec.provider.address",
        kind="MetricTemplate"),
    Bad("template-secretRef-name-missing", {"spec.provider.secretRef": {}}, "spec.provider.secretRef.name",
        kind="MetricTemplate"),
    Bad("template-secretRef-name-empty", {"spec.provider.secretRef.name": ""}, "spec.provider.secretRef.name",
        kind="MetricTemplate"),
    Bad("template-insecureSkipVerify-not-bool", {"spec.provider.insecureSkipVerify": "false"},
        "spec.provider.insecureSkipVerify", kind="MetricTemplate"),
    Bad("template-query-missing", {"spec.query": DELETE}, "spec.query", kind="MetricTemplate"),
    Bad("template-query-empty", {"spec.query": ""}, "spec.query", kind="MetricTemplate"),
    Bad("template-query-too-long", {"spec.query": "up" * 5001}, "spec.query", kind="MetricTemplate",
        parser_refuses=False),
]
BLUE_GREEN = {f"{A}.stepWeight": DELETE, f"{A}.iterations": 3}
HPA_REF = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}
SO_REF = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo"}
CASES += [
    # Flagger's fields this controller refuses, each by name (canary/domain/flagger_fields.py).
    *(Bad(f"flagger-{f.path.replace('[]', '')}", {f.path.replace("[]", "[0]"): True if f.path in (
        "spec.service.delegation",) else {"any": "value"}}, f.path.replace("[]", "[0]"))
      for f in refused(CANARY_FIELDS)),
    *(Bad(f"provider-{name}", {"spec.provider": name}, "spec.provider") for name in REFUSED_PROVIDERS),
    Bad("targetRef-kind-statefulset", {"spec.targetRef.kind": "StatefulSet"}, "spec.targetRef.kind"),
    Bad("metric-threshold-and-range", {f"{M0}.threshold": 99}, f"{M0}.threshold"),
    Bad("metric-no-threshold", {f"{M0}.thresholdRange": DELETE}, f"{M0}.thresholdRange"),
    Bad("match-without-iterations", {f"{A}.match": [{"headers": {"x-canary": {"exact": "insider"}}}]}, f"{A}.match"),
    Bad("match-two-kinds", {**BLUE_GREEN, f"{A}.match": [{"headers": {"x-canary": {"exact": "a", "regex": "b"}}}]},
        f"{A}.match[0].headers.x-canary"),
    Bad("match-no-kind", {**BLUE_GREEN, f"{A}.match": [{"queryParams": {"beta": {}}}]}, f"{A}.match[0].queryParams.beta"),
    Bad("match-too-many", {**BLUE_GREEN, f"{A}.match": [{"headers": {"x": {"exact": "y"}}}] * 9}, f"{A}.match"),
    Bad("mirror-with-steps", {f"{A}.mirror": True}, f"{A}.mirror"),
    Bad("mirrorWeight-without-mirror", {**BLUE_GREEN, f"{A}.mirrorWeight": 50}, f"{A}.mirrorWeight"),
    Bad("mirrorWeight-zero", {**BLUE_GREEN, f"{A}.mirror": True, f"{A}.mirrorWeight": 0}, f"{A}.mirrorWeight"),
    Bad("mirrorWeight-above-100", {**BLUE_GREEN, f"{A}.mirror": True, f"{A}.mirrorWeight": 101}, f"{A}.mirrorWeight"),
    Bad("primaryReadyThreshold-zero", {f"{A}.primaryReadyThreshold": 0}, f"{A}.primaryReadyThreshold"),
    Bad("primaryReadyThreshold-above-100", {f"{A}.primaryReadyThreshold": 101}, f"{A}.primaryReadyThreshold"),
    Bad("canaryReadyThreshold-zero", {f"{A}.canaryReadyThreshold": 0}, f"{A}.canaryReadyThreshold"),
    Bad("canaryReadyThreshold-above-100", {f"{A}.canaryReadyThreshold": 101}, f"{A}.canaryReadyThreshold"),
    Bad("sessionAffinity-cookie-missing", {f"{A}.sessionAffinity": {"maxAge": 60}}, f"{A}.sessionAffinity.cookieName"),
    Bad("sessionAffinity-cookie-empty", {f"{A}.sessionAffinity": {"cookieName": ""}}, f"{A}.sessionAffinity.cookieName"),
    Bad("sessionAffinity-primary-cookie-empty", {f"{A}.sessionAffinity": {"cookieName": "c", "primaryCookieName": ""}},
        f"{A}.sessionAffinity.primaryCookieName"),
    Bad("sessionAffinity-maxAge-zero", {f"{A}.sessionAffinity": {"cookieName": "c", "maxAge": 0}},
        f"{A}.sessionAffinity.maxAge"),
    Bad("sessionAffinity-maxAge-above-a-year", {f"{A}.sessionAffinity": {"cookieName": "c", "maxAge": 31536001}},
        f"{A}.sessionAffinity.maxAge"),
    Bad("service-timeout-zero", {"spec.service.timeout": "0s"}, "spec.service.timeout"),
    Bad("service-timeout-not-a-duration", {"spec.service.timeout": "30 seconds"}, "spec.service.timeout"),
    Bad("service-backendTimeout-above-an-hour", {"spec.service.backendTimeout": "2h"}, "spec.service.backendTimeout"),
    Bad("service-backendTimeout-not-a-duration", {"spec.service.backendTimeout": "soon"}, "spec.service.backendTimeout"),
    Bad("gatewayRefs-name-missing", {"spec.service.gatewayRefs": [{"namespace": "edge"}]},
        "spec.service.gatewayRefs[0].name"),
    Bad("gatewayRefs-name-empty", {"spec.service.gatewayRefs": [{"name": ""}]}, "spec.service.gatewayRefs[0].name"),
    Bad("gatewayRefs-port-zero", {"spec.service.gatewayRefs": [{"name": "g", "port": 0}]},
        "spec.service.gatewayRefs[0].port"),
    Bad("gatewayRefs-port-above-65535", {"spec.service.gatewayRefs": [{"name": "g", "port": 65536}]},
        "spec.service.gatewayRefs[0].port"),
    Bad("gatewayRefs-too-many", {"spec.service.gatewayRefs": [{"name": "g"}] * 33}, "spec.service.gatewayRefs"),
    Bad("hosts-empty-name", {"spec.service.hosts": [""]}, "spec.service.hosts[0]"),
    Bad("hosts-too-many", {"spec.service.hosts": ["a.test"] * 17}, "spec.service.hosts"),
    Bad("headers-request-remove-too-many", {"spec.service.headers": {"request": {"remove": ["x"] * 17}}},
        "spec.service.headers.request.remove"),
    Bad("headers-response-remove-too-many", {"spec.service.headers": {"response": {"remove": ["x"] * 17}}},
        "spec.service.headers.response.remove"),
    Bad("autoscalerRef-name-missing", {"spec.autoscalerRef": {"apiVersion": "autoscaling/v2",
                                                              "kind": "HorizontalPodAutoscaler"}},
        "spec.autoscalerRef.name"),
    Bad("autoscalerRef-with-daemonset", {"spec.targetRef.kind": "DaemonSet", "spec.autoscalerRef": HPA_REF},
        "spec.autoscalerRef"),
    Bad("autoscalerRef-name-empty", {"spec.autoscalerRef": {**HPA_REF, "name": ""}}, "spec.autoscalerRef.name"),
    Bad("autoscalerRef-kind-unknown", {"spec.autoscalerRef": {**HPA_REF, "kind": "VerticalPodAutoscaler"}},
        "spec.autoscalerRef.kind"),
    Bad("autoscalerRef-hpa-v2beta2", {"spec.autoscalerRef": {**HPA_REF, "apiVersion": "autoscaling/v2beta2"}},
        "spec.autoscalerRef.apiVersion"),
    Bad("autoscalerRef-scaledobject-wrong-group", {"spec.autoscalerRef": {**SO_REF, "apiVersion": "autoscaling/v2"}},
        "spec.autoscalerRef.apiVersion"),
    Bad("autoscalerRef-queries-on-hpa", {"spec.autoscalerRef": {**HPA_REF, "primaryScalerQueries": {"t": "up"}}},
        "spec.autoscalerRef.primaryScalerQueries"),
    Bad("autoscalerRef-min-zero", {"spec.autoscalerRef": {**HPA_REF, "primaryScalerReplicas": {"minReplicas": 0}}},
        "spec.autoscalerRef.primaryScalerReplicas.minReplicas"),
    Bad("autoscalerRef-min-above-10000",
        {"spec.autoscalerRef": {**HPA_REF, "primaryScalerReplicas": {"minReplicas": 10001}}},
        "spec.autoscalerRef.primaryScalerReplicas.minReplicas"),
    Bad("autoscalerRef-max-zero", {"spec.autoscalerRef": {**HPA_REF, "primaryScalerReplicas": {"maxReplicas": 0}}},
        "spec.autoscalerRef.primaryScalerReplicas.maxReplicas"),
    Bad("autoscalerRef-max-above-10000",
        {"spec.autoscalerRef": {**SO_REF, "primaryScalerReplicas": {"maxReplicas": 10001}}},
        "spec.autoscalerRef.primaryScalerReplicas.maxReplicas"),
    Bad("autoscalerRef-min-above-max",
        {"spec.autoscalerRef": {**HPA_REF, "primaryScalerReplicas": {"minReplicas": 5, "maxReplicas": 4}}},
        "spec.autoscalerRef.primaryScalerReplicas"),
    Bad("template-region", {"spec.provider.region": "eu-west-1"}, "spec.provider.region", kind="MetricTemplate"),
    Bad("metricsServer-not-http", {"spec.metricsServer": "prometheus:9090"}, "spec.metricsServer"),
]
SPEC_CASES = [c for c in CASES if not c.with_status]


def refusal(case: Bad) -> Invalid:
    with pytest.raises(Invalid) as info:
        load_crds()[case.kind].admit(case.build())
    return info.value


def related(a: str, b: str) -> bool:
    """Same field, or one contains the other (a missing parent vs. its missing child)."""
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((short + ".", short + "["))


def test_cases_have_unique_ids() -> None:
    ids = [c.test_id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("kind", ["Canary", "MetricTemplate"])
def test_the_starting_points_are_valid(kind: str) -> None:
    obj = base_canary() if kind == "Canary" else base_metric_template()
    if kind == "Canary":
        obj["status"] = full_status()
    admitted = load_crds()[kind].admit(obj)
    assert admitted.pruned == []
    PARSERS[kind](admitted.object["spec"])


@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_every_target_kind_is_admitted_and_parsed(kind: str) -> None:
    obj = base_canary()
    obj["spec"]["targetRef"]["kind"] = kind
    admitted = load_crds()["Canary"].admit(obj)
    assert admitted.pruned == []
    assert parse_canary_spec(admitted.object["spec"]).target_ref.kind == kind


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_schema_refuses_naming_the_field(case: Bad) -> None:
    error = refusal(case)
    paths = [e.path for e in error.errors]
    assert case.field in paths, str(error)
    assert f"{case.field}: " in str(error)


@pytest.mark.parametrize("case", SPEC_CASES, ids=[c.test_id for c in SPEC_CASES])
def test_parser_agrees(case: Bad) -> None:
    # The parser sees what the API server would hand it had the schema not refused: pruned
    # and defaulted.
    spec = load_crds()[case.kind].prepare(case.build())["spec"]
    if not case.parser_refuses:
        PARSERS[case.kind](spec)
        return
    with pytest.raises(SpecError) as info:
        PARSERS[case.kind](spec)
    assert related(info.value.field, case.field), (info.value.field, case.field)


Location = tuple[str, SchemaPath, str | int]
COVERED_KEYWORDS = ("enum", "minimum", "maximum", "pattern", "minLength", "maxItems")


def required_locations(kind: str) -> set[Location]:
    schema = load_crds()[kind].schema
    out: set[Location] = set()
    for node, spath, _path in iter_schema(schema):
        out |= {(keyword, spath, "") for keyword in COVERED_KEYWORDS if keyword in node}
    for _node, spath, rules in iter_rules(schema):
        out |= {("x-kubernetes-validations", spath, i) for i in range(len(rules))}
    return out


@pytest.mark.parametrize("kind", ["Canary", "MetricTemplate"])
def test_every_rule_enum_bound_and_pattern_has_a_failing_case(kind: str) -> None:
    hit: set[Location] = set()
    for case in CASES:
        if case.kind == kind:
            errors: list[FieldError] = refusal(case).errors
            hit |= {e.origin for e in errors}
    missing = required_locations(kind) - hit
    assert not missing, "\n".join(f"{k} at {'/'.join(map(str, s))} {i}" for k, s, i in sorted(missing, key=str))


def test_at_least_one_case_per_rule_message_in_the_errors() -> None:
    # The server shows the rule's message; make sure ours come through verbatim.
    messages = {r["message"] for _n, _s, rules in iter_rules(load_crds()["Canary"].schema) for r in rules}
    shown = " ".join(str(refusal(c)) for c in CASES if c.kind == "Canary")
    assert all(m in shown for m in messages)
