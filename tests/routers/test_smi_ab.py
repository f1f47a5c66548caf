"""A/B testing with SMI: a TrafficSplit v1alpha3/v1alpha4 naming an HTTPRouteGroup in ``matches``."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from canary.domain.route_spec import MatchKind, RequestMatch, StringMatch
from canary.errors import RouterError
from canary.routers.base import RouteOptions, RouteResource, Weights
from canary.routers.smi import TrafficSplitRouter
from canary.routers.smi_route_groups import header_regex
from tests.routers.test_smi import OWNER, TARGET

AB = Weights(100, 0, experiment=True)
MATCH = (
    RequestMatch(headers={"x-canary": StringMatch(MatchKind.EXACT, "insider.v1")}),
    RequestMatch(headers={"cookie": StringMatch(MatchKind.REGEX, "^(.*?;)?(type=insider)(;.*)?$"),
                          "user-agent": StringMatch(MatchKind.PREFIX, "Mozilla/5.0 (")}),
)
AB_TARGET = dataclasses.replace(TARGET, options=RouteOptions(match=MATCH, fields=("spec.analysis.match",)))
WITH_MATCHES = [pytest.param("v1alpha4", id="v1alpha4"), pytest.param("v1alpha3", id="v1alpha3")]
WITHOUT_MATCHES = [pytest.param("v1alpha2", id="v1alpha2"), pytest.param("v1alpha1", id="v1alpha1")]
META = {"name": "podinfo", "namespace": "test", "labels": {"app.kubernetes.io/managed-by": "canary"},
        "ownerReferences": [OWNER]}


def _ab_split(version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": META,
        "spec": {
            "service": "podinfo",
            "matches": [{"kind": "HTTPRouteGroup", "name": "podinfo"}],
            "backends": [{"service": "podinfo-primary", "weight": 0}, {"service": "podinfo-canary", "weight": 100}],
        },
    }


@pytest.mark.parametrize("version", WITH_MATCHES)
def test_the_experiment_sends_the_group_to_the_canary_exact_body(version: str) -> None:
    assert TrafficSplitRouter(version).build(AB_TARGET, AB) == _ab_split(version)


@pytest.mark.parametrize("version", WITH_MATCHES)
def test_the_route_group_holds_one_route_per_item_in_the_paired_version(version: str) -> None:
    (group,) = TrafficSplitRouter(version).companions(AB_TARGET)
    assert group.resource == RouteResource("specs.smi-spec.io", version, "httproutegroups", "HTTPRouteGroup")
    assert group.name == "podinfo"
    assert group.body == {
        "apiVersion": f"specs.smi-spec.io/{version}",
        "kind": "HTTPRouteGroup",
        "metadata": META,
        "spec": {"matches": [
            {"name": "ab-0", "pathRegex": ".*", "methods": ["*"], "headers": {"x-canary": r"^insider\.v1$"}},
            {"name": "ab-1", "pathRegex": ".*", "methods": ["*"], "headers": {
                "cookie": "^(.*?;)?(type=insider)(;.*)?$", "user-agent": r"^Mozilla/5\.0 \(.*"}},
        ]},
    }


@pytest.mark.parametrize(("kind", "value", "takes", "refuses"), [
    (MatchKind.EXACT, "a.b", ["a.b"], ["axb", "a.bc", "za.b"]),
    (MatchKind.PREFIX, "v1+", ["v1+", "v1+beta"], ["v11", "xv1+"]),
    (MatchKind.REGEX, "^(a|b)$", ["a", "b"], ["ab"]),
])
def test_header_conditions_mean_the_same_as_regexes(kind: MatchKind, value: str, takes: list[str],
                                                    refuses: list[str]) -> None:
    pattern = re.compile(header_regex(StringMatch(kind, value)))
    # Whole-value and searching implementations agree: the regex is anchored either way.
    for text in takes:
        assert pattern.fullmatch(text) and pattern.search(text), text
    for text in refuses:
        assert not pattern.fullmatch(text) and not pattern.search(text), text


@pytest.mark.parametrize("version", WITH_MATCHES)
@pytest.mark.parametrize("weights", [Weights(100, 0), Weights(90, 10), Weights(0, 100)])
def test_outside_the_experiment_the_split_names_no_group(version: str, weights: Weights) -> None:
    body = TrafficSplitRouter(version).build(AB_TARGET, weights)
    assert "matches" not in body["spec"]
    assert [b["weight"] for b in body["spec"]["backends"]] == [weights.primary, weights.canary]
    # The group is wanted all the same: harmless while named by nothing, and ready for the next run.
    assert len(TrafficSplitRouter(version).companions(AB_TARGET)) == 1


@pytest.mark.parametrize("version", WITH_MATCHES)
@pytest.mark.parametrize("weights", [AB, Weights(100, 0), Weights(60, 40)])
def test_read_back_recognises_what_build_wrote(version: str, weights: Weights) -> None:
    router = TrafficSplitRouter(version)
    assert router.read_weights(AB_TARGET, router.build(AB_TARGET, weights)) == weights


@pytest.mark.parametrize("version", WITH_MATCHES)
@pytest.mark.parametrize("change", [
    pytest.param(lambda s: s.update(matches=[{"kind": "HTTPRouteGroup", "name": "other"}]), id="other-group"),
    pytest.param(lambda s: s["matches"].append({"kind": "HTTPRouteGroup", "name": "more"}), id="extra-group"),
    pytest.param(lambda s: s.update(matches=[{"kind": "TCPRoute", "name": "podinfo"}]), id="other-kind"),
    pytest.param(lambda s: s["backends"][0].update(weight=50), id="primary-gets-matches-too"),
    pytest.param(lambda s: s.update(backends=s["backends"][::-1][:1]), id="one-backend"),
])
def test_a_changed_ab_split_reads_as_someone_elses(version: str, change: Any) -> None:
    body = _ab_split(version)
    change(body["spec"])
    assert TrafficSplitRouter(version).read_weights(AB_TARGET, body) is None


@pytest.mark.parametrize("version", WITH_MATCHES)
def test_a_split_with_matches_is_not_ours_when_the_canary_has_no_match(version: str) -> None:
    assert TrafficSplitRouter(version).read_weights(TARGET, _ab_split(version)) is None


@pytest.mark.parametrize("version", WITHOUT_MATCHES)
def test_versions_without_matches_refuse_the_experiment_naming_the_version(version: str) -> None:
    router = TrafficSplitRouter(version)
    with pytest.raises(RouterError, match=f"TrafficSplit {version} has no spec.matches"):
        router.build(AB_TARGET, AB)
    assert router.companions(AB_TARGET) == ()
    assert router.companion_resources == ()
    assert router.read_weights(AB_TARGET, {**_ab_split(version), "apiVersion": f"split.smi-spec.io/{version}"}) is None


@pytest.mark.parametrize("version", WITH_MATCHES)
def test_an_experiment_other_than_ab_is_refused(version: str) -> None:
    with pytest.raises(RouterError, match=r"cannot route 90/10\+experiment"):
        TrafficSplitRouter(version).build(AB_TARGET, Weights(90, 10, experiment=True))


@pytest.mark.parametrize("version", WITH_MATCHES)
def test_query_parameters_are_refused_not_dropped(version: str) -> None:
    match = (RequestMatch(query_params={"beta": StringMatch(MatchKind.EXACT, "on")}),)
    target = dataclasses.replace(TARGET, options=RouteOptions(match=match, fields=("spec.analysis.match",)))
    with pytest.raises(RouterError, match=r"spec.analysis.match\[0\].queryParams"):
        TrafficSplitRouter(version).companions(target)


@pytest.mark.parametrize("version", WITH_MATCHES)
def test_other_options_beside_match_are_still_refused(version: str) -> None:
    options = dataclasses.replace(AB_TARGET.options, mirror=True,
                                  fields=("spec.analysis.match", "spec.analysis.mirror"))
    with pytest.raises(RouterError, match=r"cannot apply spec.analysis.mirror:"):
        TrafficSplitRouter(version).build(dataclasses.replace(AB_TARGET, options=options), AB)
