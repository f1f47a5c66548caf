"""Parsing Canary and MetricTemplate specs: defaults, and every error naming its field."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from canary.domain.bounds import DurationBound
from canary.domain.durations import DURATION_PATTERN, format_duration, parse_duration
from canary.domain.spec import (
    CanarySpec, NoDataPolicy, ProviderType, TemplateRef, WebhookType, parse_canary_spec, parse_metric_template_spec,
)
from canary.errors import SpecError

MINIMAL: dict[str, Any] = {
    "targetRef": {"name": "podinfo"},
    "service": {"port": 9898},
    "analysis": {"stepWeight": 10},
}


def parse(**overrides: Any) -> CanarySpec:
    raw = copy.deepcopy(MINIMAL)
    for path, value in overrides.items():
        _set(raw, path, value)
    return parse_canary_spec(raw)


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split("__")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    if value is _DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value


_DELETE = object()


def test_defaults() -> None:
    spec = parse()
    assert spec.target_ref.name == "podinfo"
    assert spec.target_ref.kind == "Deployment"
    assert spec.target_ref.api_version == "apps/v1"
    assert spec.service.name == "podinfo"
    assert spec.service.port == 9898
    assert spec.service.port_name == "http"
    assert spec.service.target_port is None
    assert spec.provider is None
    assert spec.progress_deadline_seconds == 600
    assert (spec.skip_analysis, spec.suspend, spec.revert_on_deletion) == (False, False, False)
    a = spec.analysis
    assert a.interval == timedelta(minutes=1)
    assert a.threshold == 5
    assert a.step_weight == 10
    assert a.max_weight == 50
    assert a.step_weights == ()
    assert a.step_weight_promotion is None
    assert a.iterations is None
    assert a.metrics == () and a.webhooks == ()
    assert a.no_data_policy is NoDataPolicy.HOLD
    assert a.min_sample_size == 1
    assert not a.blue_green


def test_everything_set() -> None:
    spec = parse_canary_spec({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
        "service": {"port": 80, "name": "front", "portName": "grpc", "targetPort": "web"},
        "provider": "gatewayapi",
        "progressDeadlineSeconds": 120,
        "skipAnalysis": True, "suspend": True, "revertOnDeletion": True,
        "analysis": {
            "interval": "30s", "threshold": 3, "maxWeight": 40, "stepWeights": [5, 20, 40],
            "stepWeightPromotion": 50, "noDataPolicy": "fail", "minSampleSize": 20,
            "metrics": [
                {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "2m"},
                {"name": "errors", "thresholdRange": {"max": 1.5},
                 "templateRef": {"name": "errors", "namespace": "flagger"}, "templateVariables": {"k": "1"}},
            ],
            "webhooks": [
                {"name": "load", "url": "http://load/", "timeout": "5s", "retries": 2, "metadata": {"cmd": "hey"}},
                {"name": "gate", "type": "confirm-promotion", "url": "http://gate/"},
            ],
        },
    })
    assert spec.service.name == "front" and spec.service.port_name == "grpc" and spec.service.target_port == "web"
    assert spec.provider == "gatewayapi"
    assert spec.progress_deadline_seconds == 120
    assert (spec.skip_analysis, spec.suspend, spec.revert_on_deletion) == (True, True, True)
    a = spec.analysis
    assert a.interval == timedelta(seconds=30) and a.threshold == 3
    assert a.step_weights == (5, 20, 40) and a.max_weight == 40 and a.step_weight is None
    assert a.step_weight_promotion == 50
    assert a.no_data_policy is NoDataPolicy.FAIL and a.min_sample_size == 20
    rate, errors = a.metrics
    assert rate.is_builtin and rate.interval == timedelta(minutes=2) and rate.threshold_range.min == 99
    assert not errors.is_builtin and errors.template_ref == TemplateRef("errors", "flagger")
    assert errors.template_variables == {"k": "1"} and errors.interval is None
    load, gate = a.webhooks
    assert load.type is WebhookType.ROLLOUT and load.timeout == timedelta(seconds=5) and load.retries == 2
    assert load.metadata == {"cmd": "hey"}
    assert gate.type is WebhookType.CONFIRM_PROMOTION and gate.timeout == timedelta(seconds=10)
    assert a.hooks(WebhookType.CONFIRM_PROMOTION) == (gate,)
    assert a.hooks(WebhookType.ROLLBACK) == ()


@pytest.mark.parametrize("analysis, blue_green, max_weight", [
    ({"iterations": 5}, True, None),
    ({"iterations": 5, "stepWeight": 10}, False, 50),
    ({"iterations": 5, "stepWeights": [10]}, False, 10),
    ({"stepWeights": [10, 30]}, False, 30),
    # As in Flagger, stepWeights are the whole plan: maxWeight takes no part, above or below.
    ({"stepWeights": [10, 30], "maxWeight": 60}, False, 30),
    ({"stepWeights": [10, 60], "maxWeight": 50}, False, 60),
    ({"stepWeight": 30, "maxWeight": 30}, False, 30),
], ids=["bg", "bg+step", "bg+steps", "steps", "steps+max", "steps-above-max", "step=max"])
def test_strategy_and_max_weight_defaults(analysis: dict[str, Any], blue_green: bool, max_weight: int | None) -> None:
    a = parse(analysis=analysis).analysis
    assert a.blue_green is blue_green
    assert a.max_weight == max_weight


@pytest.mark.parametrize("flag", ["skipAnalysis", "suspend", "revertOnDeletion"])
@pytest.mark.parametrize("value", [True, False])
def test_boolean_flags(flag: str, value: bool) -> None:
    spec = parse(**{flag: value})
    attr = {"skipAnalysis": "skip_analysis", "suspend": "suspend", "revertOnDeletion": "revert_on_deletion"}[flag]
    assert getattr(spec, attr) is value


ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    # id, overrides, field, message fragment
    ("targetRef-missing", {"targetRef": _DELETE}, "spec.targetRef.name", "non-empty string"),
    ("targetRef-not-object", {"targetRef": "podinfo"}, "spec.targetRef", "must be an object"),
    ("targetRef-kind", {"targetRef__kind": "StatefulSet"}, "spec.targetRef.kind", "not supported"),
    ("targetRef-name-empty", {"targetRef__name": ""}, "spec.targetRef.name", "non-empty string"),
    ("targetRef-name-number", {"targetRef__name": 3}, "spec.targetRef.name", "non-empty string"),
    ("service-missing", {"service": _DELETE}, "spec.service.port", "must be an integer"),
    ("service-not-object", {"service": [80]}, "spec.service", "must be an object"),
    ("port-string", {"service__port": "80"}, "spec.service.port", "must be an integer"),
    ("port-bool", {"service__port": True}, "spec.service.port", "must be an integer"),
    ("port-zero", {"service__port": 0}, "spec.service.port", "at least 1"),
    ("port-high", {"service__port": 65536}, "spec.service.port", "at most 65535"),
    ("targetPort-float", {"service__targetPort": 1.5}, "spec.service.targetPort", "port number or a port name"),
    ("analysis-missing", {"analysis": _DELETE}, "spec.analysis", "is required"),
    ("analysis-not-object", {"analysis": "fast"}, "spec.analysis", "must be an object"),
    ("no-strategy", {"analysis": {"interval": "1m"}}, "spec.analysis", "stepWeight or stepWeights"),
    ("deadline-zero", {"progressDeadlineSeconds": 0}, "spec.progressDeadlineSeconds", "at least 1"),
    ("deadline-string", {"progressDeadlineSeconds": "10m"}, "spec.progressDeadlineSeconds", "must be an integer"),
    ("interval-bad", {"analysis__interval": "1 minute"}, "spec.analysis.interval", "not a duration"),
    ("interval-zero", {"analysis__interval": "0s"}, "spec.analysis.interval", "shorter than 1s"),
    ("interval-number", {"analysis__interval": 60}, "spec.analysis.interval", "not a duration"),
    ("threshold-zero", {"analysis__threshold": 0}, "spec.analysis.threshold", "at least 1"),
    ("threshold-float", {"analysis__threshold": 1.5}, "spec.analysis.threshold", "must be an integer"),
    ("stepWeight-zero", {"analysis__stepWeight": 0}, "spec.analysis.stepWeight", "at least 1"),
    ("stepWeight-high", {"analysis__stepWeight": 101}, "spec.analysis.stepWeight", "at most 100"),
    ("maxWeight-zero", {"analysis__maxWeight": 0}, "spec.analysis.maxWeight", "at least 1"),
    ("maxWeight-high", {"analysis__maxWeight": 101}, "spec.analysis.maxWeight", "at most 100"),
    ("maxWeight-below-step", {"analysis__stepWeight": 30, "analysis__maxWeight": 20}, "spec.analysis.maxWeight",
     "below stepWeight 30"),
    ("default-max-below-step", {"analysis__stepWeight": 60}, "spec.analysis.maxWeight", "below stepWeight 60"),
    ("stepWeights-zero", {"analysis": {"stepWeights": [10, 0]}}, "spec.analysis.stepWeights[1]", "at least 1"),
    ("stepWeights-high", {"analysis": {"stepWeights": [101]}}, "spec.analysis.stepWeights[0]", "at most 100"),
    ("stepWeights-string", {"analysis": {"stepWeights": ["5"]}}, "spec.analysis.stepWeights[0]", "must be an integer"),
    ("stepWeights-both", {"analysis": {"stepWeight": 5, "stepWeights": [5]}}, "spec.analysis.stepWeights",
     "not both"),
    ("stepWeights-flat", {"analysis": {"stepWeights": [10, 10]}}, "spec.analysis.stepWeights", "must increase"),
    ("stepWeights-down", {"analysis": {"stepWeights": [20, 10]}}, "spec.analysis.stepWeights", "must increase"),
    ("promotion-zero", {"analysis__stepWeightPromotion": 0}, "spec.analysis.stepWeightPromotion", "at least 1"),
    ("promotion-high", {"analysis__stepWeightPromotion": 101}, "spec.analysis.stepWeightPromotion", "at most 100"),
    ("iterations-zero", {"analysis": {"iterations": 0}}, "spec.analysis.iterations", "at least 1"),
    ("noDataPolicy", {"analysis__noDataPolicy": "pass"}, "spec.analysis.noDataPolicy", "not one of hold, fail"),
    ("minSampleSize", {"analysis__minSampleSize": 0}, "spec.analysis.minSampleSize", "at least 1"),
    ("metric-not-object", {"analysis__metrics": ["request-success-rate"]}, "spec.analysis.metrics[0]",
     "must be an object"),
    ("metric-name", {"analysis__metrics": [{"thresholdRange": {"min": 1}}]}, "spec.analysis.metrics[0].name",
     "non-empty string"),
    ("metric-no-range", {"analysis__metrics": [{"name": "request-duration"}]},
     "spec.analysis.metrics[0].thresholdRange", "set min, max or both"),
    ("metric-empty-range", {"analysis__metrics": [{"name": "request-duration", "thresholdRange": {}}]},
     "spec.analysis.metrics[0].thresholdRange", "set min, max or both"),
    ("metric-range-inverted", {"analysis__metrics": [{"name": "request-duration",
                                                       "thresholdRange": {"min": 5, "max": 1}}]},
     "spec.analysis.metrics[0].thresholdRange", "min 5.0 is above max 1.0"),
    ("metric-min-string", {"analysis__metrics": [{"name": "request-duration", "thresholdRange": {"min": "5"}}]},
     "spec.analysis.metrics[0].thresholdRange.min", "must be a number"),
    ("metric-max-bool", {"analysis__metrics": [{"name": "request-duration", "thresholdRange": {"max": True}}]},
     "spec.analysis.metrics[0].thresholdRange.max", "must be a number"),
    ("metric-range-not-object", {"analysis__metrics": [{"name": "request-duration", "thresholdRange": 5}]},
     "spec.analysis.metrics[0].thresholdRange", "must be an object"),
    ("metric-unknown-builtin", {"analysis__metrics": [
        {"name": "request-success-rate", "thresholdRange": {"min": 1}},
        {"name": "errors", "thresholdRange": {"max": 1}}]},
     "spec.analysis.metrics[1].templateRef", "not a builtin"),
    ("metric-templateRef-name", {"analysis__metrics": [{"name": "x", "thresholdRange": {"max": 1},
                                                        "templateRef": {}}]},
     "spec.analysis.metrics[0].templateRef.name", "non-empty string"),
    ("metric-templateRef-not-object", {"analysis__metrics": [{"name": "x", "thresholdRange": {"max": 1},
                                                              "templateRef": "x"}]},
     "spec.analysis.metrics[0].templateRef", "must be an object"),
    ("metric-interval", {"analysis__metrics": [{"name": "request-duration", "thresholdRange": {"max": 1},
                                                 "interval": "5"}]},
     "spec.analysis.metrics[0].interval", "not a duration"),
    ("metric-variables", {"analysis__metrics": [{"name": "request-duration", "thresholdRange": {"max": 1},
                                                  "templateVariables": ["a"]}]},
     "spec.analysis.metrics[0].templateVariables", "must be an object"),
    ("webhook-url-scheme", {"analysis__webhooks": [{"name": "a", "url": "ftp://u"}]},
     "spec.analysis.webhooks[0].url", "http:// or https://"),
    ("skip-analysis-quoted", {"skipAnalysis": "false"}, "spec.skipAnalysis", "true or false"),
    ("provider-unknown", {"provider": "linkerd2"}, "spec.provider", "is not a provider; allowed values are"),
    ("provider-refused", {"provider": "istio"}, "spec.provider", "'istio' is refused: Istio"),
    ("webhook-not-object", {"analysis__webhooks": [{"name": "a", "url": "http://u"}, "x"]}, "spec.analysis.webhooks[1]",
     "must be an object"),
    ("webhook-type", {"analysis__webhooks": [{"name": "a", "url": "http://u", "type": "pre-promotion"}]},
     "spec.analysis.webhooks[0].type", "'pre-promotion' is not one of confirm-rollout"),
    ("webhook-name", {"analysis__webhooks": [{"url": "http://u"}]}, "spec.analysis.webhooks[0].name", "non-empty string"),
    ("webhook-url", {"analysis__webhooks": [{"name": "a"}]}, "spec.analysis.webhooks[0].url", "non-empty string"),
    ("webhook-timeout", {"analysis__webhooks": [{"name": "a", "url": "http://u", "timeout": "soon"}]},
     "spec.analysis.webhooks[0].timeout", "not a duration"),
    ("webhook-retries", {"analysis__webhooks": [{"name": "a", "url": "http://u", "retries": -1}]},
     "spec.analysis.webhooks[0].retries", "at least 0"),
    ("webhook-metadata", {"analysis__webhooks": [{"name": "a", "url": "http://u", "metadata": "x"}]},
     "spec.analysis.webhooks[0].metadata", "must be an object"),
]


@pytest.mark.parametrize("overrides, field, fragment", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_spec_error_names_the_field(overrides: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as err:
        parse(**overrides)
    assert err.value.field == field
    assert fragment in err.value.message
    assert str(err.value) == f"{field}: {err.value.message}"


def test_null_webhook_entry_is_an_empty_object() -> None:
    # YAML `- ` gives None; it is then missing its name, not "not an object".
    with pytest.raises(SpecError) as err:
        parse(analysis__webhooks=[None])
    assert err.value.field == "spec.analysis.webhooks[0].name"


@pytest.mark.parametrize("raw, expected", [
    ({"provider": {"type": "prometheus", "address": "http://prom:9090"}, "query": "up"},
     (ProviderType.PROMETHEUS, "http://prom:9090", None, False)),
    ({"provider": {"type": "smi", "secretRef": {"name": "s"}, "insecureSkipVerify": True}, "query": "q"},
     (ProviderType.SMI, None, "s", True)),
    ({"query": "q"}, (ProviderType.PROMETHEUS, None, None, False)),
], ids=["prometheus", "smi", "defaults"])
def test_metric_template(raw: dict[str, Any], expected: tuple[Any, ...]) -> None:
    spec = parse_metric_template_spec(raw)
    p = spec.provider
    assert (p.type, p.address, p.secret_ref, p.insecure_skip_verify) == expected
    assert spec.query == raw["query"]


@pytest.mark.parametrize("raw, field", [
    ({"provider": {"type": "datadog"}, "query": "q"}, "spec.provider.type"),
    ({"provider": "prometheus", "query": "q"}, "spec.provider"),
    ({"provider": {"secretRef": "s"}, "query": "q"}, "spec.provider.secretRef"),
    ({"provider": {}}, "spec.query"),
    ({"provider": {}, "query": ""}, "spec.query"),
], ids=["type", "provider-not-object", "secretRef-not-object", "query-missing", "query-empty"])
def test_metric_template_errors(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_metric_template_spec(raw)
    assert err.value.field == field


# --- durations --------------------------------------------------------------------------------

#: Wider than any real field, to test the grammar apart from the bounds (tests/domain/test_durations.py).
WIDE = DurationBound("f", timedelta(milliseconds=1), timedelta(hours=1000), "1m", "tests the grammar")


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1), ("30s", 30), ("1m", 60), ("1m30s", 90), ("1h", 3600), ("1h1m1s", 3661), ("500ms", 0.5),
    ("1.5m", 90), ("0.5s", 0.5), ("2h30m", 9000), ("1m1m", 120), ("90s", 90), ("1s500ms", 1.5),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text, "f", WIDE) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1", "m", "1d", "1 m", "-1s", "1m-", "s1", "1.s", "0s", "0m0s", "0ms", None, 5,
                                  "1M", ".5s", "1.2345s", "123456s"])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(SpecError) as err:
        parse_duration(text, "spec.analysis.interval", WIDE)
    assert err.value.field == "spec.analysis.interval"


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (1, "1s"), (59, "59s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (3661, "1h1m1s"), (7200, "2h"),
    (0.5, "500ms"), (1.5, "1s500ms"), (3601, "1h1s"), (86400, "24h"), (86399.999, "23h59m59s999ms"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize("seconds", [1, 30, 60, 61, 90, 3599, 3600, 3661, 0.25, 12.5, 86399])
def test_format_then_parse_round_trips(seconds: float) -> None:
    text = format_duration(timedelta(seconds=seconds))
    assert parse_duration(text, "f", WIDE) == timedelta(seconds=seconds)


def test_pattern_is_anchored_for_the_crd() -> None:
    assert DURATION_PATTERN.startswith("^") and DURATION_PATTERN.endswith("$")
