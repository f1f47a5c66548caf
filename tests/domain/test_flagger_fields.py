"""The parser reads Flagger's fields with Flagger's meaning, or refuses them by name."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from canary.domain.flagger_fields import CANARY_FIELDS, METRIC_TEMPLATE_FIELDS, refused
from canary.domain.route_spec import MatchKind, ParentRef, StringMatch
from canary.domain.spec import parse_canary_spec, parse_metric_template_spec
from canary.errors import SpecError

BASE: dict[str, Any] = {
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
    "service": {"port": 9898},
    "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50,
                 "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]},
}
BOOLEANS = {"spec.service.delegation"}


def spec_with(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    node: Any = {"spec": raw}
    *parents, leaf = path.split(".")
    for part in parents:
        key = part.removesuffix("[]")
        node = node.setdefault(key, {})
        if part.endswith("[]"):
            node = node[0]
    node[leaf] = value
    return raw


@pytest.mark.parametrize("field", refused(CANARY_FIELDS), ids=lambda f: f.path)
def test_each_refused_field_is_refused_by_name(field: Any) -> None:
    value = True if field.path in BOOLEANS else {"anything": 1}
    with pytest.raises(SpecError) as caught:
        parse_canary_spec(spec_with(field.path, value))
    assert caught.value.field == field.path.replace("[]", "[0]")
    assert caught.value.message == f"is not supported: {field.note}"


@pytest.mark.parametrize("path", sorted(BOOLEANS))
def test_a_refused_switch_left_off_means_what_it_meant_in_flagger(path: str) -> None:
    parse_canary_spec(spec_with(path, False))


def test_a_refused_template_field_is_refused_by_name() -> None:
    (region,) = refused(METRIC_TEMPLATE_FIELDS)
    with pytest.raises(SpecError) as caught:
        parse_metric_template_spec({"provider": {"type": "prometheus", "region": "eu-west-1"}, "query": "up"})
    assert caught.value.field == region.path


@pytest.mark.parametrize(("name", "minimum", "maximum"), [
    ("request-success-rate", 99.0, None), ("request-duration", None, 500.0),
])
def test_legacy_threshold_is_a_minimum_for_the_success_rate_and_a_maximum_otherwise(
    name: str, minimum: float | None, maximum: float | None,
) -> None:
    raw = spec_with("spec.analysis.metrics", [{"name": name, "threshold": minimum or maximum}])
    (metric,) = parse_canary_spec(raw).analysis.metrics
    assert (metric.threshold_range.min, metric.threshold_range.max) == (minimum, maximum)


def test_legacy_threshold_of_a_custom_metric_is_a_maximum() -> None:
    raw = spec_with("spec.analysis.metrics", [{"name": "errors", "threshold": 5, "templateRef": {"name": "t"}}])
    assert parse_canary_spec(raw).analysis.metrics[0].threshold_range.max == 5.0


def test_legacy_threshold_and_threshold_range_together_are_refused() -> None:
    raw = spec_with("spec.analysis.metrics", [{"name": "request-duration", "threshold": 5,
                                               "thresholdRange": {"max": 5}}])
    with pytest.raises(SpecError, match="not both") as caught:
        parse_canary_spec(raw)
    assert caught.value.field == "spec.analysis.metrics[0].threshold"


def test_canary_analysis_is_read_when_analysis_is_unset() -> None:
    raw = copy.deepcopy(BASE)
    raw["canaryAnalysis"] = raw.pop("analysis")
    raw["canaryAnalysis"]["stepWeight"] = 20
    assert parse_canary_spec(raw).analysis.step_weight == 20
    raw["analysis"] = copy.deepcopy(BASE["analysis"])
    with pytest.raises(SpecError) as caught:
        parse_canary_spec(raw)
    assert caught.value.field == "spec.canaryAnalysis"


def test_canary_analysis_errors_name_canary_analysis() -> None:
    raw = copy.deepcopy(BASE)
    raw["canaryAnalysis"] = {**raw.pop("analysis"), "threshold": 0}
    with pytest.raises(SpecError) as caught:
        parse_canary_spec(raw)
    assert caught.value.field == "spec.canaryAnalysis.threshold"


def test_gateway_api_service_options() -> None:
    raw = spec_with("spec.service", {
        "port": 80, "timeout": "30s", "backendTimeout": "10s",
        "gatewayRefs": [{"name": "public", "namespace": "edge", "sectionName": "https"}],
        "hosts": ["app.example.test"],
        "headers": {"request": {"set": {"x-a": "1"}, "remove": ["x-b"]}, "response": {"add": {"x-c": "2"}}},
        "rewrite": {"uri": "/v2", "authority": "backend.test"},
    })
    service = parse_canary_spec(raw).service
    assert service.gateway_refs == (ParentRef("public", "edge", section_name="https"),)
    assert service.hosts == ("app.example.test",)
    assert (service.timeout, service.backend_timeout) == (timedelta(seconds=30), timedelta(seconds=10))
    assert service.headers is not None and service.headers.request.set == {"x-a": "1"}
    assert service.headers.request.remove == ("x-b",) and service.headers.response.add == {"x-c": "2"}
    assert service.rewrite is not None and (service.rewrite.uri, service.rewrite.authority) == ("/v2", "backend.test")
    assert set(service.route_options) == {"spec.service.gatewayRefs", "spec.service.hosts", "spec.service.timeout",
                                          "spec.service.backendTimeout", "spec.service.headers",
                                          "spec.service.rewrite"}


@pytest.mark.parametrize(("service", "field", "fragment"), [
    ({"timeout": "1s", "backendTimeout": "2s"}, "spec.service.backendTimeout", "not be longer"),
    ({"rewrite": {"uriRegexRewrite": {"match": "x"}}}, "spec.service.rewrite.uriRegexRewrite", "not supported"),
    ({"rewrite": {"uri": "v2"}}, "spec.service.rewrite.uri", "must start with /"),
    ({"rewrite": {}}, "spec.service.rewrite", "set uri, authority or both"),
    ({"gatewayRefs": [{"namespace": "x"}]}, "spec.service.gatewayRefs[0].name", "non-empty"),
])
def test_service_option_errors_name_the_field(service: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_canary_spec(spec_with("spec.service", {"port": 80, **service}))
    assert caught.value.field == field and fragment in caught.value.message


BLUE_GREEN = {"interval": "1m", "threshold": 5, "iterations": 3}


def test_a_b_match_headers_cookies_and_query_params() -> None:
    raw = spec_with("spec.analysis", {**BLUE_GREEN, "match": [
        {"headers": {"x-canary": {"exact": "insider"}}},
        {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}, "queryParams": {"beta": {"exact": "1"}}},
    ]})
    first, second = parse_canary_spec(raw).analysis.match
    assert first.headers == {"x-canary": StringMatch(MatchKind.EXACT, "insider")}
    assert second.headers["cookie"].kind is MatchKind.REGEX and second.query_params["beta"].value == "1"


@pytest.mark.parametrize(("analysis", "field", "fragment"), [
    ({"stepWeight": 10, "match": [{"headers": {"x": {"exact": "y"}}}]}, "spec.analysis.match", "set iterations"),
    ({**BLUE_GREEN, "match": [{"uri": {"prefix": "/api"}}]}, "spec.analysis.match[0].uri", "not supported"),
    ({**BLUE_GREEN, "match": [{"headers": {"x": {"exact": "y", "prefix": "z"}}}]},
     "spec.analysis.match[0].headers.x", "exactly one"),
    ({**BLUE_GREEN, "match": [{"queryParams": {"x": {"prefix": "y"}}}]}, "spec.analysis.match[0].queryParams.x",
     "exact or regex"),
    ({**BLUE_GREEN, "match": [{}]}, "spec.analysis.match[0]", "set headers or queryParams"),
    ({"stepWeight": 10, "mirror": True}, "spec.analysis.mirror", "blue/green"),
    ({**BLUE_GREEN, "mirrorWeight": 50}, "spec.analysis.mirrorWeight", "without mirror"),
    ({**BLUE_GREEN, "sessionAffinity": {"cookieName": "c", "primaryCookieName": "c"}},
     "spec.analysis.sessionAffinity.primaryCookieName", "differ"),
])
def test_analysis_option_errors_name_the_field(analysis: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_canary_spec(spec_with("spec.analysis", analysis))
    assert caught.value.field == field and fragment in caught.value.message


def test_mirror_session_affinity_and_ready_thresholds() -> None:
    analysis = parse_canary_spec(spec_with("spec.analysis", {
        **BLUE_GREEN, "mirror": True, "mirrorWeight": 40, "primaryReadyThreshold": 80, "canaryReadyThreshold": 50,
        "sessionAffinity": {"cookieName": "canary", "maxAge": 60},
    })).analysis
    assert analysis.mirror and analysis.mirror_weight == 40
    assert (analysis.primary_ready_threshold, analysis.canary_ready_threshold) == (80, 50)
    assert analysis.session_affinity is not None and analysis.session_affinity.max_age == 60
    assert set(analysis.route_options) == {"spec.analysis.mirror", "spec.analysis.sessionAffinity"}


@pytest.mark.parametrize("provider", ["linkerd", "osm", "gatewayapi:v1", "gatewayapi:v1beta1", "smi:v1alpha2"])
def test_flagger_provider_values_are_accepted(provider: str) -> None:
    assert parse_canary_spec({**BASE, "provider": provider}).provider == provider


@pytest.mark.parametrize("field", [f for f in refused(CANARY_FIELDS) if f.path.startswith("spec.analysis.")],
                         ids=lambda f: f.path)
def test_refused_fields_are_refused_under_canary_analysis_too(field: Any) -> None:
    raw = spec_with(field.path, {"anything": 1})
    raw["canaryAnalysis"] = raw.pop("analysis")
    with pytest.raises(SpecError) as caught:
        parse_canary_spec(raw)
    assert caught.value.field == field.path.replace("[]", "[0]").replace("spec.analysis.", "spec.canaryAnalysis.")


def test_an_a_b_item_holds_at_most_what_one_gateway_api_match_may() -> None:
    from canary.domain.route_spec import MATCH_CONDITIONS_MAX

    headers = {f"x-{i}": {"exact": "y"} for i in range(MATCH_CONDITIONS_MAX + 1)}
    with pytest.raises(SpecError) as caught:
        parse_canary_spec(spec_with("spec.analysis", {**BLUE_GREEN, "match": [{"headers": headers}]}))
    assert caught.value.field == "spec.analysis.match[0].headers"
    headers.pop("x-0")
    parse_canary_spec(spec_with("spec.analysis", {**BLUE_GREEN, "match": [{"headers": headers}]}))


@pytest.mark.parametrize("part", ["set", "add"])
def test_a_header_filter_holds_at_most_what_the_gateway_api_allows(part: str) -> None:
    headers = {f"x-{i}": "v" for i in range(17)}
    with pytest.raises(SpecError) as caught:
        parse_canary_spec(spec_with("spec.service", {"port": 80, "headers": {"request": {part: headers}}}))
    assert caught.value.field == f"spec.service.headers.request.{part}"
    headers.pop("x-0")
    parse_canary_spec(spec_with("spec.service", {"port": 80, "headers": {"request": {part: headers}}}))
